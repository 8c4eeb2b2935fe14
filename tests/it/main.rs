//! End-to-end tests of the real `mmm` binary, each in its own temporary directory.
//!
//! One integration-test binary (faster to build than one per file); the fluent helper is in
//! `harness.rs`. Tests wait on conditions with deadlines, never on fixed sleeps.

mod alerts;
mod api_work;
mod check;
#[path = "../shared/chromium.rs"]
mod chromium;
mod control;
mod dlq;
mod embed;
mod eta;
mod events;
mod failures;
mod harness;
mod health;
mod job_files;
mod job_lists;
mod logs;
mod oneliner;
mod oneliner_gnu;
mod outage;
mod parallel_compat;
mod postgres;
mod quoting;
mod resume;
mod runs;
mod scale_out;
mod shell;
mod signals;
mod stats;
mod store_copy;
mod streaming;
mod tmux;
mod viewer;
mod web;
mod worktree;
