//! Why an attempt in flight was closed `interrupted`: the error each cause records on it.
//! Interrupted attempts do not count against an item's retries.

/// The error recorded on an attempt closed because its claimer's lease ran out.
pub const LEASE_EXPIRED_ERROR: &str =
    "interrupted: the worker running it stopped renewing its lease (it died or lost the store)";

/// The error recorded on an attempt still in flight when a resume finds its owner gone
/// ([`crate::Recovery::requeue_in_flight`]).
pub(crate) const OWNER_STOPPED_ERROR: &str =
    "the process running the job stopped during this attempt";

/// The error recorded on an attempt that `mmm repair` closed (unless it had one).
pub(crate) const REPAIRED_ATTEMPT_ERROR: &str =
    "interrupted: the process running it was gone (closed by `mmm repair`)";
