//! The replay feed of the viewer (`mmm replay`): a job's recorded history (its snapshots and
//! events) as frames, one per snapshot, then a last frame that is the job's record as it
//! stands, so a replay of a finished job ends on exactly its final counts; played at a speed,
//! with pause and seek.

use std::time::{Duration, Instant};

use crate::tui::viewer::Feed;
use crate::tui::viewer::input::Action;
use crate::tui::viewer::state::{HISTORY, ReplayPosition, ViewerState};
use mmm_core::job::{JobId, JobStatus, Phase};
use mmm_store::job_state::{JobState, RECENT_EVENTS};
use mmm_store::{EventRecord, ItemCounts, JobRecord, SnapshotRecord, Store, StoreError};

/// How many snapshots are read per query.
const PAGE: usize = 1000;
/// The longest pause between two frames, whatever the speed.
const MAX_GAP: Duration = Duration::from_secs(2);

/// A job's recorded history, as frames.
pub(crate) struct History {
    snapshots: Vec<SnapshotRecord>,
    events: Vec<EventRecord>,
    last: JobState,
}

impl History {
    /// Reads every snapshot and event of `id`; `last` is the job as it stands, the last frame.
    pub(crate) fn load(
        store: &dyn Store,
        id: JobId,
        last: JobState,
    ) -> Result<History, StoreError> {
        let mut snapshots: Vec<SnapshotRecord> = Vec::new();
        let mut after = i64::MIN;
        loop {
            let page = store.snapshots(id, after, PAGE)?;
            let Some(newest) = page.last() else { break };
            after = newest.at;
            let full = page.len() == PAGE;
            snapshots.extend(page);
            if !full {
                break;
            }
        }
        let mut events: Vec<EventRecord> = Vec::new();
        let mut after = 0;
        loop {
            let page = store.events(id, after, PAGE)?;
            let Some(newest) = page.last() else { break };
            after = newest.seq;
            events.extend(page);
        }
        Ok(History {
            snapshots,
            events,
            last,
        })
    }

    /// The job as recorded now.
    pub(crate) fn job(&self) -> &JobRecord {
        &self.last.job
    }

    /// Frames in all: one per snapshot and the job as it stands.
    pub(crate) fn frames(&self) -> usize {
        self.snapshots.len() + 1
    }

    /// When frame `i` was, epoch ms.
    fn at(&self, i: usize) -> i64 {
        match self.snapshots.get(i) {
            Some(s) => s.at,
            None => {
                let job = &self.last.job;
                let newest = self.snapshots.last().map_or(job.created_at, |s| s.at);
                job.finished_at.unwrap_or(job.updated_at).max(newest)
            }
        }
    }

    /// The first frame at or after `at` (epoch ms).
    pub(crate) fn frame_at(&self, at: i64) -> usize {
        (0..self.frames())
            .find(|&i| self.at(i) >= at)
            .unwrap_or(self.frames() - 1)
    }

    /// The job as frame `i` shows it.
    pub(crate) fn frame(&self, i: usize) -> JobState {
        let Some(snapshot) = self.snapshots.get(i) else {
            let mut last = self.last.clone();
            last.read_at = self.at(i);
            return last;
        };
        let p = snapshot.payload.progress.unwrap_or_default();
        let mut record = self.last.job.clone();
        record.counts = ItemCounts {
            pending: p.pending,
            running: p.in_flight,
            completed: p.completed,
            failed: 0,
            dead_lettered: p.dead_lettered,
            skipped: p.skipped,
        };
        record.status = JobStatus::Running;
        record.phase = Some(Phase::Map);
        record.finished_at = None;
        record.updated_at = snapshot.at;
        record.duration_ms = snapshot.at - record.started_at.unwrap_or(record.created_at);
        let total = record.counts.total();
        let percent = if total == 0 {
            0.0
        } else {
            (p.done() as f64 * 100.0 / total as f64).min(100.0)
        };
        let seen = self.events.partition_point(|e| e.at <= snapshot.at);
        let recent = self.events[seen.saturating_sub(RECENT_EVENTS)..seen].to_vec();
        JobState {
            job: record,
            percent,
            resumable: false,
            live: false,
            snapshot: Some(snapshot.clone()),
            recent_events: recent,
            read_at: snapshot.at,
        }
    }

    /// A viewer state showing frame `i`, its throughput history seeded from the frames before.
    pub(crate) fn state_at(&self, i: usize) -> ViewerState {
        let mut state = ViewerState::new(self.frame(i));
        let end = i.min(self.snapshots.len());
        state.seed(&self.snapshots[end.saturating_sub(HISTORY)..end]);
        state
    }
}

/// Plays a [`History`] into the viewer.
pub(crate) struct ReplayFeed {
    history: History,
    frame: usize,
    speed: f64,
    paused: bool,
    next: Instant,
}

impl ReplayFeed {
    /// Plays `history` from frame `frame` at `speed` times the pace it happened; returns the
    /// feed and the viewer's state at that frame.
    pub(crate) fn start(history: History, frame: usize, speed: f64) -> (ReplayFeed, ViewerState) {
        let mut state = history.state_at(frame);
        let mut feed = ReplayFeed {
            history,
            frame,
            speed,
            paused: false,
            next: Instant::now(),
        };
        feed.show(&mut state, true);
        (feed, state)
    }

    fn gap(&self) -> Duration {
        let ms = (self.history.at(self.frame + 1) - self.history.at(self.frame)).max(0);
        Duration::from_secs_f64(ms as f64 / 1000.0 / self.speed).min(MAX_GAP)
    }

    fn position(&self) -> ReplayPosition {
        ReplayPosition {
            frame: self.frame,
            frames: self.history.frames(),
            speed: self.speed,
            paused: self.paused,
        }
    }

    fn at_end(&self) -> bool {
        self.frame + 1 >= self.history.frames()
    }

    fn show(&mut self, state: &mut ViewerState, jumped: bool) {
        if jumped {
            let ui = std::mem::take(&mut state.ui);
            *state = self.history.state_at(self.frame);
            state.ui = ui;
        } else {
            state.update(self.history.frame(self.frame));
        }
        state.replay = Some(self.position());
        if !self.at_end() {
            self.next = Instant::now() + self.gap();
        }
    }
}

impl Feed for ReplayFeed {
    fn next_due(&self) -> Option<Instant> {
        (!self.paused && !self.at_end()).then_some(self.next)
    }

    fn advance(&mut self, state: &mut ViewerState) -> anyhow::Result<bool> {
        self.frame += 1;
        self.show(state, false);
        Ok(true)
    }

    fn control(&mut self, action: Action, state: &mut ViewerState) -> bool {
        match action {
            Action::TogglePause => {
                self.paused = !self.paused;
                self.next = Instant::now() + self.gap();
                state.replay = Some(self.position());
            }
            Action::Seek(by) => {
                let last = self.history.frames() as i64 - 1;
                self.frame = (self.frame as i64 + by).clamp(0, last) as usize;
                self.show(state, true);
            }
            Action::Speed(factor) => {
                self.speed = (self.speed * factor).clamp(0.125, 10_000.0);
                state.replay = Some(self.position());
            }
            // A replay steers nothing: its job is history.
            Action::None
            | Action::Redraw
            | Action::Quit
            | Action::Control(_)
            | Action::OpenLog(_) => return false,
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mmm_core::snapshot::Snapshot;

    /// A history of `n` snapshots one second apart, counting 100 done per snapshot.
    fn history(n: u64) -> History {
        let mut last = mmm_store::job_state::fixture(2);
        last.job.status = JobStatus::Completed;
        History {
            snapshots: (0..n)
                .map(|i| SnapshotRecord {
                    at: 1_000 * i as i64,
                    payload: Snapshot::from_json(
                        serde_json::json!({"progress": {"total": 1000, "completed": i * 100}}),
                    ),
                })
                .collect(),
            events: Vec::new(),
            last,
        }
    }

    #[test]
    fn keys_pause_seek_and_change_the_speed_of_a_replay() {
        use crate::tui::viewer::input::handle_key;
        use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyModifiers};
        let press = |state: &mut ViewerState, feed: &mut ReplayFeed, code| {
            let action = handle_key(state, KeyEvent::new(code, KeyModifiers::NONE));
            feed.control(action, state)
        };
        let mut feed = ReplayFeed {
            history: history(30),
            frame: 0,
            speed: 1.0,
            paused: false,
            next: Instant::now(),
        };
        let mut state = feed.history.state_at(0);
        feed.show(&mut state, true);
        assert!(feed.next_due().is_some(), "a replay plays");

        assert!(press(&mut state, &mut feed, KeyCode::Char(' ')));
        assert!(state.replay.as_ref().unwrap().paused);
        assert_eq!(feed.next_due(), None, "paused: nothing is due");

        assert!(press(&mut state, &mut feed, KeyCode::Right));
        assert_eq!(state.replay.as_ref().unwrap().frame, 10);
        assert_eq!(
            state.done(),
            1_000,
            "frame 10 shows the 10th snapshot's count"
        );
        assert!(press(&mut state, &mut feed, KeyCode::Left));
        assert!(press(&mut state, &mut feed, KeyCode::Left));
        assert_eq!(
            state.replay.as_ref().unwrap().frame,
            0,
            "seeking stops at the start"
        );

        assert!(press(&mut state, &mut feed, KeyCode::Char('+')));
        assert!(press(&mut state, &mut feed, KeyCode::Char('+')));
        assert_eq!(state.replay.as_ref().unwrap().speed, 4.0);
        assert!(press(&mut state, &mut feed, KeyCode::Char('-')));
        assert_eq!(state.replay.as_ref().unwrap().speed, 2.0);

        assert!(press(&mut state, &mut feed, KeyCode::Char(' ')));
        assert!(!state.replay.as_ref().unwrap().paused);
        assert!(feed.next_due().is_some(), "playing again");
        // Seeking past the end shows the job's final record and stops playing.
        for _ in 0..5 {
            press(&mut state, &mut feed, KeyCode::Right);
        }
        assert_eq!(state.replay.as_ref().unwrap().frame, 30);
        assert_eq!(state.job.job.status, JobStatus::Completed);
        assert_eq!(feed.next_due(), None, "the end is the last frame");
    }

    #[test]
    fn frames_play_the_snapshots_then_end_on_the_record() {
        let last = mmm_store::job_state::fixture(2);
        let mut final_state = last.clone();
        final_state.job.status = JobStatus::Completed;
        final_state.job.counts = ItemCounts {
            completed: 990,
            dead_lettered: 10,
            ..ItemCounts::default()
        };
        let snapshots: Vec<SnapshotRecord> = (0..5u64)
            .map(|i| SnapshotRecord {
                at: 1_000 * i as i64,
                payload: Snapshot::from_json(serde_json::json!({"progress": {
                    "total": 1000, "completed": i * 200, "dead_lettered": 0, "skipped": 0,
                    "in_flight": 2, "pending": 1000 - i * 200 - 2}})),
            })
            .collect();
        let history = History {
            snapshots,
            events: Vec::new(),
            last: final_state.clone(),
        };
        assert_eq!(history.frames(), 6);
        let done: Vec<u64> = (0..history.frames())
            .map(|i| history.state_at(i).done())
            .collect();
        assert_eq!(done, [0, 200, 400, 600, 800, 1000]);
        let end = history.state_at(history.frames() - 1);
        assert_eq!(end.job.job.counts, final_state.job.counts);
        assert_eq!(end.job.job.status, JobStatus::Completed);
        assert_eq!(history.frame_at(2_500), 3);
        assert_eq!(history.frame_at(i64::MAX), 5);
    }
}
