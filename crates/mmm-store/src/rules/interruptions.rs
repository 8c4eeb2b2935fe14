//! Why an attempt in flight was closed `interrupted`: the error each cause records on it.
//! Interrupted attempts do not count against an item's retries.

/// The error recorded on an attempt closed because its claimer's lease ran out.
pub const LEASE_EXPIRED_ERROR: &str =
    "interrupted: the worker running it stopped renewing its lease (it died or lost the store)";
