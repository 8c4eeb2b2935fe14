//! The suite on SQLite, one fresh store per check, and SQLite's file-level checks.

use std::sync::Arc;

use mmm_store::{self as store, DATABASE_FILE, EventReads, JobLog, JobReads, sqlite::SqliteStore};
use tempfile::TempDir;

use super::*;

/// A new store in a temp directory (deleted when the `TempDir` drops).
fn fresh() -> (TempDir, Arc<dyn Store>) {
    let dir = tempfile::tempdir().unwrap();
    let store = store::open(dir.path().join(".mmm").to_str().unwrap(), true).unwrap();
    (dir, store)
}

macro_rules! on_a_fresh_store {
    ($($topic:ident::$check:ident),+ $(,)?) => {
        $(
            #[test]
            fn $check() {
                let (_dir, store) = fresh();
                $topic::$check(store.as_ref());
            }
        )+
    };
}

every_check!(on_a_fresh_store);

#[test]
fn the_write_ahead_log_is_folded_before_it_grows_past_a_mebibyte_or_so() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join(DATABASE_FILE);
    let store = store::open(db.to_str().unwrap(), true).unwrap();
    let job = new_job("log", 1_000);
    store.create_job(&job, &new_items(400)).unwrap();
    let wal = db.with_extension("db-wal");
    let mut largest = 0;
    // Each commit rewrites a handful of pages, as the runner's do: 800 of them log
    // several thousand pages in all.
    for i in 0..400u64 {
        let at = 2_000 + i as i64;
        store
            .apply(&[started(job.id, i, 1, at), event(job.id, at, "item_started")])
            .unwrap();
        store
            .apply(&[
                finished(
                    job.id,
                    i,
                    1,
                    at,
                    AttemptOutcome::Succeeded,
                    ItemStatus::Completed,
                ),
                event(job.id, at, "item_finished"),
            ])
            .unwrap();
        largest = largest.max(std::fs::metadata(&wal).unwrap().len());
    }
    // A log frame: one page (SQLite's default 4 KiB) and its 24-byte header.
    let page = 4096 + 24;
    let limit = store::sqlite::WAL_AUTOCHECKPOINT_PAGES as u64;
    assert!(
        largest > limit * page / 2,
        "the test logs too little: {largest} bytes"
    );
    assert!(
        largest < 2 * limit * page,
        "the log grew to {largest} bytes, past twice its folding point"
    );
    assert_eq!(store.job(job.id).unwrap().counts.completed, 400);
}

#[test]
fn second_connection_sees_commits() {
    let dir = tempfile::tempdir().unwrap();
    let location = dir.path().join("jobs.db");
    let location = location.to_str().unwrap();
    let writer = store::open(location, true).unwrap();
    let reader = store::open(location, false).unwrap();
    event_reads::second_connection_sees_commits(writer.as_ref(), reader.as_ref());
}

#[test]
fn concurrent_claimers_never_share_an_item() {
    let dir = tempfile::tempdir().unwrap();
    let location = dir.path().join("jobs.db");
    let location = location.to_str().unwrap();
    let a = store::open(location, true).unwrap();
    let b = store::open(location, false).unwrap();
    claims::concurrent_claimers_never_share_an_item(a.as_ref(), b.as_ref());
}

/// A store left by a binary of schema version 3 is upgraded in place when opened.
#[test]
fn a_version_3_store_is_upgraded_with_its_record() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mmm.db");
    let raw = rusqlite::Connection::open(&path).unwrap();
    raw.pragma_update(None, "foreign_keys", "ON").unwrap();
    for sql in [
        include_str!("../../src/migrations/0001_initial.sql"),
        include_str!("../../src/migrations/0002_resume.sql"),
        include_str!("../../src/migrations/0003_claims.sql"),
    ] {
        raw.execute_batch(sql).unwrap();
    }
    raw.pragma_update(None, "user_version", 3).unwrap();
    raw.execute_batch(upgrade::OLD_RECORD).unwrap();
    drop(raw);

    let store = SqliteStore::open(&path, false).unwrap();
    upgrade::an_old_record_reads_the_same_after_the_upgrade(&store);
    drop(store);
    let raw = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = raw
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, store::sqlite::SCHEMA_VERSION);
    let job_ids: i64 = raw
        .query_row(
            "SELECT count(*) FROM pragma_table_info('items') WHERE name = 'job_id'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(job_ids, 0, "items refer to jobs by job_ref only");
}

/// A store with one job of `items` items, closed, so that the file is complete.
fn closed_store(items: usize) -> (TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mmm.db");
    let store = SqliteStore::open(&path, true).unwrap();
    store
        .create_job(&new_job("closed", 1_000), &new_items(items))
        .unwrap();
    drop(store);
    (dir, path)
}

/// Opens and reads everything, returning the first error.
fn open_and_read(path: &std::path::Path) -> Result<(), StoreError> {
    let store = SqliteStore::open(path, false)?;
    for job in store.jobs()? {
        store.items(job.id, None)?;
        store.attempts(job.id, None)?;
        store.events(job.id, 0, 100)?;
    }
    Ok(())
}

fn assert_names_file_and_check(error: &StoreError, path: &std::path::Path) {
    let message = error.to_string();
    assert!(
        message.contains(&path.display().to_string()),
        "message should name {}: {message}",
        path.display()
    );
    assert!(message.contains("mmm check"), "{message}");
}

#[test]
fn locations_name_a_directory_or_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let in_dir = dir.path().join("state");
    store::open(in_dir.to_str().unwrap(), true).unwrap();
    assert!(in_dir.join(DATABASE_FILE).is_file());

    for name in ["a.db", "b.sqlite", "c.sqlite3", "nested/d.db"] {
        let file = dir.path().join(name);
        store::open(file.to_str().unwrap(), true).unwrap();
        assert!(file.is_file(), "{name}");
        // Reopening without create finds it.
        store::open(file.to_str().unwrap(), false).unwrap();
    }
}

#[test]
fn a_missing_store_is_not_found_without_create() {
    let dir = tempfile::tempdir().unwrap();
    let location = dir.path().join(".mmm");
    match store::open(location.to_str().unwrap(), false) {
        Err(StoreError::NotFound { path }) => assert_eq!(path, location.join(DATABASE_FILE)),
        other => panic!("expected NotFound, got {:?}", other.map(|_| ())),
    }
    assert!(!location.exists(), "nothing is created");
}

#[test]
fn other_urls_are_unsupported() {
    for url in ["sqlite://x.db", "mysql://u@h/db", "file:///x.db", ""] {
        match store::open(url, true) {
            Err(error @ StoreError::UnsupportedLocation { .. }) => {
                assert!(error.to_string().contains("postgres://"), "{error}");
            }
            other => panic!(
                "{url}: expected UnsupportedLocation, got {:?}",
                other.map(|_| ())
            ),
        }
    }
}

#[test]
fn a_garbage_file_is_refused_with_its_path() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mmm.db");
    std::fs::write(&path, "this is not a database, just text\n".repeat(200)).unwrap();
    let error = open_and_read(&path).unwrap_err();
    assert!(matches!(error, StoreError::Damaged { .. }), "{error:?}");
    assert_names_file_and_check(&error, &path);

    // Also when it is given as any existing file, e.g. by mistake.
    let notes = dir.path().join("notes.txt");
    std::fs::write(&notes, "hello".repeat(1_000)).unwrap();
    let error = store::open(notes.to_str().unwrap(), false)
        .err()
        .expect("a text file is not a store");
    assert_names_file_and_check(&error, &notes);
}

#[test]
fn a_truncated_file_is_refused_with_its_path() {
    for keep in [50, 4_096 + 100, 40_000] {
        let (_dir, path) = closed_store(5_000);
        let len = std::fs::metadata(&path).unwrap().len();
        assert!(
            len > 4 * keep,
            "the store should be larger than what is kept"
        );
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.set_len(keep).unwrap();
        drop(file);
        let error = open_and_read(&path).unwrap_err();
        assert!(
            matches!(error, StoreError::Damaged { .. }),
            "{keep}: {error:?}"
        );
        assert_names_file_and_check(&error, &path);
    }
}

#[test]
fn a_newer_schema_is_refused() {
    let (_dir, path) = closed_store(1);
    let raw = rusqlite::Connection::open(&path).unwrap();
    raw.pragma_update(None, "user_version", 99).unwrap();
    drop(raw);
    match SqliteStore::open(&path, false) {
        Err(error @ StoreError::SchemaTooNew { .. }) => {
            let message = error.to_string();
            assert!(message.contains(&path.display().to_string()), "{message}");
            assert!(message.contains("99"), "{message}");
            let known = store::sqlite::SCHEMA_VERSION.to_string();
            assert!(message.contains(&known), "{message}");
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
}

#[test]
fn another_programs_database_is_refused_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.db");
    let raw = rusqlite::Connection::open(&path).unwrap();
    raw.execute_batch("CREATE TABLE notes (text TEXT)").unwrap();
    drop(raw);
    let error = SqliteStore::open(&path, true).unwrap_err();
    assert!(
        matches!(error, StoreError::ForeignDatabase { .. }),
        "{error:?}"
    );
    let raw = rusqlite::Connection::open(&path).unwrap();
    let tables: i64 = raw
        .query_row("SELECT COUNT(*) FROM sqlite_schema", [], |r| r.get(0))
        .unwrap();
    assert_eq!(tables, 1, "no mmm tables were added");
}

#[test]
fn reopening_keeps_the_record_and_the_schema() {
    let (_dir, path) = closed_store(10);
    let store = SqliteStore::open(&path, false).unwrap();
    let jobs = store.jobs().unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].counts.pending, 10);
    drop(store);
    let raw = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = raw
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(version, store::sqlite::SCHEMA_VERSION);
    let mode: String = raw
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn an_unknown_status_is_an_error_not_a_panic() {
    let (_dir, path) = closed_store(3);
    let raw = rusqlite::Connection::open(&path).unwrap();
    raw.execute("UPDATE items SET status = 'exploded' WHERE idx = 1", [])
        .unwrap();
    raw.execute("UPDATE jobs SET status = 'mystery'", [])
        .unwrap();
    drop(raw);
    let store = SqliteStore::open(&path, false).unwrap();
    let error = store.jobs().unwrap_err();
    assert!(
        matches!(error, StoreError::InvalidRecord { .. }),
        "{error:?}"
    );
    assert_names_file_and_check(&error, &path);
}
