//! The `[databases]` a host serves: one connection pool per database and
//! the [`SqlBackend`] the runtime hands plugin queries to. Only the
//! operator's statements run, prepared once per connection; a plugin
//! supplies parameters and gets rows, within the login's deadline.
//!
//! Every failure is one denied login at most and a log line here: a
//! database that is down or out of connections answers `unavailable` as
//! soon as that is known (and no later than the deadline), a statement
//! still running at the deadline is cancelled on the server, a result past
//! the row or field caps is refused. Pools drop broken connections when
//! they are next taken, so serving resumes by itself once the database is
//! back.

mod convert;
mod tls;

pub use convert::check_columns;

use crate::config::{DatabaseConfig, DatabaseTls};
use futures::StreamExt as _;
use portcullis_protocol::logsafe;
use portcullis_runtime::capabilities;
use portcullis_runtime::capabilities::sql::{QueryResult, Row, SqlBackend, SqlError, Value};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::time::timeout_at;
use tokio_postgres::NoTls;

/// How long a cancel request for a statement past its deadline may take:
/// it runs after the login is answered, so only its own bound matters.
const CANCEL_TIMEOUT: Duration = Duration::from_secs(5);

/// How long connecting may take at most, whatever the deadline: a host
/// that does not answer SYN must not hold pool slots for long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum DatabaseError {
    #[error("[databases.{database}]: {message}")]
    Config { database: String, message: String },
    #[error("[databases.{database}]: cannot connect: {message}")]
    Connect { database: String, message: String },
    #[error("[databases.{database}.queries] {query}: {message}")]
    Prepare {
        database: String,
        query: String,
        message: String,
    },
}

/// One configured database: its pool, its statements and caps.
struct Database {
    pool: deadpool_postgres::Pool,
    /// Statement name -> SQL.
    queries: HashMap<String, String>,
    max_rows: usize,
    max_field_bytes: usize,
    /// The connector for `tls = "require"`/`"verify-full"`, which cancel
    /// requests need too (a `hostssl`-only server refuses plain ones).
    tls: Option<tls::RustlsConnect>,
}

/// Every configured database, by name: the host's [`SqlBackend`].
#[derive(Clone, Default)]
pub struct Databases {
    databases: Arc<HashMap<String, Arc<Database>>>,
}

impl Databases {
    /// Pools for `configs`. Nothing connects yet: the first query does, so
    /// a database that is down at start delays nothing but its logins.
    pub fn new(configs: &BTreeMap<String, DatabaseConfig>) -> Result<Databases, DatabaseError> {
        let mut databases = HashMap::new();
        for (name, config) in configs {
            let error = |message: String| DatabaseError::Config {
                database: name.clone(),
                message,
            };
            let mut pg = config.pg_config().map_err(error)?;
            pg.connect_timeout(CONNECT_TIMEOUT);
            pg.application_name("portcullis");
            let manager_config = || deadpool_postgres::ManagerConfig {
                recycling_method: deadpool_postgres::RecyclingMethod::Fast,
            };
            // The file's `tls` decides, whatever `sslmode` the URL holds.
            let (manager, tls) = match config.tls {
                DatabaseTls::Disable => {
                    pg.ssl_mode(tokio_postgres::config::SslMode::Disable);
                    let manager =
                        deadpool_postgres::Manager::from_config(pg, NoTls, manager_config());
                    (manager, None)
                }
                mode => {
                    if mode == DatabaseTls::Require {
                        tracing::warn!(
                            database = %name,
                            "tls = \"require\" encrypts but does not check the database's \
                             certificate: no protection against an active attacker on the \
                             network; use \"verify-full\" (and ca_file)"
                        );
                    }
                    pg.ssl_mode(tokio_postgres::config::SslMode::Require);
                    let client = config.cert_file.as_deref().zip(config.key_file.as_deref());
                    let tls = tls::RustlsConnect::new(mode, config.ca_file.as_deref(), client)
                        .map_err(error)?;
                    let manager =
                        deadpool_postgres::Manager::from_config(pg, tls.clone(), manager_config());
                    (manager, Some(tls))
                }
            };
            let pool = deadpool_postgres::Pool::builder(manager)
                .max_size(config.pool_size)
                .runtime(deadpool_postgres::Runtime::Tokio1)
                .build()
                .map_err(|e| error(e.to_string()))?;
            databases.insert(
                name.clone(),
                Arc::new(Database {
                    pool,
                    queries: config
                        .queries
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                    max_rows: config.max_rows,
                    max_field_bytes: config.max_field_bytes,
                    tls,
                }),
            );
        }
        Ok(Databases {
            databases: Arc::new(databases),
        })
    }

    /// Whether any database is configured.
    pub fn is_empty(&self) -> bool {
        self.databases.is_empty()
    }

    /// Connect to every database and prepare every statement, within
    /// `timeout` per database (`portcullis check`). Returns every problem,
    /// each naming the database and the query.
    pub async fn check(&self, timeout: Duration) -> Vec<DatabaseError> {
        let mut problems = Vec::new();
        let mut names: Vec<&String> = self.databases.keys().collect();
        names.sort();
        for name in names {
            let db = &self.databases[name];
            let deadline = tokio::time::Instant::now() + timeout;
            let client = match timeout_at(deadline, db.pool.get()).await {
                Ok(Ok(client)) => client,
                Ok(Err(e)) => {
                    problems.push(DatabaseError::Connect {
                        database: name.clone(),
                        message: pool_error(&e),
                    });
                    continue;
                }
                Err(_) => {
                    problems.push(DatabaseError::Connect {
                        database: name.clone(),
                        message: format!("no connection within {timeout:?}"),
                    });
                    continue;
                }
            };
            let mut queries: Vec<(&String, &String)> = db.queries.iter().collect();
            queries.sort();
            for (query, sql) in queries {
                let problem = match timeout_at(deadline, client.prepare_cached(sql)).await {
                    Ok(Ok(statement)) => check_columns(statement.columns()).err(),
                    Ok(Err(e)) => Some(db_error(&e)),
                    Err(_) => Some(format!("not prepared within {timeout:?}")),
                };
                if let Some(message) = problem {
                    problems.push(DatabaseError::Prepare {
                        database: name.clone(),
                        query: query.clone(),
                        message,
                    });
                }
            }
        }
        problems
    }

    async fn run(
        db: Arc<Database>,
        database: &str,
        name: &str,
        params: Vec<Value>,
        deadline: Instant,
    ) -> QueryResult {
        let Some(sql) = db.queries.get(name) else {
            return Err(SqlError::UnknownQuery(name.to_owned()));
        };
        let deadline = tokio::time::Instant::from_std(capabilities::share_of(deadline));
        let client = match timeout_at(deadline, db.pool.get()).await {
            Ok(Ok(client)) => client,
            Ok(Err(e)) => {
                let reason = pool_error(&e);
                tracing::warn!(database, query = name, error = %reason, "sql: database unavailable");
                return Err(SqlError::Unavailable(format!(
                    "database {database} cannot be reached"
                )));
            }
            Err(_) => {
                tracing::warn!(
                    database,
                    query = name,
                    pool_size = db.pool.status().max_size,
                    "sql: no connection within the login's deadline (pool exhausted or database not answering)"
                );
                return Err(SqlError::Unavailable(format!(
                    "no connection to database {database} within the deadline"
                )));
            }
        };
        let statement = match timeout_at(deadline, client.prepare_cached(sql)).await {
            Ok(Ok(statement)) => statement,
            Ok(Err(e)) => return Err(failed(database, name, &e)),
            Err(_) => return Err(timed_out(database, name)),
        };
        if let Err(message) = check_columns(statement.columns()) {
            tracing::warn!(database, query = name, error = %message, "sql: result not convertible");
            return Err(SqlError::Failed(message));
        }
        let params = convert::params(statement.params(), params)?;
        // Armed until the statement has answered: a query dropped for any
        // reason (its deadline, the call's own deadline, a shutdown) is
        // cancelled on the server, not left running there.
        let mut cancel = CancelOnDrop {
            token: Some(client.cancel_token()),
            tls: db.tls.clone(),
            database: database.to_owned(),
            query: name.to_owned(),
        };
        let max_rows = db.max_rows;
        let max_field = db.max_field_bytes;
        let rows = async {
            let stream = client.query_raw(&statement, params).await?;
            tokio::pin!(stream);
            let mut rows: Vec<Row> = Vec::new();
            while let Some(row) = stream.next().await {
                let row = row?;
                if rows.len() == max_rows {
                    return Ok(Err(SqlError::TooLarge(format!(
                        "more than {max_rows} rows"
                    ))));
                }
                match convert::row(&row, max_field) {
                    Ok(row) => rows.push(row),
                    Err(e) => return Ok(Err(e)),
                }
            }
            Ok::<_, tokio_postgres::Error>(Ok(rows))
        };
        let result = timeout_at(deadline, rows).await;
        if result.is_ok() {
            cancel.token = None;
        }
        match result {
            Ok(Ok(Ok(rows))) => Ok(rows),
            Ok(Ok(Err(e))) => {
                tracing::warn!(database, query = name, error = ?e, "sql: result refused");
                Err(e)
            }
            Ok(Err(e)) => Err(failed(database, name, &e)),
            Err(_) => Err(timed_out(database, name)),
        }
    }
}

/// The statement ran out of the login's deadline.
fn timed_out(database: &str, query: &str) -> SqlError {
    tracing::warn!(
        database,
        query,
        "sql: statement past the login's deadline, cancelled"
    );
    SqlError::Timeout
}

/// Cancels a running statement on the server when dropped armed: in the
/// background and bounded, so it holds no connection or lock after its
/// login was answered.
struct CancelOnDrop {
    token: Option<tokio_postgres::CancelToken>,
    tls: Option<tls::RustlsConnect>,
    database: String,
    query: String,
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        let Some(token) = self.token.take() else {
            return;
        };
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        let (database, query, tls) = (
            std::mem::take(&mut self.database),
            std::mem::take(&mut self.query),
            self.tls.take(),
        );
        runtime.spawn(async move {
            let cancel = async {
                match tls {
                    Some(tls) => token.cancel_query(tls).await,
                    None => token.cancel_query(NoTls).await,
                }
            };
            match tokio::time::timeout(CANCEL_TIMEOUT, cancel).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::warn!(database, query, error = %db_error(&e), "sql: cancel failed")
                }
                Err(_) => tracing::warn!(database, query, "sql: cancel not answered"),
            }
        });
    }
}

/// The database refused or lost the statement.
fn failed(database: &str, query: &str, e: &tokio_postgres::Error) -> SqlError {
    let detail = db_error(e);
    tracing::warn!(database, query, error = %detail, "sql: statement failed");
    if e.is_closed() || e.as_db_error().is_none() {
        return SqlError::Unavailable(format!("database {database} connection lost"));
    }
    // The plugin gets the SQLSTATE, not the message: messages may quote
    // parameter values.
    let code = e.code().map_or("?", |c| c.code());
    SqlError::Failed(format!("SQLSTATE {code}"))
}

/// A driver error for the log: the server's message (escaped) or the
/// driver's.
fn db_error(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!(
            "{} (SQLSTATE {})",
            logsafe::escape(db.message()),
            db.code().code()
        ),
        None => {
            // The driver's message is its kind ("error performing TLS
            // handshake"); why is in the sources (the certificate refused).
            let mut message = e.to_string();
            let mut source = std::error::Error::source(e);
            while let Some(cause) = source {
                let cause_text = cause.to_string();
                if !message.ends_with(&cause_text) {
                    message = format!("{message}: {cause_text}");
                }
                source = cause.source();
            }
            logsafe::escape(&message).into_owned()
        }
    }
}

fn pool_error(e: &deadpool_postgres::PoolError) -> String {
    match e {
        deadpool_postgres::PoolError::Backend(e) => db_error(e),
        other => logsafe::escape(&other.to_string()).into_owned(),
    }
}

impl SqlBackend for Databases {
    fn query(
        &self,
        database: &str,
        name: &str,
        params: Vec<Value>,
        deadline: Instant,
    ) -> Pin<Box<dyn Future<Output = QueryResult> + Send + 'static>> {
        let db = self.databases.get(database).cloned();
        let (database, name) = (database.to_owned(), name.to_owned());
        Box::pin(async move {
            match db {
                Some(db) => Databases::run(db, &database, &name, params, deadline).await,
                None => Err(SqlError::NotGranted(database)),
            }
        })
    }
}
