//! `[databases.NAME]`: PostgreSQL databases whose statements plugins
//! granted `grants = { sql = ["NAME"] }` may run. The operator writes every
//! statement (`[databases.NAME.queries]`); a plugin only names one and
//! supplies its parameters.
//!
//! The password never sits in the file: a password inside `url` is refused
//! at load, `password` is `env:NAME` or `file:PATH`. Nothing here prints
//! the URL with a password, since it cannot hold one.

use super::{Invalid, Secret, SecretSource, invalid};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Connections per database unless `pool_size` says otherwise: a handful
/// is plenty for one short statement per login.
pub const DEFAULT_POOL_SIZE: usize = 4;
/// Rows one statement may return unless `max_rows` says otherwise.
pub const DEFAULT_MAX_ROWS: usize = 100;
/// Bytes one field may hold unless `max_field_bytes` says otherwise.
pub const DEFAULT_MAX_FIELD_BYTES: usize = 64 << 10;
/// The most connections one database entry may ask for.
const MAX_POOL_SIZE: usize = 256;
/// The most rows an operator may allow one statement.
const MAX_ROWS: usize = 10_000;
/// The most bytes an operator may allow one field.
const MAX_FIELD_BYTES: usize = 16 << 20;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `postgres://USER@HOST:PORT/DBNAME` (or `postgresql://`); no
    /// password.
    pub url: String,
    /// `env:NAME` or `file:PATH`.
    #[serde(default)]
    pub password: Option<Secret>,
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
    #[serde(default)]
    pub tls: DatabaseTls,
    /// CA certificates (PEM) for `tls = "verify-full"`; default: the
    /// system's.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// A client certificate chain (PEM) for a server that asks for one
    /// (`cert` in pg_hba.conf, or `clientcert=verify-full`); with
    /// `key_file`.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// The client certificate's private key (PEM), readable by its owner
    /// only.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    #[serde(default = "default_max_rows")]
    pub max_rows: usize,
    #[serde(default = "default_max_field_bytes")]
    pub max_field_bytes: usize,
    /// Statement name -> SQL with `$1`, `$2`, ... parameters.
    pub queries: BTreeMap<String, String>,
}

/// How the connection to the database is protected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DatabaseTls {
    /// Plain TCP: only to a loopback address or a Unix socket.
    #[default]
    Disable,
    /// TLS, server certificate not checked.
    Require,
    /// TLS, server certificate checked against `ca_file` and the host name.
    VerifyFull,
}

fn default_pool_size() -> usize {
    DEFAULT_POOL_SIZE
}

fn default_max_rows() -> usize {
    DEFAULT_MAX_ROWS
}

fn default_max_field_bytes() -> usize {
    DEFAULT_MAX_FIELD_BYTES
}

impl DatabaseConfig {
    /// The driver's connection settings, password included (never logged).
    pub fn pg_config(&self) -> Result<tokio_postgres::Config, String> {
        let mut config: tokio_postgres::Config = self.url.parse().map_err(|e| {
            // The driver's message names the option, not the value.
            format!("not a postgres:// URL: {e}")
        })?;
        if let Some(password) = &self.password {
            config.password(password.expose());
        }
        Ok(config)
    }

    /// Whether every host of the URL is a loopback address or a Unix
    /// socket: where a plain connection is not on a network.
    fn is_local(config: &tokio_postgres::Config) -> bool {
        use tokio_postgres::config::Host;
        !config.get_hosts().is_empty()
            && config.get_hosts().iter().all(|host| match host {
                Host::Tcp(name) => {
                    name == "localhost"
                        || name
                            .trim_matches(['[', ']'])
                            .parse::<std::net::IpAddr>()
                            .is_ok_and(|ip| ip.is_loopback())
                }
                Host::Unix(_) => true,
            })
    }

    pub(super) fn validate(&self, name: &str) -> Result<(), Invalid> {
        let key = |k: &str| format!("databases.{name}.{k}");
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c))
        {
            return Err(invalid(
                format!("databases.{name}"),
                "name databases with letters, digits, '-' or '_'",
            ));
        }
        if !(self.url.starts_with("postgres://") || self.url.starts_with("postgresql://")) {
            return Err(invalid(key("url"), "must start with postgres://"));
        }
        let parsed: tokio_postgres::Config = self
            .url
            .parse()
            .map_err(|e| invalid(key("url"), format!("not a postgres:// URL: {e}")))?;
        if parsed.get_password().is_some() {
            return Err(invalid(
                key("url"),
                "holds a password: move it to password = \"env:NAME\" or \"file:PATH\" \
                 (a URL is printed in too many places to carry one)",
            ));
        }
        if parsed.get_user().is_none_or(str::is_empty) {
            return Err(invalid(
                key("url"),
                "name the user: postgres://USER@HOST/DB",
            ));
        }
        if self
            .password
            .as_ref()
            .is_some_and(|p| *p.source() == SecretSource::Inline)
        {
            return Err(invalid(
                key("password"),
                "must be \"env:NAME\" or \"file:PATH\", not the password itself",
            ));
        }
        if !(1..=MAX_POOL_SIZE).contains(&self.pool_size) {
            return Err(invalid(
                key("pool_size"),
                format!("must be between 1 and {MAX_POOL_SIZE}"),
            ));
        }
        if !(1..=MAX_ROWS).contains(&self.max_rows) {
            return Err(invalid(
                key("max_rows"),
                format!("must be between 1 and {MAX_ROWS}"),
            ));
        }
        if !(1..=MAX_FIELD_BYTES).contains(&self.max_field_bytes) {
            return Err(invalid(
                key("max_field_bytes"),
                format!("must be between 1 and {MAX_FIELD_BYTES}"),
            ));
        }
        match self.tls {
            DatabaseTls::Disable if !Self::is_local(&parsed) => {
                return Err(invalid(
                    key("tls"),
                    "\"disable\" is only allowed to a loopback address or a Unix socket: \
                     set tls = \"verify-full\" (and ca_file) for a database on the network",
                ));
            }
            DatabaseTls::Disable if self.ca_file.is_some() => {
                return Err(invalid(key("ca_file"), "needs tls = \"verify-full\""));
            }
            DatabaseTls::Require | DatabaseTls::VerifyFull
                if parsed
                    .get_hosts()
                    .iter()
                    .any(|h| matches!(h, tokio_postgres::config::Host::Unix(_))) =>
            {
                // PostgreSQL never speaks TLS on a Unix socket.
                return Err(invalid(
                    key("tls"),
                    "a Unix socket is not encrypted: use tls = \"disable\" for it",
                ));
            }
            DatabaseTls::Require if self.ca_file.is_some() => {
                // libpq's `require` with a root file verifies the chain;
                // here `require` never does, so a ca_file would mislead.
                return Err(invalid(
                    key("ca_file"),
                    "is only used by tls = \"verify-full\" (\"require\" checks no certificate)",
                ));
            }
            DatabaseTls::Disable | DatabaseTls::Require | DatabaseTls::VerifyFull => {}
        }
        match (&self.cert_file, &self.key_file) {
            (Some(_), None) => return Err(invalid(key("key_file"), "is needed with cert_file")),
            (None, Some(_)) => return Err(invalid(key("cert_file"), "is needed with key_file")),
            (Some(_), Some(_)) if self.tls == DatabaseTls::Disable => {
                return Err(invalid(
                    key("cert_file"),
                    "is sent over TLS only: set tls = \"verify-full\"",
                ));
            }
            _ => {}
        }
        if self.queries.is_empty() {
            return Err(invalid(
                key("queries"),
                "list the statements plugins may run: [databases.NAME.queries] name = \"SELECT ...\"",
            ));
        }
        for (query, sql) in &self.queries {
            if query.is_empty()
                || !query
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_".contains(c))
            {
                return Err(invalid(
                    key("queries"),
                    format!("{query:?}: name queries with letters, digits, '-' or '_'"),
                ));
            }
            if sql.trim().is_empty() {
                return Err(invalid(key(&format!("queries.{query}")), "is empty"));
            }
        }
        Ok(())
    }
}
