//! The domain rules of the store, written once and followed by every backend: pure functions
//! over plain data (records, statuses, counts). A backend reads what a rule needs, calls it,
//! and writes what it decides with its own SQL; no backend decides any of it again.
//!
//! - [`dlq`]: what a retry or a purge of the dead-letter queue moves, records and implies for
//!   the job's status;
//! - [`repair`]: when a change of `mmm repair` no longer applies;
//! - [`transitions`]: what a status change of a job or an item implies;
//! - [`job_ids`]: how a job id prefix names a job;
//! - [`name_glob`]: a job name glob as a regular expression, for a backend without `GLOB`;
//! - [`batch`]: which jobs a batch of writes touches, in which order;
//! - [`claims`]: what a claim does to an item whose claimer's lease ran out;
//! - [`control`]: which control requests a job takes, and their event;
//! - [`store_events`]: the events the store records on its own, kinds and payloads;
//! - [`interruptions`]: the error recorded on an attempt closed `interrupted`, by cause.

pub(crate) mod batch;
pub(crate) mod claims;
pub(crate) mod control;
pub(crate) mod dlq;
pub(crate) mod interruptions;
pub(crate) mod job_ids;
pub(crate) mod name_glob;
pub(crate) mod repair;
pub(crate) mod store_events;
pub(crate) mod transitions;
