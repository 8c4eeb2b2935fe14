//! mmm runs long, parallel batch jobs durably and shows exactly where they stand.
//!
//! A job is `setup -> map (items x steps over N agents) -> reduce`, described by a YAML job
//! file or a GNU-parallel-style one-liner. Every state change is committed to a store
//! (embedded SQLite), so a job can be listed, inspected and resumed from any process.
//!
//! The data flow, from the top (see ARCHITECTURE.md):
//! [`spec`] (job file -> [`spec::JobPlan`]) -> [`runner`] (agents, processes) ->
//! [`tracker`] (lock-free live counters) and [`store::writer`] (batched transactions) ->
//! [`store`] (the durable record) -> readers ([`cli`]).

pub mod alerts;
pub mod cli;
pub mod events;
pub mod health;
pub mod job;
pub mod metrics;
pub mod observe;
pub mod report;
pub mod runner;
pub mod spec;
pub mod store;
pub mod tracker;
pub mod view;
pub mod web;
