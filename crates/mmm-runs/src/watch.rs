//! Keeping the runs current: file-system notifications (inotify on Linux, through `notify`)
//! mark the run folders whose files changed; only those are observed again. Every change is
//! published to subscribers as an [`Update`]; a view takes a snapshot and then follows the
//! updates ([`Watch::subscribe`]), the same way live or at start.
//!
//! No folder is polled. Two things change without any file changing, and are re-evaluated
//! from memory: a status that depends on the time (a log becoming older than
//! `running_within`, a result older than `outdated_after`; the watcher wakes exactly then),
//! and the process table (re-read every [`PROCESS_INTERVAL`], so `stuck` turns into `failed`
//! when the process dies).

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use notify::{EventKind, RecursiveMode, Watcher as _};
use serde::Serialize;
use tokio::sync::broadcast;

use super::{FolderOf, Observation, ObserveError, ProcessTable, Run, RunFolder, Scanner, cache};

/// How often the process table is read again while watching.
pub const PROCESS_INTERVAL: Duration = Duration::from_secs(2);

/// After a first notification, further ones are gathered for this long before observing
/// (a trainer writes several files per epoch at once).
const COALESCE: Duration = Duration::from_millis(20);

/// The longest a burst of notifications is gathered before observing anyway.
const COALESCE_LIMIT: Duration = Duration::from_millis(100);

/// How many updates a slow subscriber may fall behind before it misses some (it then
/// receives `Lagged` and should take a new snapshot).
const CHANNEL_CAPACITY: usize = 256;

/// What changed since the previous update.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Update {
    /// Numbers updates from 1, without gaps.
    pub seq: u64,
    /// When the update was made (epoch milliseconds).
    pub at_ms: i64,
    /// Runs that are new or changed, in full.
    pub changed: Vec<Run>,
    /// Paths of run folders that are gone.
    pub removed: Vec<PathBuf>,
    /// Problems met while observing (an unclassifiable folder, an unreadable one); the runs
    /// they concern keep their last known state.
    pub problems: Vec<String>,
}

/// A clock, injectable for tests.
pub type Clock = Arc<dyn Fn() -> SystemTime + Send + Sync>;

/// Shared between the watching thread and the handles.
struct Shared {
    runs: Mutex<Vec<Run>>,
    updates: broadcast::Sender<Update>,
    stop: AtomicBool,
}

/// A running watch over the scanner's roots. Dropping it stops the watching thread.
pub struct Watch {
    shared: Arc<Shared>,
    roots: Vec<PathBuf>,
    wake: mpsc::Sender<WatchEvent>,
    thread: Option<JoinHandle<()>>,
}

enum WatchEvent {
    Fs(notify::Result<notify::Event>),
    Stop,
}

impl Watch {
    /// Starts watching: sets up notifications, then scans once. An unclassifiable folder at
    /// this first scan is an error (as for a plain scan); later ones become
    /// [`Update::problems`].
    pub fn start(scanner: Scanner, clock: Clock) -> Result<Watch, ObserveError> {
        let (tx, rx) = mpsc::channel::<WatchEvent>();
        let fs_tx = tx.clone();
        let mut watcher = notify::recommended_watcher(move |event| {
            let _ = fs_tx.send(WatchEvent::Fs(event));
        })
        .map_err(|source| ObserveError::Watch {
            path: scanner.roots().first().cloned().unwrap_or_default(),
            source,
        })?;
        for root in scanner.roots() {
            watcher
                .watch(root, RecursiveMode::Recursive)
                .map_err(|source| ObserveError::Watch {
                    path: root.clone(),
                    source,
                })?;
        }
        let observations: BTreeMap<PathBuf, Observation> = scanner
            .observe_all()?
            .into_iter()
            .map(|o| (o.folder.path.clone(), o))
            .collect();
        let processes = ProcessTable::read();
        let now = clock();
        let runs: Vec<Run> = observations
            .values()
            .map(|o| o.to_run(now, &processes, scanner.config()))
            .collect();
        let (updates, _) = broadcast::channel(CHANNEL_CAPACITY);
        let shared = Arc::new(Shared {
            runs: Mutex::new(runs),
            updates,
            stop: AtomicBool::new(false),
        });
        let roots = scanner.roots().to_vec();
        let mut state = Loop {
            scanner,
            clock,
            shared: shared.clone(),
            observations,
            processes,
            processes_read: Instant::now(),
            seq: 0,
            _watcher: watcher,
        };
        let thread = std::thread::Builder::new()
            .name("mmm-runs-watch".into())
            .spawn(move || state.run(rx))
            .expect("a thread can be started");
        Ok(Watch {
            shared,
            roots,
            wake: tx,
            thread: Some(thread),
        })
    }

    /// The roots watched, absolute.
    pub fn roots(&self) -> &[PathBuf] {
        &self.roots
    }

    /// The runs as they stand now, sorted by path.
    pub fn runs(&self) -> Vec<Run> {
        self.shared.runs.lock().expect("not poisoned").clone()
    }

    /// The runs as they stand now and a receiver of every later update: nothing is missed
    /// and nothing is seen twice between the two.
    pub fn subscribe(&self) -> (Vec<Run>, broadcast::Receiver<Update>) {
        let runs = self.shared.runs.lock().expect("not poisoned");
        (runs.clone(), self.shared.updates.subscribe())
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let _ = self.wake.send(WatchEvent::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The watching thread's state.
struct Loop {
    scanner: Scanner,
    clock: Clock,
    shared: Arc<Shared>,
    observations: BTreeMap<PathBuf, Observation>,
    processes: ProcessTable,
    processes_read: Instant,
    seq: u64,
    /// Kept alive for as long as the loop runs.
    _watcher: notify::RecommendedWatcher,
}

/// What a batch of notifications asks for.
#[derive(Default)]
struct Work {
    folders: BTreeSet<RunFolder>,
    relist: bool,
    problems: Vec<String>,
}

impl Loop {
    fn run(&mut self, rx: mpsc::Receiver<WatchEvent>) {
        loop {
            if self.shared.stop.load(Ordering::SeqCst) {
                return;
            }
            let timeout = self.timeout();
            let mut work = Work::default();
            match rx.recv_timeout(timeout) {
                Ok(WatchEvent::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                Ok(WatchEvent::Fs(event)) => {
                    self.note(event, &mut work);
                    let started = Instant::now();
                    while started.elapsed() < COALESCE_LIMIT {
                        match rx.recv_timeout(COALESCE) {
                            Ok(WatchEvent::Fs(event)) => self.note(event, &mut work),
                            Ok(WatchEvent::Stop) | Err(RecvTimeoutError::Disconnected) => {
                                return;
                            }
                            Err(RecvTimeoutError::Timeout) => break,
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
            self.apply(work);
        }
    }

    /// Until the next time-driven status change, or the next process-table read.
    fn timeout(&self) -> Duration {
        let now = (self.clock)();
        let to_processes = PROCESS_INTERVAL.saturating_sub(self.processes_read.elapsed());
        self.observations
            .values()
            .filter_map(|o| super::status::next_change(o, now, self.scanner.config()))
            .min()
            .and_then(|t| t.duration_since(now).ok())
            .map_or(to_processes, |d| d.min(to_processes))
            .max(Duration::from_millis(1))
    }

    /// Records which folders a notification concerns.
    fn note(&self, event: notify::Result<notify::Event>, work: &mut Work) {
        let event = match event {
            Ok(event) => event,
            Err(e) => {
                work.problems.push(format!("file-system notification: {e}"));
                // Something may have been missed: look at everything again.
                work.relist = true;
                work.folders
                    .extend(self.observations.values().map(|o| o.folder.clone()));
                return;
            }
        };
        let relevant = match event.kind {
            EventKind::Access(notify::event::AccessKind::Close(
                notify::event::AccessMode::Write,
            )) => true,
            EventKind::Access(_) => false,
            _ => true,
        };
        if !relevant {
            return;
        }
        if event.need_rescan() {
            work.relist = true;
            work.folders
                .extend(self.observations.values().map(|o| o.folder.clone()));
        }
        for path in &event.paths {
            let own = path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n == cache::CACHE_FILE || n == cache::TEMPORARY_FILE);
            if own {
                continue;
            }
            match self.scanner.folder_of(path) {
                FolderOf::Run { folder, file } => {
                    if file.is_empty() {
                        // The run folder itself appeared, went or was renamed.
                        work.relist = true;
                    }
                    work.folders.insert(folder);
                }
                FolderOf::AboveRuns => work.relist = true,
                FolderOf::Outside => {}
            }
        }
    }

    /// Observes what changed, recomputes statuses, and publishes the difference.
    fn apply(&mut self, mut work: Work) {
        if work.relist {
            match self.scanner.run_folders() {
                Ok(folders) => {
                    let present: BTreeSet<PathBuf> =
                        folders.iter().map(|f| f.path.clone()).collect();
                    self.observations.retain(|path, _| present.contains(path));
                    for folder in folders {
                        if !self.observations.contains_key(&folder.path) {
                            work.folders.insert(folder);
                        }
                    }
                }
                Err(e) => work.problems.push(e.to_string()),
            }
        }
        for folder in &work.folders {
            if !self.scanner.is_run_folder(folder) {
                self.observations.remove(&folder.path);
                continue;
            }
            match self.scanner.observe(folder) {
                Ok(observation) => {
                    self.observations.insert(folder.path.clone(), observation);
                }
                Err(e) => work.problems.push(e.to_string()),
            }
        }
        if self.processes_read.elapsed() >= PROCESS_INTERVAL || !work.folders.is_empty() {
            self.processes = ProcessTable::read();
            self.processes_read = Instant::now();
        }
        let now = (self.clock)();
        let runs: Vec<Run> = self
            .observations
            .values()
            .map(|o| o.to_run(now, &self.processes, self.scanner.config()))
            .collect();

        let mut current = self.shared.runs.lock().expect("not poisoned");
        let before: BTreeMap<&PathBuf, &Run> = current.iter().map(|r| (&r.path, r)).collect();
        let changed: Vec<Run> = runs
            .iter()
            .filter(|r| before.get(&r.path) != Some(r))
            .cloned()
            .collect();
        let after: BTreeSet<&PathBuf> = runs.iter().map(|r| &r.path).collect();
        let removed: Vec<PathBuf> = current
            .iter()
            .filter(|r| !after.contains(&r.path))
            .map(|r| r.path.clone())
            .collect();
        if changed.is_empty() && removed.is_empty() && work.problems.is_empty() {
            return;
        }
        self.seq += 1;
        let update = Update {
            seq: self.seq,
            at_ms: super::epoch_ms(now),
            changed,
            removed,
            problems: work.problems,
        };
        *current = runs;
        // No subscriber is not an error: views come and go.
        let _ = self.shared.updates.send(update);
    }
}
