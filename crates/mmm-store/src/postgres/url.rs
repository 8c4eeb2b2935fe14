//! A store URL taken apart: the client's configuration, the schema that holds the store, and
//! the URL as messages show it (password hidden).

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::Config;

use crate::StoreError;

/// The schema a URL without `?schema=` names.
pub const DEFAULT_SCHEMA: &str = "mmm";

/// How long connecting may take when the URL sets no `connect_timeout`.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A URL taken apart: the client's configuration, the schema, and the URL for messages.
pub(super) struct Target {
    /// The client's configuration (the URL without `schema`).
    pub(super) config: Config,
    /// The schema holding the store.
    pub(super) schema: String,
    /// The URL as messages show it, password hidden.
    pub(super) location: Arc<str>,
}

/// Splits the `schema` option off `location` and parses the rest as the client's URL.
pub(super) fn parse_location(location: &str) -> Result<Target, StoreError> {
    let shown = crate::shown_location(location);
    let invalid = |reason, source| StoreError::InvalidUrl {
        location: shown.clone(),
        reason,
        source,
    };
    let (base, query) = match location.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (location, None),
    };
    let mut schema = None;
    let mut rest = Vec::new();
    for pair in query.into_iter().flat_map(|q| q.split('&')) {
        match pair.split_once('=') {
            Some(("schema", name)) => {
                if schema.replace(name.to_string()).is_some() {
                    return Err(invalid("`schema` is given twice", None));
                }
            }
            _ if pair.is_empty() => {}
            _ => rest.push(pair),
        }
    }
    let schema = schema.unwrap_or_else(|| DEFAULT_SCHEMA.to_string());
    if !is_schema_name(&schema) {
        return Err(invalid(
            "the schema must be lowercase letters, digits and `_`, start with a letter or `_`, \
             and be at most 63 bytes",
            None,
        ));
    }
    let url = if rest.is_empty() {
        base.to_string()
    } else {
        format!("{base}?{}", rest.join("&"))
    };
    let mut config =
        Config::from_str(&url).map_err(|e| invalid("it does not parse", Some(e.into())))?;
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(CONNECT_TIMEOUT);
    }
    if config.get_application_name().is_none() {
        config.application_name("mmm");
    }
    Ok(Target {
        config,
        schema,
        location: Arc::from(shown),
    })
}

/// A schema name mmm accepts: one that needs no quoting and reads the same in any case.
fn is_schema_name(name: &str) -> bool {
    let mut chars = name.chars();
    name.len() <= 63
        && chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// A schema name as an SQL identifier (names are checked by [`is_schema_name`]; quoting keeps
/// even a reserved word usable).
pub(super) fn quoted(schema: &str) -> String {
    format!("\"{}\"", schema.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schema_option_is_split_off() {
        let target = parse_location("postgres://u@h:5433/db?schema=night_1&connect_timeout=3")
            .expect("a valid URL");
        assert_eq!(target.schema, "night_1");
        assert_eq!(target.config.get_dbname(), Some("db"));
        assert_eq!(target.config.get_ports(), [5433]);
        assert_eq!(
            target.config.get_connect_timeout(),
            Some(&Duration::from_secs(3))
        );
        let target = parse_location("postgresql://h/db").expect("a valid URL");
        assert_eq!(target.schema, DEFAULT_SCHEMA);
        assert_eq!(target.config.get_connect_timeout(), Some(&CONNECT_TIMEOUT));
    }

    #[test]
    fn bad_schemas_and_urls_are_refused_with_the_form_to_use() {
        for bad in [
            "postgres://h/db?schema=Upper",
            "postgres://h/db?schema=a-b",
            "postgres://h/db?schema=",
            "postgres://h/db?schema=1abc",
            "postgres://h/db?schema=a&schema=b",
            "postgres://h/db?nonsense_option=1",
        ] {
            let error = parse_location(bad).err().expect(bad);
            assert!(
                matches!(error, StoreError::InvalidUrl { .. }),
                "{bad}: {error:?}"
            );
            assert!(error.to_string().contains("?schema=NAME"), "{error}");
        }
        let long = format!("postgres://h/db?schema={}", "a".repeat(64));
        assert!(parse_location(&long).is_err());
    }

    #[test]
    fn passwords_are_hidden() {
        let error = parse_location("postgres://me:secret@h/db?schema=BAD")
            .err()
            .expect("a bad schema");
        assert!(!error.to_string().contains("secret"), "{error}");
    }
}
