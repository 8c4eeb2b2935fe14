//! The store a subcommand reads or writes, and a job in it: opened with a message that names
//! the store (its password left out), a job id prefix resolved, the job's owner judged alive
//! or gone.

use std::sync::Arc;

use anyhow::Context;

use super::usage_or_store_error;
use mmm_core::job::JobId;
use mmm_store::audit::Owner;
use mmm_store::{self as store, JobRecord, Store};

/// Opens the store at `location` (`create`: make it when missing).
pub(crate) fn open_store(location: &str, create: bool) -> anyhow::Result<Arc<dyn Store>> {
    store::open(location, create).with_context(|| {
        format!(
            "could not open the store at {}",
            mmm_store::shown_location(location)
        )
    })
}

/// Opens the store (which must exist) and resolves a job id prefix; an unknown or ambiguous
/// prefix is a usage error.
pub(crate) fn open_job(location: &str, prefix: &str) -> anyhow::Result<(Arc<dyn Store>, JobId)> {
    let store = open_store(location, false)?;
    let id = store.resolve_job(prefix).map_err(usage_or_store_error)?;
    Ok((store, id))
}

/// Whether the job's recorded owner process is still alive (`mmm_store::owner` decides).
pub(crate) fn owner_state(job: &JobRecord, now: i64) -> Owner {
    if mmm_store::owner::owner_process_alive(job, now, &mmm_store::owner::host_name()) {
        Owner::Alive
    } else {
        Owner::Gone
    }
}
