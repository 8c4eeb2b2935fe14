//! An attempt's output on its way to the store's log (docs/logs.md): each read of the
//! command's pipes appended to a chunk with its stream and time, the chunk compressed and
//! sent through the store writer once it holds 64 KiB or has waited [`SEAL_AFTER`], and the
//! job's cap kept as the output comes: the head goes to the store and stays, the tail is a
//! ring of chunks in the store whose oldest are deleted as new ones come, so neither memory
//! nor disk grows with a flood.
//!
//! On the hot path a read costs a copy into the chunk; a command with no output costs
//! nothing. When the writer falls behind, the reader waits for it (the command then waits on
//! its full pipe, as it would writing to a slow disk) instead of queueing without bound.

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mmm_core::job::{JobId, now_ms};
use mmm_spec::{LogKeep, LogPolicy};
use mmm_store::Write;
use mmm_store::logs::{CHUNK_BYTES, ChunkBuilder, LogStream, NewLogChunk};
use mmm_store::writer::StoreWriter;

/// The longest a chunk waits for more output before it is sent: what a live reader
/// (`mmm logs --follow`, the item page) lags behind at most, plus its poll.
pub(crate) const SEAL_AFTER: Duration = Duration::from_millis(100);

/// Compressed bytes sent since the writer last caught up, past which the reader waits for it.
const BACKLOG_BYTES: u64 = 8 * 1024 * 1024;

/// Chunks sent since the writer last caught up, past which the reader waits for it (output
/// that compresses very well still makes a write per chunk).
const BACKLOG_CHUNKS: u32 = 512;

/// Where the log of a command's output goes while it runs ([`crate::CommandRequest::log`]).
pub trait OutputLog: Send + Sync {
    /// Bytes read from standard output (`stderr`: error). True when the store is behind:
    /// the reader then awaits [`OutputLog::caught_up`] before reading more.
    fn wrote(&self, stderr: bool, bytes: &[u8]) -> bool;
    /// When what is held must be sent even if no more output comes; `None` when nothing is
    /// held.
    fn due(&self) -> Option<Instant>;
    /// Sends what is held.
    fn seal(&self);
    /// Waits until the store holds what was sent.
    fn caught_up(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}

impl std::fmt::Debug for dyn OutputLog {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OutputLog")
    }
}

/// The log of one attempt (all its steps).
pub(crate) struct Capture {
    writer: Arc<StoreWriter>,
    job: JobId,
    item_index: u64,
    attempt: u32,
    state: Mutex<State>,
}

struct State {
    chunk: ChunkBuilder,
    /// When the chunk's first frame came.
    since: Option<Instant>,
    /// The next chunk's number.
    seq: u32,
    /// Output bytes before the chunk being filled.
    offset: u64,
    /// Bytes the head may still keep (the whole of it stays).
    head_left: u64,
    /// The most bytes the tail keeps.
    tail_budget: u64,
    /// The tail's chunks in the store, oldest first: number and output bytes.
    tail: VecDeque<(u32, u64)>,
    tail_bytes: u64,
    /// Sent since the writer last caught up.
    backlog_bytes: u64,
    backlog_chunks: u32,
}

impl Capture {
    /// The log of attempt `attempt` of item `item_index`, kept as `policy` says; `None` for
    /// `logs: none`.
    pub(crate) fn new(
        writer: Arc<StoreWriter>,
        job: JobId,
        item_index: u64,
        attempt: u32,
        policy: LogPolicy,
    ) -> Option<Capture> {
        let (head, tail) = match policy.keep {
            LogKeep::None => return None,
            LogKeep::Full => (policy.cap / 2, policy.cap - policy.cap / 2),
            LogKeep::Tail => (0, policy.cap),
        };
        Some(Capture {
            writer,
            job,
            item_index,
            attempt,
            state: Mutex::new(State {
                chunk: ChunkBuilder::default(),
                since: None,
                seq: 0,
                offset: 0,
                head_left: head,
                tail_budget: tail.max(1),
                tail: VecDeque::new(),
                tail_bytes: 0,
                backlog_bytes: 0,
                backlog_chunks: 0,
            }),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends what is held: called after each command, so a quiet step that follows does not
    /// hold back the output of the one before.
    pub(crate) fn flush(&self) {
        let mut state = self.lock();
        self.send(&mut state);
    }

    /// Seals the chunk being filled and sends it; past the cap, drops the tail's oldest
    /// chunks.
    fn send(&self, state: &mut State) {
        let Some((at, bytes, data)) = state.chunk.seal() else {
            return;
        };
        state.since = None;
        let seq = state.seq;
        state.backlog_bytes += data.len() as u64;
        state.backlog_chunks += 1;
        self.writer.send(Write::LogChunk {
            job: self.job,
            chunk: Box::new(NewLogChunk {
                item_index: self.item_index,
                attempt: self.attempt,
                seq,
                offset: state.offset,
                bytes,
                at,
                data,
            }),
        });
        state.seq += 1;
        state.offset += bytes;
        if state.head_left > 0 {
            state.head_left = state.head_left.saturating_sub(bytes);
            return;
        }
        state.tail.push_back((seq, bytes));
        state.tail_bytes += bytes;
        let mut dropped: Option<(u32, u32)> = None;
        while state.tail_bytes > state.tail_budget && state.tail.len() > 1 {
            let Some((old, old_bytes)) = state.tail.pop_front() else {
                break;
            };
            state.tail_bytes -= old_bytes;
            dropped = Some(match dropped {
                Some((from, _)) => (from, old + 1),
                None => (old, old + 1),
            });
        }
        if let Some((from_seq, to_seq)) = dropped {
            self.writer.send(Write::LogDropped {
                job: self.job,
                item_index: self.item_index,
                attempt: self.attempt,
                from_seq,
                to_seq,
                at: now_ms(),
            });
        }
    }
}

impl State {
    /// The most output bytes the chunk being filled may hold: a chunk never straddles the
    /// end of the head, nor holds more than the tail keeps.
    fn room(&self) -> u64 {
        let limit = if self.head_left > 0 {
            self.head_left
        } else {
            self.tail_budget
        };
        limit.min(CHUNK_BYTES as u64)
    }
}

impl OutputLog for Capture {
    fn wrote(&self, stderr: bool, mut bytes: &[u8]) -> bool {
        let stream = if stderr {
            LogStream::Stderr
        } else {
            LogStream::Stdout
        };
        let at = now_ms();
        let mut state = self.lock();
        while !bytes.is_empty() {
            let room = state.room().saturating_sub(state.chunk.bytes()).max(1);
            let take = bytes.len().min(usize::try_from(room).unwrap_or(usize::MAX));
            if state.chunk.is_empty() {
                state.since = Some(Instant::now());
            }
            state.chunk.push(stream, at, &bytes[..take]);
            bytes = &bytes[take..];
            if state.chunk.bytes() >= state.room() {
                self.send(&mut state);
            }
        }
        state.backlog_bytes >= BACKLOG_BYTES || state.backlog_chunks >= BACKLOG_CHUNKS
    }

    fn due(&self) -> Option<Instant> {
        self.lock().since.map(|since| since + SEAL_AFTER)
    }

    fn seal(&self) {
        self.flush();
    }

    fn caught_up(&self) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            // A writer that failed stops the job elsewhere; the output is not waited on.
            let _ = self.writer.flush().await;
            let mut state = self.lock();
            state.backlog_bytes = 0;
            state.backlog_chunks = 0;
        })
    }
}
