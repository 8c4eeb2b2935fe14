//! Commits to one SQLite file by this process, for readers in the same process: `mmm run
//! --dashboard` and tests read the store the runner writes through handles of their own, and
//! wake when a batch commits instead of polling. Readers in other processes cannot be told and
//! poll, as before (PostgreSQL has `NOTIFY` for that).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, LazyLock, Mutex, Weak};
use std::time::{Duration, Instant};

/// A counter of commits, and a condition variable to wait for the next one.
#[derive(Default)]
pub(super) struct Commits {
    count: Mutex<u64>,
    committed: Condvar,
}

/// Every database file of this process that has an open handle, by canonical path.
static FILES: LazyLock<Mutex<HashMap<PathBuf, Weak<Commits>>>> = LazyLock::new(Default::default);

impl Commits {
    /// The signal every handle on `path` in this process shares.
    pub(super) fn of(path: &Path) -> Arc<Commits> {
        let key = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
        let mut files = FILES.lock().unwrap_or_else(|e| e.into_inner());
        files.retain(|_, commits| commits.strong_count() > 0);
        if let Some(commits) = files.get(&key).and_then(Weak::upgrade) {
            return commits;
        }
        let commits = Arc::new(Commits::default());
        files.insert(key, Arc::downgrade(&commits));
        commits
    }

    /// The commits so far: where a new handle's [`Commits::wait`] starts.
    pub(super) fn count(&self) -> u64 {
        *self.count.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Called after a commit: wakes every waiter.
    pub(super) fn committed(&self) {
        *self.count.lock().unwrap_or_else(|e| e.into_inner()) += 1;
        self.committed.notify_all();
    }

    /// Waits until there is a commit after `seen` (the count this handle's previous wait
    /// returned at), or `timeout`; then moves `seen` on. So a commit that lands while the
    /// caller reads is not missed: its next wait returns at once.
    pub(super) fn wait(&self, seen: &AtomicU64, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let mut count = self.count.lock().unwrap_or_else(|e| e.into_inner());
        while *count <= seen.load(Ordering::Relaxed) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            count = self
                .committed
                .wait_timeout(count, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        seen.fetch_max(*count, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_on_one_file_share_the_signal_and_a_commit_wakes_a_waiter() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.db");
        std::fs::write(&path, b"").unwrap();
        let (first, second) = (Commits::of(&path), Commits::of(&dir.path().join("./a.db")));
        assert!(Arc::ptr_eq(&first, &second));
        let other = Commits::of(&dir.path().join("b.db"));
        assert!(!Arc::ptr_eq(&first, &other));

        let seen = AtomicU64::new(second.count());
        let waiter = std::thread::spawn(move || {
            let started = Instant::now();
            second.wait(&seen, Duration::from_secs(60));
            (started.elapsed(), seen.load(Ordering::Relaxed))
        });
        // Commits until the waiter returns: it cannot miss them all.
        while !waiter.is_finished() {
            first.committed();
            std::thread::sleep(Duration::from_millis(1));
        }
        let (waited, seen) = waiter.join().unwrap();
        assert!(waited < Duration::from_secs(60));
        assert!(seen >= 1);
    }

    #[test]
    fn a_commit_between_two_waits_ends_the_second_at_once() {
        let commits = Commits::default();
        let seen = AtomicU64::new(commits.count());
        commits.committed();
        let started = Instant::now();
        commits.wait(&seen, Duration::from_secs(60));
        assert!(started.elapsed() < Duration::from_secs(30));
        assert_eq!(seen.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn without_a_commit_the_wait_ends_at_its_timeout() {
        let commits = Commits::default();
        let seen = AtomicU64::new(commits.count());
        let started = Instant::now();
        commits.wait(&seen, Duration::from_millis(30));
        assert!(started.elapsed() >= Duration::from_millis(30));
    }
}
