//! [`Integrity`] on PostgreSQL: the write probe, a job's whole record for `mmm check`, the
//! checks that stand in for SQLite's `integrity_check`, and a repair applied under the rules of
//! [`crate::rules::repair`].

use tokio_postgres::Client;

use super::PostgresStore;
use super::rows::{ATTEMPT_COLUMNS, ITEM_COLUMNS, attempt_from_row, int, item_from_row};
use super::schema::{SCHEMA_VERSION, TABLES};
use super::session::fail;
use super::statements::RowLock;
use super::transaction::{Access, Tx};
use super::url::quoted;
use crate::rules::interruptions::REPAIRED_ATTEMPT_ERROR;
use crate::rules::repair;
use crate::rules::store_events::StoreEvent;
use crate::{Integrity, JobContents, RepairAction, StoreError};
use mmm_core::event::Repaired;
use mmm_core::job::JobId;

impl Integrity for PostgresStore {
    fn probe_write(&self) -> Result<(), StoreError> {
        self.transaction(Access::Probe, move |tx| {
            Box::pin(async move {
                // A real (no-op) write: a read-only server or a full disk fails here.
                tx.client()
                    .execute("UPDATE mmm_store SET version = version", &[])
                    .await
                    .map_err(tx.fail("write to the store"))?;
                Ok(())
            })
        })
    }

    fn job_contents(&self, job: JobId) -> Result<JobContents, StoreError> {
        self.read(move |tx| {
            Box::pin(async move {
                let record = tx
                    .read_job(job)
                    .await?
                    .ok_or_else(|| StoreError::job_not_found(job))?;
                let id = job.to_string();
                let sql = format!(
                    "SELECT {ITEM_COLUMNS} FROM items
                       WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = $1) ORDER BY idx"
                );
                let items = tx
                    .rows("read a job's items", &sql, &[&id], item_from_row)
                    .await?;
                let sql = format!(
                    "SELECT {ATTEMPT_COLUMNS} FROM attempts a
                     JOIN items i ON i.job_ref = a.job_ref AND i.idx = a.item_idx
                     WHERE a.job_ref = (SELECT job_ref FROM jobs WHERE id = $1)
                     ORDER BY a.item_idx, a.number"
                );
                let attempts = tx
                    .rows("read a job's attempts", &sql, &[&id], attempt_from_row)
                    .await?;
                Ok(JobContents {
                    job: record,
                    items,
                    attempts,
                })
            })
        })
    }

    /// PostgreSQL has no `integrity_check`; the equivalents, one line per problem:
    /// - the schema: every table of this version is there, and `mmm_store` says this version;
    /// - indexes left invalid (e.g. by a failed build) and constraints never validated;
    /// - triggers disabled on the store's tables (which switches off foreign-key checks);
    /// - rows that refer to a missing row (what SQLite's `foreign_key_check` finds);
    /// - with the `amcheck` extension installed, `bt_index_check` on every B-tree index; a
    ///   corrupted index is a problem, a missing privilege to run it is not.
    fn storage_problems(&self) -> Result<Vec<String>, StoreError> {
        let schema = self.schema.clone();
        self.transaction(Access::Autocommit, move |tx| {
            Box::pin(async move { storage_problems(tx.client(), tx.location(), &schema).await })
        })
    }

    fn repair(&self, job: JobId, repair: &Repaired, at: i64) -> Result<(), StoreError> {
        let repair = repair.clone();
        self.write("commit a repair", move |tx| {
            Box::pin(async move {
                tx.ensure_job(job, RowLock::ForUpdate).await?;
                for action in &repair.actions {
                    if !tx.repair_one(job, action, at).await? {
                        return Err(repair::conflict(action, job));
                    }
                }
                tx.record_event(job, at, &StoreEvent::repaired(&repair))
                    .await?;
                tx.touch_job(job, at).await
            })
        })
    }
}

impl Tx<'_> {
    /// Applies one repair action if the record still holds what it expects; false when it does
    /// not (nothing was changed then).
    async fn repair_one(
        &mut self,
        job: JobId,
        action: &RepairAction,
        at: i64,
    ) -> Result<bool, StoreError> {
        let id = job.to_string();
        let changed = match action {
            RepairAction::InterruptAttempt { item_index, number } => {
                self.execute(
                    "close an attempt in flight",
                    "UPDATE attempts
                     SET outcome = $4::text, ended_at = $5::bigint,
                         error = COALESCE(error, $6::text)
                     WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = $1)
                       AND item_idx = $2::bigint AND number = $3::bigint
                       AND outcome IS NULL",
                    &[
                        &id,
                        &int(*item_index),
                        &i64::from(*number),
                        &repair::CLOSED_AS.as_str(),
                        &at,
                        &REPAIRED_ATTEMPT_ERROR,
                    ],
                )
                .await?
            }
            RepairAction::RequeueItem { item_index, from } => {
                self.execute(
                    "requeue an item",
                    "UPDATE items SET status = $4::text
                     WHERE job_ref = (SELECT job_ref FROM jobs WHERE id = $1) AND idx = $2::bigint AND status = $3::text",
                    &[
                        &id,
                        &int(*item_index),
                        &from.as_str(),
                        &repair::REQUEUED_AS.as_str(),
                    ],
                )
                .await?
            }
            RepairAction::SetJobStatus { from, to } => {
                return self.set_job_status(job, (*from, *to), at).await;
            }
        };
        Ok(changed > 0)
    }
}

/// The checks of [`Integrity::storage_problems`] for PostgreSQL, each statement on its own (a
/// check that fails, e.g. `amcheck` without the privilege to run it, must not abort the next).
async fn storage_problems(
    client: &Client,
    location: &str,
    schema: &str,
) -> Result<Vec<String>, StoreError> {
    let mut problems = Vec::new();
    let operation = "check the store's schema";
    let rows = client
        .query(
            "SELECT t FROM unnest($2::text[]) AS t
             WHERE to_regclass(quote_ident($1::text) || '.' || quote_ident(t)) IS NULL",
            &[&schema, &TABLES],
        )
        .await
        .map_err(fail(location, operation))?;
    for row in &rows {
        let table: String = row.get(0);
        problems.push(format!("table {schema}.{table} is missing"));
    }
    if !problems.is_empty() {
        // The other checks read those tables.
        return Ok(problems);
    }
    let rows = client
        .query("SELECT version FROM mmm_store", &[])
        .await
        .map_err(fail(location, operation))?;
    let versions: Vec<i64> = rows.iter().map(|row| row.get(0)).collect();
    if versions != [SCHEMA_VERSION] {
        problems.push(format!(
            "mmm_store records schema versions {versions:?}, expected [{SCHEMA_VERSION}]"
        ));
    }

    let operation = "check the store's indexes and constraints";
    let rows = client
        .query(
            "SELECT c.relname FROM pg_index x
             JOIN pg_class c ON c.oid = x.indexrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = $1::text AND NOT (x.indisvalid AND x.indisready)
             ORDER BY 1",
            &[&schema],
        )
        .await
        .map_err(fail(location, operation))?;
    for row in &rows {
        let index: String = row.get(0);
        problems.push(format!("index {index} is invalid; rebuild it with REINDEX"));
    }
    let rows = client
        .query(
            "SELECT c.conname, c.conrelid::regclass::text FROM pg_constraint c
             JOIN pg_namespace n ON n.oid = c.connamespace
             WHERE n.nspname = $1::text AND NOT c.convalidated
             ORDER BY 1",
            &[&schema],
        )
        .await
        .map_err(fail(location, operation))?;
    for row in &rows {
        let (constraint, table): (String, String) = (row.get(0), row.get(1));
        problems.push(format!(
            "constraint {constraint} of table {table} is not validated"
        ));
    }
    let rows = client
        .query(
            "SELECT DISTINCT t.tgrelid::regclass::text FROM pg_trigger t
             JOIN pg_class c ON c.oid = t.tgrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE n.nspname = $1::text AND t.tgenabled = 'D'
             ORDER BY 1",
            &[&schema],
        )
        .await
        .map_err(fail(location, operation))?;
    for row in &rows {
        let table: String = row.get(0);
        problems.push(format!(
            "triggers are disabled on table {table}, so its foreign keys are not enforced"
        ));
    }

    let operation = "check the store's references";
    let orphans: [(&str, &str, &str); 5] = [
        (
            "items",
            "jobs",
            "SELECT count(*) FROM items r WHERE NOT EXISTS
             (SELECT 1 FROM jobs p WHERE p.job_ref = r.job_ref)",
        ),
        (
            "attempts",
            "items",
            "SELECT count(*) FROM attempts r WHERE NOT EXISTS
             (SELECT 1 FROM items p WHERE p.job_ref = r.job_ref AND p.idx = r.item_idx)",
        ),
        (
            "events",
            "jobs",
            "SELECT count(*) FROM events r WHERE NOT EXISTS
             (SELECT 1 FROM jobs p WHERE p.job_ref = r.job_ref)",
        ),
        (
            "snapshots",
            "jobs",
            "SELECT count(*) FROM snapshots r WHERE NOT EXISTS
             (SELECT 1 FROM jobs p WHERE p.job_ref = r.job_ref)",
        ),
        (
            "checkpoints",
            "jobs",
            "SELECT count(*) FROM checkpoints r WHERE NOT EXISTS
             (SELECT 1 FROM jobs p WHERE p.job_ref = r.job_ref)",
        ),
    ];
    for (table, parent, sql) in orphans {
        let row = client
            .query_one(sql, &[])
            .await
            .map_err(fail(location, operation))?;
        let count: i64 = row.get(0);
        if count > 0 {
            problems.push(format!(
                "{count} rows of {table} refer to a missing row of {parent}"
            ));
        }
    }

    let operation = "check the store's indexes with amcheck";
    let rows = client
        .query(
            "SELECT n.nspname FROM pg_extension e
             JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'amcheck'",
            &[],
        )
        .await
        .map_err(fail(location, operation))?;
    if let Some(row) = rows.first() {
        let amcheck: String = row.get(0);
        let indexes = client
            .query(
                "SELECT c.oid, c.relname FROM pg_index x
                 JOIN pg_class c ON c.oid = x.indexrelid
                 JOIN pg_namespace n ON n.oid = c.relnamespace
                 JOIN pg_am a ON a.oid = c.relam
                 WHERE n.nspname = $1::text AND a.amname = 'btree' AND x.indisvalid
                 ORDER BY 2",
                &[&schema],
            )
            .await
            .map_err(fail(location, operation))?;
        let check = format!("SELECT {}.bt_index_check($1::oid)", quoted(&amcheck));
        for index in &indexes {
            let (oid, name): (tokio_postgres::types::Oid, String) = (index.get(0), index.get(1));
            if let Err(error) = client.query(&check, &[&oid]).await {
                let corrupted = error.as_db_error().is_some_and(|db| {
                    let code = db.code().code();
                    code == "XX001" || code == "XX002"
                });
                if corrupted {
                    problems.push(format!("index {name} is corrupted: {error}"));
                }
            }
        }
    }
    Ok(problems)
}
