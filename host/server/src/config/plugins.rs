//! `[[plugins]]`: one entry per plugin in chain order: where its
//! component comes from, its configuration, its limits and what the host
//! lets it grant.

use super::{ConfigError, Invalid, Mode, invalid};
use crate::ceiling::Ceiling;
use crate::policy::MaxExpiry;
use crate::routing::Match;
use portcullis_sources::PluginSource;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

/// Default wall-clock deadline of one `authenticate` call.
pub const DEFAULT_TIMEOUT_MS: u64 = 200;
/// Default memory cap per plugin instance.
pub const DEFAULT_MEMORY_MB: u64 = 32;
/// Default longest user JWT lifetime a plugin may grant.
pub const DEFAULT_MAX_EXPIRY: Duration = Duration::from_secs(24 * 3600);
/// Default concurrent calls (and live instances) per plugin.
pub const DEFAULT_MAX_CONCURRENCY: usize = 16;
/// Most log lines an operator may allow one plugin call: past this a
/// budget no longer bounds a flood in any useful sense.
pub const MAX_LOG_LINES: u32 = 100_000;
/// Most log bytes an operator may allow one plugin call (see
/// [`MAX_LOG_LINES`]).
pub const MAX_LOG_BYTES: u64 = 16 << 20;

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
    /// Longest user JWT a grant may ask for, and what one that asks for
    /// nothing gets: a duration, or "unlimited" (no `exp`; warned about at
    /// start).
    #[serde(default = "default_max_expiry", deserialize_with = "max_expiry")]
    pub max_expiry: MaxExpiry,
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default = "default_memory_mb")]
    pub memory_mb: u64,
    #[serde(default = "default_max_concurrency")]
    pub max_concurrency: usize,
    /// Log lines one call (`configure`, `authenticate`) may write; more
    /// are dropped and counted.
    #[serde(default = "default_log_lines")]
    pub log_lines: u32,
    /// Log bytes one call may write, bytes or "16KiB"; more are dropped
    /// and counted.
    #[serde(default = "default_log_bytes")]
    pub log_bytes: ByteSize,
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
    /// Subject patterns its grants' publish and subscribe allow lists must
    /// stay within; absent = no ceiling.
    #[serde(default)]
    pub ceiling: Option<Ceiling>,
    /// May place users in the system or the callout account (refused
    /// otherwise: a user there can read every login or answer them).
    #[serde(default)]
    pub allow_privileged_accounts: bool,
    /// Capabilities beyond the host functions (HTTP, KV, SQL); none by
    /// default.
    #[serde(default)]
    pub grants: super::Grants,
    /// Which logins this plugin is asked about; absent = all.
    #[serde(default, rename = "match")]
    pub route: Option<Match>,
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
    #[serde(default, with = "super::duration::option")]
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

fn default_max_expiry() -> MaxExpiry {
    MaxExpiry::Limited(DEFAULT_MAX_EXPIRY)
}

/// `max_expiry`: a duration like "1h", or "unlimited".
fn max_expiry<'de, D: serde::Deserializer<'de>>(d: D) -> Result<MaxExpiry, D::Error> {
    let text = String::deserialize(d)?;
    if text.trim() == "unlimited" {
        return Ok(MaxExpiry::Unlimited);
    }
    humantime::parse_duration(&text)
        .map(MaxExpiry::Limited)
        .map_err(|e| {
            serde::de::Error::custom(format!(
                "{text:?} is neither a duration like \"1h\" or \"90s\" nor \"unlimited\": {e}"
            ))
        })
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
fn default_log_lines() -> u32 {
    portcullis_runtime::plugin_log::DEFAULT_LOG_LINES
}
fn default_log_bytes() -> ByteSize {
    ByteSize(portcullis_runtime::plugin_log::DEFAULT_LOG_BYTES as u64)
}

/// What a plugin entry is checked against besides itself.
pub(super) struct PluginContext<'a> {
    pub mode: Mode,
    /// `[accounts]` (operator mode).
    pub accounts: &'a BTreeMap<String, super::AccountConfig>,
    /// Whether `[trust] trusted_signers` lists anyone.
    pub signers_trusted: bool,
    /// The system and callout accounts, by name.
    pub privileged: &'a [&'a str],
}

impl PluginConfig {
    /// An entry with every default `portcullis run` would apply, for
    /// running a component outside a deployment (`plugin test`): the same
    /// deadline, memory and log budget. It may place users in no account.
    pub fn with_defaults(name: &str) -> PluginConfig {
        let mut table = toml::Table::new();
        table.insert("name".into(), name.into());
        table.insert("wasm".into(), name.into());
        table.insert("accounts".into(), toml::Value::Array(Vec::new()));
        PluginConfig::deserialize(table).expect("the defaults of every key deserialize")
    }

    /// Check entry `index`; keys are named `plugins[INDEX] (NAME).KEY`.
    pub(super) fn validate(
        &self,
        index: usize,
        context: &PluginContext<'_>,
    ) -> Result<(), Invalid> {
        let key = |k: &str| format!("plugins[{index}] ({}).{k}", self.name);
        if self.name.is_empty()
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        {
            return Err(invalid(key("name"), "use letters, digits, '-', '_' or '.'"));
        }
        if self.accounts.is_empty() || self.accounts.iter().any(|a| a.is_empty()) {
            return Err(invalid(
                key("accounts"),
                "list the accounts this plugin may place users in",
            ));
        }
        if context.mode == Mode::Operator
            && let Some(missing) = self
                .accounts
                .iter()
                .find(|a| !context.accounts.contains_key(*a))
        {
            let message = format!(
                "account {missing:?} has no [accounts.{missing}] entry \
                 (operator mode needs its public key and signing seed)"
            );
            return Err(invalid(key("accounts"), message));
        }
        if !self.allow_privileged_accounts
            && let Some(account) = self
                .accounts
                .iter()
                .find(|a| context.privileged.contains(&a.as_str()))
        {
            return Err(invalid(
                key("accounts"),
                format!(
                    "{account:?} is the system or the callout account: a user there can read or \
                     answer every login (set allow_privileged_accounts = true if this is meant)"
                ),
            ));
        }
        if let Some(ceiling) = &self.ceiling {
            for pattern in ceiling.patterns() {
                if let Err(e) = crate::policy::check_subject(pattern) {
                    return Err(invalid(key("ceiling"), e.to_string()));
                }
            }
        }
        if matches!(self.max_expiry, MaxExpiry::Limited(d) if d.is_zero()) {
            return Err(invalid(key("max_expiry"), "must be longer than zero"));
        }
        if !(1..=60_000).contains(&self.timeout_ms) {
            return Err(invalid(key("timeout_ms"), "must be between 1 and 60000"));
        }
        if !(1..=4096).contains(&self.memory_mb) {
            return Err(invalid(key("memory_mb"), "must be between 1 and 4096"));
        }
        if !(1..=1024).contains(&self.max_concurrency) {
            return Err(invalid(
                key("max_concurrency"),
                "must be between 1 and 1024",
            ));
        }
        if self.log_lines > MAX_LOG_LINES {
            return Err(invalid(
                key("log_lines"),
                format!("must be at most {MAX_LOG_LINES}"),
            ));
        }
        if self.log_bytes.0 > MAX_LOG_BYTES {
            return Err(invalid(
                key("log_bytes"),
                format!("must be at most {MAX_LOG_BYTES} (16MiB)"),
            ));
        }
        if matches!(self.source, PluginSource::Object { .. }) && !context.signers_trusted {
            return Err(invalid(
                key("wasm"),
                "a pushed plugin is accepted only when signed: list the signers' \
                 public keys in [trust] trusted_signers",
            ));
        }
        match self.source.oci() {
            None => {
                for (set, name) in [
                    (self.insecure, "insecure"),
                    (self.allow_unsigned, "allow_unsigned"),
                    (self.max_size.is_some(), "max_size"),
                    (self.refresh.is_some(), "refresh"),
                ] {
                    if set {
                        return Err(invalid(key(name), "applies only to oci:// plugins"));
                    }
                }
            }
            Some(oci) => {
                if !oci.allow_unsigned && !context.signers_trusted {
                    return Err(invalid(
                        key("wasm"),
                        "a registry plugin is accepted only when signed: list the signers' \
                         public keys in [trust] trusted_signers (or set allow_unsigned = true)",
                    ));
                }
                if oci.max_size == 0 {
                    return Err(invalid(key("max_size"), "must be larger than zero"));
                }
                if self.refresh.is_some_and(|r| r < Duration::from_secs(1)) {
                    return Err(invalid(key("refresh"), "must be at least 1s"));
                }
                if oci.reference.digest.is_some() && self.refresh.is_some() {
                    return Err(invalid(
                        key("refresh"),
                        "a pinned digest never changes: refresh needs a tag",
                    ));
                }
            }
        }
        if self.config.is_some() && self.config_file.is_some() {
            return Err(invalid(
                key("config"),
                "give either config or config_file, not both",
            ));
        }
        if let Err((name, message)) = self.grants.validate_http() {
            return Err(invalid(key(name), message));
        }
        if let Err(message) = self.grants.check_kv() {
            return Err(invalid(key("grants.kv"), message));
        }
        if let Some(Err(e)) = self.route.as_ref().map(Match::validate) {
            return Err(invalid(key(&format!("match.{}", e.key)), e.message));
        }
        Ok(())
    }

    /// What the host lets this plugin grant.
    pub fn policy(&self) -> crate::policy::PluginPolicy {
        crate::policy::PluginPolicy {
            accounts: self.accounts.clone(),
            max_expiry: self.max_expiry,
            ceiling: self.ceiling.clone().unwrap_or_default(),
        }
    }

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
