//! Writes whose commit was not confirmed. When the connection breaks while a write
//! transaction commits, the client cannot know whether the server committed it. Calling
//! [`crate::JobLog::apply`] (or `add_items`) again with the same writes must not record them
//! twice, nor lose them: so each such transaction first asks for its transaction id
//! (`txid_current()`), and when it fails for want of a connection the store remembers that id
//! with a digest of the writes. The next call with the same writes asks the server what became
//! of that transaction (`txid_status`, made for exactly this) and returns at once if it was
//! committed. A call with other writes forgets it: its writer gave up on the old ones.

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use super::PostgresStore;
use super::transaction::Tx;
use crate::StoreError;

/// The write whose commit is in doubt, if one is.
#[derive(Debug, Default)]
pub(super) struct InDoubt(Mutex<Option<Doubt>>);

#[derive(Debug, Clone, Copy)]
struct Doubt {
    /// The transaction's id, when it got one before the connection broke (else it surely did
    /// not commit).
    xid: Option<i64>,
    /// What was written, to know a retry of it.
    digest: u64,
}

/// Where a write transaction leaves its id.
#[derive(Debug, Default, Clone)]
pub(super) struct TxId(Arc<AtomicI64>);

impl TxId {
    fn get(&self) -> Option<i64> {
        Some(self.0.load(Ordering::Acquire)).filter(|&xid| xid > 0)
    }
}

/// A digest of the writes, to know the same writes when they come again.
pub(super) fn digest(writes: &impl std::fmt::Debug) -> u64 {
    let mut hasher = DefaultHasher::new();
    format!("{writes:?}").hash(&mut hasher);
    hasher.finish()
}

impl PostgresStore {
    /// Runs a write of `writes` (`write` gets a [`TxId`] to fill with
    /// [`Tx::note_transaction_id`]) once: a retry of writes whose earlier commit is in doubt
    /// returns at once when that commit happened.
    pub(super) fn write_once<W: std::fmt::Debug>(
        &self,
        writes: &W,
        write: impl FnOnce(TxId) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        if let Some(doubt) = self.in_doubt.take()
            && doubt.digest == digest(writes)
            && self.committed(doubt)?
        {
            return Ok(());
        }
        let id = TxId::default();
        let written = write(id.clone());
        if let Err(error) = &written
            && error.is_unavailable()
        {
            self.in_doubt.set(Doubt {
                xid: id.get(),
                digest: digest(writes),
            });
        }
        written
    }

    /// True when the transaction in doubt was committed. When the server cannot be asked, the
    /// doubt stays for the next call.
    fn committed(&self, doubt: Doubt) -> Result<bool, StoreError> {
        let Some(xid) = doubt.xid else {
            return Ok(false);
        };
        // A transaction whose connection broke is "in progress" until the server notices;
        // it cannot commit without its client, so it ends aborted soon.
        for _ in 0..50 {
            match self.transaction_status(xid) {
                Ok(Some(status)) if status == "in progress" => {
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                Ok(status) => return Ok(status.as_deref() == Some("committed")),
                Err(error) => {
                    self.in_doubt.set(doubt);
                    return Err(error);
                }
            }
        }
        Ok(false)
    }

    /// `txid_status` of `xid`: committed, aborted, in progress, or `None` when too old to know.
    fn transaction_status(&self, xid: i64) -> Result<Option<String>, StoreError> {
        self.read(move |tx| {
            Box::pin(async move {
                let rows = tx
                    .query(
                        "ask what became of a transaction the connection lost",
                        "SELECT txid_status($1::bigint)",
                        &[&xid],
                    )
                    .await?;
                Ok(rows.first().and_then(|row| row.get::<_, Option<String>>(0)))
            })
        })
    }
}

impl InDoubt {
    fn take(&self) -> Option<Doubt> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }

    fn set(&self, doubt: Doubt) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(doubt);
    }
}

impl Tx<'_> {
    /// Gives the transaction its id now and notes it in `id` (see the module docs).
    pub(super) async fn note_transaction_id(&mut self, id: &TxId) -> Result<(), StoreError> {
        let rows = self
            .query("start a write transaction", "SELECT txid_current()", &[])
            .await?;
        let xid: i64 = rows.first().map_or(0, |row| row.get(0));
        id.0.store(xid, Ordering::Release);
        Ok(())
    }
}
