//! The map commands' output on its way to be shown: tagged (`--tag`), and with `-k` held back
//! until every item queued before it has ended, so it is shown in input order while items run
//! in parallel. Only the output of items that ended out of order is held: memory is bounded
//! by that window, not by the number of items.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Mutex;

use tokio::sync::mpsc;

use crate::Output;

/// Where the map's output goes, in the order it is to be shown.
pub(crate) struct Shown {
    sender: Option<mpsc::UnboundedSender<Output>>,
    /// `Some` with `-k`: the items queued and not yet shown, in input order.
    order: Option<Mutex<Order>>,
}

#[derive(Default)]
struct Order {
    /// Indices of the items queued, in the order they were queued, not shown yet.
    expected: VecDeque<u64>,
    /// The same indices, to look one up.
    queued: HashSet<u64>,
    /// Output of items, held until their turn; `ended` once the item will produce no more.
    held: HashMap<u64, Held>,
}

#[derive(Default)]
struct Held {
    outputs: Vec<Output>,
    ended: bool,
}

impl Shown {
    /// Output sent to `sender`, in input order with `keep_order`.
    pub(crate) fn new(sender: Option<mpsc::UnboundedSender<Output>>, keep_order: bool) -> Self {
        Shown {
            order: (keep_order && sender.is_some()).then(Mutex::default),
            sender,
        }
    }

    /// True when output is shown at all.
    pub(crate) fn is_shown(&self) -> bool {
        self.sender.is_some()
    }

    /// Where output shown at once goes (`--line-buffer`), when output is shown at all.
    pub(crate) fn sender(&self) -> Option<mpsc::UnboundedSender<Output>> {
        self.sender.clone()
    }

    /// Sends output at once, whatever the order (setup, reduce).
    pub(crate) fn send(&self, output: Output) {
        if let Some(sender) = &self.sender {
            let _ = sender.send(output);
        }
    }

    /// Items queued for the agents, in input order (`-k` shows their output in this order).
    pub(crate) fn expect(&self, indices: impl IntoIterator<Item = u64>) {
        if let Some(order) = &self.order {
            let mut order = lock(order);
            for index in indices {
                order.expected.push_back(index);
                order.queued.insert(index);
            }
        }
    }

    /// Output of item `index`: shown now, or held until the items before it have ended.
    pub(crate) fn item_output(&self, index: u64, output: Output) {
        let Some(order) = &self.order else {
            return self.send(output);
        };
        let mut order = lock(order);
        if !order.queued.contains(&index) {
            // Not queued through the feed (items claimed through the store): no order to keep.
            drop(order);
            return self.send(output);
        }
        order.held.entry(index).or_default().outputs.push(output);
    }

    /// Item `index` will produce no more output: shows what is now due.
    pub(crate) fn item_ended(&self, index: u64) {
        let Some(order) = &self.order else { return };
        let mut order = lock(order);
        if !order.queued.contains(&index) {
            return;
        }
        order.held.entry(index).or_default().ended = true;
        while let Some(front) = order.expected.front().copied() {
            if !order.held.get(&front).is_some_and(|h| h.ended) {
                break;
            }
            order.expected.pop_front();
            order.queued.remove(&front);
            if let Some(held) = order.held.remove(&front) {
                for output in held.outputs {
                    self.send(output);
                }
            }
        }
    }

    /// The map ended (maybe stopped early): shows what is still held, in input order.
    pub(crate) fn finish(&self) {
        let Some(order) = &self.order else { return };
        let mut order = lock(order);
        order.queued.clear();
        while let Some(front) = order.expected.pop_front() {
            if let Some(held) = order.held.remove(&front) {
                for output in held.outputs {
                    self.send(output);
                }
            }
        }
    }
}

fn lock(order: &Mutex<Order>) -> std::sync::MutexGuard<'_, Order> {
    // The lock guards plain bookkeeping: a panic elsewhere cannot leave it half-updated.
    order
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Puts `tag` and a tab before each line of `text` (GNU parallel's `--tag`).
pub(crate) fn tagged(tag: &str, text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + tag.len() + 1);
    for line in text.split_inclusive(|b| *b == b'\n') {
        out.extend_from_slice(tag.as_bytes());
        out.push(b'\t');
        out.extend_from_slice(line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output(text: &str) -> Output {
        Output {
            source: text.to_string(),
            stdout: text.as_bytes().to_vec(),
            stderr: Vec::new(),
        }
    }

    fn drain(rx: &mut mpsc::UnboundedReceiver<Output>) -> Vec<String> {
        let mut seen = Vec::new();
        while let Ok(out) = rx.try_recv() {
            seen.push(out.source);
        }
        seen
    }

    #[test]
    fn keep_order_shows_each_item_once_those_before_it_ended() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let shown = Shown::new(Some(tx), true);
        shown.expect([0, 1, 2]);
        shown.item_output(2, output("c"));
        shown.item_ended(2);
        shown.item_output(1, output("b"));
        shown.item_ended(1);
        assert!(drain(&mut rx).is_empty());
        shown.item_output(0, output("a"));
        assert!(drain(&mut rx).is_empty());
        shown.item_ended(0);
        assert_eq!(drain(&mut rx), ["a", "b", "c"]);
    }

    #[test]
    fn held_output_is_shown_when_the_map_ends_early() {
        let (tx, mut rx) = mpsc::unbounded_channel();
        let shown = Shown::new(Some(tx), true);
        shown.expect([0, 1]);
        shown.item_output(1, output("b"));
        shown.item_ended(1);
        shown.finish();
        assert_eq!(drain(&mut rx), ["b"]);
    }

    #[test]
    fn tags_go_before_every_line() {
        assert_eq!(tagged("a 1", b"x\ny\n"), b"a 1\tx\na 1\ty\n");
        assert_eq!(tagged("t", b"no newline"), b"t\tno newline");
    }
}
