//! The schema of an SQLite store: the current one for a new store (`schema.sql`), the numbered
//! migrations that bring an old one to it, and the checks that refuse a newer or a foreign
//! database.

use std::path::Path;

use rusqlite::{Connection, TransactionBehavior};

use super::failure::classify;
use crate::StoreError;

/// The migrations, in order: entry `i` brings the schema from version `i` to `i + 1`.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/0001_initial.sql"),
    include_str!("../migrations/0002_resume.sql"),
    include_str!("../migrations/0003_claims.sql"),
    include_str!("../migrations/0004_job_ref.sql"),
    include_str!("../migrations/0005_control.sql"),
    include_str!("../migrations/0006_logs.sql"),
    include_str!("../migrations/0007_limits.sql"),
    include_str!("../migrations/0008_job_summaries.sql"),
    include_str!("../migrations/0009_item_totals.sql"),
    include_str!("../migrations/0010_decimal_budgets.sql"),
];

/// The schema at [`SCHEMA_VERSION`], made in one go for a new store (see the file's header).
const SCHEMA: &str = include_str!("../schema.sql");

/// The newest schema version this binary knows; it reads and writes only this version.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// `PRAGMA application_id` of an mmm store ("mmm1" in ASCII), set by the first migration.
pub const APPLICATION_ID: i64 = 0x6d6d_6d31;

/// Brings the schema to [`SCHEMA_VERSION`], refusing newer and foreign databases.
///
/// All pending migrations run in one `BEGIN IMMEDIATE` transaction that re-reads the version,
/// so two processes opening a new store at once migrate it once.
pub(super) fn migrate(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let fail = |operation| move |e| classify(path, operation, e);
    let found = check_version(conn, path)?;
    if found == SCHEMA_VERSION {
        return Ok(());
    }

    // Migrations that rebuild tables (0004) drop a parent before its children's copies are
    // renamed over it; with foreign keys on, that drop would cascade into the old children.
    // The setting cannot change inside a transaction, hence here. The migrations copy only
    // rows whose parent exists (the conformance suite checks the keys of a migrated store).
    conn.pragma_update(None, "foreign_keys", "OFF")
        .map_err(fail("start upgrading the schema"))?;
    let upgraded = upgrade(conn, path);
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(fail("finish upgrading the schema"))?;
    upgraded
}

/// Runs the pending migrations in one transaction, with foreign keys off (see [`migrate`]).
fn upgrade(conn: &mut Connection, path: &Path) -> Result<(), StoreError> {
    let fail = |operation| move |e| classify(path, operation, e);
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(fail("start upgrading the schema"))?;
    let found = check_version(&tx, path)?;
    let upgraded = if found == 0 {
        // A new store: the current schema at once, not its history.
        tx.execute_batch(SCHEMA)
            .and_then(|()| tx.pragma_update(None, "user_version", SCHEMA_VERSION))
            .map_err(|source| (SCHEMA_VERSION, source))
    } else {
        run_migrations(&tx, found)
    };
    upgraded
        .and_then(|()| tx.commit().map_err(|source| (SCHEMA_VERSION, source)))
        .map_err(|(version, source)| StoreError::Migrate {
            path: path.to_path_buf(),
            version,
            source: source.into(),
        })
}

/// Runs the migrations after version `found`, each recording the version it brings the
/// schema to; on failure, that version and the error.
fn run_migrations(conn: &Connection, found: i64) -> Result<(), (i64, rusqlite::Error)> {
    for (from, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let version = from as i64 + 1;
        conn.execute_batch(sql)
            .and_then(|()| conn.pragma_update(None, "user_version", version))
            .map_err(|source| (version, source))?;
    }
    Ok(())
}

/// Reads the schema version, failing unless the file is an mmm store this binary can read
/// (or an empty database, version 0).
pub(super) fn check_version(conn: &Connection, path: &Path) -> Result<i64, StoreError> {
    let fail = |e| classify(path, "read the schema version", e);
    let found: i64 = conn
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .map_err(fail)?;
    let application_id: i64 = conn
        .pragma_query_value(None, "application_id", |row| row.get(0))
        .map_err(fail)?;
    let foreign = if found == 0 {
        let tables: i64 = conn
            .query_row("SELECT COUNT(*) FROM sqlite_schema", [], |row| row.get(0))
            .map_err(fail)?;
        tables > 0
    } else {
        application_id != APPLICATION_ID
    };
    if foreign {
        return Err(StoreError::ForeignDatabase {
            path: path.to_path_buf(),
        });
    }
    if found > SCHEMA_VERSION {
        return Err(StoreError::SchemaTooNew {
            path: path.to_path_buf(),
            found,
            supported: SCHEMA_VERSION,
        });
    }
    Ok(found)
}

/// A new store is made from `schema.sql`, an old one is brought to the same version by the
/// migrations: both must end with the very same tables, columns, keys and indexes.
#[cfg(test)]
mod fresh_schema {
    use rusqlite::Connection;

    use super::run_migrations;
    use crate::sqlite::SqliteStore;

    /// Everything about a schema that queries and constraints depend on, in a stable order.
    fn structure(conn: &Connection) -> Vec<String> {
        let mut out = Vec::new();
        let mut objects = conn
            .prepare("SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY type, name")
            .unwrap();
        let objects: Vec<(String, String, String, Option<String>)> = objects
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))
            .unwrap()
            .map(Result::unwrap)
            .collect();
        let rows = |sql: &str| -> Vec<String> {
            let mut stmt = conn.prepare(sql).unwrap();
            let n = stmt.column_count();
            stmt.query_map([], |r| {
                let values: Vec<String> = (0..n)
                    .map(|i| match r.get::<_, rusqlite::types::Value>(i).unwrap() {
                        rusqlite::types::Value::Text(text) => format!("{text:?}"),
                        other => format!("{other:?}"),
                    })
                    .collect();
                Ok(values.join(" "))
            })
            .unwrap()
            .map(Result::unwrap)
            .collect()
        };
        for (kind, name, table, sql) in objects {
            out.push(format!("{kind} {name} on {table}"));
            // An automatic index has no SQL.
            let sql = sql.unwrap_or_default();
            if kind == "table" {
                out.extend(rows(&format!("PRAGMA table_xinfo('{name}')")));
                out.extend(rows(&format!("PRAGMA foreign_key_list('{name}')")));
                out.push(format!(
                    "without rowid: {}, autoincrement: {}",
                    sql.contains("WITHOUT ROWID"),
                    sql.contains("AUTOINCREMENT")
                ));
            }
            if kind == "index" {
                out.extend(rows(&format!("PRAGMA index_xinfo('{name}')")));
                let partial = sql
                    .split_once(" WHERE ")
                    .map(|(_, w)| w.split_whitespace().collect::<Vec<_>>().join(" "));
                out.push(format!("partial: {partial:?}"));
            }
        }
        for pragma in ["user_version", "application_id"] {
            let value: i64 = conn.pragma_query_value(None, pragma, |r| r.get(0)).unwrap();
            out.push(format!("{pragma} = {value}"));
        }
        out
    }

    #[test]
    fn fresh_schema_matches_migrations() {
        let dir = tempfile::tempdir().unwrap();
        let fresh = dir.path().join("fresh.db");
        drop(SqliteStore::open(&fresh, true).unwrap());

        let migrated = Connection::open_in_memory().unwrap();
        migrated.pragma_update(None, "foreign_keys", "OFF").unwrap();
        run_migrations(&migrated, 0).unwrap();

        let fresh = structure(&Connection::open(&fresh).unwrap());
        let migrated = structure(&migrated);
        assert!(
            fresh.iter().any(|line| line.starts_with("table items"))
                && fresh
                    .iter()
                    .any(|line| line.contains("without rowid: true")),
            "the comparison saw the schema: {fresh:#?}"
        );
        let only_fresh: Vec<&String> = fresh.iter().filter(|l| !migrated.contains(l)).collect();
        let only_migrated: Vec<&String> = migrated.iter().filter(|l| !fresh.contains(l)).collect();
        assert!(
            fresh == migrated,
            "schema.sql differs from the migrations:\n  only in schema.sql: {only_fresh:#?}\n  \
             only after the migrations: {only_migrated:#?}"
        );
    }
}
