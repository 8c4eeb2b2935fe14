//! Each connection's settings ([`configure_new`]): WAL, `synchronous=NORMAL`, the busy timeout,
//! foreign keys, the statement cache and the log's folding point.

use std::path::Path;
use std::time::Duration;

use rusqlite::Connection;

use super::failure::classify;
use crate::StoreError;

/// How long a statement waits for another process's lock before failing.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Room for every statement this backend prepares, so the hot ones stay prepared.
const STATEMENT_CACHE_CAPACITY: usize = 64;

/// The write-ahead log is folded into the database once it holds this many pages (1 MiB),
/// instead of SQLite's 1,000. Closing the store syncs what the log holds since its last fold and
/// deletes the file: with a quarter of the log, a 500-item `mmm run` ends 3-4 ms sooner after
/// its last command, for folds four times as frequent (each a quarter as long) while the job
/// runs (docs/PERFORMANCE.md, "Seventh look").
pub const WAL_AUTOCHECKPOINT_PAGES: i64 = 256;

/// Per-connection settings: WAL (readers never block the writer), `synchronous=NORMAL` (safe
/// against a process crash; CRATES.md has the figures), a busy timeout, and foreign keys.
/// [`configure`], for the process creating the store retried while another holds the file:
/// switching a new file to WAL takes a lock that SQLite does not wait for, and a reader that
/// opened the file a moment earlier can hold it.
pub(super) fn configure_new(
    conn: &Connection,
    path: &Path,
    create: bool,
) -> Result<(), StoreError> {
    let deadline = std::time::Instant::now() + BUSY_TIMEOUT;
    loop {
        match configure(conn).map_err(|e| classify(path, "configure the connection", e)) {
            Err(StoreError::Busy { .. }) if create && std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            done => return done,
        }
    }
}

/// The settings themselves.
fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.set_prepared_statement_cache_capacity(STATEMENT_CACHE_CAPACITY);
    // Before the switch to WAL, which writes a new file's header in a rollback transaction:
    // NORMAL spares that transaction some of FULL's fsyncs.
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    // The first statement that reads the file: a non-database fails here.
    let _mode: String =
        conn.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "wal_autocheckpoint", WAL_AUTOCHECKPOINT_PAGES)?;
    Ok(())
}

/// A store being created while another process polls for it (a test's `jobs_so_far`, `mmm
/// progress` started before the run): before the fix, 18 of 300 creations failed with "stayed
/// locked while trying to configure the connection" (the reader switched the new file to WAL
/// under the creator).
#[cfg(test)]
mod creation_race {
    use std::sync::Arc;

    use crate::StoreError;
    use crate::sqlite::SqliteStore;

    #[test]
    fn a_store_is_created_while_a_reader_polls_for_it() {
        let mut failures = Vec::new();
        for round in 0..200 {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("mmm.db");
            let reader_path = path.clone();
            let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
            let stop_reader = stop.clone();
            let reader = std::thread::spawn(move || {
                let mut errors = Vec::new();
                while !stop_reader.load(std::sync::atomic::Ordering::Relaxed) {
                    match SqliteStore::open(&reader_path, false) {
                        Ok(_) | Err(StoreError::NotFound { .. }) => {}
                        Err(e) => errors.push(e.to_string()),
                    }
                }
                errors
            });
            let created = SqliteStore::open(&path, true);
            stop.store(true, std::sync::atomic::Ordering::Relaxed);
            let reader_errors = reader.join().unwrap();
            if let Err(e) = created {
                failures.push(format!(
                    "round {round}: creator: {e}; reader: {reader_errors:?}"
                ));
            }
        }
        assert!(
            failures.is_empty(),
            "{} failures: {:?}",
            failures.len(),
            &failures[..failures.len().min(3)]
        );
    }
}
