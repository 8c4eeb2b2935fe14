//! Rows read into records: the column lists the reads select and the functions that read them,
//! with the conversions between PostgreSQL's BIGINT, text and JSONB and mmm's types.

use std::error::Error;
use std::path::PathBuf;
use std::str::FromStr;

use tokio_postgres::Row;

use super::session::Decode;
use crate::{
    AttemptRecord, EventRecord, ItemCounts, ItemRecord, JobRecord, PagedItem, SnapshotRecord,
    StoredSteps,
};
use mmm_core::event::Event;
use mmm_core::job::{AttemptOutcome, JobId};
use mmm_core::snapshot::Snapshot;

/// The columns of `jobs`, in the order [`job_from_row`] reads them.
pub(super) const JOB_COLUMNS: &str = "id, name, status, phase, spec, spec_hash, source, max_parallel, \
     created_at, started_at, updated_at, finished_at, duration_ms, owner_pid, owner_host, \
     heartbeat_at, origin, input_fingerprint, \
     COALESCE((SELECT c.paused FROM job_controls c WHERE c.job_ref = jobs.job_ref), FALSE), \
     (SELECT c.agents FROM job_controls c WHERE c.job_ref = jobs.job_ref)";

/// The columns of `items`, in the order [`item_from_row`] reads them.
pub(super) const ITEM_COLUMNS: &str = "idx, key, value, status, attempts";

/// The columns of `attempts a JOIN items i`, in the order [`attempt_from_row`] reads them.
pub(super) const ATTEMPT_COLUMNS: &str = "a.item_idx, i.key, a.number, a.agent, a.started_at, a.ended_at, \
     a.duration_us, a.outcome, a.exit_code, a.error, a.steps, a.stdout_tail, a.stderr_tail";

/// A count, position or duration as PostgreSQL's BIGINT. These stay far below `i64::MAX`; the
/// clamp only keeps the conversion total.
pub(super) fn int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Reads a text column with the type's `FromStr` (its canonical spelling).
pub(super) fn text<T>(row: &Row, index: usize) -> Result<T, Decode>
where
    T: FromStr,
    T::Err: Error + Send + Sync + 'static,
{
    let value: &str = row.try_get(index)?;
    Ok(value.parse()?)
}

/// Reads a text column that may be NULL with the type's `FromStr`.
pub(super) fn optional_text<T>(row: &Row, index: usize) -> Result<Option<T>, Decode>
where
    T: FromStr,
    T::Err: Error + Send + Sync + 'static,
{
    match row.try_get::<_, Option<&str>>(index)? {
        None => Ok(None),
        Some(value) => Ok(Some(value.parse()?)),
    }
}

/// Reads a non-negative BIGINT column.
pub(super) fn unsigned(row: &Row, index: usize) -> Result<u64, Decode> {
    let value: i64 = row.try_get(index)?;
    Ok(u64::try_from(value)?)
}

/// Reads a non-negative BIGINT column that may be NULL.
pub(super) fn optional_unsigned(row: &Row, index: usize) -> Result<Option<u64>, Decode> {
    match row.try_get::<_, Option<i64>>(index)? {
        None => Ok(None),
        Some(value) => Ok(Some(u64::try_from(value)?)),
    }
}

/// Reads a BIGINT column that holds a `u32` (attempt numbers and counts, agents, pids).
pub(super) fn small(row: &Row, index: usize) -> Result<u32, Decode> {
    let value: i64 = row.try_get(index)?;
    Ok(u32::try_from(value)?)
}

/// Reads a BIGINT column that holds an `i32` (exit codes) and may be NULL.
pub(super) fn optional_i32(row: &Row, index: usize) -> Result<Option<i32>, Decode> {
    match row.try_get::<_, Option<i64>>(index)? {
        None => Ok(None),
        Some(value) => Ok(Some(i32::try_from(value)?)),
    }
}

/// Reads a JSONB column into `T`.
pub(super) fn json<T: serde::de::DeserializeOwned>(row: &Row, index: usize) -> Result<T, Decode> {
    let value: serde_json::Value = row.try_get(index)?;
    Ok(serde_json::from_value(value)?)
}

/// Reads a row of [`JOB_COLUMNS`]; the counts are filled in afterwards.
pub(super) fn job_from_row(row: &Row) -> Result<JobRecord, Decode> {
    Ok(JobRecord {
        id: text(row, 0)?,
        name: row.try_get(1)?,
        status: text(row, 2)?,
        phase: optional_text(row, 3)?,
        spec: row.try_get(4)?,
        spec_hash: row.try_get(5)?,
        source: row.try_get::<_, Option<String>>(6)?.map(PathBuf::from),
        max_parallel: small(row, 7)?,
        created_at: row.try_get(8)?,
        started_at: row.try_get(9)?,
        updated_at: row.try_get(10)?,
        finished_at: row.try_get(11)?,
        duration_ms: row.try_get(12)?,
        owner_pid: match row.try_get::<_, Option<i64>>(13)? {
            None => None,
            Some(pid) => Some(u32::try_from(pid)?),
        },
        owner_host: row.try_get(14)?,
        heartbeat_at: row.try_get(15)?,
        origin: row.try_get(16)?,
        input_fingerprint: row.try_get(17)?,
        paused: row.try_get(18)?,
        scaled_agents: match row.try_get::<_, Option<i64>>(19)? {
            None => None,
            Some(agents) => Some(u32::try_from(agents)?),
        },
        counts: ItemCounts::default(),
    })
}

/// Reads a row of [`ITEM_COLUMNS`].
pub(super) fn item_from_row(row: &Row) -> Result<ItemRecord, Decode> {
    Ok(ItemRecord {
        index: unsigned(row, 0)?,
        key: row.try_get(1)?,
        value: row.try_get(2)?,
        status: text(row, 3)?,
        attempts: small(row, 4)?,
    })
}

/// Reads a row of `at, payload` from `snapshots`.
pub(super) fn snapshot_from_row(row: &Row) -> Result<SnapshotRecord, Decode> {
    Ok(SnapshotRecord {
        at: row.try_get(0)?,
        payload: Snapshot::from_json(row.try_get(1)?),
    })
}

/// Reads a row of `seq, at, kind, item_key, payload` from `events`.
pub(super) fn event_from_row(row: &Row, job: JobId) -> Result<EventRecord, Decode> {
    Ok(EventRecord {
        seq: row.try_get(0)?,
        job,
        at: row.try_get(1)?,
        item_key: row.try_get(3)?,
        event: Event::from_parts(&row.try_get::<_, String>(2)?, row.try_get(4)?),
    })
}

/// Reads a row of [`crate::JobReads::items_page`]'s query: the item's five columns, then its last
/// attempt's (all NULL when it has none).
pub(super) fn paged_item_from_row(row: &Row) -> Result<PagedItem, Decode> {
    let item = item_from_row(row)?;
    let last_attempt = match row.try_get::<_, Option<i64>>(5)? {
        None => None,
        Some(number) => Some(AttemptRecord {
            item_index: item.index,
            item_key: item.key.clone(),
            number: u32::try_from(number)?,
            agent: row.try_get(6)?,
            started_at: row.try_get(7)?,
            ended_at: row.try_get(8)?,
            duration_us: optional_unsigned(row, 9)?,
            outcome: optional_text::<AttemptOutcome>(row, 10)?,
            exit_code: optional_i32(row, 11)?,
            error: row.try_get(12)?,
            steps: json::<StoredSteps>(row, 13)?.0,
            stdout_tail: row.try_get(14)?,
            stderr_tail: row.try_get(15)?,
        }),
    };
    Ok(PagedItem { item, last_attempt })
}

/// Reads a row of [`ATTEMPT_COLUMNS`].
pub(super) fn attempt_from_row(row: &Row) -> Result<AttemptRecord, Decode> {
    Ok(AttemptRecord {
        item_index: unsigned(row, 0)?,
        item_key: row.try_get(1)?,
        number: small(row, 2)?,
        agent: row.try_get(3)?,
        started_at: row.try_get(4)?,
        ended_at: row.try_get(5)?,
        duration_us: optional_unsigned(row, 6)?,
        outcome: optional_text::<AttemptOutcome>(row, 7)?,
        exit_code: optional_i32(row, 8)?,
        error: row.try_get(9)?,
        steps: json::<StoredSteps>(row, 10)?.0,
        stdout_tail: row.try_get(11)?,
        stderr_tail: row.try_get(12)?,
    })
}
