//! The domain rules of the store, written once and followed by every backend: pure functions
//! over plain data (records, statuses, counts). A backend reads what a rule needs, calls it,
//! and writes what it decides with its own SQL; what the rule decides is never written again in
//! a backend.

pub(crate) mod interruptions;
