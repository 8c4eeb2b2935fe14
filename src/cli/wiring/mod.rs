//! What several subcommands share: how the CLI wires the crates together. Opening the store
//! and a job in it, and which library errors are the user's to fix (exit 2); the async
//! runtime; a job run in this process with its views, its signals and its summary (`mmm run`,
//! `mmm resume`, `mmm dlq retry`), the runner's configuration it shares with `mmm worker`;
//! the dashboard beside a run; completing job ids at a Tab.
//!
//! Subcommand files use this module and [`super::output`], never each other.

mod branch;
mod dashboard;
mod execute;
mod job_completion;
mod resume;
mod run_config;
mod runtime;
mod signals;
mod store;
mod usage;

pub(crate) use dashboard::{start_beside_run, url_of};
pub(crate) use execute::{ViewArgs, execute};
pub(crate) use job_completion::job_id_completer;
pub(crate) use resume::{ResumeOptions, continue_job};
pub(crate) use run_config::run_config;
pub(crate) use runtime::runtime;
pub(crate) use signals::{StopNotices, watch_signals};
pub(crate) use store::{open_job, open_store, owner_state};
pub(crate) use usage::{usage_or_runs_error, usage_or_store_error};
