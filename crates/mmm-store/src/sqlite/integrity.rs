//! [`Integrity`] on SQLite: the write probe, a job's whole record for `mmm check`, SQLite's
//! own checks, and a repair applied under the rules of [`crate::rules::repair`].

use rusqlite::{Transaction, params};

use super::SqliteStore;
use super::rows::{ATTEMPT_COLUMNS, ITEM_COLUMNS, attempt_from_row, int, item_from_row};
use crate::rules::interruptions::REPAIRED_ATTEMPT_ERROR;
use crate::rules::repair;
use crate::rules::store_events::StoreEvent;
use crate::{Integrity, JobContents, RepairAction, StoreError};
use mmm_core::event::Repaired;
use mmm_core::job::JobId;

impl Integrity for SqliteStore {
    fn probe_write(&self) -> Result<(), StoreError> {
        let mut conn = self.lock();
        let tx = self.begin_write(&mut conn)?;
        // A no-op write, so a read-only file fails here rather than later.
        tx.execute("UPDATE jobs SET id = id WHERE 0", [])
            .map_err(self.fail("write to the store"))?;
        tx.rollback().map_err(self.fail("roll back a probe"))
    }

    fn job_contents(&self, job: JobId) -> Result<JobContents, StoreError> {
        self.read(|tx| {
            let record = self.read_job(tx, job)?;
            let items = tx
                .prepare_cached(&format!(
                    "SELECT {ITEM_COLUMNS} FROM items
                       WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = ?1) ORDER BY idx"
                ))
                .and_then(|mut select| {
                    select
                        .query_map(params![job.to_string()], item_from_row)?
                        .collect::<Result<Vec<_>, _>>()
                })
                .map_err(self.fail("read a job's items"))?;
            let attempts = tx
                .prepare_cached(&format!(
                    "SELECT {ATTEMPT_COLUMNS} FROM attempts a
                     JOIN items i ON i.job_ref = a.job_ref AND i.idx = a.item_idx
                     WHERE a.job_ref = (SELECT job_ref FROM jobs WHERE id = ?1)
                     ORDER BY a.item_idx, a.number"
                ))
                .and_then(|mut select| {
                    select
                        .query_map(params![job.to_string()], attempt_from_row)?
                        .collect::<Result<Vec<_>, _>>()
                })
                .map_err(self.fail("read a job's attempts"))?;
            Ok(JobContents {
                job: record,
                items,
                attempts,
            })
        })
    }

    fn storage_problems(&self) -> Result<Vec<String>, StoreError> {
        let conn = self.lock();
        let mut problems = Vec::new();
        let lines = conn
            .prepare("PRAGMA integrity_check")
            .and_then(|mut check| {
                check
                    .query_map([], |row| row.get::<_, String>(0))?
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(self.fail("check the database's integrity"))?;
        problems.extend(lines.into_iter().filter(|line| line != "ok"));
        let violations = conn
            .prepare("PRAGMA foreign_key_check")
            .and_then(|mut check| {
                check
                    .query_map([], |row| {
                        Ok((
                            row.get::<_, String>(0)?,
                            row.get::<_, Option<i64>>(1)?,
                            row.get::<_, String>(2)?,
                        ))
                    })?
                    .collect::<Result<Vec<_>, _>>()
            })
            .map_err(self.fail("check the database's foreign keys"))?;
        problems.extend(violations.into_iter().map(|(table, rowid, parent)| {
            let row = rowid.map_or_else(String::new, |id| format!(" row {id}"));
            format!("{table}{row} refers to a missing row of {parent}")
        }));
        Ok(problems)
    }

    fn repair(&self, job: JobId, repair: &Repaired, at: i64) -> Result<(), StoreError> {
        self.write("commit a repair", |tx| {
            self.ensure_job(tx, job)?;
            for action in &repair.actions {
                if !self.repair_one(tx, job, action, at)? {
                    return Err(repair::conflict(action, job));
                }
            }
            let event = StoreEvent::repaired(repair);
            self.record_event(tx, job, at, &event, "record a repair")?;
            self.touch_job(tx, job, at, "update a job")
        })
    }
}

impl SqliteStore {
    /// Applies one repair action if the record still holds what it expects; false when it
    /// does not (nothing was changed then).
    fn repair_one(
        &self,
        tx: &Transaction<'_>,
        job: JobId,
        action: &RepairAction,
        at: i64,
    ) -> Result<bool, StoreError> {
        let id = job.to_string();
        let changed = match action {
            RepairAction::InterruptAttempt { item_index, number } => tx
                .execute(
                    "UPDATE attempts
                     SET outcome = ?4, ended_at = ?5,
                         error = COALESCE(error, ?6)
                     WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = ?1)
                       AND item_idx = ?2 AND number = ?3
                       AND outcome IS NULL",
                    params![
                        id,
                        int(*item_index),
                        number,
                        repair::CLOSED_AS.as_str(),
                        at,
                        REPAIRED_ATTEMPT_ERROR,
                    ],
                )
                .map_err(self.fail("close an attempt in flight"))?,
            RepairAction::RequeueItem { item_index, from } => tx
                .execute(
                    "UPDATE items SET status = ?4
                     WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = ?1) AND idx = ?2 AND status = ?3",
                    params![
                        id,
                        int(*item_index),
                        from.as_str(),
                        repair::REQUEUED_AS.as_str()
                    ],
                )
                .map_err(self.fail("requeue an item"))?,
            RepairAction::SetJobStatus { from, to } => {
                return self.set_job_status(tx, job, (*from, *to), at);
            }
        };
        Ok(changed > 0)
    }
}
