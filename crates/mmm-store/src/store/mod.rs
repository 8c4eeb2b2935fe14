//! The store's interface, split by concern: [`JobLog`] (what the runner records),
//! [`JobReads`] and [`EventReads`] (what readers see), [`Logs`] (item logs), [`DeadLetters`] (the DLQ), [`Claims`]
//! (items shared out to workers), [`Control`] (requests that steer a running job), [`Limits`]
//! (the start rate's schedule and the budgets), [`Recovery`] (taking a job over and running it again),
//! [`Integrity`] (`mmm check`, `mmm repair`, the health probe), [`Transfer`] (copying a job
//! to another store, deleting it) and [`Summaries`] (the jobs of a period, `mmm stats`). [`Store`] is all of them: what a backend implements and what
//! the rest of mmm holds (`Arc<dyn Store>`), calling any of their methods without importing
//! them.

mod claims;
mod control;
mod dead_letters;
mod event_reads;
mod integrity;
mod job_log;
mod job_reads;
mod limits;
mod logs;
mod recovery;
mod summaries;
mod transfer;

pub use claims::{ClaimedItem, Claims};
pub use control::{Control, ControlRecord, ControlRequest};
pub use dead_letters::{DeadLetter, DeadLetters, DlqChange};
pub use event_reads::EventReads;
pub use integrity::{Integrity, JobContents, RepairAction};
pub use job_log::JobLog;
pub(crate) use job_reads::job_totals_sql;
pub use job_reads::{
    ItemPage, ItemPageQuery, JobQuery, JobReads, JobTotals, Ledger, NameItemTotals, PagedItem,
};
pub use limits::{BudgetRecord, Limits};
pub(crate) use limits::{stored, wait_of};
pub use logs::Logs;
pub use recovery::{Recovery, Requeued, UnfinishedItem};
pub use summaries::{PeriodJob, PeriodQuery, Summaries};
pub use transfer::Transfer;

/// A whole store: every concern of it, from one backend. Implementations must pass the
/// conformance suite (`crates/mmm-store/tests/conformance/`).
///
/// It has no methods of its own: a type that implements every part is a `Store` (the blanket
/// implementation below), and a `dyn Store` offers the methods of every part.
pub trait Store:
    JobLog
    + JobReads
    + Logs
    + EventReads
    + DeadLetters
    + Claims
    + Control
    + Limits
    + Recovery
    + Integrity
    + Transfer
    + Summaries
    + Send
    + Sync
{
}

impl<T> Store for T where
    T: JobLog
        + JobReads
        + Logs
        + EventReads
        + DeadLetters
        + Claims
        + Control
        + Limits
        + Recovery
        + Integrity
        + Transfer
        + Summaries
        + Send
        + Sync
        + ?Sized
{
}
