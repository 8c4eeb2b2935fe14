//! The live tracker: what a job is doing right now, readable from any thread in O(1) without
//! locks.
//!
//! Job-wide counters are atomics. Each agent has a slot that only that agent writes; a reader
//! copies it under a sequence counter (a seqlock), retrying in the rare case it raced a write,
//! so a view never shows an item of one attempt with the step of another. Percent is derived
//! from the counters on read, which only grow; when the total grows (new items on a resume)
//! the percent reached so far becomes a floor, so it never decreases. It is capped at 100, and
//! skipped items count as done (seed 002). Reads take no lock and read no clock.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering, fence};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::job::AgentState;

mod window;
pub use window::{Series, WINDOW_SECONDS, Window, WindowCounts};

fn coarse_now_us() -> u64 {
    use nix::time::{ClockId, clock_gettime};
    clock_gettime(ClockId::CLOCK_MONOTONIC_COARSE)
        .map(|t| t.tv_sec() as u64 * 1_000_000 + t.tv_nsec() as u64 / 1_000)
        .unwrap_or(0)
}

/// "No value" in a slot field.
const NONE_U64: u64 = u64::MAX;
const NONE_U32: u32 = u32::MAX;
/// Percent is stored in parts per million so it fits an atomic integer.
const PPM_FULL: u64 = 1_000_000;

/// The live state of one job.
#[derive(Debug)]
pub struct Tracker {
    started: Instant,
    started_us: u64,
    total: AtomicU64,
    completed: AtomicU64,
    dead_lettered: AtomicU64,
    skipped: AtomicU64,
    in_flight: AtomicU64,
    /// Items other processes' agents have in flight (scale-out), as the owner last read them.
    in_flight_elsewhere: AtomicU64,
    /// Items are still being read: the total is not final.
    input_open: AtomicBool,
    /// Other processes' agents that have not finished (scale-out), as the owner last read them.
    agents_elsewhere: AtomicU64,
    /// Items done before this run started (a resume): counted as done, never in a rate.
    restored: AtomicU64,
    failed_attempts: AtomicU64,
    retries: AtomicU64,
    /// Percent (ppm) reached before the total last grew: the floor that keeps it monotonic.
    percent_floor_ppm: AtomicU64,
    /// One slot per agent the run may have: the plan's, or up to [`crate::control::MAX_AGENTS`]
    /// when `mmm scale` adds some (slots are made up front: agents write them lock-free).
    agents: Box<[AgentSlot]>,
    /// The agents the run works with now (the plan's, or a scale's).
    active: AtomicUsize,
    /// One more than the highest agent that ever took an item: the slots views show.
    used: AtomicUsize,
    /// Set while the job is paused (`mmm pause`): no new item starts.
    paused: AtomicBool,
    /// The keys of the items agents hold, by input position, so views can name them: set when
    /// an agent takes an item and removed when it lets go, so it holds at most one key per
    /// agent whatever the number of items. Only views read it, a few times a second.
    item_keys: std::sync::RwLock<std::collections::HashMap<u64, String>>,
    /// Custom counters reported by steps (`mmm report --counter`); rare, so a lock is fine.
    counters: std::sync::Mutex<std::collections::BTreeMap<String, crate::counter::CounterValue>>,
    /// Per-second counts of this run's finished items and attempts, for rates and alerts.
    window: window::Window,
    /// One line per active alert, for the views; set once a second by the runner.
    alerts: std::sync::Mutex<Vec<String>>,
}

/// The state stored in a slot's byte (`AgentState as u8`).
fn state_from_u8(v: u8) -> AgentState {
    AgentState::ALL
        .get(usize::from(v))
        .copied()
        .unwrap_or(AgentState::Queued)
}

/// One agent's slot. Written only by its agent (single writer), read by anyone.
#[derive(Debug)]
struct AgentSlot {
    /// Odd while the agent is writing.
    version: AtomicU64,
    phase: AtomicU8,
    item: AtomicU64,
    step: AtomicU32,
    attempt: AtomicU32,
    /// f32 bits; `NONE_U32` when the step reported no progress.
    progress: AtomicU32,
    /// When the current item started, µs since the tracker started.
    item_started_us: AtomicU64,
    /// When the current phase began, µs since the tracker started.
    since_us: AtomicU64,
    /// Exit code of the last failure (`i32` bits), for `failed {error}`.
    last_exit: AtomicU32,
    items_done: AtomicU64,
    /// Last output or report of the running command, µs since the tracker started. Written
    /// outside the seqlock (a lone timestamp needs no consistency with the other fields).
    active_us: AtomicU64,
    /// The message the running step reported last. A lock, but off the hot path: only
    /// reports write it, and an item's start clears it only when one is set.
    message: std::sync::RwLock<Option<String>>,
    has_message: std::sync::atomic::AtomicBool,
    /// The running command's process (group) id, 0 when none: for resource sampling.
    pid: AtomicU32,
    /// CPU use of the command's process group at the last sample, in tenths of a percent
    /// of one core; `NONE_U32` before the first sample.
    cpu_permille: AtomicU32,
    /// Resident memory of the process group at the last sample, KiB.
    rss_kib: AtomicU64,
}

impl AgentSlot {
    fn new() -> Self {
        AgentSlot {
            version: AtomicU64::new(0),
            phase: AtomicU8::new(AgentState::Queued as u8),
            item: AtomicU64::new(NONE_U64),
            step: AtomicU32::new(NONE_U32),
            attempt: AtomicU32::new(0),
            progress: AtomicU32::new(NONE_U32),
            item_started_us: AtomicU64::new(0),
            since_us: AtomicU64::new(0),
            last_exit: AtomicU32::new(NONE_U32),
            items_done: AtomicU64::new(0),
            active_us: AtomicU64::new(0),
            message: std::sync::RwLock::new(None),
            has_message: std::sync::atomic::AtomicBool::new(false),
            pid: AtomicU32::new(0),
            cpu_permille: AtomicU32::new(NONE_U32),
            rss_kib: AtomicU64::new(0),
        }
    }

    fn set_message(&self, message: Option<String>) {
        self.has_message.store(message.is_some(), Ordering::Relaxed);
        *self.message.write().unwrap_or_else(|e| e.into_inner()) = message;
    }

    fn clear_message(&self) {
        if self.has_message.load(Ordering::Relaxed) {
            self.set_message(None);
        }
    }

    fn message(&self) -> Option<String> {
        if !self.has_message.load(Ordering::Relaxed) {
            return None;
        }
        self.message
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Runs `f` as one write that readers see whole or not at all.
    fn write(&self, f: impl FnOnce(&AgentSlot)) {
        let v = self.version.load(Ordering::Relaxed);
        self.version.store(v.wrapping_add(1), Ordering::Relaxed);
        fence(Ordering::Release);
        f(self);
        self.version.store(v.wrapping_add(2), Ordering::Release);
    }

    fn read(&self, index: usize, now_us: u64) -> AgentSnapshot {
        loop {
            let v1 = self.version.load(Ordering::Acquire);
            if v1 % 2 == 1 {
                std::hint::spin_loop();
                continue;
            }
            let phase = state_from_u8(self.phase.load(Ordering::Relaxed));
            let item = self.item.load(Ordering::Relaxed);
            let step = self.step.load(Ordering::Relaxed);
            let attempt = self.attempt.load(Ordering::Relaxed);
            let progress = self.progress.load(Ordering::Relaxed);
            let item_started = self.item_started_us.load(Ordering::Relaxed);
            let since = self.since_us.load(Ordering::Relaxed);
            let last_exit = self.last_exit.load(Ordering::Relaxed);
            let items_done = self.items_done.load(Ordering::Relaxed);
            fence(Ordering::Acquire);
            if self.version.load(Ordering::Relaxed) != v1 {
                continue;
            }
            let active = self.active_us.load(Ordering::Relaxed).max(since);
            return AgentSnapshot {
                index,
                state: phase,
                item: (item != NONE_U64).then_some(item),
                step: (step != NONE_U32).then_some(step as usize),
                attempt,
                progress: (progress != NONE_U32).then(|| f32::from_bits(progress)),
                item_elapsed: (item != NONE_U64)
                    .then(|| Duration::from_micros(now_us.saturating_sub(item_started))),
                in_phase: Duration::from_micros(now_us.saturating_sub(since)),
                last_exit_code: (last_exit != NONE_U32).then_some(last_exit as i32),
                items_done,
                quiet: Duration::from_micros(now_us.saturating_sub(active)),
                message: self.message(),
                cpu_percent: match self.cpu_permille.load(Ordering::Relaxed) {
                    NONE_U32 => None,
                    permille => Some(permille as f32 / 10.0),
                },
                rss_bytes: match self.rss_kib.load(Ordering::Relaxed) {
                    0 => None,
                    kib => Some(kib * 1024),
                },
            };
        }
    }
}

/// How an item ended, as the tracker counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemEnd {
    /// All steps succeeded.
    Completed,
    /// Every step's condition was false.
    Skipped,
    /// Attempts exhausted.
    DeadLettered,
    /// The job stopped while the item ran; it will run again on resume.
    Interrupted,
}

/// Job-wide counts at one instant.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Progress {
    /// Items in the job.
    pub total: u64,
    /// Items completed.
    pub completed: u64,
    /// Items in the DLQ.
    pub dead_lettered: u64,
    /// Items skipped by `when:`.
    pub skipped: u64,
    /// Items an agent is working on (including waiting to retry), with, on the owner of a
    /// scale-out job, those of other processes' agents.
    pub in_flight: u64,
    /// Items not started yet.
    pub pending: u64,
    /// Items done before this run started (a resume), included in the counts above.
    pub restored: u64,
    /// Attempts that failed (each retry and each final failure).
    pub failed_attempts: u64,
    /// Attempts that were retries.
    pub retries: u64,
    /// Percent done (completed + dead-lettered + skipped), monotonic, 0..=100.
    pub percent: f64,
    /// True while items are still being read (a one-liner's standard input): the total is
    /// what has come so far, not the job's, so no ETA can be told.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub input_open: bool,
}

impl Progress {
    /// Items that will not run again: completed, dead-lettered or skipped.
    pub fn done(&self) -> u64 {
        self.completed + self.dead_lettered + self.skipped
    }

    /// Items this run finished (what a rate may count: not those restored by a resume).
    pub fn done_this_run(&self) -> u64 {
        self.done().saturating_sub(self.restored)
    }
}

/// One agent at one instant. Durations are seconds in JSON; fields a snapshot of an older
/// mmm lacks read as absent (or zero).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentSnapshot {
    /// 0-based slot; the agent's name is `agent-{index+1}`.
    pub index: usize,
    /// What it is doing.
    #[serde(rename = "phase")]
    pub state: AgentState,
    /// The item (input position) it works on.
    #[serde(default)]
    pub item: Option<u64>,
    /// The step (index in the plan) it runs.
    #[serde(default)]
    pub step: Option<usize>,
    /// The attempt number of the current item.
    #[serde(default)]
    pub attempt: u32,
    /// Progress the step reported, 0..=1.
    #[serde(default)]
    pub progress: Option<f32>,
    /// How long the current item has run.
    #[serde(default, with = "optional_seconds")]
    pub item_elapsed: Option<Duration>,
    /// How long it has been in its current state.
    #[serde(default, with = "seconds")]
    pub in_phase: Duration,
    /// Exit code of the last failure.
    #[serde(default)]
    pub last_exit_code: Option<i32>,
    /// Items this agent finished.
    #[serde(default)]
    pub items_done: u64,
    /// How long since the running command last wrote output or reported (or since the
    /// state began): what "stuck" is measured by.
    #[serde(default, with = "seconds")]
    pub quiet: Duration,
    /// The message the running step reported last (`mmm report`).
    #[serde(default)]
    pub message: Option<String>,
    /// CPU use of the running command's process group at the last sample (about once a
    /// second), percent of one core.
    #[serde(default)]
    pub cpu_percent: Option<f32>,
    /// Its resident memory at the last sample.
    #[serde(default)]
    pub rss_bytes: Option<u64>,
}

/// A `Duration` as seconds (a float) in JSON.
mod seconds {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_f64(d.as_secs_f64())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let secs = f64::deserialize(d)?;
        Ok(Duration::try_from_secs_f64(secs).unwrap_or_default())
    }
}

/// An optional `Duration` as seconds in JSON, `null` when absent.
mod optional_seconds {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_f64(d.as_secs_f64()),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        let secs = Option::<f64>::deserialize(d)?;
        Ok(secs.map(|secs| Duration::try_from_secs_f64(secs).unwrap_or_default()))
    }
}

impl Tracker {
    /// A tracker for `total` items worked by `agents` agents.
    pub fn new(total: u64, agents: usize) -> Self {
        Tracker {
            started: Instant::now(),
            started_us: coarse_now_us(),
            total: AtomicU64::new(total),
            completed: AtomicU64::new(0),
            dead_lettered: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            in_flight: AtomicU64::new(0),
            in_flight_elsewhere: AtomicU64::new(0),
            input_open: AtomicBool::new(false),
            agents_elsewhere: AtomicU64::new(0),
            restored: AtomicU64::new(0),
            failed_attempts: AtomicU64::new(0),
            retries: AtomicU64::new(0),
            percent_floor_ppm: AtomicU64::new(0),
            agents: (0..agents.max(crate::control::MAX_AGENTS as usize))
                .map(|_| AgentSlot::new())
                .collect(),
            active: AtomicUsize::new(agents),
            used: AtomicUsize::new(agents),
            paused: AtomicBool::new(false),
            item_keys: std::sync::RwLock::default(),
            counters: std::sync::Mutex::default(),
            window: window::Window::default(),
            alerts: std::sync::Mutex::default(),
        }
    }

    /// Says whether items are still being read (the total is not final yet).
    pub fn set_input_open(&self, open: bool) {
        self.input_open.store(open, Ordering::Relaxed);
    }

    /// Sets the number of items (known once the input is loaded).
    pub fn set_total(&self, total: u64) {
        // Percent must not drop when the total grows (new items on a resume).
        self.percent_floor_ppm
            .fetch_max(self.percent_ppm(), Ordering::Relaxed);
        self.total.store(total, Ordering::Relaxed);
    }

    /// Records the keys of items agents took, by input position.
    pub fn add_item_keys(&self, keys: impl IntoIterator<Item = (u64, String)>) {
        let mut map = self.item_keys.write().unwrap_or_else(|e| e.into_inner());
        map.extend(keys);
    }

    /// Forgets the key of an item that left its agent.
    pub fn forget_item_key(&self, item: u64) {
        let mut map = self.item_keys.write().unwrap_or_else(|e| e.into_inner());
        map.remove(&item);
    }

    /// The key of the item at input position `item`, when it is known.
    pub fn item_key(&self, item: u64) -> Option<String> {
        let map = self.item_keys.read().unwrap_or_else(|e| e.into_inner());
        map.get(&item).cloned()
    }

    /// Counts items already finished before this tracker started (a resumed job), so that
    /// percent and counts are right from the first frame.
    pub fn preload(&self, completed: u64, dead_lettered: u64, skipped: u64) {
        self.restored
            .fetch_add(completed + dead_lettered + skipped, Ordering::Relaxed);
        self.completed.fetch_add(completed, Ordering::Relaxed);
        self.dead_lettered
            .fetch_add(dead_lettered, Ordering::Relaxed);
        self.skipped.fetch_add(skipped, Ordering::Relaxed);
    }

    /// The agents the run works with now.
    pub fn agent_count(&self) -> usize {
        self.active.load(Ordering::Relaxed)
    }

    /// The run works with `agents` agents from now on (`mmm scale`); at most the slots made.
    pub fn set_agent_count(&self, agents: usize) {
        let agents = agents.min(self.agents.len());
        self.active.store(agents, Ordering::Relaxed);
        self.used.fetch_max(agents, Ordering::Relaxed);
    }

    /// The most agents this tracker has slots for.
    pub fn agent_capacity(&self) -> usize {
        self.agents.len()
    }

    /// Whether the job is paused (`mmm pause`).
    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::Relaxed)
    }

    /// Records that the job is paused or not.
    pub fn set_paused(&self, paused: bool) {
        self.paused.store(paused, Ordering::Relaxed);
    }

    /// Microseconds since the tracker started, from the coarse monotonic clock: a few ms of
    /// resolution is plenty for display, and it costs half of `Instant::now()` here.
    fn now_us(&self) -> u64 {
        coarse_now_us().saturating_sub(self.started_us)
    }

    /// Time since the tracker started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// The slots views show: every agent the run has or had (one retired by a scale down
    /// shows as finished).
    fn shown(&self) -> usize {
        self.used
            .load(Ordering::Relaxed)
            .max(self.agent_count())
            .min(self.agents.len())
    }

    fn slot(&self, agent: usize) -> &AgentSlot {
        &self.agents[agent]
    }

    /// Agent `agent` took item `item` and starts attempt `attempt` of it.
    pub fn attempt_started(&self, agent: usize, item: u64, attempt: u32) {
        let now = self.now_us();
        let slot = self.slot(agent);
        let first = attempt <= 1 || slot.item.load(Ordering::Relaxed) != item;
        if first {
            self.in_flight.fetch_add(1, Ordering::Relaxed);
        }
        slot.write(|s| {
            s.phase
                .store(AgentState::Initializing as u8, Ordering::Relaxed);
            s.item.store(item, Ordering::Relaxed);
            s.step.store(NONE_U32, Ordering::Relaxed);
            s.attempt.store(attempt, Ordering::Relaxed);
            s.progress.store(NONE_U32, Ordering::Relaxed);
            if first {
                s.item_started_us.store(now, Ordering::Relaxed);
            }
            s.since_us.store(now, Ordering::Relaxed);
        });
        slot.clear_message();
    }

    /// Agent `agent` started step `step` (index in the plan).
    pub fn step_started(&self, agent: usize, step: usize) {
        let now = self.now_us();
        self.slot(agent).write(|s| {
            s.phase.store(AgentState::Running as u8, Ordering::Relaxed);
            s.step.store(step as u32, Ordering::Relaxed);
            s.progress.store(NONE_U32, Ordering::Relaxed);
            s.since_us.store(now, Ordering::Relaxed);
        });
        self.slot(agent).clear_message();
    }

    /// Agent `agent` is merging its item's results back (worktree isolation).
    pub fn merging(&self, agent: usize) {
        let now = self.now_us();
        self.slot(agent).write(|s| {
            s.phase.store(AgentState::Merging as u8, Ordering::Relaxed);
            s.step.store(NONE_U32, Ordering::Relaxed);
            s.progress.store(NONE_U32, Ordering::Relaxed);
            s.since_us.store(now, Ordering::Relaxed);
        });
    }

    /// The running step reported its own progress (0..=1).
    pub fn step_progress(&self, agent: usize, progress: f32) {
        let p = progress.clamp(0.0, 1.0);
        let slot = self.slot(agent);
        slot.write(|s| s.progress.store(p.to_bits(), Ordering::Relaxed));
        slot.active_us.store(self.now_us(), Ordering::Relaxed);
    }

    /// The running step reported a message.
    pub fn step_message(&self, agent: usize, message: String) {
        let slot = self.slot(agent);
        slot.set_message(Some(message));
        slot.active_us.store(self.now_us(), Ordering::Relaxed);
    }

    /// The running command of `agent` started as process group `pid`, or ended (`None`).
    pub fn command_process(&self, agent: usize, pid: Option<u32>) {
        let slot = self.slot(agent);
        slot.pid.store(pid.unwrap_or(0), Ordering::Relaxed);
        if pid.is_none() {
            slot.cpu_permille.store(NONE_U32, Ordering::Relaxed);
            slot.rss_kib.store(0, Ordering::Relaxed);
        }
    }

    /// The process groups of the agents' running commands, by agent (0 for none).
    pub fn command_processes(&self) -> Vec<u32> {
        self.agents[..self.shown()]
            .iter()
            .map(|s| s.pid.load(Ordering::Relaxed))
            .collect()
    }

    /// Records a resource sample of `agent`'s command.
    pub fn command_usage(&self, agent: usize, cpu_percent: f32, rss_bytes: u64) {
        let slot = self.slot(agent);
        let permille = (cpu_percent.max(0.0) * 10.0)
            .round()
            .min((NONE_U32 - 1) as f32);
        slot.cpu_permille.store(permille as u32, Ordering::Relaxed);
        slot.rss_kib
            .store((rss_bytes / 1024).max(1), Ordering::Relaxed);
    }

    /// The running command of `agent` wrote output: it is not stuck.
    pub fn command_active(&self, agent: usize) {
        self.slot(agent)
            .active_us
            .store(self.now_us(), Ordering::Relaxed);
    }

    /// Adds `delta` to the job-wide custom counter `name` (reported by steps).
    pub fn add_to_counter(&self, name: &str, delta: crate::counter::CounterValue) {
        let mut counters = self.counters.lock().unwrap_or_else(|e| e.into_inner());
        *counters.entry(name.to_string()).or_default() += delta;
    }

    /// The custom counters, by name.
    pub fn counters(&self) -> std::collections::BTreeMap<String, crate::counter::CounterValue> {
        self.counters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Replaces the lines describing the active alerts.
    pub fn set_alerts(&self, lines: Vec<String>) {
        *self.alerts.lock().unwrap_or_else(|e| e.into_inner()) = lines;
    }

    /// One line per active alert.
    pub fn alerts(&self) -> Vec<String> {
        self.alerts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Whole seconds since the tracker started: the clock of [`Tracker::window`].
    pub fn second(&self) -> u32 {
        (self.now_us() / 1_000_000) as u32
    }

    /// An attempt ended with `outcome` (interrupted attempts are not counted: they say
    /// nothing about the work).
    pub fn attempt_ended(&self, outcome: crate::job::AttemptOutcome) {
        use crate::job::AttemptOutcome;
        let second = self.second();
        if outcome == AttemptOutcome::Interrupted {
            return;
        }
        self.window.add(Series::Attempts, second);
        if matches!(outcome, AttemptOutcome::Failed | AttemptOutcome::TimedOut) {
            self.window.add(Series::Failures, second);
        }
        if outcome == AttemptOutcome::TimedOut {
            self.window.add(Series::Timeouts, second);
        }
    }

    /// This run's counts over the last `seconds` whole seconds (fewer than
    /// [`WINDOW_SECONDS`]).
    pub fn window(&self, seconds: u32) -> WindowCounts {
        self.window.counts(self.second(), seconds)
    }

    /// The agent waits because the API it calls throttles: its item's attempt was throttled
    /// (then another, `next_attempt`, follows after the delay), or the job's effective
    /// concurrency holds it (`next_attempt` 0: no item).
    pub fn throttled(&self, agent: usize, next_attempt: u32) {
        let now = self.now_us();
        self.slot(agent).write(|s| {
            s.phase
                .store(AgentState::Throttled as u8, Ordering::Relaxed);
            s.attempt.store(next_attempt, Ordering::Relaxed);
            s.since_us.store(now, Ordering::Relaxed);
        });
    }

    /// An attempt failed and another will follow (`next_attempt`) after the backoff.
    pub fn retrying(&self, agent: usize, next_attempt: u32, exit_code: Option<i32>) {
        self.failed_attempts.fetch_add(1, Ordering::Relaxed);
        self.retries.fetch_add(1, Ordering::Relaxed);
        let now = self.now_us();
        self.slot(agent).write(|s| {
            s.phase.store(AgentState::Retrying as u8, Ordering::Relaxed);
            s.attempt.store(next_attempt, Ordering::Relaxed);
            s.last_exit
                .store(exit_code.map_or(NONE_U32, |c| c as u32), Ordering::Relaxed);
            s.since_us.store(now, Ordering::Relaxed);
        });
    }

    /// The agent's item ended. The agent goes back to `queued` unless it was dead-lettered
    /// (shown until its next item starts).
    pub fn item_finished(&self, agent: usize, end: ItemEnd, exit_code: Option<i32>) {
        match end {
            ItemEnd::Completed => {
                self.completed.fetch_add(1, Ordering::Relaxed);
            }
            ItemEnd::Skipped => {
                self.skipped.fetch_add(1, Ordering::Relaxed);
            }
            ItemEnd::DeadLettered => {
                self.failed_attempts.fetch_add(1, Ordering::Relaxed);
                self.dead_lettered.fetch_add(1, Ordering::Relaxed);
            }
            ItemEnd::Interrupted => {}
        }
        if end != ItemEnd::Interrupted {
            self.window.add(Series::Finished, self.second());
        }
        self.in_flight.fetch_sub(1, Ordering::Relaxed);
        let now = self.now_us();
        let phase = match end {
            ItemEnd::DeadLettered => AgentState::DeadLettered,
            _ => AgentState::Queued,
        };
        self.slot(agent).write(|s| {
            s.phase.store(phase as u8, Ordering::Relaxed);
            s.item.store(NONE_U64, Ordering::Relaxed);
            s.step.store(NONE_U32, Ordering::Relaxed);
            s.progress.store(NONE_U32, Ordering::Relaxed);
            s.since_us.store(now, Ordering::Relaxed);
            if end != ItemEnd::Interrupted {
                // Single writer: a load and a store, no read-modify-write needed.
                let done = s.items_done.load(Ordering::Relaxed);
                s.items_done.store(done + 1, Ordering::Relaxed);
            }
            if let Some(code) = exit_code {
                s.last_exit.store(code as u32, Ordering::Relaxed);
            }
        });
    }

    /// Scale-out: another process's agent finished an item during this run. It counts like
    /// this process's own (in the counts, the window and so the rates), without a slot.
    pub fn item_finished_elsewhere(&self, end: ItemEnd) {
        match end {
            ItemEnd::Completed => self.completed.fetch_add(1, Ordering::Relaxed),
            ItemEnd::Skipped => self.skipped.fetch_add(1, Ordering::Relaxed),
            ItemEnd::DeadLettered => {
                self.failed_attempts.fetch_add(1, Ordering::Relaxed);
                self.dead_lettered.fetch_add(1, Ordering::Relaxed)
            }
            ItemEnd::Interrupted => return,
        };
        self.window.add(Series::Finished, self.second());
    }

    /// Scale-out: another process's attempt failed and its item will be retried.
    pub fn retrying_elsewhere(&self) {
        self.failed_attempts.fetch_add(1, Ordering::Relaxed);
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    /// Scale-out: how many agents other processes have working on the job now (not finished),
    /// and how many items they have in flight.
    pub fn set_elsewhere(&self, agents: u64, in_flight: u64) {
        self.agents_elsewhere.store(agents, Ordering::Relaxed);
        self.in_flight_elsewhere.store(in_flight, Ordering::Relaxed);
    }

    /// Scale-out: other processes' agents working on the job and their items in flight, as
    /// last set (both 0 when the job is not shared).
    pub fn elsewhere(&self) -> (u64, u64) {
        (
            self.agents_elsewhere.load(Ordering::Relaxed),
            self.in_flight_elsewhere.load(Ordering::Relaxed),
        )
    }

    /// The agent has no more work.
    pub fn agent_finished(&self, agent: usize) {
        let now = self.now_us();
        self.slot(agent).write(|s| {
            s.phase
                .store(AgentState::Completed as u8, Ordering::Relaxed);
            s.item.store(NONE_U64, Ordering::Relaxed);
            s.step.store(NONE_U32, Ordering::Relaxed);
            s.since_us.store(now, Ordering::Relaxed);
        });
    }

    /// Percent done in parts per million, never below the floor. Counters only grow, so
    /// this only grows too, except when the total grows, which `set_total` floors.
    fn percent_ppm(&self) -> u64 {
        let total = self.total.load(Ordering::Relaxed);
        let done = self.completed.load(Ordering::Relaxed)
            + self.dead_lettered.load(Ordering::Relaxed)
            + self.skipped.load(Ordering::Relaxed);
        self.floored_ppm(done, total)
    }

    fn floored_ppm(&self, done: u64, total: u64) -> u64 {
        let ppm = done
            .saturating_mul(PPM_FULL)
            .checked_div(total)
            .map_or(0, |ppm| ppm.min(PPM_FULL));
        ppm.max(self.percent_floor_ppm.load(Ordering::Relaxed))
    }

    /// Job-wide counts: a handful of atomic loads, no lock, no clock.
    pub fn progress(&self) -> Progress {
        let total = self.total.load(Ordering::Relaxed);
        let completed = self.completed.load(Ordering::Relaxed);
        let dead_lettered = self.dead_lettered.load(Ordering::Relaxed);
        let skipped = self.skipped.load(Ordering::Relaxed);
        let in_flight = self.in_flight.load(Ordering::Relaxed)
            + self.in_flight_elsewhere.load(Ordering::Relaxed);
        let percent_ppm = self.floored_ppm(completed + dead_lettered + skipped, total);
        Progress {
            total,
            completed,
            dead_lettered,
            skipped,
            in_flight,
            pending: total.saturating_sub(completed + dead_lettered + skipped + in_flight),
            restored: self.restored.load(Ordering::Relaxed),
            failed_attempts: self.failed_attempts.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            percent: percent_ppm as f64 / 10_000.0,
            input_open: self.input_open.load(Ordering::Relaxed),
        }
    }

    /// One agent's slot. O(1), lock-free for the reader.
    pub fn agent(&self, agent: usize) -> AgentSnapshot {
        self.slot(agent).read(agent, self.now_us())
    }

    /// Every agent's slot.
    pub fn agents(&self) -> Vec<AgentSnapshot> {
        let now = self.now_us();
        self.agents[..self.shown()]
            .iter()
            .enumerate()
            .map(|(i, s)| s.read(i, now))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn skipped_counts_as_done_and_percent_is_capped() {
        let t = Tracker::new(4, 1);
        for (i, end) in [ItemEnd::Completed, ItemEnd::Skipped, ItemEnd::DeadLettered]
            .into_iter()
            .enumerate()
        {
            t.attempt_started(0, i as u64, 1);
            t.item_finished(0, end, None);
        }
        let p = t.progress();
        assert_eq!(
            (p.completed, p.skipped, p.dead_lettered, p.pending),
            (1, 1, 1, 1)
        );
        assert_eq!(p.percent, 75.0);
        // More finishes than the total never pass 100 %.
        for i in 3..10 {
            t.attempt_started(0, i, 1);
            t.item_finished(0, ItemEnd::Completed, None);
        }
        assert_eq!(t.progress().percent, 100.0);
    }

    #[test]
    fn restored_items_count_as_done_but_not_as_done_this_run() {
        let t = Tracker::new(10, 1);
        t.preload(4, 1, 0);
        t.attempt_started(0, 5, 1);
        t.item_finished(0, ItemEnd::Completed, None);
        let p = t.progress();
        assert_eq!((p.done(), p.restored, p.done_this_run()), (6, 5, 1));
        assert_eq!(p.percent, 60.0);
    }

    #[test]
    fn percent_never_decreases_when_the_total_grows() {
        let t = Tracker::new(2, 1);
        t.attempt_started(0, 0, 1);
        t.item_finished(0, ItemEnd::Completed, None);
        assert_eq!(t.progress().percent, 50.0);
        t.set_total(10);
        assert_eq!(t.progress().percent, 50.0);
    }

    #[test]
    fn agent_slot_follows_the_attempt() {
        let t = Tracker::new(10, 2);
        t.attempt_started(1, 7, 1);
        t.step_started(1, 2);
        t.step_progress(1, 0.4);
        let a = t.agent(1);
        assert_eq!(a.state, AgentState::Running);
        assert_eq!(
            (a.item, a.step, a.attempt, a.progress),
            (Some(7), Some(2), 1, Some(0.4))
        );
        assert_eq!(t.progress().in_flight, 1);
        t.retrying(1, 2, Some(3));
        t.attempt_started(1, 7, 2);
        assert_eq!(
            t.progress().in_flight,
            1,
            "a retry is the same item in flight"
        );
        t.item_finished(1, ItemEnd::DeadLettered, Some(3));
        let a = t.agent(1);
        assert_eq!(a.state, AgentState::DeadLettered);
        assert_eq!((a.item, a.last_exit_code, a.items_done), (None, Some(3), 1));
        assert_eq!(t.progress().failed_attempts, 2);
        assert_eq!(t.agent(0).state, AgentState::Queued);
    }

    /// 8 threads hammer the counters while a reader checks that percent never decreases and
    /// every read agent slot is consistent (item and attempt written together).
    #[test]
    fn concurrent_updates_are_never_lost_and_percent_is_monotonic() {
        const THREADS: usize = 8;
        const PER_THREAD: u64 = 20_000;
        let t = Arc::new(Tracker::new(THREADS as u64 * PER_THREAD, THREADS));
        let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = {
            let (t, done) = (t.clone(), done.clone());
            std::thread::spawn(move || {
                let mut last = 0.0;
                let mut reads = 0u64;
                while !done.load(Ordering::Relaxed) {
                    let p = t.progress();
                    assert!(
                        p.percent >= last,
                        "percent went from {last} to {}",
                        p.percent
                    );
                    assert!(p.percent <= 100.0);
                    last = p.percent;
                    for a in t.agents() {
                        // Each writer sets attempt = item % 7 + 1 together with the item.
                        if let Some(item) = a.item {
                            assert_eq!(a.attempt as u64, item % 7 + 1, "torn slot read");
                        }
                    }
                    reads += 1;
                }
                reads
            })
        };
        let writers: Vec<_> = (0..THREADS)
            .map(|agent| {
                let t = t.clone();
                std::thread::spawn(move || {
                    for n in 0..PER_THREAD {
                        let item = agent as u64 * PER_THREAD + n;
                        t.attempt_started(agent, item, (item % 7 + 1) as u32);
                        t.step_started(agent, 0);
                        let end = match n % 10 {
                            0 => ItemEnd::Skipped,
                            1 => ItemEnd::DeadLettered,
                            _ => ItemEnd::Completed,
                        };
                        t.item_finished(agent, end, None);
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().unwrap();
        }
        done.store(true, Ordering::Relaxed);
        assert!(reader.join().unwrap() > 0);
        let p = t.progress();
        let total = THREADS as u64 * PER_THREAD;
        assert_eq!(p.skipped, total / 10);
        assert_eq!(p.dead_lettered, total / 10);
        assert_eq!(p.completed, total - total / 5);
        assert_eq!((p.in_flight, p.pending, p.percent), (0, 0, 100.0));
        let per_agent: u64 = t.agents().iter().map(|a| a.items_done).sum();
        assert_eq!(per_agent, total);
    }

    proptest::proptest! {
        /// Any sequence of agent events: counts equal a simple model, percent never decreases
        /// and never passes 100.
        #[test]
        fn counts_match_a_model_and_percent_is_monotonic(
            total in 0u64..50,
            ops in proptest::collection::vec((0usize..3, 0u8..5), 0..200),
        ) {
            let t = Tracker::new(total, 3);
            let mut holding = [None::<u64>; 3];
            let (mut completed, mut skipped, mut dlq, mut retries) = (0u64, 0u64, 0u64, 0u64);
            let mut next_item = 0u64;
            let mut last = 0.0;
            for (agent, op) in ops {
                match (holding[agent], op) {
                    (None, _) => {
                        t.attempt_started(agent, next_item, 1);
                        holding[agent] = Some(next_item);
                        next_item += 1;
                    }
                    (Some(item), 0) => {
                        t.retrying(agent, 2, Some(1));
                        t.attempt_started(agent, item, 2);
                        retries += 1;
                    }
                    (Some(_), op) => {
                        let end = [ItemEnd::Completed, ItemEnd::Skipped, ItemEnd::DeadLettered, ItemEnd::Interrupted][op as usize - 1];
                        match end {
                            ItemEnd::Completed => completed += 1,
                            ItemEnd::Skipped => skipped += 1,
                            ItemEnd::DeadLettered => dlq += 1,
                            ItemEnd::Interrupted => {}
                        }
                        t.item_finished(agent, end, None);
                        holding[agent] = None;
                    }
                }
                let p = t.progress();
                proptest::prop_assert!(p.percent >= last && p.percent <= 100.0);
                last = p.percent;
                proptest::prop_assert_eq!((p.completed, p.skipped, p.dead_lettered, p.retries), (completed, skipped, dlq, retries));
                proptest::prop_assert_eq!(p.in_flight, holding.iter().filter(|h| h.is_some()).count() as u64);
                if total > 0 {
                    let exact = ((completed + skipped + dlq) as f64 * 100.0 / total as f64).min(100.0);
                    proptest::prop_assert!((p.percent - exact).abs() < 0.001);
                }
            }
        }
    }
}
