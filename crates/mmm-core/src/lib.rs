//! The core of mmm: what a job is and what it is doing, with no database, web, terminal or
//! command-line crate behind it, so a program that only wants the live tracker and the ETA
//! builds this crate alone.
//!
//! - [`job`]: the domain nouns (job ids, statuses, phases, agent states, attempt outcomes).
//! - [`tracker`]: the lock-free live state of one job (counters, one slot per agent).
//! - [`metrics`]: durations, the ETA with its range, stragglers, failure clusters.
//! - [`alerts`]: the alert rules, judged against what the tracker sees.

pub mod alerts;
pub mod job;
pub mod metrics;
pub mod tracker;
