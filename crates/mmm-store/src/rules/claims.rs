//! The rules of a claim ([`crate::Claims::claim_items`]): what happens to an item taken from a
//! claimer whose lease ran out.

use crate::ClaimedItem;
use crate::rules::store_events::StoreEvent;
use mmm_core::job::ItemStatus;

/// An item a claim selected (unfinished, and unleased or with a lease that ran out), as the
/// backend read it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Claimable {
    /// Position in the input.
    pub(crate) index: u64,
    /// Stable key.
    pub(crate) key: String,
    /// The item's value, JSON text.
    pub(crate) value: String,
    /// Its status.
    pub(crate) status: ItemStatus,
    /// Attempts that counted against the retry budget.
    pub(crate) attempts: u32,
    /// The claimer that held it, if any.
    pub(crate) holder: Option<String>,
    /// The number of its last attempt (0 when it never ran).
    pub(crate) last_number: u32,
    /// True when it had a lease (which ran out).
    pub(crate) leased: bool,
}

impl Claimable {
    /// True when its claimer died with an attempt of it in flight: before the item is claimed
    /// again, that attempt is closed `interrupted` with
    /// [`LEASE_EXPIRED_ERROR`](crate::LEASE_EXPIRED_ERROR) (not counted against retries), the
    /// item goes back to `pending`, and [`Claimable::requeued`] is recorded.
    pub(crate) fn has_attempt_in_flight(&self) -> bool {
        self.status == ItemStatus::Running
    }

    /// The event recording that the item was taken from its claimer.
    pub(crate) fn requeued(&self) -> StoreEvent {
        StoreEvent::lease_expired(&self.key, self.holder.as_deref())
    }

    /// The item as its new claimer gets it.
    pub(crate) fn into_claimed(self) -> ClaimedItem {
        ClaimedItem {
            index: self.index,
            key: self.key,
            value: self.value,
            attempts: self.attempts,
            last_number: self.last_number,
            lease_expired: self.leased,
        }
    }
}
