//! The full-screen viewer of `mmm progress` and `mmm replay`: state (`state.rs`), drawing
//! (`render.rs`) and keys (`input.rs`) are pure; this file is the loop that feeds them from
//! the store (live) or from a job's recorded history (replay) and owns the terminal.
//!
//! Live, a frame is drawn only when what it shows changed (or a key or a resize asks for one).
//! On SQLite the store is read every 100 ms while a process runs the job. On PostgreSQL a
//! thread waits on the store's NOTIFY (`Store::wait_for_events`, sent when events of the job
//! commit on any host) and the store is read when it wakes, at most every 100 ms on a busy
//! job and about once a second on a quiet one (the owner's heartbeat and snapshot come once a
//! second without an event). Once the job has finished nothing is read: the loop only waits
//! for keys.

pub(crate) mod input;
pub(crate) mod render;
pub(crate) mod state;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use ratatui::crossterm::event::{self, Event};

use input::{Action, handle_key};
use mmm_core::job::JobId;
use mmm_store::Store;
use mmm_store::job_state::JobState;
use state::ViewerState;

/// How often the store is read while the job is live.
pub(crate) const LIVE_POLL: Duration = Duration::from_millis(100);
/// How often the store is read while nothing runs the job but it may continue (resumable).
const IDLE_POLL: Duration = Duration::from_secs(2);
/// How long the loop waits for a key when nothing else is due.
const KEY_WAIT: Duration = Duration::from_secs(60);
/// On a store that wakes readers: the longest wait for a NOTIFY before reading anyway.
pub(crate) const QUIET_READ: Duration = Duration::from_secs(1);
/// On a store that wakes readers: how often the loop looks at the waiter's flag (a local
/// atomic, no store read), the delay between a wake-up and the read it causes.
const WAKE_CHECK: Duration = Duration::from_millis(20);

/// Where the frames come from.
pub(crate) trait Feed {
    /// When the feed next has something to do (now or later); `None` when it never will
    /// unless a key asks.
    fn next_due(&self) -> Option<Instant>;
    /// Does what is due; true when the state changed.
    fn advance(&mut self, state: &mut ViewerState) -> anyhow::Result<bool>;
    /// A replay key (pause, seek, speed); true when the state changed.
    fn control(&mut self, action: Action, state: &mut ViewerState) -> bool;
}

/// A job read from the store as it runs.
pub(crate) struct LiveFeed {
    store: Arc<dyn Store>,
    job: JobId,
    next: Instant,
    done: bool,
    /// What the job's record said at the last full read: while it says the same, the
    /// snapshot and events (the costly part, with many agents) are not read again.
    seen: Option<Probe>,
    /// When the state was last read in full.
    loaded: Instant,
    /// Set by the waiter thread when the store woke it (PostgreSQL); `None`: poll.
    woken: Option<Arc<AtomicBool>>,
    /// The log shown in the pane, being followed: its reader and item.
    log: Option<(mmm_store::logs::LogReader, mmm_store::ItemRecord)>,
}

/// The parts of a job's record that change whenever anything else does: the runner records
/// counts, status and phase as they change and the heartbeat (with its snapshot) each second.
#[derive(Debug, Clone, PartialEq)]
struct Probe {
    status: mmm_core::job::JobStatus,
    phase: Option<mmm_core::job::Phase>,
    counts: mmm_store::ItemCounts,
    updated_at: i64,
    heartbeat_at: Option<i64>,
    duration_ms: i64,
}

impl Probe {
    fn of(job: &mmm_store::JobRecord) -> Probe {
        Probe {
            status: job.status,
            phase: job.phase,
            counts: job.counts,
            updated_at: job.updated_at,
            heartbeat_at: job.heartbeat_at,
            duration_ms: job.duration_ms,
        }
    }
}

impl LiveFeed {
    /// Reads `job` from `store`; `state` is what was read first.
    pub(crate) fn new(store: Arc<dyn Store>, job: JobId, state: &ViewerState) -> LiveFeed {
        let mut feed = LiveFeed {
            store,
            job,
            next: Instant::now(),
            done: false,
            seen: Some(Probe::of(&state.job.job)),
            loaded: Instant::now(),
            woken: None,
            log: None,
        };
        feed.schedule(state);
        if !feed.done && feed.store.wakes_on_events() {
            feed.woken = spawn_waiter(Arc::clone(&feed.store), job);
        }
        feed
    }

    /// The earliest next read: reads are at least this far apart, however often the store
    /// wakes the feed.
    fn schedule(&mut self, state: &ViewerState) {
        self.done = state.job.job.status.is_finished();
        self.next = Instant::now() + if state.job.live { LIVE_POLL } else { IDLE_POLL };
    }
}

/// A thread that waits on the store's notifications for `job` and sets the flag it returns
/// at each (or after [`QUIET_READ`] without one); it ends once the flag is dropped. `None`
/// when no thread could start: the feed polls.
fn spawn_waiter(store: Arc<dyn Store>, job: JobId) -> Option<Arc<AtomicBool>> {
    let woken = Arc::new(AtomicBool::new(false));
    let flag: Weak<AtomicBool> = Arc::downgrade(&woken);
    let spawned = std::thread::Builder::new()
        .name("mmm-viewer-wait".to_string())
        .spawn(move || {
            loop {
                store.wait_for_events(job, QUIET_READ);
                match flag.upgrade() {
                    Some(flag) => flag.store(true, Ordering::Release),
                    None => return,
                }
            }
        });
    spawned.ok().map(|_| woken)
}

impl Feed for LiveFeed {
    fn next_due(&self) -> Option<Instant> {
        if self.log.is_some() {
            // A followed log is read every poll, whatever else changed.
            return Some(self.next.min(Instant::now() + LIVE_POLL));
        }
        if self.done {
            return None;
        }
        match &self.woken {
            None => Some(self.next),
            Some(woken) if woken.load(Ordering::Acquire) => Some(self.next),
            // Not woken: look at the flag again soon, without reading the store.
            Some(_) => Some(Instant::now().max(self.next) + WAKE_CHECK),
        }
    }

    fn advance(&mut self, state: &mut ViewerState) -> anyhow::Result<bool> {
        let logged = self.read_log(state)?;
        if self.done {
            self.next = Instant::now() + LIVE_POLL;
            return Ok(logged);
        }
        if let Some(woken) = &self.woken {
            // Cleared before the read: a wake-up during it leads to another read.
            woken.store(false, Ordering::Release);
        }
        let probe = Probe::of(&self.store.job(self.job)?);
        // Liveness depends on the clock too (an owner that stops beating): read in full at
        // least every idle interval.
        if self.seen.as_ref() == Some(&probe) && self.loaded.elapsed() < IDLE_POLL {
            self.schedule(state);
            return Ok(logged);
        }
        self.seen = Some(probe);
        self.loaded = Instant::now();
        let next = JobState::load(self.store.as_ref(), self.job)?;
        let changed = state.differs(&next);
        if changed {
            state.update(next);
        }
        self.schedule(state);
        Ok(changed || logged)
    }

    fn control(&mut self, action: Action, state: &mut ViewerState) -> bool {
        if let Action::OpenLog(index) = action {
            self.open_log(index, state);
            return true;
        }
        let Action::Control(action) = action else {
            return false;
        };
        // The same request `mmm pause`, `scale`, ... make, recorded in the store.
        let request = mmm_store::ControlRequest {
            action,
            host: mmm_store::owner::host_name(),
            pid: std::process::id(),
        };
        state.ui.notice = Some(
            match self
                .store
                .request_control(self.job, &request, mmm_core::job::now_ms())
            {
                Ok(record) => format!("{} sent (request {})", action.name(), record.seq),
                Err(e) => format!("{} refused: {e}", action.name()),
            },
        );
        // Read again at once: the job's record shows the effect.
        self.next = Instant::now();
        self.seen = None;
        true
    }
}

impl LiveFeed {
    /// Opens the pane on the log of the item at input position `index` (the agent at the top
    /// of the table works on it), following it from its first line.
    fn open_log(&mut self, index: u64, state: &mut ViewerState) {
        let agent = state.selected_agent().map(|a| a.name()).unwrap_or_default();
        let opened = (|| -> Result<_, mmm_store::StoreError> {
            let page = self.store.items_page(
                self.job,
                &mmm_store::ItemPageQuery {
                    status: None,
                    offset: index,
                    limit: 1,
                },
            )?;
            let Some(item) = page.items.into_iter().next().map(|p| p.item) else {
                return Ok(None);
            };
            let selection = mmm_store::logs::LogSelection {
                item: Some(item.clone()),
                ..Default::default()
            };
            let reader =
                mmm_store::logs::LogReader::new(self.store.as_ref(), self.job, &selection, true)?;
            Ok(Some((reader, item)))
        })();
        match opened {
            Ok(Some((reader, item))) => {
                state.ui.log = Some(state::LogPane {
                    key: item.key.clone(),
                    agent,
                    ..Default::default()
                });
                self.log = Some((reader, item));
                self.next = Instant::now();
            }
            Ok(None) => state.ui.notice = Some(format!("no item at position {}", index + 1)),
            Err(e) => state.ui.notice = Some(format!("the log could not be read: {e}")),
        }
    }

    /// Reads what the followed log gained into the pane; true when it changed. A pane closed
    /// (Esc) stops the reading.
    fn read_log(&mut self, state: &mut ViewerState) -> Result<bool, mmm_store::StoreError> {
        let Some(pane) = state.ui.log.as_mut() else {
            self.log = None;
            return Ok(false);
        };
        let Some((reader, item)) = self.log.as_mut() else {
            return Ok(false);
        };
        if pane.ended {
            return Ok(false);
        }
        let ended = mmm_store::logs::follow_done(self.store.as_ref(), self.job, Some(item))?;
        let mut out = Vec::new();
        reader.read(self.store.as_ref(), &mut out)?;
        if ended {
            reader.finish(&mut out);
            pane.ended = true;
        }
        pane.push(&out);
        Ok(!out.is_empty() || ended)
    }
}

/// Runs the viewer on the terminal until `q`. The terminal is restored on every way out.
pub(crate) fn run(state: &mut ViewerState, feed: &mut dyn Feed) -> anyhow::Result<()> {
    let mut terminal = ratatui::try_init()?;
    let result = event_loop(&mut terminal, state, feed);
    ratatui::restore();
    result
}

fn event_loop(
    terminal: &mut ratatui::DefaultTerminal,
    state: &mut ViewerState,
    feed: &mut dyn Feed,
) -> anyhow::Result<()> {
    let mut dirty = true;
    loop {
        if dirty {
            terminal.draw(|frame| render::render(frame, state))?;
            dirty = false;
        }
        let wait = feed
            .next_due()
            .map_or(KEY_WAIT, |at| at.saturating_duration_since(Instant::now()));
        if event::poll(wait)? {
            match event::read()? {
                Event::Key(key) => match handle_key(state, key) {
                    Action::Quit => return Ok(()),
                    Action::None => {}
                    Action::Redraw => dirty = true,
                    action => dirty |= feed.control(action, state),
                },
                Event::Resize(..) => dirty = true,
                _ => {}
            }
        }
        if feed.next_due().is_some_and(|at| at <= Instant::now()) {
            dirty |= feed.advance(state)?;
        }
    }
}
