//! The one transaction skeleton of the PostgreSQL store: every method runs its work through
//! [`PostgresStore::transaction`], which takes the connection on its thread, begins what the
//! [`Access`] asks for, hands the work a [`Tx`] (the transaction, the prepared statements, the
//! URL for messages) and ends it: a commit (or the probe's rollback) once the work succeeded,
//! a rollback when it failed.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use tokio::sync::OwnedMutexGuard;
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, IsolationLevel, Row, Statement, Transaction};

use super::PostgresStore;
use super::session::{Decode, Session, Statements, fail, invalid};
use crate::StoreError;

/// How a piece of work uses the connection.
#[derive(Debug, Clone, Copy)]
pub(super) enum Access {
    /// A read-only REPEATABLE READ transaction: its queries see one state.
    Read,
    /// A READ COMMITTED transaction, committed once the work succeeded; `commit` names the
    /// commit in an error.
    Write {
        /// What is committed, e.g. `commit a new job`.
        commit: &'static str,
    },
    /// A write transaction rolled back at the end: it proves the store takes writes now and
    /// changes nothing.
    Probe,
    /// No transaction: each statement commits on its own, and one that fails does not abort the
    /// ones after it.
    Autocommit,
}

/// The work [`PostgresStore::transaction`] runs: a future borrowing the [`Tx`] it is given.
pub(super) type Work<'t, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 't>>;

/// What the work of a transaction runs its statements with.
pub(super) struct Tx<'c> {
    link: Link<'c>,
    statements: &'c mut Statements,
    location: &'c str,
    end: End,
}

/// Where the statements go: into the transaction, or each on its own.
enum Link<'c> {
    Transaction(Transaction<'c>),
    Autocommit(&'c Client),
}

/// How the transaction ends once the work succeeded; each names the step in an error.
#[derive(Debug, Clone, Copy)]
enum End {
    Commit(&'static str),
    Rollback(&'static str),
    Nothing,
}

impl PostgresStore {
    /// Runs `work` in a read-only transaction: its queries see one state.
    pub(super) fn read<T, F>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'t, 'c> FnOnce(&'t mut Tx<'c>) -> Work<'t, T> + Send + 'static,
    {
        self.transaction(Access::Read, work)
    }

    /// Runs `work` in a write transaction committed as `commit` says, all or nothing.
    pub(super) fn write<T, F>(&self, commit: &'static str, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'t, 'c> FnOnce(&'t mut Tx<'c>) -> Work<'t, T> + Send + 'static,
    {
        self.transaction(Access::Write { commit }, work)
    }

    /// Runs `work` on the connection's thread with the connection to itself, as `access`
    /// says: begins the transaction, runs the work, and ends the transaction only when the work
    /// succeeded (a transaction dropped on an error rolls back).
    pub(super) fn transaction<T, F>(&self, access: Access, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: for<'t, 'c> FnOnce(&'t mut Tx<'c>) -> Work<'t, T> + Send + 'static,
    {
        self.call(move |mut guard| async move {
            let Session {
                client,
                statements,
                location,
            } = &mut *guard;
            let location: &str = location;
            let (link, end) = match access {
                Access::Read => {
                    let tx = client
                        .build_transaction()
                        .isolation_level(IsolationLevel::RepeatableRead)
                        .read_only(true)
                        .start()
                        .await
                        .map_err(fail(location, "start a read transaction"))?;
                    (Link::Transaction(tx), End::Commit("end a read transaction"))
                }
                Access::Write { commit } => {
                    let tx = begin_write(client, location).await?;
                    (Link::Transaction(tx), End::Commit(commit))
                }
                Access::Probe => {
                    let tx = begin_write(client, location).await?;
                    (Link::Transaction(tx), End::Rollback("roll back a probe"))
                }
                Access::Autocommit => (Link::Autocommit(&*client), End::Nothing),
            };
            let mut tx = Tx {
                link,
                statements,
                location,
                end,
            };
            let value = work(&mut tx).await?;
            tx.finish().await?;
            Ok(value)
        })
    }

    /// Runs `work` with the connection to itself, on the connection's thread. A connection
    /// that broke (the server restarted, the network failed) is opened again first; when that
    /// fails the store is unavailable ([`StoreError::is_unavailable`]) and the next call tries
    /// again.
    fn call<T, F, Fut>(&self, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(OwnedMutexGuard<Session>) -> Fut + Send + 'static,
        Fut: Future<Output = Result<T, StoreError>> + Send + 'static,
    {
        let session = Arc::clone(&self.session);
        let reconnect = Arc::clone(&self.reconnect);
        self.worker.run(async move {
            let mut guard = session.lock_owned().await;
            if guard.client.is_closed() {
                *guard = reconnect.connect().await?;
            }
            work(guard).await
        })
    }
}

/// Starts a write transaction.
async fn begin_write<'c>(
    client: &'c mut Client,
    location: &str,
) -> Result<Transaction<'c>, StoreError> {
    client
        .transaction()
        .await
        .map_err(fail(location, "start a write transaction"))
}

impl Tx<'_> {
    /// The URL, password hidden, as messages show it.
    pub(super) fn location(&self) -> &str {
        self.location
    }

    /// The client the statements go to (inside the transaction, if there is one).
    pub(super) fn client(&self) -> &Client {
        client_of(&self.link)
    }

    /// Names the commit `operation` in an error: for work that ends a write early, having
    /// found nothing to do.
    pub(super) fn commit_as(&mut self, operation: &'static str) {
        self.end = End::Commit(operation);
    }

    /// Maps a client error met while trying to do `operation`.
    pub(super) fn fail(
        &self,
        operation: &'static str,
    ) -> impl FnOnce(tokio_postgres::Error) -> StoreError + '_ {
        fail(self.location, operation)
    }

    /// The statement prepared on this connection for `sql`, preparing it on first use.
    pub(super) async fn prepare(
        &mut self,
        operation: &'static str,
        sql: &str,
    ) -> Result<Statement, StoreError> {
        let client = client_of(&self.link);
        self.statements
            .get(client, sql)
            .await
            .map_err(fail(self.location, operation))
    }

    /// Runs a prepared (and cached) statement and returns its rows.
    pub(super) async fn query(
        &mut self,
        operation: &'static str,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, StoreError> {
        let statement = self.prepare(operation, sql).await?;
        self.client()
            .query(&statement, params)
            .await
            .map_err(fail(self.location, operation))
    }

    /// Runs a prepared (and cached) statement and returns how many rows it changed.
    pub(super) async fn execute(
        &mut self,
        operation: &'static str,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<u64, StoreError> {
        let statement = self.prepare(operation, sql).await?;
        self.client()
            .execute(&statement, params)
            .await
            .map_err(fail(self.location, operation))
    }

    /// Reads every row with `read`.
    pub(super) fn decode<T>(
        &self,
        rows: &[Row],
        operation: &'static str,
        read: impl Fn(&Row) -> Result<T, Decode>,
    ) -> Result<Vec<T>, StoreError> {
        rows.iter()
            .map(|row| read(row).map_err(invalid(self.location, operation)))
            .collect()
    }

    /// Runs a query and reads every row of it with `read`.
    pub(super) async fn rows<T>(
        &mut self,
        operation: &'static str,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
        read: impl Fn(&Row) -> Result<T, Decode>,
    ) -> Result<Vec<T>, StoreError> {
        let rows = self.query(operation, sql, params).await?;
        self.decode(&rows, operation, read)
    }

    /// Ends the transaction as its access said.
    async fn finish(self) -> Result<(), StoreError> {
        let Link::Transaction(tx) = self.link else {
            return Ok(());
        };
        match self.end {
            End::Commit(operation) => tx.commit().await.map_err(fail(self.location, operation)),
            End::Rollback(operation) => tx.rollback().await.map_err(fail(self.location, operation)),
            End::Nothing => Ok(()),
        }
    }
}

/// The client behind `link`.
fn client_of<'a>(link: &'a Link<'_>) -> &'a Client {
    match link {
        Link::Transaction(tx) => tx.client(),
        Link::Autocommit(client) => client,
    }
}
