//! How an SQLite error becomes a [`StoreError`]: a damaged file, a lock held too long, a value
//! this mmm cannot read, or a statement that failed.

use std::path::Path;

use rusqlite::ErrorCode;

use crate::StoreError;

/// Maps a SQLite error met while trying to do `operation` on the store at `path`.
pub(super) fn classify(
    path: &Path,
    operation: &'static str,
    source: rusqlite::Error,
) -> StoreError {
    let path = path.to_path_buf();
    match source.sqlite_error_code() {
        Some(ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt) => {
            return StoreError::Damaged {
                path,
                source: source.into(),
            };
        }
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => {
            return StoreError::Busy {
                path,
                operation,
                source: source.into(),
            };
        }
        _ => {}
    }
    match source {
        rusqlite::Error::FromSqlConversionFailure(..)
        | rusqlite::Error::IntegralValueOutOfRange(..)
        | rusqlite::Error::InvalidColumnType(..)
        | rusqlite::Error::Utf8Error(..) => StoreError::InvalidRecord {
            path,
            operation,
            source: Box::new(source),
        },
        source => StoreError::Statement {
            path,
            operation,
            source: source.into(),
        },
    }
}

/// Turns "no row changed" into `error`.
pub(super) fn expect_change(
    changed: usize,
    error: impl FnOnce() -> StoreError,
) -> Result<(), StoreError> {
    if changed == 0 { Err(error()) } else { Ok(()) }
}
