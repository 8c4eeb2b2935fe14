//! Where a store lives: a `--store` location (a directory, a database file or a PostgreSQL
//! URL), how messages show it, and [`open`], which picks the backend that location names.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::{Store, StoreError};

/// The file name of the SQLite database inside a store directory.
pub const DATABASE_FILE: &str = "mmm.db";

/// The store location used when none is given.
pub const DEFAULT_LOCATION: &str = ".mmm";

/// `location` as mmm shows it in messages: a URL's password (in its user part or a
/// `password=` option) replaced by `***`. Paths are shown as given.
pub fn shown_location(location: &str) -> String {
    let Some((scheme, rest)) = location.split_once("://") else {
        return location.to_string();
    };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((user_info, host)) => match user_info.split_once(':') {
            Some((user, _password)) => format!("{user}:***@{host}"),
            None => authority.to_string(),
        },
        None => authority.to_string(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let options: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((key, _)) if key.eq_ignore_ascii_case("password") => format!("{key}=***"),
                    _ => pair.to_string(),
                })
                .collect();
            format!("{path}?{}", options.join("&"))
        }
        None => tail.to_string(),
    };
    format!("{scheme}://{authority}{tail}")
}

/// True when `location` is a PostgreSQL URL (`postgres://` or `postgresql://`).
pub fn is_postgres_url(location: &str) -> bool {
    location.starts_with("postgres://") || location.starts_with("postgresql://")
}

/// Opens the store at `location`, from `--store` / `MMM_STORE` (default `.mmm`).
///
/// `location` is either
/// - a PostgreSQL URL (`postgres://` or `postgresql://`, libpq's URL form): the store is the
///   schema named by its `schema` query parameter (default
///   [`DEFAULT_SCHEMA`](crate::postgres::DEFAULT_SCHEMA)) in that database, e.g.
///   `postgres://postgres@127.0.0.1:5432/test?schema=nightly`; see
///   [`PostgresStore::open`](crate::postgres::PostgresStore::open);
/// - or a directory holding [`DATABASE_FILE`], or a file used directly when it ends in `.db`,
///   `.sqlite` or `.sqlite3` or already exists as a file.
///
/// With `create`, the directory and the database (or the schema) are created as needed; without
/// it, a missing store is [`StoreError::NotFound`]. Other URLs are
/// [`StoreError::UnsupportedLocation`]. A location whose backend this build leaves out (a cargo
/// feature of this crate) is [`StoreError::BackendNotBuilt`].
pub fn open(location: &str, create: bool) -> Result<Arc<dyn Store>, StoreError> {
    if is_postgres_url(location) {
        return open_postgres(location, create);
    }
    let path = database_path(location)?;
    open_sqlite(&path, location, create)
}

/// Opens the PostgreSQL store at `location`.
#[cfg(feature = "postgres")]
fn open_postgres(location: &str, create: bool) -> Result<Arc<dyn Store>, StoreError> {
    let store = crate::postgres::PostgresStore::open(location, create)?;
    Ok(Arc::new(store))
}

/// This build has no PostgreSQL backend: says so, and which feature brings it.
#[cfg(not(feature = "postgres"))]
fn open_postgres(location: &str, _create: bool) -> Result<Arc<dyn Store>, StoreError> {
    Err(StoreError::BackendNotBuilt {
        location: shown_location(location),
        backend: "PostgreSQL",
        feature: "postgres",
    })
}

/// Opens the SQLite store in the file `path` (what `location` names).
#[cfg(feature = "sqlite")]
fn open_sqlite(path: &Path, _location: &str, create: bool) -> Result<Arc<dyn Store>, StoreError> {
    let store = crate::sqlite::SqliteStore::open(path, create)?;
    Ok(Arc::new(store))
}

/// This build has no SQLite backend: says so, and which feature brings it.
#[cfg(not(feature = "sqlite"))]
fn open_sqlite(_path: &Path, location: &str, _create: bool) -> Result<Arc<dyn Store>, StoreError> {
    Err(StoreError::BackendNotBuilt {
        location: shown_location(location),
        backend: "SQLite",
        feature: "sqlite",
    })
}

/// The SQLite database file that `location` names (see [`open`]); touches nothing but
/// metadata. Any URL, PostgreSQL's included, is [`StoreError::UnsupportedLocation`] here.
pub fn database_path(location: &str) -> Result<PathBuf, StoreError> {
    if location.is_empty() || location.contains("://") {
        return Err(StoreError::UnsupportedLocation {
            location: location.to_string(),
        });
    }
    let path = PathBuf::from(location);
    let named_as_file = path
        .extension()
        .and_then(|ext| ext.to_str())
        .is_some_and(|ext| matches!(ext, "db" | "sqlite" | "sqlite3"));
    if named_as_file || path.is_file() {
        Ok(path)
    } else {
        Ok(path.join(DATABASE_FILE))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_map_to_database_files() {
        assert_eq!(
            database_path(".mmm").unwrap(),
            PathBuf::from(".mmm").join(DATABASE_FILE)
        );
        assert_eq!(
            database_path("state/dir").unwrap(),
            PathBuf::from("state/dir/mmm.db")
        );
        for file in ["jobs.db", "a/b.sqlite", "c.sqlite3"] {
            assert_eq!(database_path(file).unwrap(), PathBuf::from(file));
        }
        for unsupported in [
            "postgres://host/db",
            "postgresql://u@h/db",
            "file:///x.db",
            "",
        ] {
            assert!(matches!(
                database_path(unsupported),
                Err(StoreError::UnsupportedLocation { .. })
            ));
        }
    }

    #[test]
    fn urls_are_recognised() {
        assert!(is_postgres_url("postgres://u@h/db"));
        assert!(is_postgres_url("postgresql://h/db?schema=x"));
        for other in [".mmm", "jobs.db", "sqlite://x.db", "postgres:/x", ""] {
            assert!(!is_postgres_url(other), "{other}");
        }
    }

    #[test]
    fn passwords_are_hidden() {
        assert_eq!(
            shown_location("postgres://me:secret@h:5432/db?schema=x"),
            "postgres://me:***@h:5432/db?schema=x"
        );
        assert_eq!(shown_location("postgres://me@h/db"), "postgres://me@h/db");
        assert_eq!(shown_location("postgres://h/db"), "postgres://h/db");
        assert_eq!(
            shown_location("postgres://h/db?password=pw&schema=x"),
            "postgres://h/db?password=***&schema=x"
        );
        assert_eq!(shown_location(".mmm"), ".mmm");
    }
}
