//! Which errors of the library crates are the user's to fix: they become usage errors (exit
//! 2); the others stay what they are (exit 1).

use crate::cli::UsageError;
use mmm_runs::ObserveError;
use mmm_store::StoreError;

/// Store errors that mean "you asked for something that is not there" become usage errors;
/// the others stay store errors.
pub(crate) fn usage_or_store_error(e: StoreError) -> anyhow::Error {
    match e {
        StoreError::JobNotFound { .. }
        | StoreError::AmbiguousJob { .. }
        | StoreError::InvalidJobId { .. }
        | StoreError::UnknownItems { .. }
        | StoreError::NotDeadLettered { .. }
        | StoreError::JobNotRunning { .. }
        | StoreError::ControlRefused { .. } => anyhow::Error::new(UsageError::new(e.to_string())),
        other => anyhow::Error::new(other),
    }
}

/// Bad rules, a missing root and an unclassifiable folder of observed runs are the user's to
/// fix; the others stay errors.
pub(crate) fn usage_or_runs_error(e: ObserveError) -> anyhow::Error {
    match e {
        ObserveError::ConfigRead { .. }
        | ObserveError::ConfigSyntax { .. }
        | ObserveError::ConfigInvalid { .. }
        | ObserveError::Root { .. }
        | ObserveError::Unclassifiable(_) => anyhow::Error::new(UsageError::new(e.to_string())),
        other => anyhow::Error::new(other),
    }
}
