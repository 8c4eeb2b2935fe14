//! [`Claims`]: scale-out, a job's items shared out to the processes that work on it
//! (`mmm worker`), each under a lease it renews.

use crate::StoreError;
use mmm_core::job::JobId;

/// Items handed out to claimers under leases.
pub trait Claims {
    /// Claims at most `limit` items of the job for `claimer`, in input order, with
    /// a lease until `lease_until` (epoch ms), in one transaction; concurrent claimers never
    /// get the same item (PostgreSQL: `FOR UPDATE SKIP LOCKED`; SQLite: `BEGIN IMMEDIATE`).
    /// Only a `running` job in its map phase hands out items. Claimable: a `pending` or
    /// `failed` item with no lease or one that ran out before `at`, and a `running` item whose
    /// lease ran out (its claimer died): its attempt in flight is closed `interrupted` (not
    /// counted against retries) and an `item_requeued` event with reason `lease_expired` is
    /// recorded. Claiming does not change an item's status (`AttemptStarted` does).
    fn claim_items(
        &self,
        job: JobId,
        claimer: &str,
        limit: usize,
        lease_until: i64,
        at: i64,
    ) -> Result<Vec<ClaimedItem>, StoreError>;
    /// Extends the lease of the unfinished items of `indices` that `claimer` holds in the job
    /// to `lease_until`; returns how many. Only the items the claimer knows it holds: a claim
    /// whose commit the connection lost may have given it items it never heard of, whose
    /// lease must run out so that they are claimed again.
    fn renew_claims(
        &self,
        job: JobId,
        claimer: &str,
        indices: &[u64],
        lease_until: i64,
    ) -> Result<u64, StoreError>;
    /// Of `indices` (items `claimer` claimed and has not started), the ones it still holds,
    /// their lease extended to `lease_until`; the others are left to whoever holds them now.
    /// A claimer asks before starting an item claimed so long ago that its lease may have run
    /// out and another process may have taken it.
    fn confirm_claims(
        &self,
        job: JobId,
        claimer: &str,
        indices: &[u64],
        lease_until: i64,
    ) -> Result<Vec<u64>, StoreError>;
    /// Gives back every item `claimer` holds in the job that has no attempt in flight (their
    /// lease is cleared, so others may claim them at once); returns how many.
    fn release_claims(&self, job: JobId, claimer: &str) -> Result<u64, StoreError>;
}

/// An item handed to a claimer by [`Claims::claim_items`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedItem {
    /// Position in the input.
    pub index: u64,
    /// Stable key.
    pub key: String,
    /// The item's value, JSON text.
    pub value: String,
    /// Attempts that counted against the retry budget.
    pub attempts: u32,
    /// The number of its last attempt (0 when it never ran).
    pub last_number: u32,
    /// True when it was taken from a claimer whose lease ran out (its attempt in flight, if
    /// any, was closed `interrupted`).
    pub lease_expired: bool,
}
