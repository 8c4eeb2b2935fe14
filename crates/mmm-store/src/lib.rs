//! The store: the durable record of every job, item, attempt, event and snapshot, and the
//! single source of truth for every process that reads a job (DESIGN.md "Data flow").

pub mod audit;
#[cfg(feature = "sqlite")]
mod commits;
pub mod copy;
mod error;
pub mod events;
pub mod health;
pub mod job_state;
mod location;
pub mod owner;
#[cfg(feature = "postgres")]
pub mod postgres;
mod records;
pub mod resumable;
mod rules;
#[cfg(feature = "sqlite")]
pub mod sqlite;
mod steps;
mod store;
mod write;
pub mod writer;

pub use error::{BackendError, StoreError};
pub use location::{
    DATABASE_FILE, DEFAULT_LOCATION, database_path, is_postgres_url, open, shown_location,
};
pub use owner::Owner;
pub use records::{
    AttemptRecord, CheckpointRecord, EventRecord, ItemCounts, ItemRecord, JobRecord, NewItem,
    NewJob, SnapshotRecord,
};
pub use rules::interruptions::LEASE_EXPIRED_ERROR;
pub use steps::StepRecord;
pub(crate) use steps::StoredSteps;
pub use store::{
    ClaimedItem, Claims, DeadLetter, DeadLetters, DlqChange, EventReads, Integrity, ItemPage,
    ItemPageQuery, JobContents, JobLog, JobReads, Ledger, PagedItem, Recovery, RepairAction,
    Requeued, Store, Transfer, UnfinishedItem,
};
pub use write::Write;
