//! The suite on PostgreSQL, one fresh schema per check, and PostgreSQL's own checks.

use std::sync::Arc;

use mmm_store::{self as store, JobReads, postgres::PostgresStore};

use super::*;

/// The database the tests use: `MMM_TEST_POSTGRES_URL`, or the local server.
fn base_url() -> String {
    std::env::var("MMM_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

/// True (after saying so on stderr) when `MMM_SKIP_POSTGRES=1` asks to skip these tests.
fn skipped(test: &str) -> bool {
    let skip = std::env::var("MMM_SKIP_POSTGRES").is_ok_and(|v| v == "1");
    if skip {
        eprintln!(
            "SKIPPED {test}: MMM_SKIP_POSTGRES=1, so this PostgreSQL conformance test did \
             not run"
        );
    }
    skip
}

/// Runs SQL (one statement or several) on the test database directly, behind mmm's back.
fn admin(sql: &str) {
    with_client(|client| async move {
        client
            .batch_execute(sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    });
}

/// The rows of one query on the test database.
fn admin_query(sql: &str) -> Vec<tokio_postgres::Row> {
    with_client(|client| async move {
        client
            .query(sql, &[])
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
    })
}

/// Runs `work` with a client of its own on a runtime of its own.
fn with_client<T, F: std::future::Future<Output = T>>(
    work: impl FnOnce(tokio_postgres::Client) -> F,
) -> T {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(&base_url(), tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|e| panic!("{}", unreachable_message(&e)));
        tokio::spawn(connection);
        work(client).await
    })
}

fn unreachable_message(error: &dyn std::fmt::Display) -> String {
    format!(
        "PostgreSQL is not reachable at {} ({error}). Start it (e.g. `pg_ctlcluster \
         --skip-systemctl-redirect 15 main start`), point MMM_TEST_POSTGRES_URL at a \
         server, or set MMM_SKIP_POSTGRES=1 to skip the PostgreSQL tests",
        base_url()
    )
}

/// A new, unique schema in the test database, dropped (with everything in it) on drop.
struct Schema {
    name: String,
}

impl Schema {
    fn new() -> Schema {
        Schema {
            name: format!("mmm_test_{}", uuid::Uuid::now_v7().simple()),
        }
    }

    /// The store URL of this schema.
    fn url(&self) -> String {
        let base = base_url();
        let separator = if base.contains('?') { '&' } else { '?' };
        format!("{base}{separator}schema={}", self.name)
    }

    /// Opens (with `create`) the store in this schema, failing loudly when the server is
    /// unreachable.
    fn open(&self) -> Arc<dyn Store> {
        match store::open(&self.url(), true) {
            Ok(store) => store,
            Err(error @ StoreError::Connect { .. }) => {
                panic!("{}", unreachable_message(&error))
            }
            Err(error) => panic!("could not open {}: {error:?}", self.url()),
        }
    }
}

impl Drop for Schema {
    fn drop(&mut self) {
        admin(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.name));
    }
}

macro_rules! on_a_fresh_store {
    ($($topic:ident::$check:ident),+ $(,)?) => {
        $(
            #[test]
            fn $check() {
                if skipped(stringify!($check)) {
                    return;
                }
                let schema = Schema::new();
                let store = schema.open();
                $topic::$check(store.as_ref());
                drop(store);
            }
        )+
    };
}

every_check!(on_a_fresh_store);

/// A schema left by a binary of schema version 3 is upgraded in place when opened.
#[test]
fn a_version_3_store_is_upgraded_with_its_record() {
    if skipped("a_version_3_store_is_upgraded_with_its_record") {
        return;
    }
    let schema = Schema::new();
    admin(&format!(
        "CREATE SCHEMA {name}; SET search_path TO {name}; {}; {}; {};
         UPDATE mmm_store SET version = 3; {}",
        include_str!("../../src/migrations/postgres/0001_initial.sql"),
        include_str!("../../src/migrations/postgres/0002_resume.sql"),
        include_str!("../../src/migrations/postgres/0003_claims.sql"),
        upgrade::OLD_RECORD,
        name = schema.name,
    ));
    let store = store::open(&schema.url(), false).unwrap();
    upgrade::an_old_record_reads_the_same_after_the_upgrade(store.as_ref());
    drop(store);
    let rows = admin_query(&format!(
        "SELECT (SELECT version FROM {name}.mmm_store),
                (SELECT count(*) FROM information_schema.columns
                 WHERE table_schema = '{name}' AND column_name = 'job_id')",
        name = schema.name
    ));
    let (version, job_ids): (i64, i64) = (rows[0].get(0), rows[0].get(1));
    assert_eq!(version, store::postgres::SCHEMA_VERSION);
    assert_eq!(job_ids, 0, "the tables refer to jobs by job_ref only");
}

#[test]
fn second_connection_sees_commits() {
    if skipped("second_connection_sees_commits") {
        return;
    }
    let schema = Schema::new();
    let writer = schema.open();
    let reader = store::open(&schema.url(), false).unwrap();
    event_reads::second_connection_sees_commits(writer.as_ref(), reader.as_ref());
}

/// Issue 8: a reader in another connection wakes on the NOTIFY of a committed batch with
/// events of its job, long before its timeout; events of other jobs do not wake it.
#[test]
fn readers_wake_on_notify() {
    if skipped("readers_wake_on_notify") {
        return;
    }
    let schema = Schema::new();
    let writer = schema.open();
    let reader = store::open(&schema.url(), false).unwrap();
    let (job, other) = (new_job("watched", 1_000), new_job("other", 1_001));
    writer.create_job(&job, &[]).unwrap();
    writer.create_job(&other, &[]).unwrap();
    // The first wait opens the listening connection.
    reader.wait_for_events(job.id, std::time::Duration::from_millis(10));
    let timeout = std::time::Duration::from_secs(20);
    let waiting = {
        let reader = reader.clone();
        std::thread::spawn(move || {
            let started = std::time::Instant::now();
            reader.wait_for_events(job.id, timeout);
            started.elapsed()
        })
    };
    writer.apply(&[event(other.id, 1, "noise")]).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert!(
        !waiting.is_finished(),
        "another job's event woke the reader"
    );
    writer.apply(&[event(job.id, 2, "wake")]).unwrap();
    let waited = waiting.join().unwrap();
    assert!(
        waited < timeout / 2,
        "woke after {waited:?}, not on the NOTIFY"
    );
}

#[test]
fn concurrent_claimers_never_share_an_item() {
    if skipped("concurrent_claimers_never_share_an_item") {
        return;
    }
    let schema = Schema::new();
    let a = schema.open();
    let b = store::open(&schema.url(), false).unwrap();
    claims::concurrent_claimers_never_share_an_item(a.as_ref(), b.as_ref());
}

#[test]
fn a_missing_schema_is_not_found_without_create() {
    if skipped("a_missing_schema_is_not_found_without_create") {
        return;
    }
    let schema = Schema::new();
    match store::open(&schema.url(), false) {
        Err(error @ StoreError::NotFound { .. }) => {
            assert!(error.to_string().contains(&schema.name), "{error}");
        }
        other => panic!("expected NotFound, got {:?}", other.map(|_| ())),
    }
    let found = admin_query(&format!(
        "SELECT 1 FROM pg_namespace WHERE nspname = '{}'",
        schema.name
    ));
    assert!(found.is_empty(), "nothing is created");
}

#[test]
fn concurrent_opens_create_the_schema_once() {
    if skipped("concurrent_opens_create_the_schema_once") {
        return;
    }
    let schema = Schema::new();
    let url = schema.url();
    let stores: Vec<Arc<dyn Store>> = std::thread::scope(|scope| {
        let openers: Vec<_> = (0..4)
            .map(|_| scope.spawn(|| store::open(&url, true).unwrap()))
            .collect();
        openers.into_iter().map(|t| t.join().unwrap()).collect()
    });
    let job = new_job("shared", 1_000);
    stores[0].create_job(&job, &new_items(2)).unwrap();
    assert_eq!(stores[3].job(job.id).unwrap().counts.pending, 2);
}

#[test]
fn reopening_keeps_the_record_and_the_schema() {
    if skipped("reopening_keeps_the_record_and_the_schema") {
        return;
    }
    let schema = Schema::new();
    let store = schema.open();
    store
        .create_job(&new_job("kept", 1_000), &new_items(10))
        .unwrap();
    drop(store);
    let store = PostgresStore::open(&schema.url(), false).unwrap();
    assert_eq!(store.schema(), schema.name);
    assert_eq!(store.jobs().unwrap()[0].counts.pending, 10);
    let rows = admin_query(&format!("SELECT version FROM {}.mmm_store", schema.name));
    let version: i64 = rows[0].get(0);
    assert_eq!(version, store::postgres::SCHEMA_VERSION);
}

#[test]
fn a_newer_schema_is_refused() {
    if skipped("a_newer_schema_is_refused") {
        return;
    }
    let schema = Schema::new();
    drop(schema.open());
    admin(&format!(
        "UPDATE {}.mmm_store SET version = 99",
        schema.name
    ));
    match PostgresStore::open(&schema.url(), true) {
        Err(error @ StoreError::SchemaTooNew { .. }) => {
            let message = error.to_string();
            assert!(message.contains(&schema.name), "{message}");
            assert!(message.contains("99"), "{message}");
            let known = store::postgres::SCHEMA_VERSION.to_string();
            assert!(message.contains(&known), "{message}");
        }
        other => panic!("expected SchemaTooNew, got {other:?}"),
    }
}

#[test]
fn another_programs_schema_is_refused_untouched() {
    if skipped("another_programs_schema_is_refused_untouched") {
        return;
    }
    let schema = Schema::new();
    admin(&format!(
        "CREATE SCHEMA {0}; CREATE TABLE {0}.notes (text TEXT)",
        schema.name
    ));
    let error = PostgresStore::open(&schema.url(), true).unwrap_err();
    assert!(
        matches!(error, StoreError::ForeignSchema { .. }),
        "{error:?}"
    );
    assert!(error.to_string().contains("?schema=NAME"), "{error}");
    let tables = admin_query(&format!(
        "SELECT tablename FROM pg_tables WHERE schemaname = '{}'",
        schema.name
    ));
    assert_eq!(tables.len(), 1, "no mmm tables were added");
}

#[test]
fn an_unknown_status_is_an_error_not_a_panic() {
    if skipped("an_unknown_status_is_an_error_not_a_panic") {
        return;
    }
    let schema = Schema::new();
    let store = schema.open();
    let job = new_job("odd", 1_000);
    store.create_job(&job, &new_items(3)).unwrap();
    admin(&format!(
        "UPDATE {0}.items SET status = 'exploded' WHERE idx = 1; \
         UPDATE {0}.jobs SET status = 'mystery'",
        schema.name
    ));
    for error in [
        store.jobs().unwrap_err(),
        store.items(job.id, None).unwrap_err(),
    ] {
        assert!(
            matches!(error, StoreError::InvalidRecord { .. }),
            "{error:?}"
        );
        assert!(error.to_string().contains("mmm check"), "{error}");
    }
}

#[test]
fn storage_problems_find_broken_references() {
    if skipped("storage_problems_find_broken_references") {
        return;
    }
    let schema = Schema::new();
    let store = schema.open();
    let job = new_job("orphans", 1_000);
    store.create_job(&job, &new_items(3)).unwrap();
    assert!(store.storage_problems().unwrap().is_empty());
    // With its triggers off, a table's foreign keys are not enforced (nor cascaded).
    admin(&format!(
        "ALTER TABLE {0}.jobs DISABLE TRIGGER ALL; \
         ALTER TABLE {0}.items DISABLE TRIGGER ALL; \
         DELETE FROM {0}.jobs",
        schema.name
    ));
    let problems = store.storage_problems().unwrap();
    assert!(
        problems
            .iter()
            .any(|p| p == "3 rows of items refer to a missing row of jobs"),
        "{problems:?}"
    );
    assert!(
        problems.iter().any(|p| p.contains("triggers are disabled")),
        "{problems:?}"
    );
}

#[test]
fn an_unreachable_server_is_a_clear_error() {
    // Port 9 (discard) has no PostgreSQL: the connection is refused at once.
    let url = "postgres://postgres:secret@127.0.0.1:9/test?schema=nowhere";
    let error = store::open(url, true).err().expect("nothing listens there");
    assert!(matches!(error, StoreError::Connect { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("127.0.0.1:9"), "{message}");
    assert!(message.contains("pg_isready"), "{message}");
    assert!(
        !message.contains("secret"),
        "the password is hidden: {message}"
    );
}
