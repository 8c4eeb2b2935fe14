//! Copying a job's whole record from one store to another (`mmm store copy`), e.g. from the
//! SQLite store of a laptop to the PostgreSQL store of a cluster, or back.
//!
//! [`dump_job`] reads everything the source holds about the job through the [`Store`] trait
//! (plus the two details no other read returns, [`Transfer::copy_details`](crate::Transfer::copy_details)); the destination's
//! [`Transfer::import_job`](crate::Transfer::import_job) writes it in one transaction: the job row as it was (status, owner,
//! times), items with their statuses and attempt counts, every attempt, events in their order
//! (with the destination's own sequence numbers; checkpoints point at the same events),
//! snapshots and checkpoints, its control state and requests (a paused job stays paused) and
//! its budgets. [`copy_logs`] then copies the item logs a page of chunks at a time, each page a
//! transaction of its own (a job's logs can be larger than memory). Claims and the start-rate
//! schedule are not copied: a copied item is claimable at once, and a rate starts afresh.

use std::collections::HashMap;

use super::{
    BudgetRecord, CheckpointRecord, ControlRecord, EventRecord, JobContents, SnapshotRecord, Store,
    StoreError, Write,
};
use crate::logs::{LogQuery, NewLogChunk};
use mmm_core::control::ControlState;
use mmm_core::job::JobId;

/// What only a backend knows of a job: which attempts a rewind superseded, and the sequence
/// number of the job's last event when each checkpoint was taken.
#[derive(Debug, Clone, Default)]
pub struct CopyDetails {
    /// `(item index, attempt number)` of the superseded attempts.
    pub superseded: Vec<(u64, u32)>,
    /// `(checkpoint id, last event seq)`.
    pub checkpoint_seqs: Vec<(i64, i64)>,
}

/// A job's whole record, as [`Transfer::import_job`](crate::Transfer::import_job) takes it.
#[derive(Debug, Clone)]
pub struct JobDump {
    /// The job, its items and its attempts.
    pub contents: JobContents,
    /// Superseded attempts, `(item index, attempt number)`.
    pub superseded: Vec<(u64, u32)>,
    /// Every event, oldest first (with the source's sequence numbers).
    pub events: Vec<EventRecord>,
    /// Every snapshot, oldest first.
    pub snapshots: Vec<SnapshotRecord>,
    /// Every checkpoint, oldest first, with the source seq of the job's last event then.
    pub checkpoints: Vec<(CheckpointRecord, i64)>,
    /// Its control state: paused or not, the agents `mmm scale` set.
    pub control: ControlState,
    /// Every control request, in order, applied or not.
    pub control_requests: Vec<ControlRecord>,
    /// Its budgets on counters.
    pub budgets: Vec<BudgetRecord>,
}

impl JobDump {
    /// For each checkpoint, the position (0-based) in [`JobDump::events`] of the last event at
    /// or before its sequence number, `None` when it came before every event.
    pub fn checkpoint_positions(&self) -> Vec<Option<usize>> {
        self.checkpoints
            .iter()
            .map(|(_, seq)| self.events.iter().rposition(|e| e.seq <= *seq))
            .collect()
    }
}

/// Events read per page.
const PAGE: usize = 10_000;

/// Log chunks copied per transaction: at most a few MB (chunks are at most
/// [`crate::logs::CHUNK_BYTES`] of output before compression).
const LOG_PAGE: usize = 64;

/// Reads everything `store` holds about `job`. The job should not be running meanwhile (the
/// caller checks that its owner is gone), so that the reads agree.
pub fn dump_job(store: &dyn Store, job: JobId) -> Result<JobDump, StoreError> {
    let contents = store.job_contents(job)?;
    let mut events = Vec::new();
    loop {
        let after = events.last().map_or(0, |e: &EventRecord| e.seq);
        let page = store.events(job, after, PAGE)?;
        let full = page.len() == PAGE;
        events.extend(page);
        if !full {
            break;
        }
    }
    let snapshots = store.snapshots(job, i64::MIN, usize::MAX >> 2)?;
    let details = store.copy_details(job)?;
    let seqs: HashMap<i64, i64> = details.checkpoint_seqs.into_iter().collect();
    let checkpoints = store
        .checkpoints(job)?
        .into_iter()
        .map(|c| {
            let seq = seqs.get(&c.id).copied().unwrap_or(0);
            (c, seq)
        })
        .collect();
    Ok(JobDump {
        contents,
        superseded: details.superseded,
        events,
        snapshots,
        checkpoints,
        control: store.control_state(job)?,
        control_requests: store.control_requests(job, 0)?,
        budgets: store.budgets(job)?,
    })
}

/// Copies `job` from `from` to `to`; the destination must not have it yet
/// ([`StoreError::JobExists`]).
/// Its logs are not part of it: [`copy_logs`] copies them next.
pub fn copy_job(from: &dyn Store, to: &dyn Store, job: JobId) -> Result<JobDump, StoreError> {
    let dump = dump_job(from, job)?;
    to.import_job(&dump)?;
    Ok(dump)
}

/// Copies `job`'s log chunks, oldest first, a page per transaction (a job's logs can be larger
/// than memory), to a store that holds the job's record ([`copy_job`]) and none of its logs;
/// returns how many. Should a page fail, the destination keeps the pages before it.
pub fn copy_logs(from: &dyn Store, to: &dyn Store, job: JobId) -> Result<u64, StoreError> {
    let mut after_id = 0;
    let mut copied = 0;
    loop {
        let page = from.log_chunks(
            job,
            &LogQuery {
                after_id,
                limit: LOG_PAGE,
                ..LogQuery::default()
            },
        )?;
        let Some(last) = page.last() else {
            return Ok(copied);
        };
        after_id = last.id;
        copied += page.len() as u64;
        let writes: Vec<Write> = page
            .into_iter()
            .map(|chunk| Write::LogChunk {
                job,
                chunk: Box::new(NewLogChunk {
                    item_index: chunk.item_index,
                    attempt: chunk.attempt,
                    seq: chunk.seq,
                    offset: chunk.offset,
                    bytes: chunk.bytes,
                    at: chunk.at,
                    data: chunk.data,
                }),
            })
            .collect();
        to.apply(&writes)?;
    }
}
