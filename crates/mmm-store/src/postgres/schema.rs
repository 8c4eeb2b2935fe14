//! The schema of a PostgreSQL store: its numbered migrations, the version kept in its
//! `mmm_store` table, and the checks that refuse a newer or a foreign schema.

use std::path::PathBuf;

use tokio_postgres::{Client, GenericClient};

use super::session::{fail, invalid};
use super::url::quoted;
use crate::StoreError;

/// The migrations, in order: entry `i` brings the schema from version `i` to `i + 1`. Numbered
/// as SQLite's, so a version means the same record on both backends.
const MIGRATIONS: &[&str] = &[
    include_str!("../migrations/postgres/0001_initial.sql"),
    include_str!("../migrations/postgres/0002_resume.sql"),
    include_str!("../migrations/postgres/0003_claims.sql"),
    include_str!("../migrations/postgres/0004_job_ref.sql"),
    include_str!("../migrations/postgres/0005_control.sql"),
    include_str!("../migrations/postgres/0006_logs.sql"),
    include_str!("../migrations/postgres/0007_limits.sql"),
    include_str!("../migrations/postgres/0008_job_summaries.sql"),
    include_str!("../migrations/postgres/0009_item_totals.sql"),
    include_str!("../migrations/postgres/0010_decimal_budgets.sql"),
];

/// The newest schema version this binary knows; it reads and writes only this version.
pub const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// The first key of the advisory lock taken while a schema is created or upgraded ("mmm1" in
/// ASCII, as SQLite's `application_id`); the second is a hash of the schema's name.
const MIGRATION_LOCK: i32 = 0x6d6d_6d31;

/// The tables of a store at [`SCHEMA_VERSION`].
pub(super) const TABLES: &[&str] = &[
    "mmm_store",
    "jobs",
    "items",
    "attempts",
    "events",
    "snapshots",
    "checkpoints",
    "control_requests",
    "job_controls",
    "log_chunks",
    "start_rates",
    "job_budgets",
    "job_summaries",
    "job_item_totals",
    "name_item_totals",
];

/// What a schema holds.
enum Found {
    /// No schema of that name.
    NoSchema,
    /// An mmm store at this version (0: an empty schema).
    Version(i64),
}

/// Reads what the schema holds, refusing one that is not an mmm store.
async fn inspect(
    client: &impl GenericClient,
    location: &str,
    schema: &str,
) -> Result<Found, StoreError> {
    let row = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1::text),
                    to_regclass(quote_ident($1::text) || '.mmm_store') IS NOT NULL,
                    (SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                     WHERE n.nspname = $1::text AND c.relkind IN ('r', 'p', 'v', 'm', 'f'))",
            &[&schema],
        )
        .await
        .map_err(fail(location, "read the schema version"))?;
    let (exists, marked, relations): (bool, bool, i64) = (row.get(0), row.get(1), row.get(2));
    let foreign = || StoreError::ForeignSchema {
        location: location.to_string(),
        schema: schema.to_string(),
    };
    if !exists {
        return Ok(Found::NoSchema);
    }
    if !marked {
        return if relations == 0 {
            Ok(Found::Version(0))
        } else {
            Err(foreign())
        };
    }
    let sql = format!(
        "SELECT application, version FROM {}.mmm_store",
        quoted(schema)
    );
    let rows = client
        .query(&sql, &[])
        .await
        .map_err(fail(location, "read the schema version"))?;
    match rows.as_slice() {
        [row] => {
            let application: String = row
                .try_get(0)
                .map_err(|e| invalid(location, "read the schema version")(Box::new(e)))?;
            let version: i64 = row
                .try_get(1)
                .map_err(|e| invalid(location, "read the schema version")(Box::new(e)))?;
            if application == "mmm" {
                Ok(Found::Version(version))
            } else {
                Err(foreign())
            }
        }
        _ => Err(foreign()),
    }
}

/// Brings the schema to [`SCHEMA_VERSION`] (creating it with `create`), refusing newer and
/// foreign schemas. All pending migrations run in one transaction under an advisory lock that
/// re-reads the version, so two processes opening a new store at once migrate it once.
pub(super) async fn migrate(
    client: &mut Client,
    location: &str,
    schema: &str,
    create: bool,
) -> Result<(), StoreError> {
    let not_found = || StoreError::NotFound {
        path: PathBuf::from(location),
    };
    let too_new = |found| StoreError::SchemaTooNew {
        path: PathBuf::from(location),
        found,
        supported: SCHEMA_VERSION,
    };
    match inspect(client, location, schema).await? {
        Found::Version(SCHEMA_VERSION) => return Ok(()),
        Found::Version(found) if found > SCHEMA_VERSION => return Err(too_new(found)),
        Found::NoSchema | Found::Version(0) if !create => return Err(not_found()),
        _ => {}
    }

    let migrate_error = |version| {
        move |source: tokio_postgres::Error| StoreError::MigrateSchema {
            location: location.to_string(),
            version,
            source: source.into(),
        }
    };
    let tx = client
        .transaction()
        .await
        .map_err(fail(location, "start upgrading the schema"))?;
    tx.execute(
        "SELECT pg_advisory_xact_lock($1, hashtext($2::text))",
        &[&MIGRATION_LOCK, &schema],
    )
    .await
    .map_err(fail(location, "lock the schema for an upgrade"))?;
    let found = match inspect(&tx, location, schema).await? {
        Found::Version(found) => found,
        Found::NoSchema => {
            // Only when missing: `CREATE SCHEMA IF NOT EXISTS` would still need the right to
            // create schemas, which a user given an existing schema may not have.
            tx.batch_execute(&format!("CREATE SCHEMA {}", quoted(schema)))
                .await
                .map_err(migrate_error(1))?;
            0
        }
    };
    if found > SCHEMA_VERSION {
        return Err(too_new(found));
    }
    for (from, sql) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let version = from as i64 + 1;
        tx.batch_execute(sql)
            .await
            .map_err(migrate_error(version))?;
        tx.execute("UPDATE mmm_store SET version = $1::bigint", &[&version])
            .await
            .map_err(migrate_error(version))?;
    }
    tx.commit().await.map_err(migrate_error(SCHEMA_VERSION))
}
