//! Item logs (docs/logs.md): every attempt's standard output and error, kept whole up to the
//! job's cap, as zstd-compressed chunks in the store ([`crate::Logs`]), and the read model
//! every view prints them with ([`LogReader`]: `mmm logs`, the web API, the item page, the
//! viewer's pane).
//!
//! `chunk` is the stored form (frames of reads, compressed), `render` the text made of it.

mod chunk;
mod render;

use std::collections::{HashMap, VecDeque};

pub use chunk::{CHUNK_BYTES, ChunkBuilder, Frame, LogStream, decode};
pub use render::{RenderOptions, Renderer, human_bytes};

use crate::{ItemPageQuery, ItemRecord, Store, StoreError};
use mmm_core::job::{ItemStatus, JobId, JobStatus};

/// A chunk of an attempt's output to record ([`crate::Write::LogChunk`]).
#[derive(Debug, Clone)]
pub struct NewLogChunk {
    /// The item's position.
    pub item_index: u64,
    /// The attempt's number.
    pub attempt: u32,
    /// The chunk's place in the attempt's log, from 0.
    pub seq: u32,
    /// Output bytes of the attempt before this chunk (both streams, including any a cap
    /// dropped): a gap between chunks is what was elided.
    pub offset: u64,
    /// Output bytes in the chunk.
    pub bytes: u64,
    /// When its first frame was read, epoch ms.
    pub at: i64,
    /// The frames, compressed ([`ChunkBuilder::seal`]).
    pub data: Vec<u8>,
}

/// A stored chunk, as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogChunk {
    /// Its row: chunks are numbered in the order they were written, across the store.
    pub id: i64,
    /// The item's position.
    pub item_index: u64,
    /// The item's key.
    pub item_key: String,
    /// The attempt's number.
    pub attempt: u32,
    /// The chunk's place in the attempt's log.
    pub seq: u32,
    /// Output bytes of the attempt before it.
    pub offset: u64,
    /// Output bytes in it.
    pub bytes: u64,
    /// When its first frame was read, epoch ms.
    pub at: i64,
    /// The compressed frames.
    pub data: Vec<u8>,
}

/// Which chunks of a job [`crate::Logs::log_chunks`] returns: those after `after_id`, in id
/// order, at most `limit`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogQuery {
    /// Only this item's (its position).
    pub item: Option<u64>,
    /// Only this attempt's.
    pub attempt: Option<u32>,
    /// Only chunks with a higher id.
    pub after_id: i64,
    /// Most chunks returned.
    pub limit: usize,
}

/// What [`crate::Logs::prune_logs`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct LogPruned {
    /// Jobs whose logs were removed.
    pub jobs: u64,
    /// Chunks removed.
    pub chunks: u64,
    /// Stored (compressed) bytes removed.
    pub stored_bytes: u64,
    /// Output bytes they held.
    pub output_bytes: u64,
}

/// Which log to read and how to show it.
#[derive(Debug, Clone, Default)]
pub struct LogSelection {
    /// One item's (else every item's, each line with its key).
    pub item: Option<ItemRecord>,
    /// One attempt's (else every attempt's).
    pub attempt: Option<u32>,
    /// One stream's (else both, as their lines were written).
    pub stream: Option<LogStream>,
    /// Each line with the time it was written.
    pub timestamps: bool,
}

/// How many chunks one query reads.
const PAGE: usize = 256;

/// How many earlier reads a following reader looks back over: on PostgreSQL a transaction
/// that took its chunk ids earlier can commit after one that took later ids, so the newest id
/// seen is not yet a floor. Chunks seen twice are recognised by their place in their attempt.
const LOOK_BACK: usize = 2;

/// The most ids a read looks back over, whatever [`LOOK_BACK`] says: the first reads of a
/// long log (and reads of a flood) would otherwise fetch again what they have. Transactions
/// that commit out of id order are a writer batch apart, far fewer chunks than this.
const LOOK_BACK_IDS: i64 = 256;

/// Reads a job's logs as text, as far as they are written, and again for what came since
/// (`--follow`).
#[derive(Debug)]
pub struct LogReader {
    job: JobId,
    query: LogQuery,
    renderer: Renderer,
    /// The next chunk each attempt's log is at.
    next_seq: HashMap<(u64, u32), u32>,
    /// The newest id seen by each of the last reads.
    recent: VecDeque<i64>,
    newest: i64,
}

impl LogReader {
    /// A reader of `selection` of `job`'s logs. An item read over all its attempts gets a line
    /// before each attempt when it has more than one (or may get more, `follow`).
    pub fn new(
        store: &dyn Store,
        job: JobId,
        selection: &LogSelection,
        follow: bool,
    ) -> Result<LogReader, StoreError> {
        let attempt_headers = match (&selection.item, selection.attempt) {
            (Some(item), None) => follow || store.attempts(job, Some(&item.key))?.len() > 1,
            _ => false,
        };
        Ok(LogReader {
            job,
            query: LogQuery {
                item: selection.item.as_ref().map(|item| item.index),
                attempt: selection.attempt,
                after_id: 0,
                limit: PAGE,
            },
            renderer: Renderer::new(RenderOptions {
                prefix: selection.item.is_none(),
                timestamps: selection.timestamps,
                stream: selection.stream,
                attempt_headers,
            }),
            next_seq: HashMap::new(),
            recent: VecDeque::new(),
            newest: 0,
        })
    }

    /// Renders into `out` every chunk written since the last call (all, the first time);
    /// returns how many it rendered.
    pub fn read(&mut self, store: &dyn Store, out: &mut Vec<u8>) -> Result<usize, StoreError> {
        let mut rendered = 0;
        let mut query = self.query.clone();
        loop {
            let page = store.log_chunks(self.job, &query)?;
            for chunk in &page {
                query.after_id = chunk.id;
                self.newest = self.newest.max(chunk.id);
                let next = self
                    .next_seq
                    .entry((chunk.item_index, chunk.attempt))
                    .or_insert(0);
                if chunk.seq < *next {
                    continue;
                }
                *next = chunk.seq + 1;
                self.renderer.chunk(chunk, out)?;
                rendered += 1;
            }
            if page.len() < query.limit {
                break;
            }
        }
        self.recent.push_back(self.newest);
        let back = if self.recent.len() > LOOK_BACK {
            self.recent.pop_front().unwrap_or(0)
        } else {
            0
        };
        self.query.after_id = back.max(self.newest - LOOK_BACK_IDS);
        Ok(rendered)
    }

    /// Ends lines left unended (the end of what is shown).
    pub fn finish(&mut self, out: &mut Vec<u8>) {
        self.renderer.finish(out);
    }
}

/// The item `text` names in `job`: its key, else its number in the input (1 for the first).
pub fn find_item(
    store: &dyn Store,
    job: JobId,
    text: &str,
) -> Result<Option<ItemRecord>, StoreError> {
    if let Some(item) = store.item(job, text)? {
        return Ok(Some(item));
    }
    let Some(number) = text.parse::<u64>().ok().filter(|n| *n >= 1) else {
        return Ok(None);
    };
    let page = store.items_page(
        job,
        &ItemPageQuery {
            status: None,
            offset: number - 1,
            limit: 1,
        },
    )?;
    Ok(page.items.into_iter().next().map(|paged| paged.item))
}

/// True when following `job`'s logs (or one item's) can stop: the job is not running (it
/// ended, or its owner stopped), or the item has ended for good.
pub fn follow_done(
    store: &dyn Store,
    job: JobId,
    item: Option<&ItemRecord>,
) -> Result<bool, StoreError> {
    let record = store.job(job)?;
    if !matches!(record.status, JobStatus::Running | JobStatus::Pending) {
        return Ok(true);
    }
    match item {
        Some(item) => Ok(matches!(
            store.item(job, &item.key)?.map(|item| item.status),
            Some(ItemStatus::Completed | ItemStatus::DeadLettered | ItemStatus::Skipped) | None
        )),
        None => Ok(false),
    }
}
