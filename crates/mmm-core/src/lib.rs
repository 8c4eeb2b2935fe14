//! The core of mmm: what a job is and what it is doing, with no database, web, terminal or
//! command-line crate behind it, so a program that only wants the live tracker and the ETA
//! builds this crate alone.
//!
//! - [`job`]: the domain nouns (job ids, statuses, phases, agent states, attempt outcomes).
//! - [`event`]: the events of a job's log, each kind with its typed payload.
//! - [`snapshot`]: what the runner records of a running job at each heartbeat, versioned.
//! - [`repair`]: the invariants of a job's record and the changes a repair makes.
//! - [`tracker`]: the lock-free live state of one job (counters, one slot per agent).
//! - [`metrics`]: durations, the ETA with its range, stragglers, failure clusters.
//! - [`alerts`]: the alert rules, judged against what the tracker sees.
//! - [`counter`]: a counter's decimal value, parsed, summed and shown one way everywhere.
//! - [`control`]: what a request to steer a running job asks, and the state it leaves.
//! - [`limits`]: the start rate and the budgets of work that calls paid, rate-limited APIs.

pub mod alerts;
pub mod control;
pub mod counter;
pub mod event;
pub mod job;
pub mod limits;
pub mod metrics;
pub mod repair;
pub mod snapshot;
pub mod tracker;
