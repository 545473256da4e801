//! `[nats]`: how the host reaches NATS and how much it takes on at once.

use super::secret::Secret;
use super::{Invalid, invalid};
use portcullis_protocol::keys::SeedSource;
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsConfig {
    pub servers: Vec<String>,
    #[serde(default)]
    pub user: Option<String>,
    /// The password itself, `env:NAME` or `file:PATH`; read once at load.
    #[serde(default)]
    pub password: Option<Secret>,
    /// The token itself, `env:NAME` or `file:PATH`; read once at load.
    #[serde(default)]
    pub token: Option<Secret>,
    /// Credentials file (JWT + seed).
    #[serde(default)]
    pub creds: Option<PathBuf>,
    /// User NKey seed: a file, or `env:NAME`.
    #[serde(default, deserialize_with = "super::seed::optional")]
    pub nkey: Option<SeedSource>,
    /// Queue group shared by every host serving one NATS system.
    #[serde(default = "default_queue")]
    pub queue: String,
    /// Connection name shown in server monitoring.
    #[serde(default = "default_name")]
    pub name: String,
    /// Requests decided at once; one more is answered at once with a
    /// "saturated" error instead of waiting.
    #[serde(default = "default_max_in_flight")]
    pub max_in_flight: usize,
    /// TLS for the connection to NATS; a server with `tls { verify: true }`
    /// needs a client certificate from Portcullis too.
    #[serde(default)]
    pub tls: Option<NatsTls>,
    /// How long `run` keeps trying to reach NATS at start before it gives
    /// up (`"30s"`, `"5m"`); absent = until it gets through, so the order
    /// in which NATS and Portcullis start does not matter.
    #[serde(default, with = "super::duration::option")]
    pub connect_timeout: Option<Duration>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsTls {
    /// CA certificates (PEM) the server's certificate must chain to.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM), with `key_file`.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// Private key (PEM) of `cert_file`.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
}

/// Default bound on requests decided at once per host.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 256;

fn default_max_in_flight() -> usize {
    DEFAULT_MAX_IN_FLIGHT
}

fn default_queue() -> String {
    "portcullis".into()
}

fn default_name() -> String {
    "portcullis".into()
}

impl NatsConfig {
    pub(super) fn validate(&self) -> Result<(), Invalid> {
        if self.servers.is_empty() {
            return Err(invalid(
                "nats.servers",
                "at least one server URL is required",
            ));
        }
        let methods = [
            self.user.is_some() || self.password.is_some(),
            self.token.is_some(),
            self.creds.is_some(),
            self.nkey.is_some(),
        ];
        if methods.iter().filter(|m| **m).count() > 1 {
            return Err(invalid(
                "nats",
                "choose one of user/password, token, creds or nkey",
            ));
        }
        if self.user.is_some() != self.password.is_some() {
            return Err(invalid("nats", "user and password go together"));
        }
        if !(1..=65_536).contains(&self.max_in_flight) {
            return Err(invalid("nats.max_in_flight", "must be between 1 and 65536"));
        }
        if let Some(tls) = &self.tls
            && tls.cert_file.is_some() != tls.key_file.is_some()
        {
            return Err(invalid("nats.tls", "cert_file and key_file go together"));
        }
        if self.connect_timeout == Some(Duration::ZERO) {
            return Err(invalid(
                "nats.connect_timeout",
                "must be longer than 0s (leave it out to keep trying)",
            ));
        }
        if self.queue.is_empty() {
            return Err(invalid("nats.queue", "must not be empty"));
        }
        Ok(())
    }
}
