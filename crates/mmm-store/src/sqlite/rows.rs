//! Rows read into records: the column lists the reads select and the functions that read them,
//! with the conversions between SQLite's integers and text and mmm's types.

use std::error::Error;
use std::path::PathBuf;
use std::str::FromStr;

use rusqlite::Row;
use rusqlite::types::{Type, ValueRef};

use crate::{
    AttemptRecord, EventRecord, ItemCounts, ItemRecord, JobRecord, PagedItem, StoredSteps,
};
use mmm_core::event::Event;
use mmm_core::job::{AttemptOutcome, JobId, Phase};

/// The columns of `jobs`, in the order [`job_from_row`] reads them.
pub(super) const JOB_COLUMNS: &str = "id, name, status, phase, spec, spec_hash, source, \
     max_parallel, created_at, started_at, updated_at, finished_at, duration_ms, owner_pid, \
     owner_host, heartbeat_at, origin, input_fingerprint, \
     COALESCE((SELECT c.paused FROM job_controls c WHERE c.job_ref = jobs.job_ref), 0), \
     (SELECT c.agents FROM job_controls c WHERE c.job_ref = jobs.job_ref)";

/// The columns of `items`, in the order [`item_from_row`] reads them.
pub(super) const ITEM_COLUMNS: &str = "idx, key, value, status, attempts";

/// The columns of `attempts a JOIN items i`, in the order [`attempt_from_row`] reads them.
pub(super) const ATTEMPT_COLUMNS: &str = "a.item_idx, i.key, a.number, a.agent, a.started_at, \
     a.ended_at, a.duration_us, a.outcome, a.exit_code, a.error, a.steps, a.stdout_tail, \
     a.stderr_tail";

/// `LIMIT n`, written into a statement's text rather than bound: SQLite prepares a statement
/// whose LIMIT is a bound parameter again on every run (its plan may depend on the value), so
/// a cached read of the dashboard was compiled anew each time. Statements are cached by text,
/// one per limit in use.
pub(super) fn limit_clause(limit: usize) -> String {
    format!("LIMIT {}", i64::try_from(limit).unwrap_or(i64::MAX))
}

/// Reads a row of [`JOB_COLUMNS`]; the counts are filled in afterwards.
pub(super) fn job_from_row(row: &Row<'_>) -> rusqlite::Result<JobRecord> {
    Ok(JobRecord {
        id: text(row, 0)?,
        name: row.get(1)?,
        status: text(row, 2)?,
        phase: optional_text::<Phase>(row, 3)?,
        spec: row.get(4)?,
        spec_hash: row.get(5)?,
        source: row.get::<_, Option<String>>(6)?.map(PathBuf::from),
        max_parallel: row.get(7)?,
        created_at: row.get(8)?,
        started_at: row.get(9)?,
        updated_at: row.get(10)?,
        finished_at: row.get(11)?,
        duration_ms: row.get(12)?,
        owner_pid: row.get(13)?,
        owner_host: row.get(14)?,
        heartbeat_at: row.get(15)?,
        origin: row.get(16)?,
        input_fingerprint: row.get(17)?,
        paused: row.get(18)?,
        scaled_agents: row.get(19)?,
        counts: ItemCounts::default(),
    })
}

/// Reads a row of [`ITEM_COLUMNS`].
pub(super) fn item_from_row(row: &Row<'_>) -> rusqlite::Result<ItemRecord> {
    Ok(ItemRecord {
        index: unsigned(row, 0)?,
        key: row.get(1)?,
        value: row.get(2)?,
        status: text(row, 3)?,
        attempts: row.get(4)?,
    })
}

/// Reads a row of `seq, at, kind, item_key, payload` from `events`.
pub(super) fn event_from_row(row: &Row<'_>, job: JobId) -> rusqlite::Result<EventRecord> {
    Ok(EventRecord {
        seq: row.get(0)?,
        job,
        at: row.get(1)?,
        item_key: row.get(3)?,
        event: Event::from_parts(&row.get::<_, String>(2)?, json_column(row, 4)?),
    })
}

/// Reads a row of [`crate::JobReads::items_page`]'s query: the item's five columns, then its last
/// attempt's (all NULL when it has none).
pub(super) fn paged_item_from_row(row: &Row<'_>) -> rusqlite::Result<PagedItem> {
    let item = item_from_row(row)?;
    let last_attempt = match row.get::<_, Option<u32>>(5)? {
        None => None,
        Some(number) => Some(AttemptRecord {
            item_index: item.index,
            item_key: item.key.clone(),
            number,
            agent: row.get(6)?,
            started_at: row.get(7)?,
            ended_at: row.get(8)?,
            duration_us: optional_unsigned(row, 9)?,
            outcome: optional_text::<AttemptOutcome>(row, 10)?,
            exit_code: row.get(11)?,
            error: row.get(12)?,
            steps: json_column::<StoredSteps>(row, 13)?.0,
            stdout_tail: row.get(14)?,
            stderr_tail: row.get(15)?,
        }),
    };
    Ok(PagedItem { item, last_attempt })
}

/// Reads a row of [`ATTEMPT_COLUMNS`].
pub(super) fn attempt_from_row(row: &Row<'_>) -> rusqlite::Result<AttemptRecord> {
    Ok(AttemptRecord {
        item_index: unsigned(row, 0)?,
        item_key: row.get(1)?,
        number: row.get(2)?,
        agent: row.get(3)?,
        started_at: row.get(4)?,
        ended_at: row.get(5)?,
        duration_us: optional_unsigned(row, 6)?,
        outcome: optional_text::<AttemptOutcome>(row, 7)?,
        exit_code: row.get(8)?,
        error: row.get(9)?,
        steps: json_column::<StoredSteps>(row, 10)?.0,
        stdout_tail: row.get(11)?,
        stderr_tail: row.get(12)?,
    })
}

/// A count, position or duration as SQLite stores integers. These stay far below `i64::MAX`
/// (e.g. 292,000 years of microseconds); the clamp only keeps the conversion total.
pub(super) fn int(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Reads a non-negative integer column.
pub(super) fn unsigned(row: &Row<'_>, index: usize) -> rusqlite::Result<u64> {
    let value: i64 = row.get(index)?;
    u64::try_from(value).map_err(|_| rusqlite::Error::IntegralValueOutOfRange(index, value))
}

/// Reads a non-negative integer column that may be NULL.
pub(super) fn optional_unsigned(row: &Row<'_>, index: usize) -> rusqlite::Result<Option<u64>> {
    match row.get::<_, Option<i64>>(index)? {
        None => Ok(None),
        Some(value) => u64::try_from(value)
            .map(Some)
            .map_err(|_| rusqlite::Error::IntegralValueOutOfRange(index, value)),
    }
}

/// Reads a JSON text column.
pub(super) fn json_column<T: serde::de::DeserializeOwned>(
    row: &Row<'_>,
    index: usize,
) -> rusqlite::Result<T> {
    let text: String = row.get(index)?;
    serde_json::from_str(&text)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(index, Type::Text, Box::new(e)))
}

/// Reads a text column with the type's `FromStr` (its canonical spelling): ids, statuses,
/// phases and outcomes are stored as text.
pub(super) fn text<T>(row: &Row<'_>, index: usize) -> rusqlite::Result<T>
where
    T: FromStr,
    T::Err: Error + Send + Sync + 'static,
{
    row.get_ref(index)?
        .as_str()
        .map_err(rusqlite::Error::from)?
        .parse()
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(index, Type::Text, Box::new(e)))
}

/// Reads a nullable text column as [`text`] does.
pub(super) fn optional_text<T>(row: &Row<'_>, index: usize) -> rusqlite::Result<Option<T>>
where
    T: FromStr,
    T::Err: Error + Send + Sync + 'static,
{
    match row.get_ref(index)? {
        ValueRef::Null => Ok(None),
        _ => text(row, index).map(Some),
    }
}
