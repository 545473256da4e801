//! The `sql` interface: a plugin names a database and one of the
//! operator's statements and supplies parameters; the host runs it through
//! a [`SqlBackend`] (the server's connection pools) within the login's
//! deadline. The runtime knows no database driver: the backend is given
//! to it, so the runtime stays free of network code.

use crate::bindings::v0_2::portcullis::authenticator::sql::{self, Host};
use crate::state::HostState;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

pub use sql::{Column, Error as SqlError, Value};

/// One result row: its columns in the statement's order.
pub type Row = Vec<Column>;

/// What a query returns to the plugin.
pub type QueryResult = Result<Vec<Row>, SqlError>;

/// Runs operator-written statements. Implementations must end by
/// `deadline` (cancelling the statement) and bound what they return.
pub trait SqlBackend: Send + Sync {
    /// Run statement `name` of `database` with `params`. `database` is
    /// one the plugin was granted.
    fn query(
        &self,
        database: &str,
        name: &str,
        params: Vec<Value>,
        deadline: Instant,
    ) -> Pin<Box<dyn Future<Output = QueryResult> + Send + 'static>>;
}

/// The backend of a host with no databases: every query is refused.
pub struct NoDatabases;

impl SqlBackend for NoDatabases {
    fn query(
        &self,
        database: &str,
        _name: &str,
        _params: Vec<Value>,
        _deadline: Instant,
    ) -> Pin<Box<dyn Future<Output = QueryResult> + Send + 'static>> {
        let database = database.to_owned();
        Box::pin(async move { Err(SqlError::NotGranted(database)) })
    }
}

/// The databases one plugin may query, and what runs the queries.
#[derive(Clone)]
pub struct SqlGrant {
    /// Names from `grants = { sql = [...] }`.
    pub databases: Arc<[String]>,
    pub backend: Arc<dyn SqlBackend>,
}

impl Host for HostState {
    async fn query(
        &mut self,
        database: String,
        name: String,
        params: Vec<Value>,
    ) -> wasmtime::Result<QueryResult> {
        let Some(grant) = &self.capabilities.sql else {
            return Ok(Err(SqlError::NotGranted(database)));
        };
        if !grant.databases.contains(&database) {
            return Ok(Err(SqlError::NotGranted(database)));
        }
        let deadline = self.deadline;
        let running = grant.backend.query(&database, &name, params, deadline);
        // The backend bounds itself; this bound is the host's own, so a
        // backend that forgets cannot hold a login past its deadline.
        match tokio::time::timeout_at(deadline.into(), running).await {
            Ok(result) => Ok(result),
            Err(_) => Ok(Err(SqlError::Timeout)),
        }
    }
}
