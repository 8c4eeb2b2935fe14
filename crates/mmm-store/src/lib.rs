//! The store: the durable record of every job, item, attempt, event and snapshot, and the
//! single source of truth for every process that reads a job (DESIGN.md "Data flow").
//!
//! # Parts
//! - The interface, [`Store`], is the sum of one trait per concern (`store/`): [`JobLog`] (what
//!   the runner records), [`JobReads`] and [`EventReads`] (what readers see), [`DeadLetters`]
//!   (the DLQ), [`Claims`] (items shared out to workers), [`Recovery`] (taking a job over,
//!   requeueing, rewinding), [`Integrity`] (`mmm check`, `mmm repair`, the health probe),
//!   [`Transfer`] (copying and deleting a job) and [`Summaries`] (the jobs of a period with
//!   their kept summaries). Code holds an `Arc<dyn Store>` and calls any of
//!   their methods.
//! - What they take and return: the records ([`JobRecord`], [`ItemRecord`],
//!   [`AttemptRecord`], [`EventRecord`], [`SnapshotRecord`], [`CheckpointRecord`], ...), the
//!   steps of an attempt ([`StepRecord`]), the changes the runner records ([`Write`]) and
//!   [`StoreError`], whose variants say what went wrong and what to do, with the database's own
//!   error ([`BackendError`]) as their source.
//! - Where a store is: [`open`] takes a `--store` location (a directory, a database file or a
//!   PostgreSQL URL) and opens the backend it names; [`shown_location`] hides a URL's password.
//! - The domain rules every backend follows, written once (`rules/`, pure functions): the
//!   dead-letter queue's (which items a retry or a purge moves, the events and the job status it
//!   implies), repair conflicts, status transitions, job id prefixes, what a claim does to an item
//!   whose lease ran out, and the events the store records on its own.
//! - Two backends, each a folder of files by concern and a cargo feature (both on by
//!   default): [`sqlite`] (`sqlite`, one database file) and [`postgres`] (`postgres`, one
//!   schema of a PostgreSQL database). They hold the SQL; [`open`] of a location whose backend
//!   is left out is [`StoreError::BackendNotBuilt`].
//! - Around them: [`writer::StoreWriter`] batches the runner's writes into few transactions on
//!   a thread of its own, so the runner never waits on the disk per item; [`audit`] finds what
//!   is wrong with a job's record and plans its repair; [`copy`] moves a job between stores.
//! - The read models the read side shares: [`job_state`] (a job as a viewer shows it),
//!   [`events`] (following a job's events), [`health`] (the store's health), [`resumable`]
//!   (jobs that can resume), [`owner`] (whether a job's owner is alive) and [`stats`] (jobs
//!   across a period, per name: `mmm stats`, `GET /api/stats`).

// A build with no backend (the traits, records and read models only) leaves the rules and the
// helpers the backends share unused.
#![cfg_attr(
    not(any(feature = "sqlite", feature = "postgres")),
    allow(dead_code, unused_imports)
)]

pub mod audit;
#[cfg(feature = "sqlite")]
mod commits;
pub mod copy;
mod error;
pub mod events;
pub mod health;
mod item_totals;
pub mod job_state;
mod location;
pub mod logs;
mod outages;
pub mod owner;
#[cfg(feature = "postgres")]
pub mod postgres;
mod records;
pub mod resumable;
mod rules;
#[cfg(feature = "sqlite")]
pub mod sqlite;
pub mod stats;
mod steps;
mod store;
mod write;
pub mod writer;

pub use error::{BackendError, StoreError};
pub use location::{
    DATABASE_FILE, DEFAULT_LOCATION, database_path, is_postgres_url, open, shown_location,
};
pub use outages::{DEFAULT_OUTAGE_LIMIT, Outage, Outages};
pub use owner::Owner;
pub use records::{
    AttemptRecord, CheckpointRecord, EventRecord, ItemCounts, ItemRecord, JobRecord, NewItem,
    NewJob, SnapshotRecord,
};
pub use rules::interruptions::LEASE_EXPIRED_ERROR;
pub use steps::StepRecord;
pub(crate) use steps::StoredSteps;
pub use store::{
    BudgetRecord, ClaimedItem, Claims, Control, ControlRecord, ControlRequest, DeadLetter,
    DeadLetters, DlqChange, EventReads, Integrity, ItemPage, ItemPageQuery, JobContents, JobLog,
    JobQuery, JobReads, JobTotals, Ledger, Limits, Logs, NameItemTotals, PagedItem, PeriodJob,
    PeriodQuery, Recovery, RepairAction, Requeued, Store, Summaries, Transfer, UnfinishedItem,
};
pub use write::Write;
