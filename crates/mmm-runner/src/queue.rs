//! The agents' work queue, the [`WorkSource`] of a map one process runs alone: the items to
//! run, fed while the agents already work (a resume pages its unfinished items in, then adds
//! new input items), and closed once nothing more will come, so that agents run out of work
//! only when the queue is closed and empty.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::Notify;

use crate::source::{Taken, Work, WorkSource};

/// Items waiting for an agent, each with the moment it became runnable (for queue wait).
#[derive(Debug, Default)]
pub(crate) struct WorkQueue {
    items: Mutex<VecDeque<(Instant, Work)>>,
    closed: AtomicBool,
    ready: Notify,
    taken: Notify,
}

impl WorkQueue {
    /// Adds items at the back.
    pub(crate) fn push_all(&self, work: impl IntoIterator<Item = Work>) {
        let now = Instant::now();
        self.lock().extend(work.into_iter().map(|w| (now, w)));
        self.ready.notify_waiters();
    }

    /// Waits until fewer than `limit` items are queued: a feeder paging items in keeps only
    /// so many in memory.
    pub(crate) async fn wait_below(&self, limit: usize) {
        loop {
            let taken = self.taken.notified();
            tokio::pin!(taken);
            taken.as_mut().enable();
            if self.lock().len() < limit {
                return;
            }
            taken.await;
        }
    }

    /// No more items will come.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        self.ready.notify_waiters();
    }

    /// The next item and how long it waited in the queue, waiting while the queue is empty
    /// but open; `None` once it is closed and empty.
    pub(crate) async fn take(&self) -> Option<(Work, Duration)> {
        loop {
            // Register for a wake-up before looking, so a push in between is not missed.
            let notified = self.ready.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let popped = self.lock().pop_front();
            if let Some((queued_at, work)) = popped {
                self.taken.notify_waiters();
                return Some((work, queued_at.elapsed()));
            }
            if self.closed.load(Ordering::Acquire) {
                return None;
            }
            notified.await;
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<(Instant, Work)>> {
        // A panic while holding this lock leaves a consistent queue: take it anyway.
        self.items.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl WorkSource for WorkQueue {
    async fn next(&self) -> Option<Taken> {
        let (work, waited) = self.take().await?;
        Some(Taken {
            work,
            waited: Some(waited),
        })
    }

    fn is_shared(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mmm_spec::Item;
    use std::sync::Arc;

    fn work(index: u64) -> Work {
        Work {
            index,
            item: Item {
                key: format!("k{index}"),
                value: serde_json::Value::Null,
            },
            attempts_used: 0,
            next_number: 1,
        }
    }

    #[tokio::test]
    async fn agents_wait_for_items_until_the_queue_is_closed() {
        let queue = Arc::new(WorkQueue::default());
        let taker = {
            let queue = queue.clone();
            tokio::spawn(async move {
                let mut got = Vec::new();
                while let Some((w, _waited)) = queue.take().await {
                    got.push(w.index);
                }
                got
            })
        };
        queue.push_all([work(1), work(2)]);
        tokio::task::yield_now().await;
        queue.push_all([work(3)]);
        queue.close();
        assert_eq!(taker.await.unwrap(), [1, 2, 3]);
    }

    #[tokio::test]
    async fn the_wait_is_the_time_since_the_push() {
        let queue = WorkQueue::default();
        queue.push_all([work(1)]);
        let before = Instant::now();
        std::thread::sleep(Duration::from_millis(30));
        let (_, waited) = queue.take().await.expect("an item");
        assert!(waited >= Duration::from_millis(30), "{waited:?}");
        assert!(waited >= before.elapsed().saturating_sub(Duration::from_millis(1)));
    }
}
