//! The batching store writer: the one place the runner's writes go through.
//!
//! [`StoreWriter`] owns a dedicated OS thread (the SQLite API blocks) fed by an unbounded
//! channel, so [`StoreWriter::send`] never blocks the runner. The thread waits for the first
//! write, keeps collecting until [`StoreWriter::spawn`]'s `window` has passed since its last
//! commit (or [`MAX_BATCH`] writes are waiting, or someone flushes), then commits the batch with
//! one [`JobLog::apply`](crate::JobLog::apply). A group from [`StoreWriter::send_group`] always lands in one batch.
//! While writes keep coming, the thread wakes once a window on its own and goes back to
//! waiting on the channel only after a quiet spell, so a sender seldom has to wake it.
//! A job's items ([`StoreWriter::add_items`]) take their place in the same order, in a
//! transaction of their own after the commit of what came before them.
//!
//! A writer given [`Outages`] ([`StoreWriter::spawn_riding_outages`]) rides out a store that is
//! unavailable for a while: the commit is tried again until the store answers (a PostgreSQL
//! store applies a batch whose commit the connection lost only once), while later writes wait
//! in the channel; past [`BACKLOG`] of them, [`StoreWriter::is_backlogged`] tells the agents
//! to stop taking items rather than let memory grow. After a failed commit (or an outage
//! longer than the limit) the writer keeps the first error, raises a flag
//! ([`StoreWriter::is_failed`]) and drops every later write: the runner stops the job, and
//! what was committed stays a consistent, resumable record.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{NewItem, Outages, Store, StoreError, Write};
use mmm_core::job::JobId;

/// A window that keeps commits to about 200 a second under load while adding at most a few
/// milliseconds to the latency a reader sees (DESIGN.md "Data flow").
pub const DEFAULT_WINDOW: Duration = Duration::from_millis(5);

/// Commit as soon as this many writes wait, whatever the window: bounds a transaction's size.
pub const MAX_BATCH: usize = 5_000;

/// Writes waiting in the channel past which, while the store is unavailable, agents stop
/// taking items ([`StoreWriter::is_backlogged`]).
pub const BACKLOG: usize = 100_000;

/// What the store writer can fail with.
#[derive(Debug, thiserror::Error)]
pub enum WriterError {
    /// A batch could not be committed; later writes were dropped.
    #[error(
        "could not record {writes} changes in the store, so the job was stopped; its record up \
         to the last commit is intact: fix the store (`mmm check`), then `mmm resume` the job"
    )]
    Commit {
        /// Writes in the failed batch.
        writes: usize,
        /// The store's error (shared: every later flush reports the same one).
        #[source]
        source: Arc<StoreError>,
    },
    /// The writer thread is gone (it panicked, or the writer was closed).
    #[error(
        "the store writer stopped unexpectedly, so recent changes may be missing from the store; \
         run `mmm check` on the job"
    )]
    Stopped,
    /// The operating system would not start the writer thread.
    #[error("could not start the store writer thread; the system may be out of threads or memory")]
    Spawn {
        /// The cause.
        #[source]
        source: std::io::Error,
    },
}

/// Counters of what the writer has done, for benchmarks and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Transactions committed.
    pub batches: u64,
    /// Writes committed (a job's items from [`StoreWriter::add_items`] count one each).
    pub writes: u64,
    /// Writes dropped because an earlier commit failed (or the thread was gone).
    pub dropped: u64,
}

/// The single writer: batches writes from any thread or task into few transactions.
///
/// Dropping it commits what was sent and joins its thread, like [`StoreWriter::close`] without
/// the result.
pub struct StoreWriter {
    sender: Option<Sender<Message>>,
    thread: Option<JoinHandle<()>>,
    shared: Arc<Shared>,
}

impl std::fmt::Debug for StoreWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreWriter")
            .field("stats", &self.stats())
            .field("failed", &self.is_failed())
            .finish_non_exhaustive()
    }
}

/// What the writer thread receives, in send order.
enum Message {
    One(Write),
    Group(Vec<Write>),
    Flush(Reply),
    /// Recorded on their own once what came before is committed.
    AddItems(JobId, Vec<NewItem>),
}

/// Where to answer a flush once everything sent before it is committed.
enum Reply {
    Async(tokio::sync::oneshot::Sender<Result<(), WriterError>>),
    Blocking(mpsc::SyncSender<Result<(), WriterError>>),
}

impl Reply {
    fn send(self, result: Result<(), WriterError>) {
        // A caller that stopped waiting has nothing left to learn.
        match self {
            Reply::Async(sender) => {
                let _ = sender.send(result);
            }
            Reply::Blocking(sender) => {
                let _ = sender.send(result);
            }
        }
    }
}

/// State shared by the handle and the thread.
#[derive(Default)]
struct Shared {
    failed: AtomicBool,
    /// Writes sent and not yet taken by the thread.
    waiting: std::sync::atomic::AtomicUsize,
    /// Set while a commit waits for an unavailable store.
    stalled: AtomicBool,
    /// Set (before an unpark) when a flush or a close wants the window cut short.
    hurry: AtomicBool,
    first_error: Mutex<Option<(usize, Arc<StoreError>)>>,
    batches: AtomicU64,
    writes: AtomicU64,
    dropped: AtomicU64,
}

impl Shared {
    /// The error every flush reports once a commit has failed.
    fn failure(&self) -> Result<(), WriterError> {
        if !self.failed.load(Ordering::Acquire) {
            return Ok(());
        }
        let first = self
            .first_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match first.as_ref() {
            Some((writes, source)) => Err(WriterError::Commit {
                writes: *writes,
                source: Arc::clone(source),
            }),
            None => Err(WriterError::Stopped),
        }
    }

    fn drop_writes(&self, n: usize) {
        self.dropped.fetch_add(n as u64, Ordering::Relaxed);
    }
}

impl StoreWriter {
    /// Starts the writer thread. `window` is how long writes gather before a commit
    /// ([`DEFAULT_WINDOW`] suits the runner).
    ///
    /// # Panics
    /// When the operating system cannot start a thread, like [`std::thread::spawn`]; use
    /// [`StoreWriter::try_spawn`] to get that as an error.
    pub fn spawn(store: Arc<dyn Store>, window: Duration) -> StoreWriter {
        match StoreWriter::try_spawn(store, window) {
            Ok(writer) => writer,
            Err(e) => panic!("{e}"),
        }
    }

    /// Starts the writer thread, or says why the system would not.
    pub fn try_spawn(store: Arc<dyn Store>, window: Duration) -> Result<StoreWriter, WriterError> {
        StoreWriter::start(store, window, None)
    }

    /// Starts the writer thread, riding out outages of the store as `outages` says (see the
    /// module docs).
    pub fn spawn_riding_outages(
        store: Arc<dyn Store>,
        window: Duration,
        outages: Arc<Outages>,
    ) -> Result<StoreWriter, WriterError> {
        StoreWriter::start(store, window, Some(outages))
    }

    fn start(
        store: Arc<dyn Store>,
        window: Duration,
        outages: Option<Arc<Outages>>,
    ) -> Result<StoreWriter, WriterError> {
        let (sender, receiver) = mpsc::channel();
        let shared = Arc::new(Shared::default());
        let thread_shared = Arc::clone(&shared);
        let committer = Committer {
            store,
            outages,
            shared: thread_shared,
        };
        let thread = std::thread::Builder::new()
            .name("mmm-store-writer".to_string())
            .spawn(move || run(&committer, window, &receiver))
            .map_err(|source| WriterError::Spawn { source })?;
        Ok(StoreWriter {
            sender: Some(sender),
            thread: Some(thread),
            shared,
        })
    }

    /// Queues one write. Never blocks; dropped (and counted) once the writer has failed.
    pub fn send(&self, write: Write) {
        self.enqueue(Message::One(write), 1);
    }

    /// Queues writes that must be committed together, in one transaction. Never blocks.
    pub fn send_group(&self, writes: Vec<Write>) {
        if writes.is_empty() {
            return;
        }
        let n = writes.len();
        self.enqueue(Message::Group(writes), n);
    }

    /// Returns once every write sent before the call is committed, or with the commit's error.
    pub async fn flush(&self) -> Result<(), WriterError> {
        let (sender, receiver) = tokio::sync::oneshot::channel();
        self.request_flush(Reply::Async(sender))?;
        receiver.await.map_err(|_| WriterError::Stopped)?
    }

    /// [`StoreWriter::flush`] for code outside the async runtime (blocks the calling thread).
    pub fn flush_blocking(&self) -> Result<(), WriterError> {
        let (sender, receiver) = mpsc::sync_channel(1);
        self.request_flush(Reply::Blocking(sender))?;
        receiver.recv().map_err(|_| WriterError::Stopped)?
    }

    /// Records a job's items ([`JobLog::add_items`](crate::JobLog::add_items)) in their place among the writes: after
    /// what was sent before, before what is sent after, in a transaction of their own. Never
    /// blocks, so agents can start on the items while they are recorded; a failure is a failed
    /// commit.
    pub fn add_items(&self, job: JobId, items: Vec<NewItem>) {
        let n = items.len();
        self.enqueue(Message::AddItems(job, items), n);
        self.wake();
    }

    /// Commits what was sent, stops the thread and waits for it.
    pub fn close(mut self) -> Result<(), WriterError> {
        let flushed = self.flush_blocking();
        let joined = self.join();
        flushed.and(joined)
    }

    /// True once a commit has failed (or the thread is gone): later writes are dropped.
    /// Lock-free, cheap enough to check per item.
    pub fn is_failed(&self) -> bool {
        self.shared.failed.load(Ordering::Acquire)
    }

    /// True while a commit waits for an unavailable store and more than [`BACKLOG`] writes
    /// wait behind it: agents stop taking items until the store is back.
    pub fn is_backlogged(&self) -> bool {
        self.shared.stalled.load(Ordering::Acquire)
            && self.shared.waiting.load(Ordering::Relaxed) > BACKLOG
    }

    /// What the writer has committed and dropped so far.
    pub fn stats(&self) -> WriterStats {
        WriterStats {
            batches: self.shared.batches.load(Ordering::Relaxed),
            writes: self.shared.writes.load(Ordering::Relaxed),
            dropped: self.shared.dropped.load(Ordering::Relaxed),
        }
    }

    fn enqueue(&self, message: Message, writes: usize) {
        if self.is_failed() {
            self.shared.drop_writes(writes);
            return;
        }
        self.shared.waiting.fetch_add(writes, Ordering::Relaxed);
        let sent = match &self.sender {
            Some(sender) => sender.send(message).is_ok(),
            None => false,
        };
        if !sent {
            // The thread is gone: it panicked.
            self.shared.failed.store(true, Ordering::Release);
            self.shared.drop_writes(writes);
        }
    }

    fn request_flush(&self, reply: Reply) -> Result<(), WriterError> {
        self.shared.failure()?;
        match &self.sender {
            Some(sender) => {
                sender
                    .send(Message::Flush(reply))
                    .map_err(|_| WriterError::Stopped)?;
                self.wake();
                Ok(())
            }
            None => Err(WriterError::Stopped),
        }
    }

    /// Cuts the writer thread's window short.
    fn wake(&self) {
        self.shared.hurry.store(true, Ordering::Release);
        if let Some(thread) = &self.thread {
            thread.thread().unpark();
        }
    }

    /// Closes the channel; the thread commits what is queued, then ends.
    fn join(&mut self) -> Result<(), WriterError> {
        self.sender = None;
        self.wake();
        match self.thread.take() {
            Some(thread) => thread.join().map_err(|_| WriterError::Stopped),
            None => Ok(()),
        }
    }
}

impl Drop for StoreWriter {
    fn drop(&mut self) {
        // Nobody is left to tell; a failure is already visible through `is_failed`.
        let _ = self.join();
    }
}

/// How many windows in a row without a write the writer keeps waking up on its own before it
/// blocks on the channel again. While it wakes on its own, a send does not wake it: an agent
/// that has just recorded an item is not preempted by a commit on its CPU before it can start
/// the next one (docs/PERFORMANCE.md, "The whole metrics path"). 20 windows are 100 ms at the
/// default window: a few idle wake-ups after a job goes quiet.
const AWAKE_WINDOWS: u32 = 20;

/// The writer thread: one batch per window while writes keep coming, until every sender is
/// gone.
fn run(committer: &Committer, window: Duration, receiver: &Receiver<Message>) {
    let shared = committer.shared.as_ref();
    let _panic_guard = PanicGuard(shared);
    let mut batch: Vec<Write> = Vec::new();
    let mut replies: Vec<Reply> = Vec::new();
    let mut items: Option<(JobId, Vec<NewItem>)> = None;
    let mut last_commit: Option<Instant> = None;
    // Blocks for the first message after a quiet spell; `Err` means every sender is gone.
    while let Ok(first) = receiver.recv() {
        let mut open = collect(first, &mut batch, &mut replies, &mut items, shared);
        // The first batch after a quiet spell goes out at once; then one per window.
        let mut deadline = last_commit.map_or_else(Instant::now, |at| at + window);
        let mut idle_windows = 0;
        // `open` turns false when a flush or items end the round: commit now. (So replies
        // wait only while it is false.)
        loop {
            // Sleep out the window instead of waking for every message: on a busy machine each
            // wake-up costs a context switch that the agents would otherwise have had. A flush
            // or a close unparks the thread to commit at once.
            // The flag, not the park token, says why we woke: std's channel parks this thread
            // too and may consume the token.
            while open && !shared.hurry.swap(false, Ordering::AcqRel) {
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                std::thread::park_timeout(deadline - now);
            }
            // Take what is queued, without waiting.
            let mut closed = false;
            while open && batch.len() < MAX_BATCH {
                match receiver.try_recv() {
                    Ok(message) => {
                        open = collect(message, &mut batch, &mut replies, &mut items, shared);
                    }
                    Err(mpsc::TryRecvError::Empty) => break,
                    Err(mpsc::TryRecvError::Disconnected) => {
                        closed = true;
                        break;
                    }
                }
            }
            if batch.is_empty() {
                idle_windows += 1;
            } else {
                committer.commit(&mut batch);
                last_commit = Some(Instant::now());
                idle_windows = 0;
            }
            if let Some((job, items)) = items.take() {
                committer.add_items(job, items);
            }
            for reply in replies.drain(..) {
                reply.send(shared.failure());
            }
            if closed || idle_windows >= AWAKE_WINDOWS {
                break;
            }
            // A round that a flush or items ended looks at the channel again at once: another
            // request may wait behind it, and the wake-up it sent was spent on this round.
            deadline = if open {
                Instant::now() + window
            } else {
                Instant::now()
            };
            open = true;
        }
    }
}

/// Adds a message to the batch being built; returns false for a flush or items: commit now.
fn collect(
    message: Message,
    batch: &mut Vec<Write>,
    replies: &mut Vec<Reply>,
    items: &mut Option<(JobId, Vec<NewItem>)>,
    shared: &Shared,
) -> bool {
    let failed = shared.failed.load(Ordering::Acquire);
    let writes = match &message {
        Message::One(_) => 1,
        Message::Group(writes) => writes.len(),
        Message::AddItems(_, items) => items.len(),
        Message::Flush(_) => 0,
    };
    shared.waiting.fetch_sub(writes, Ordering::Relaxed);
    match message {
        Message::One(_) if failed => shared.drop_writes(1),
        Message::Group(writes) if failed => shared.drop_writes(writes.len()),
        Message::One(write) => batch.push(write),
        Message::Group(writes) => batch.extend(writes),
        Message::Flush(reply) => {
            replies.push(reply);
            return false;
        }
        Message::AddItems(job, new) => {
            *items = Some((job, new));
            return false;
        }
    }
    true
}

/// What the thread commits with.
struct Committer {
    store: Arc<dyn Store>,
    outages: Option<Arc<Outages>>,
    shared: Arc<Shared>,
}

impl Committer {
    /// Records items once the batch before them is committed (dropped after a failed
    /// commit, like any write).
    fn add_items(&self, job: JobId, items: Vec<NewItem>) {
        if self.shared.failed.load(Ordering::Acquire) {
            self.shared.drop_writes(items.len());
        } else {
            let added = self.patiently(|store| store.add_items(job, &items));
            record(&self.shared, items.len(), added);
        }
    }

    /// Applies the batch in one transaction and records the outcome.
    fn commit(&self, batch: &mut Vec<Write>) {
        let applied = self.patiently(|store| store.apply(batch));
        record(&self.shared, batch.len(), applied);
        batch.clear();
    }

    /// Runs `call`, riding out an unavailable store when the writer was given outages.
    fn patiently(
        &self,
        call: impl Fn(&dyn Store) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let store = self.store.as_ref();
        let Some(outages) = &self.outages else {
            return call(store);
        };
        let stalled = &self.shared.stalled;
        let result = outages.retry(|| {
            let result = call(store);
            stalled.store(
                result.as_ref().is_err_and(StoreError::is_unavailable),
                Ordering::Release,
            );
            result
        });
        stalled.store(false, Ordering::Release);
        result
    }
}

/// Counts a transaction of `n` writes, or keeps its error and marks the writer failed.
fn record(shared: &Shared, n: usize, outcome: Result<(), StoreError>) {
    match outcome {
        Ok(()) => {
            shared.batches.fetch_add(1, Ordering::Relaxed);
            shared.writes.fetch_add(n as u64, Ordering::Relaxed);
        }
        Err(error) => {
            let mut first = shared
                .first_error
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if first.is_none() {
                *first = Some((n, Arc::new(error)));
            }
            shared.failed.store(true, Ordering::Release);
            shared.drop_writes(n);
        }
    }
}

/// Marks the writer failed if its thread panics (e.g. inside a store), so that `is_failed`
/// tells the runner even though no error value exists.
struct PanicGuard<'a>(&'a Shared);

impl Drop for PanicGuard<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.failed.store(true, Ordering::Release);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{
        AttemptRecord, CheckpointRecord, Claims, DeadLetters, EventReads, EventRecord, Integrity,
        ItemRecord, JobLog, JobReads, JobRecord, NewItem, NewJob, Owner, Recovery, Requeued,
        Transfer, UnfinishedItem,
    };
    use mmm_core::job::{ItemStatus, JobId};

    /// A store that records the size of every batch (and, for items added, how many writes
    /// it held before them and how many items) and can be told to fail, or to hold its first
    /// commit until the test says go (`gate`: it says it entered, then waits).
    #[derive(Default)]
    struct CountingStore {
        /// Commits that find the store unavailable (a lost connection) before one succeeds.
        unavailable: std::sync::atomic::AtomicUsize,
        batches: Mutex<Vec<usize>>,
        added: Mutex<Vec<(usize, usize)>>,
        fail_from_batch: Option<usize>,
        delay: Duration,
        gate: Mutex<Option<(mpsc::Sender<()>, mpsc::Receiver<()>)>>,
    }

    impl CountingStore {
        fn batch_sizes(&self) -> Vec<usize> {
            self.batches.lock().unwrap().clone()
        }
    }

    impl JobLog for CountingStore {
        fn create_job(&self, _: &NewJob, _: &[NewItem]) -> Result<(), StoreError> {
            Ok(())
        }

        fn add_items(&self, _: JobId, items: &[NewItem]) -> Result<(), StoreError> {
            if self.fail_from_batch.is_some() {
                return Err(StoreError::JobNotFound {
                    job: "test".to_string(),
                });
            }
            let held = self.batch_sizes().iter().sum();
            self.added.lock().unwrap().push((held, items.len()));
            Ok(())
        }

        fn apply(&self, writes: &[Write]) -> Result<(), StoreError> {
            let gate = self.gate.lock().unwrap().take();
            if let Some((entered, go)) = gate {
                entered.send(()).unwrap();
                go.recv().unwrap();
            }
            std::thread::sleep(self.delay);
            if self
                .unavailable
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1))
                .is_ok()
            {
                return Err(StoreError::Busy {
                    path: "test".into(),
                    operation: "commit",
                    source: crate::BackendError::Sqlite(rusqlite::Error::InvalidQuery),
                });
            }
            let mut batches = self.batches.lock().unwrap();
            if self.fail_from_batch.is_some_and(|n| batches.len() >= n) {
                return Err(StoreError::JobNotFound {
                    job: "test".to_string(),
                });
            }
            batches.push(writes.len());
            Ok(())
        }
    }

    impl crate::Logs for CountingStore {
        fn log_chunks(
            &self,
            _: JobId,
            _: &crate::logs::LogQuery,
        ) -> Result<Vec<crate::logs::LogChunk>, StoreError> {
            unimplemented!()
        }

        fn prune_logs(
            &self,
            _: Option<JobId>,
            _: Option<i64>,
        ) -> Result<crate::logs::LogPruned, StoreError> {
            unimplemented!()
        }
    }

    impl JobReads for CountingStore {
        fn job(&self, _: JobId) -> Result<JobRecord, StoreError> {
            unimplemented!()
        }

        fn jobs(&self) -> Result<Vec<JobRecord>, StoreError> {
            unimplemented!()
        }

        fn jobs_matching(&self, _: &crate::JobQuery) -> Result<Vec<JobRecord>, StoreError> {
            unimplemented!()
        }

        fn job_totals(&self, _: &[i64]) -> Result<Vec<crate::JobTotals>, StoreError> {
            unimplemented!()
        }

        fn name_item_totals(&self) -> Result<Vec<crate::NameItemTotals>, StoreError> {
            unimplemented!()
        }

        fn resolve_job(&self, _: &str) -> Result<JobId, StoreError> {
            unimplemented!()
        }

        fn items(&self, _: JobId, _: Option<ItemStatus>) -> Result<Vec<ItemRecord>, StoreError> {
            unimplemented!()
        }

        fn item(&self, _: JobId, _: &str) -> Result<Option<ItemRecord>, StoreError> {
            unimplemented!()
        }

        fn item_keys(&self, _: JobId) -> Result<Vec<String>, StoreError> {
            unimplemented!()
        }

        fn attempts(&self, _: JobId, _: Option<&str>) -> Result<Vec<AttemptRecord>, StoreError> {
            unimplemented!()
        }

        fn items_page(
            &self,
            _: JobId,
            _: &super::super::ItemPageQuery,
        ) -> Result<super::super::ItemPage, StoreError> {
            unimplemented!()
        }

        fn checkpoints(&self, _: JobId) -> Result<Vec<CheckpointRecord>, StoreError> {
            unimplemented!()
        }

        fn ledger(&self, _: JobId) -> Result<crate::Ledger, StoreError> {
            unimplemented!()
        }
    }

    impl EventReads for CountingStore {
        fn events(&self, _: JobId, _: i64, _: usize) -> Result<Vec<EventRecord>, StoreError> {
            unimplemented!()
        }

        fn recent_events(&self, _: JobId, _: usize) -> Result<Vec<EventRecord>, StoreError> {
            unimplemented!()
        }

        fn snapshots(
            &self,
            _: JobId,
            _: i64,
            _: usize,
        ) -> Result<Vec<super::super::SnapshotRecord>, StoreError> {
            unimplemented!()
        }

        fn latest_snapshot(
            &self,
            _: JobId,
        ) -> Result<Option<super::super::SnapshotRecord>, StoreError> {
            unimplemented!()
        }
    }

    impl DeadLetters for CountingStore {
        fn dead_letters(&self, _: JobId) -> Result<Vec<crate::DeadLetter>, StoreError> {
            unimplemented!()
        }

        fn retry_dead_lettered(
            &self,
            _: JobId,
            _: Option<&[String]>,
            _: i64,
        ) -> Result<crate::DlqChange, StoreError> {
            unimplemented!()
        }

        fn purge_dead_lettered(
            &self,
            _: JobId,
            _: Option<&[String]>,
            _: i64,
        ) -> Result<crate::DlqChange, StoreError> {
            unimplemented!()
        }
    }

    impl Claims for CountingStore {
        fn claim_items(
            &self,
            _: JobId,
            _: &str,
            _: usize,
            _: i64,
            _: i64,
        ) -> Result<Vec<crate::ClaimedItem>, StoreError> {
            unimplemented!()
        }

        fn renew_claims(&self, _: JobId, _: &str, _: &[u64], _: i64) -> Result<u64, StoreError> {
            unimplemented!()
        }

        fn confirm_claims(
            &self,
            _: JobId,
            _: &str,
            _: &[u64],
            _: i64,
        ) -> Result<Vec<u64>, StoreError> {
            unimplemented!()
        }

        fn release_claims(&self, _: JobId, _: &str) -> Result<u64, StoreError> {
            unimplemented!()
        }
    }

    impl crate::Control for CountingStore {
        fn request_control(
            &self,
            _: JobId,
            _: &crate::ControlRequest,
            _: i64,
        ) -> Result<crate::ControlRecord, StoreError> {
            unimplemented!()
        }

        fn pending_control(
            &self,
            _: JobId,
            _: u64,
        ) -> Result<Vec<crate::ControlRecord>, StoreError> {
            unimplemented!()
        }

        fn control_requests(
            &self,
            _: JobId,
            _: u64,
        ) -> Result<Vec<crate::ControlRecord>, StoreError> {
            unimplemented!()
        }

        fn apply_control(
            &self,
            _: JobId,
            _: u64,
            _: &[mmm_core::event::Event],
            _: i64,
        ) -> Result<(), StoreError> {
            unimplemented!()
        }

        fn control_state(&self, _: JobId) -> Result<mmm_core::control::ControlState, StoreError> {
            unimplemented!()
        }

        fn set_control_agents(&self, _: JobId, _: Option<u32>) -> Result<(), StoreError> {
            unimplemented!()
        }
    }

    impl crate::Limits for CountingStore {
        fn reserve_start(
            &self,
            _: JobId,
            _: std::time::Duration,
        ) -> Result<std::time::Duration, StoreError> {
            unimplemented!()
        }

        fn budgets(&self, _: JobId) -> Result<Vec<crate::BudgetRecord>, StoreError> {
            unimplemented!()
        }

        fn record_budgets(
            &self,
            _: JobId,
            _: &[mmm_core::limits::Budget],
            _: i64,
        ) -> Result<(), StoreError> {
            unimplemented!()
        }

        fn set_budget(
            &self,
            _: JobId,
            _: &mmm_core::limits::Budget,
            _: i64,
        ) -> Result<Vec<crate::BudgetRecord>, StoreError> {
            unimplemented!()
        }

        fn reach_budget(
            &self,
            _: JobId,
            _: &mmm_core::limits::Budget,
            _: mmm_core::counter::CounterValue,
            _: i64,
        ) -> Result<bool, StoreError> {
            unimplemented!()
        }
    }

    impl Recovery for CountingStore {
        fn take_job(&self, _: JobId, _: &Owner, _: &Owner) -> Result<bool, StoreError> {
            unimplemented!()
        }

        fn requeue_in_flight(&self, _: JobId, _: i64) -> Result<Requeued, StoreError> {
            unimplemented!()
        }

        fn unfinished_items(
            &self,
            _: JobId,
            _: Option<u64>,
            _: usize,
        ) -> Result<Vec<UnfinishedItem>, StoreError> {
            unimplemented!()
        }

        fn rewind(&self, _: JobId, _: i64, _: i64) -> Result<Vec<String>, StoreError> {
            unimplemented!()
        }

        fn update_item_values(
            &self,
            _: JobId,
            _: &[(u64, String)],
            _: i64,
        ) -> Result<Vec<String>, StoreError> {
            unimplemented!()
        }
    }

    impl Integrity for CountingStore {
        fn probe_write(&self) -> Result<(), StoreError> {
            unimplemented!()
        }

        fn job_contents(&self, _: JobId) -> Result<crate::JobContents, StoreError> {
            unimplemented!()
        }

        fn storage_problems(&self) -> Result<Vec<String>, StoreError> {
            unimplemented!()
        }

        fn repair(
            &self,
            _: JobId,
            _: &mmm_core::event::Repaired,
            _: i64,
        ) -> Result<(), StoreError> {
            unimplemented!()
        }
    }

    impl Transfer for CountingStore {
        fn copy_details(&self, _: JobId) -> Result<crate::copy::CopyDetails, StoreError> {
            unimplemented!()
        }

        fn import_job(&self, _: &crate::copy::JobDump) -> Result<(), StoreError> {
            unimplemented!()
        }

        fn delete_job(&self, _: JobId) -> Result<(), StoreError> {
            unimplemented!()
        }
    }

    impl crate::Summaries for CountingStore {
        fn period_jobs(&self, _: &crate::PeriodQuery) -> Result<Vec<crate::PeriodJob>, StoreError> {
            unimplemented!()
        }

        fn keep_summary(&self, _: JobId, _: i64, _: &str) -> Result<(), StoreError> {
            unimplemented!()
        }
    }

    fn event(job: JobId, n: i64) -> Write {
        Write::Event {
            job,
            at: n,
            item_key: None,
            event: mmm_core::event::Event::ItemsLoaded(mmm_core::event::ItemsLoaded {
                count: n as u64,
            }),
        }
    }

    #[test]
    fn many_sends_become_few_commits() {
        let store = Arc::new(CountingStore::default());
        let writer = StoreWriter::spawn(store.clone(), Duration::from_millis(20));
        let job = JobId::new();
        for n in 0..10_000 {
            writer.send(event(job, n));
        }
        writer.flush_blocking().unwrap();
        let sizes = store.batch_sizes();
        assert_eq!(sizes.iter().sum::<usize>(), 10_000);
        assert!(
            sizes.len() < 20,
            "{} commits for 10,000 writes",
            sizes.len()
        );
        assert!(sizes.iter().all(|n| *n <= MAX_BATCH + 1));
        let stats = writer.stats();
        assert_eq!(stats.writes, 10_000);
        assert_eq!(stats.batches, sizes.len() as u64);
        writer.close().unwrap();
    }

    #[test]
    fn groups_are_never_split_across_transactions() {
        let store = Arc::new(CountingStore {
            delay: Duration::from_micros(200),
            ..CountingStore::default()
        });
        let writer = StoreWriter::spawn(store.clone(), Duration::from_millis(1));
        let job = JobId::new();
        // Groups of 7 (and batches capped at MAX_BATCH): if a group were split, some batch
        // size would not be a multiple of 7.
        for g in 0..2_000 {
            writer.send_group((0..7).map(|n| event(job, g * 7 + n)).collect());
        }
        writer.close().unwrap();
        let sizes = store.batch_sizes();
        assert_eq!(sizes.iter().sum::<usize>(), 14_000);
        assert!(sizes.len() > 1, "the test needs several batches");
        assert!(sizes.iter().all(|n| n % 7 == 0), "{sizes:?}");
    }

    #[test]
    fn flush_returns_after_the_commit() {
        let store = Arc::new(CountingStore {
            delay: Duration::from_millis(30),
            ..CountingStore::default()
        });
        // A window far longer than the test: only the flush can cause the commit.
        let writer = StoreWriter::spawn(store.clone(), Duration::from_secs(60));
        let job = JobId::new();
        writer.send(event(job, 1));
        writer.send(event(job, 2));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(writer.flush()).unwrap();
        assert_eq!(store.batch_sizes().iter().sum::<usize>(), 2);
        writer.send(event(job, 3));
        writer.flush_blocking().unwrap();
        assert_eq!(store.batch_sizes().iter().sum::<usize>(), 3);
        writer.close().unwrap();
    }

    #[test]
    fn a_failed_commit_is_reported_and_later_writes_are_dropped() {
        let store = Arc::new(CountingStore {
            fail_from_batch: Some(1),
            ..CountingStore::default()
        });
        let writer = StoreWriter::spawn(store.clone(), Duration::from_millis(1));
        let job = JobId::new();
        writer.send(event(job, 1));
        writer.flush_blocking().unwrap();
        assert!(!writer.is_failed());

        writer.send(event(job, 2));
        let error = writer.flush_blocking().unwrap_err();
        assert!(
            matches!(error, WriterError::Commit { writes: 1, .. }),
            "{error:?}"
        );
        assert!(writer.is_failed());

        writer.send(event(job, 3));
        writer.send_group(vec![event(job, 4), event(job, 5)]);
        assert!(writer.flush_blocking().is_err());
        let stats = writer.stats();
        assert_eq!((stats.batches, stats.writes), (1, 1));
        assert_eq!(stats.dropped, 4);
        assert_eq!(store.batch_sizes(), vec![1]);
        assert!(matches!(writer.close(), Err(WriterError::Commit { .. })));
    }

    /// Given outages, a commit that finds the store unavailable is made again until the store
    /// answers: nothing is lost or recorded twice, and the outage is kept; past the limit the
    /// writer fails as after any failed commit.
    #[test]
    fn a_commit_rides_out_an_unavailable_store_up_to_the_limit() {
        let store = Arc::new(CountingStore {
            unavailable: 3.into(),
            ..CountingStore::default()
        });
        let outages = Arc::new(Outages::new(Duration::from_secs(60)));
        let writer = StoreWriter::spawn_riding_outages(
            store.clone(),
            Duration::from_millis(1),
            outages.clone(),
        )
        .unwrap();
        let job = JobId::new();
        writer.send_group(vec![event(job, 1), event(job, 2)]);
        writer.flush_blocking().unwrap();
        assert_eq!(store.batch_sizes(), vec![2]);
        assert!(!writer.is_failed() && !writer.is_backlogged());
        let ended = outages.take_ended();
        assert_eq!(ended.len(), 1, "{ended:?}");
        assert!(ended[0].duration >= Duration::from_millis(150), "{ended:?}");
        writer.close().unwrap();

        let store = Arc::new(CountingStore {
            unavailable: usize::MAX.into(),
            ..CountingStore::default()
        });
        let outages = Arc::new(Outages::new(Duration::from_millis(300)));
        let writer =
            StoreWriter::spawn_riding_outages(store.clone(), Duration::from_millis(1), outages)
                .unwrap();
        writer.send(event(job, 3));
        let error = writer.flush_blocking().unwrap_err();
        let WriterError::Commit { source, .. } = &error else {
            panic!("{error:?}");
        };
        assert!(
            matches!(source.as_ref(), StoreError::OutageTooLong { .. }),
            "{source:?}"
        );
        assert!(writer.is_failed());
        assert!(store.batch_sizes().is_empty());
    }

    #[test]
    fn drop_commits_what_was_sent() {
        let store = Arc::new(CountingStore::default());
        let writer = StoreWriter::spawn(store.clone(), Duration::from_secs(60));
        let job = JobId::new();
        for n in 0..100 {
            writer.send(event(job, n));
        }
        drop(writer);
        assert_eq!(store.batch_sizes().iter().sum::<usize>(), 100);
    }

    /// Waits (with a deadline) until the store holds `n` writes.
    fn wait_for_writes(store: &CountingStore, n: usize) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while store.batch_sizes().iter().sum::<usize>() < n {
            assert!(Instant::now() < deadline, "{n} writes were not committed");
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    #[test]
    fn writes_are_committed_whether_the_writer_is_awake_or_waiting_and_close_ends_it() {
        let store = Arc::new(CountingStore::default());
        let window = Duration::from_millis(5);
        let writer = StoreWriter::spawn(store.clone(), window);
        let job = JobId::new();
        writer.send(event(job, 1));
        wait_for_writes(&store, 1);
        // A few idle windows: the writer still wakes on its own and finds the next write.
        std::thread::sleep(window * 3);
        writer.send(event(job, 2));
        wait_for_writes(&store, 2);
        // Past its idle windows: it waits on the channel, and the write wakes it.
        std::thread::sleep(window * (AWAKE_WINDOWS + 10));
        writer.send(event(job, 3));
        wait_for_writes(&store, 3);
        // Closed while awake: it commits what is queued and ends at once, not after its
        // idle windows.
        writer.send(event(job, 4));
        let closing = Instant::now();
        writer.close().unwrap();
        assert!(closing.elapsed() < window * AWAKE_WINDOWS);
        assert_eq!(store.batch_sizes().iter().sum::<usize>(), 4);
    }

    #[test]
    fn items_are_recorded_in_their_place_among_the_writes_and_never_after_a_failure() {
        let (entered, entered_seen) = mpsc::channel();
        let (go, gone) = mpsc::channel();
        let store = Arc::new(CountingStore {
            gate: Mutex::new(Some((entered, gone))),
            ..CountingStore::default()
        });
        // A window far longer than the test: after the first commit, only the items and the
        // flush cause commits.
        let writer = StoreWriter::spawn(store.clone(), Duration::from_secs(60));
        let job = JobId::new();
        let items = |n: usize| -> Vec<NewItem> {
            (0..n)
                .map(|i| NewItem {
                    key: format!("k{i}"),
                    value: "null".to_string(),
                })
                .collect()
        };
        // The first write after a quiet spell is committed at once; the rest queue up behind
        // it while that commit is held, so what comes next does not depend on timing.
        writer.send(event(job, 0));
        entered_seen.recv().unwrap();
        writer.send(event(job, 1));
        writer.send(event(job, 2));
        writer.add_items(job, items(3));
        writer.send(event(job, 3));
        go.send(()).unwrap();
        // The flush waits behind the items: it is answered at once all the same, not after a
        // window.
        let flushing = Instant::now();
        writer.flush_blocking().unwrap();
        assert!(flushing.elapsed() < Duration::from_secs(10));
        assert_eq!(store.batch_sizes(), [1, 2, 1]);
        assert_eq!(
            *store.added.lock().unwrap(),
            [(3, 3)],
            "after the first commit and 2 writes, before the 3rd"
        );
        assert_eq!(writer.stats().writes, 7);
        writer.close().unwrap();

        // A failed commit: the items after it are dropped, and counted.
        let failing = Arc::new(CountingStore {
            fail_from_batch: Some(0),
            ..CountingStore::default()
        });
        let writer = StoreWriter::spawn(failing.clone(), Duration::from_secs(60));
        writer.send(event(job, 1));
        writer.add_items(job, items(2));
        assert!(writer.flush_blocking().is_err());
        writer.add_items(job, items(4));
        assert_eq!(writer.stats().dropped, 1 + 2 + 4);
        writer.close().unwrap_err();
        assert!(failing.added.lock().unwrap().is_empty());
    }
}
