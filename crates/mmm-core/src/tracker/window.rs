//! Rolling counts over the last minutes, one bucket per second, lock-free.
//!
//! Each bucket of each series is one atomic word holding the second it counts (high 32 bits)
//! and its count (low 32 bits), updated with a compare-and-swap: a bucket whose second is
//! old restarts at the new second in the same operation, so no increment is ever lost to a
//! reset. Reading sums the buckets whose second lies inside the window.

use std::sync::atomic::{AtomicU64, Ordering};

/// How far back the window reaches: rates and alerts can look at most this far.
pub const WINDOW_SECONDS: u32 = 600;

/// What is counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Series {
    /// Items completed, skipped or dead-lettered (work done).
    Finished = 0,
    /// Attempts that ended (any outcome but interrupted).
    Attempts = 1,
    /// Attempts that failed (including timeouts).
    Failures = 2,
    /// Attempts that timed out.
    Timeouts = 3,
}

const SERIES: usize = 4;

/// Counts per second for the last [`WINDOW_SECONDS`] seconds.
#[derive(Debug)]
pub struct Window {
    buckets: Box<[AtomicU64]>,
}

impl Default for Window {
    fn default() -> Self {
        Window {
            buckets: (0..SERIES * WINDOW_SECONDS as usize)
                .map(|_| AtomicU64::new(0))
                .collect(),
        }
    }
}

/// Sums over a span of the window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct WindowCounts {
    /// Items finished.
    pub finished: u64,
    /// Attempts that ended.
    pub attempts: u64,
    /// Attempts that failed.
    pub failures: u64,
    /// Attempts that timed out.
    pub timeouts: u64,
}

impl Window {
    fn bucket(&self, series: Series, second: u32) -> &AtomicU64 {
        let slot = (second % WINDOW_SECONDS) as usize;
        &self.buckets[series as usize * WINDOW_SECONDS as usize + slot]
    }

    /// Counts one event of `series` at `second` (seconds since the tracker started).
    pub fn add(&self, series: Series, second: u32) {
        let bucket = self.bucket(series, second);
        let mut current = bucket.load(Ordering::Relaxed);
        loop {
            let (at, count) = ((current >> 32) as u32, current as u32);
            let next = if at == second {
                ((second as u64) << 32) | count.saturating_add(1) as u64
            } else {
                ((second as u64) << 32) | 1
            };
            match bucket.compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => return,
                Err(seen) => current = seen,
            }
        }
    }

    /// The sums of the `seconds` whole seconds before `now`. The current second is left
    /// out: it is still filling, and counting it would make every rate dip at its start.
    pub fn counts(&self, now: u32, seconds: u32) -> WindowCounts {
        let seconds = seconds.clamp(1, WINDOW_SECONDS - 1);
        let oldest = now.saturating_sub(seconds);
        let sum = |series: Series| -> u64 {
            (oldest..now)
                .map(|second| {
                    let word = self.bucket(series, second).load(Ordering::Relaxed);
                    if (word >> 32) as u32 == second {
                        word & 0xFFFF_FFFF
                    } else {
                        0
                    }
                })
                .sum()
        };
        WindowCounts {
            finished: sum(Series::Finished),
            attempts: sum(Series::Attempts),
            failures: sum(Series::Failures),
            timeouts: sum(Series::Timeouts),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_only_what_is_inside_the_window() {
        let w = Window::default();
        w.add(Series::Finished, 0);
        w.add(Series::Finished, 5);
        w.add(Series::Finished, 5);
        w.add(Series::Failures, 9);
        assert_eq!(w.counts(10, 10).finished, 3);
        assert_eq!(w.counts(10, 5).finished, 2, "seconds 5..=9");
        assert_eq!(w.counts(10, 4).finished, 0, "seconds 6..=9");
        assert_eq!(w.counts(10, 1).failures, 1);
        assert_eq!(
            w.counts(9, 5).failures,
            0,
            "the current second is still filling"
        );
    }

    #[test]
    fn a_bucket_reused_after_the_window_restarts_at_zero() {
        let w = Window::default();
        w.add(Series::Attempts, 3);
        w.add(Series::Attempts, 3);
        let later = 3 + WINDOW_SECONDS;
        w.add(Series::Attempts, later);
        assert_eq!(w.counts(later + 1, 1).attempts, 1);
        assert_eq!(w.counts(later + 1, WINDOW_SECONDS).attempts, 1);
    }

    #[test]
    fn concurrent_adds_are_all_counted() {
        let w = std::sync::Arc::new(Window::default());
        let threads: Vec<_> = (0..4)
            .map(|_| {
                let w = w.clone();
                std::thread::spawn(move || {
                    for i in 0..10_000u32 {
                        w.add(Series::Finished, i / 1000);
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(w.counts(10, 10).finished, 40_000);
    }
}
