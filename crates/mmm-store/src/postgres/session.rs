//! A store's connection and what belongs to it ([`Session`]): the client, the statements
//! prepared on it, the URL for messages; connecting; and how a client's error becomes a
//! [`StoreError`].

use std::collections::HashMap;
use std::error::Error;
use std::path::PathBuf;
use std::sync::{Arc, PoisonError};

use tokio_postgres::{Client, Config, GenericClient, NoTls, Statement};

use super::schema::migrate;
use super::url::quoted;
use super::worker::ConnectionSlot;
use crate::StoreError;

/// The connection and what belongs to it, used by one call at a time.
pub(super) struct Session {
    /// The client of the connection.
    pub(super) client: Client,
    /// Statements prepared on it.
    pub(super) statements: Statements,
    /// The URL, password hidden.
    pub(super) location: Arc<str>,
}

/// Statements prepared on this connection, by their SQL.
#[derive(Default)]
pub(super) struct Statements(HashMap<String, Statement>);

impl Statements {
    /// The prepared statement for `sql`, preparing it on first use.
    pub(super) async fn get(
        &mut self,
        client: &impl GenericClient,
        sql: &str,
    ) -> Result<Statement, tokio_postgres::Error> {
        if let Some(statement) = self.0.get(sql) {
            return Ok(statement.clone());
        }
        let statement = client.prepare(sql).await?;
        self.0.insert(sql.to_string(), statement.clone());
        Ok(statement)
    }
}

/// What opening a store's connection again takes, when it broke.
pub(super) struct Reconnect {
    pub(super) config: Config,
    pub(super) location: Arc<str>,
    pub(super) schema: String,
    pub(super) slot: ConnectionSlot,
}

impl Reconnect {
    /// A new session on a new connection (its statements prepared again as they are used).
    pub(super) async fn connect(&self) -> Result<Session, StoreError> {
        let (config, location) = (self.config.clone(), Arc::clone(&self.location));
        connect(
            config,
            location,
            self.schema.clone(),
            false,
            Arc::clone(&self.slot),
        )
        .await
    }
}

/// Connects, points `search_path` at the schema and brings the schema up to date.
pub(super) async fn connect(
    config: Config,
    location: Arc<str>,
    schema: String,
    create: bool,
    slot: ConnectionSlot,
) -> Result<Session, StoreError> {
    let (mut client, connection) =
        config
            .connect(NoTls)
            .await
            .map_err(|source| StoreError::Connect {
                location: location.to_string(),
                source: source.into(),
            })?;
    // Errors of the connection surface on the client's next call (as a closed connection).
    let task = tokio::spawn(async move {
        let _ = connection.await;
    });
    *slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(task);
    client
        .batch_execute(&format!("SET search_path TO {}", quoted(&schema)))
        .await
        .map_err(fail(&location, "choose the store's schema"))?;
    migrate(&mut client, &location, &schema, create).await?;
    Ok(Session {
        client,
        statements: Statements::default(),
        location,
    })
}

/// Maps a client error met while trying to do `operation`.
pub(super) fn fail<'a>(
    location: &'a str,
    operation: &'static str,
) -> impl FnOnce(tokio_postgres::Error) -> StoreError + 'a {
    move |source| {
        if is_lost_connection(&source) {
            return StoreError::Unavailable {
                location: location.to_string(),
                operation,
                source: source.into(),
            };
        }
        StoreError::ServerStatement {
            location: location.to_string(),
            operation,
            source: source.into(),
        }
    }
}

/// True when `error` says the connection is gone or the server cannot serve it now, rather
/// than that the statement was wrong: the connection closed or failed (an I/O error), or the
/// server reported a connection exception (class 08), a shutdown (57P01, 57P02), or that it is
/// starting up (57P03).
pub(super) fn is_lost_connection(error: &tokio_postgres::Error) -> bool {
    if error.is_closed() {
        return true;
    }
    if let Some(code) = error.code() {
        let code = code.code();
        return code.starts_with("08") || matches!(code, "57P01" | "57P02" | "57P03");
    }
    // No SQLSTATE: the client's own failure, an I/O error or an unexpected end of the
    // connection.
    std::error::Error::source(error).is_some_and(|cause| cause.is::<std::io::Error>())
}

/// Maps a value that could not be read while trying to do `operation`.
pub(super) fn invalid<'a>(
    location: &'a str,
    operation: &'static str,
) -> impl FnOnce(Decode) -> StoreError + 'a {
    move |source| StoreError::InvalidRecord {
        path: PathBuf::from(location),
        operation,
        source,
    }
}

/// Why a row could not be read.
pub(super) type Decode = Box<dyn Error + Send + Sync>;
