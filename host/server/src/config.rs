//! The host configuration file (TOML), as `design.md` specifies it.
//!
//! Unknown keys are errors, relative paths are relative to the file, and
//! seeds are read from files or `env:NAME` variables, never from the file
//! itself. Every error names the file and the offending key.

use portcullis_protocol::keys::{SeedSource, is_public_key};
use portcullis_sources::PluginSource;
use serde::Deserialize;
use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Default CPU deadline of one `authenticate` call.
pub const DEFAULT_TIMEOUT_MS: u64 = 200;
/// Default memory cap per plugin instance.
pub const DEFAULT_MEMORY_MB: u64 = 32;
/// Default longest user JWT lifetime a plugin may grant.
pub const DEFAULT_MAX_EXPIRY: Duration = Duration::from_secs(24 * 3600);
/// How long an unused compiled component stays in the cache by default.
pub const DEFAULT_CACHE_MAX_AGE: Duration = Duration::from_secs(30 * 24 * 3600);
/// Default concurrent calls (and live instances) per plugin.
pub const DEFAULT_MAX_CONCURRENCY: usize = 16;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Parse { path: PathBuf, message: String },
    #[error("{}: {key}: {message}", path.display())]
    Invalid {
        path: PathBuf,
        key: String,
        message: String,
    },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub nats: NatsConfig,
    pub callout: CalloutConfig,
    /// Operator mode: account name -> keys.
    #[serde(default)]
    pub accounts: BTreeMap<String, AccountConfig>,
    #[serde(default)]
    pub plugins: Vec<PluginConfig>,
    #[serde(default)]
    pub metrics: Option<MetricsConfig>,
    #[serde(default)]
    pub runtime: RuntimeConfig,
    #[serde(default)]
    pub trust: TrustConfig,
    #[serde(default)]
    pub audit: Option<AuditConfig>,
    /// The file this was read from (not a key in the file).
    #[serde(skip)]
    pub path: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsConfig {
    pub servers: Vec<String>,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub token: Option<String>,
    /// Credentials file (JWT + seed).
    #[serde(default)]
    pub creds: Option<PathBuf>,
    /// User NKey seed: a file, or `env:NAME`.
    #[serde(default)]
    pub nkey: Option<String>,
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

#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// `auth_callout` block in nats-server.conf.
    Config,
    /// Decentralised JWT accounts.
    Operator,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CalloutConfig {
    #[serde(default = "default_mode")]
    pub mode: Mode,
    /// Account seed that signs responses (and, in config mode, user JWTs).
    pub issuer_seed: String,
    /// Curve seed; required when the server encrypts requests.
    #[serde(default)]
    pub xkey_seed: Option<String>,
    /// Operator mode: public key of the callout account when `issuer_seed`
    /// is one of its signing keys.
    #[serde(default)]
    pub callout_account: Option<String>,
    /// When set, only requests signed by these server keys (N...) are
    /// answered. Server keys change on restart unless configured.
    #[serde(default)]
    pub servers: Vec<String>,
    /// When set, only requests sealed by these server xkeys (X...) are
    /// answered; unsealed requests are refused.
    #[serde(default)]
    pub server_xkeys: Vec<String>,
}

fn default_mode() -> Mode {
    Mode::Config
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccountConfig {
    /// The account's public key (A...).
    pub public_key: String,
    /// Seed of a signing key of the account (or of the account itself): a
    /// file, or `env:NAME`.
    pub signing_seed: String,
    /// The signing key is scoped: its template carries the permissions.
    #[serde(default)]
    pub scoped: bool,
    /// The account's JWT, when available: `check` verifies the signing key
    /// against it.
    #[serde(default)]
    pub jwt: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PluginConfig {
    pub name: String,
    /// A file path, or `nats-object://BUCKET/NAME`; parsed into `source`.
    pub wasm: String,
    /// Where the component comes from (not a key in the file).
    #[serde(skip)]
    pub source: PluginSource,
    /// Accounts this plugin may place users in.
    pub accounts: Vec<String>,
    #[serde(default = "default_max_expiry", with = "humantime_serde_compat")]
    pub max_expiry: Duration,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default = "default_memory_mb")]
    pub memory_mb: u64,
    #[serde(default = "default_max_concurrency")]
    pub max_concurrency: usize,
    /// Inline plugin configuration, handed over as JSON.
    #[serde(default)]
    pub config: Option<toml::Table>,
    /// Plugin configuration in a JSON file.
    #[serde(default)]
    pub config_file: Option<PathBuf>,
    /// Conformance vectors (docs/vectors.md) every new version must pass
    /// before it is swapped in: the hot-swap smoke test.
    #[serde(default)]
    pub vectors: Option<PathBuf>,
    /// Which logins this plugin is asked about; absent = all.
    #[serde(default, rename = "match")]
    pub route: Option<crate::routing::Match>,
    /// `oci://` only: reach a registry that is not on loopback over plain
    /// HTTP.
    #[serde(default)]
    pub insecure: bool,
    /// `oci://` only: load artifacts without a trusted signature (logged as
    /// a warning at every load).
    #[serde(default)]
    pub allow_unsigned: bool,
    /// `oci://` only: largest component pulled, bytes or "64MiB".
    #[serde(default)]
    pub max_size: Option<ByteSize>,
    /// `oci://` only: re-resolve the tag this often (default: only on
    /// SIGHUP and restart).
    #[serde(default, with = "humantime_serde_compat::option")]
    pub refresh: Option<Duration>,
}

/// A size in bytes: an integer, or a string with a B/KiB/MiB/GiB suffix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ByteSize(pub u64);

impl<'de> Deserialize<'de> for ByteSize {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Number(u64),
            Text(String),
        }
        let text = match Raw::deserialize(d)? {
            Raw::Number(n) => return Ok(ByteSize(n)),
            Raw::Text(t) => t,
        };
        let trimmed = text.trim();
        let split = trimmed
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(trimmed.len());
        let (digits, unit) = trimmed.split_at(split);
        let scale: u64 = match unit.trim() {
            "" | "B" => 1,
            "KiB" => 1 << 10,
            "MiB" => 1 << 20,
            "GiB" => 1 << 30,
            _ => 0,
        };
        digits
            .parse::<u64>()
            .ok()
            .and_then(|n| n.checked_mul(scale))
            .filter(|_| scale > 0)
            .map(ByteSize)
            .ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "{text:?} is not a size like 1048576, \"512KiB\" or \"64MiB\""
                ))
            })
    }
}

fn default_max_expiry() -> Duration {
    DEFAULT_MAX_EXPIRY
}
fn default_timeout_ms() -> u64 {
    DEFAULT_TIMEOUT_MS
}
fn default_memory_mb() -> u64 {
    DEFAULT_MEMORY_MB
}
fn default_max_concurrency() -> usize {
    DEFAULT_MAX_CONCURRENCY
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    pub listen: SocketAddr,
}

/// Central audit collection.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditConfig {
    /// Every decision is also published here as one JSON event.
    pub subject: String,
}

/// Who may publish plugin versions to remote sources.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrustConfig {
    /// Public NKeys whose signature makes a pushed version acceptable.
    #[serde(default)]
    pub trusted_signers: Vec<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    /// Compiled-component cache; default `$XDG_CACHE_HOME/portcullis` or
    /// `~/.cache/portcullis`.
    #[serde(default)]
    pub cache_dir: Option<PathBuf>,
    /// Disable the compiled-component cache.
    #[serde(default)]
    pub no_cache: bool,
    /// Remove compiled components no host has loaded for this long;
    /// "0s" keeps them forever. Default [`DEFAULT_CACHE_MAX_AGE`].
    #[serde(default, with = "humantime_serde_compat::option")]
    pub cache_max_age: Option<Duration>,
    /// Instance slots for the pooling allocator.
    #[serde(default)]
    pub pool_instances: Option<u32>,
    /// Threads that run `portcullis run`'s async work: 1 = everything on
    /// one thread (least CPU per login where nats-server shares the
    /// machine); default = one per core.
    #[serde(default)]
    pub workers: Option<usize>,
}

mod humantime_serde_compat {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        humantime::parse_duration(&text).map_err(|e| {
            serde::de::Error::custom(format!(
                "{text:?} is not a duration like \"1h\" or \"90s\": {e}"
            ))
        })
    }

    pub mod option {
        use serde::{Deserialize, Deserializer};
        use std::time::Duration;

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
            #[derive(Deserialize)]
            struct Wrapped(#[serde(deserialize_with = "super::deserialize")] Duration);
            Ok(Option::<Wrapped>::deserialize(d)?.map(|Wrapped(d)| d))
        }
    }
}

impl Config {
    /// Read, parse, resolve paths and validate a configuration file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.to_owned(),
            source,
        })?;
        Config::parse(&text, path)
    }

    /// Parse configuration text as if read from `path`.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        config.path = path.to_owned();
        config.resolve_paths()?;
        config.validate()?;
        Ok(config)
    }

    /// The directory relative paths are resolved against.
    pub fn base_dir(&self) -> PathBuf {
        match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        }
    }

    fn resolve_paths(&mut self) -> Result<(), ConfigError> {
        let base = self.base_dir();
        for account in self.accounts.values_mut() {
            if let Some(jwt) = &mut account.jwt {
                *jwt = base.join(&*jwt);
            }
        }
        if let Some(creds) = &mut self.nats.creds {
            *creds = base.join(&*creds);
        }
        if let Some(tls) = &mut self.nats.tls {
            for path in [&mut tls.ca_file, &mut tls.cert_file, &mut tls.key_file]
                .into_iter()
                .flatten()
            {
                *path = base.join(&*path);
            }
        }
        for (i, plugin) in self.plugins.iter_mut().enumerate() {
            plugin.source = PluginSource::parse(&plugin.wasm, &base).map_err(|message| {
                ConfigError::Invalid {
                    path: self.path.clone(),
                    key: format!("plugins[{i}] ({}).wasm", plugin.name),
                    message,
                }
            })?;
            if let PluginSource::Oci(oci) = &mut plugin.source {
                oci.insecure = plugin.insecure;
                oci.allow_unsigned = plugin.allow_unsigned;
                oci.max_size = plugin
                    .max_size
                    .map_or(portcullis_sources::oci::DEFAULT_MAX_SIZE, |size| size.0);
            }
            if let Some(f) = &mut plugin.config_file {
                *f = base.join(&*f);
            }
            if let Some(d) = &mut plugin.vectors {
                *d = base.join(&*d);
            }
        }
        if let Some(dir) = &mut self.runtime.cache_dir {
            *dir = base.join(&*dir);
        }
        Ok(())
    }

    /// Where the issuer seed is read from.
    pub fn issuer_seed(&self) -> SeedSource {
        SeedSource::parse(&self.callout.issuer_seed, &self.base_dir())
    }

    /// Where an account's signing seed is read from (operator mode).
    pub fn signing_seed(&self, account: &AccountConfig) -> SeedSource {
        SeedSource::parse(&account.signing_seed, &self.base_dir())
    }

    /// Where the xkey seed is read from, if configured.
    pub fn xkey_seed(&self) -> Option<SeedSource> {
        self.callout
            .xkey_seed
            .as_deref()
            .map(|s| SeedSource::parse(s, &self.base_dir()))
    }

    /// Where the NATS user NKey seed is read from, if configured.
    pub fn nats_nkey_seed(&self) -> Option<SeedSource> {
        self.nats
            .nkey
            .as_deref()
            .map(|s| SeedSource::parse(s, &self.base_dir()))
    }

    /// How long unused compiled components are kept; `None` = forever.
    pub fn cache_max_age(&self) -> Option<Duration> {
        match self.runtime.cache_max_age {
            Some(age) if age.is_zero() => None,
            Some(age) => Some(age),
            None => Some(DEFAULT_CACHE_MAX_AGE),
        }
    }

    /// The compiled-component cache directory, unless disabled.
    pub fn cache_dir(&self) -> Option<PathBuf> {
        if self.runtime.no_cache {
            return None;
        }
        self.runtime.cache_dir.clone().or_else(default_cache_dir)
    }

    fn invalid(&self, key: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.clone(),
            key: key.into(),
            message: message.into(),
        }
    }

    fn validate(&self) -> Result<(), ConfigError> {
        if self.nats.servers.is_empty() {
            return Err(self.invalid("nats.servers", "at least one server URL is required"));
        }
        if self
            .runtime
            .workers
            .is_some_and(|w| !(1..=1024).contains(&w))
        {
            return Err(self.invalid("runtime.workers", "must be between 1 and 1024"));
        }
        // Shorter would remove what other hosts sharing the directory may
        // still load, costing them a recompile (seconds for JS or Python).
        if self
            .runtime
            .cache_max_age
            .is_some_and(|age| !age.is_zero() && age < Duration::from_secs(3600))
        {
            return Err(self.invalid(
                "runtime.cache_max_age",
                "must be at least \"1h\", or \"0s\" to keep compiled components forever",
            ));
        }
        let methods = [
            self.nats.user.is_some() || self.nats.password.is_some(),
            self.nats.token.is_some(),
            self.nats.creds.is_some(),
            self.nats.nkey.is_some(),
        ];
        if methods.iter().filter(|m| **m).count() > 1 {
            return Err(self.invalid("nats", "choose one of user/password, token, creds or nkey"));
        }
        if self.nats.user.is_some() != self.nats.password.is_some() {
            return Err(self.invalid("nats", "user and password go together"));
        }
        if !(1..=65_536).contains(&self.nats.max_in_flight) {
            return Err(self.invalid("nats.max_in_flight", "must be between 1 and 65536"));
        }
        if let Some(tls) = &self.nats.tls
            && tls.cert_file.is_some() != tls.key_file.is_some()
        {
            return Err(self.invalid("nats.tls", "cert_file and key_file go together"));
        }
        if self.nats.queue.is_empty() {
            return Err(self.invalid("nats.queue", "must not be empty"));
        }
        if self.callout.mode == Mode::Config && !self.accounts.is_empty() {
            return Err(self.invalid(
                "accounts",
                "only used in operator mode; config mode names accounts as the server config does",
            ));
        }
        if let Some(account) = &self.callout.callout_account {
            if self.callout.mode != Mode::Operator {
                return Err(self.invalid("callout.callout_account", "only used in operator mode"));
            }
            if !is_account_key(account) {
                return Err(self.invalid(
                    "callout.callout_account",
                    "must be an account public key (A...)",
                ));
            }
        }
        if let Some(bad) = self.callout.servers.iter().find(|k| !is_public_key(k, 'N')) {
            return Err(self.invalid(
                "callout.servers",
                format!("{bad:?} is not a server public key (N...)"),
            ));
        }
        if let Some(bad) = self
            .callout
            .server_xkeys
            .iter()
            .find(|k| !is_public_key(k, 'X'))
        {
            return Err(self.invalid(
                "callout.server_xkeys",
                format!("{bad:?} is not a curve public key (X...)"),
            ));
        }
        if !self.callout.server_xkeys.is_empty() && self.callout.xkey_seed.is_none() {
            return Err(self.invalid("callout.server_xkeys", "requires xkey_seed"));
        }
        for (name, account) in &self.accounts {
            if !is_account_key(&account.public_key) {
                return Err(self.invalid(
                    format!("accounts.{name}.public_key"),
                    "must be an account public key (A...)",
                ));
            }
        }
        if let Some(bad) = self
            .trust
            .trusted_signers
            .iter()
            .find(|k| nkeys::KeyPair::from_public_key(k).is_err())
        {
            return Err(self.invalid(
                "trust.trusted_signers",
                format!("{bad:?} is not an NKey public key"),
            ));
        }
        if let Some(audit) = &self.audit
            && (audit.subject.is_empty()
                || audit.subject.contains(char::is_whitespace)
                || audit.subject.contains(['*', '>']))
        {
            return Err(self.invalid(
                "audit.subject",
                "must be a NATS subject without wildcards or spaces",
            ));
        }
        if self.plugins.is_empty() {
            return Err(self.invalid("plugins", "at least one [[plugins]] entry is required"));
        }
        let mut names = HashSet::new();
        for (i, p) in self.plugins.iter().enumerate() {
            let key = |k: &str| format!("plugins[{i}] ({}).{k}", p.name);
            if p.name.is_empty()
                || !p
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
            {
                return Err(self.invalid(key("name"), "use letters, digits, '-', '_' or '.'"));
            }
            if !names.insert(p.name.as_str()) {
                return Err(self.invalid(key("name"), "duplicate plugin name"));
            }
            if p.accounts.is_empty() || p.accounts.iter().any(|a| a.is_empty()) {
                return Err(self.invalid(
                    key("accounts"),
                    "list the accounts this plugin may place users in",
                ));
            }
            if self.callout.mode == Mode::Operator
                && let Some(missing) = p.accounts.iter().find(|a| !self.accounts.contains_key(*a))
            {
                let message = format!(
                    "account {missing:?} has no [accounts.{missing}] entry \
                     (operator mode needs its public key and signing seed)"
                );
                return Err(self.invalid(key("accounts"), message));
            }
            if p.max_expiry.is_zero() {
                return Err(self.invalid(key("max_expiry"), "must be longer than zero"));
            }
            if !(1..=60_000).contains(&p.timeout_ms) {
                return Err(self.invalid(key("timeout_ms"), "must be between 1 and 60000"));
            }
            if !(1..=4096).contains(&p.memory_mb) {
                return Err(self.invalid(key("memory_mb"), "must be between 1 and 4096"));
            }
            if !(1..=1024).contains(&p.max_concurrency) {
                return Err(self.invalid(key("max_concurrency"), "must be between 1 and 1024"));
            }
            if matches!(p.source, PluginSource::Object { .. })
                && self.trust.trusted_signers.is_empty()
            {
                return Err(self.invalid(
                    key("wasm"),
                    "a pushed plugin is accepted only when signed: list the signers' \
                     public keys in [trust] trusted_signers",
                ));
            }
            if p.source.oci().is_none() {
                for (set, name) in [
                    (p.insecure, "insecure"),
                    (p.allow_unsigned, "allow_unsigned"),
                    (p.max_size.is_some(), "max_size"),
                    (p.refresh.is_some(), "refresh"),
                ] {
                    if set {
                        return Err(self.invalid(key(name), "applies only to oci:// plugins"));
                    }
                }
            }
            if let Some(oci) = p.source.oci() {
                if !oci.allow_unsigned && self.trust.trusted_signers.is_empty() {
                    return Err(self.invalid(
                        key("wasm"),
                        "a registry plugin is accepted only when signed: list the signers' \
                         public keys in [trust] trusted_signers (or set allow_unsigned = true)",
                    ));
                }
                if oci.max_size == 0 {
                    return Err(self.invalid(key("max_size"), "must be larger than zero"));
                }
                if p.refresh.is_some_and(|r| r < Duration::from_secs(1)) {
                    return Err(self.invalid(key("refresh"), "must be at least 1s"));
                }
                if oci.reference.digest.is_some() && p.refresh.is_some() {
                    return Err(self.invalid(
                        key("refresh"),
                        "a pinned digest never changes: refresh needs a tag",
                    ));
                }
            }
            if p.config.is_some() && p.config_file.is_some() {
                return Err(
                    self.invalid(key("config"), "give either config or config_file, not both")
                );
            }
            if let Some(Err(e)) = p.route.as_ref().map(crate::routing::Match::validate) {
                return Err(self.invalid(key(&format!("match.{}", e.key)), e.message));
            }
        }
        Ok(())
    }
}

fn is_account_key(key: &str) -> bool {
    is_public_key(key, 'A')
}

/// `$XDG_CACHE_HOME/portcullis`, else `~/.cache/portcullis`.
pub fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("portcullis"))
}

impl PluginConfig {
    /// The plugin's configuration as the JSON text `configure` receives.
    pub fn config_json(&self) -> Result<String, ConfigError> {
        if let Some(path) = &self.config_file {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.clone(),
                source,
            })?;
            // Checked here so the operator sees a JSON error with its
            // position, not whatever the plugin makes of it.
            serde_json::from_str::<serde_json::Value>(&text).map_err(|e| ConfigError::Parse {
                path: path.clone(),
                message: format!("not valid JSON: {e}"),
            })?;
            return Ok(text);
        }
        match &self.config {
            Some(table) => serde_json::to_string(table).map_err(|e| ConfigError::Parse {
                path: PathBuf::from(&self.name),
                message: e.to_string(),
            }),
            None => Ok("{}".into()),
        }
    }
}

#[cfg(test)]
mod tests;
