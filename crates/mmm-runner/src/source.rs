//! Where the agents of a map take their items from: one trait, [`WorkSource`], over the two
//! sources there are: the in-memory queue a feeder fills when one process runs the job's map
//! ([`crate::queue::WorkQueue`]), and claims through the store when several processes share it
//! (scale-out, [`crate::claim::Claims`]).

use std::future::Future;
use std::time::Duration;

use mmm_spec::Item;

/// One item for an agent: where it is, what it is, and the attempts it already had.
#[derive(Debug, Clone)]
pub(crate) struct Work {
    /// Position in the input (the item's index in the store).
    pub(crate) index: u64,
    /// The item.
    pub(crate) item: Item,
    /// Attempts that counted against the retry budget so far.
    pub(crate) attempts_used: u32,
    /// The number the next attempt gets.
    pub(crate) next_number: u32,
}

/// An item an agent took, and how long it waited in memory for one (`None` for a claimed
/// item: its wait is in the store, across hosts, and not measured).
#[derive(Debug)]
pub(crate) struct Taken {
    pub(crate) work: Work,
    pub(crate) waited: Option<Duration>,
}

/// What the agents of a map take their items from.
pub(crate) trait WorkSource: Send + Sync + 'static {
    /// The next item, waiting while none is ready but more may come; `None` once no more will
    /// come to this agent (the source is exhausted, or it stopped handing items out).
    fn next(&self) -> impl Future<Output = Option<Taken>> + Send;

    /// True when other processes take items of the same map (scale-out): every attempt's
    /// start is then logged, as it is how the job's owner sees their items in flight
    /// (`others.rs`).
    fn is_shared(&self) -> bool;

    /// The agent that took item `index` is done with it (ended, or left for later): the source
    /// no longer holds it for this process.
    fn ended(&self, _index: u64) {}
}
