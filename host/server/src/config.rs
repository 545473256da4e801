//! The host configuration file (TOML), as `design.md` specifies it.
//!
//! Unknown keys are errors, relative paths are relative to the file, and
//! seeds are read from files or `env:NAME` variables, never from the file
//! itself; the NATS password or token may also be `env:NAME` or
//! `file:PATH`, read once at load and never printed. Every error names the file and the offending key. Each section
//! lives in its own module with its own checks; this one reads the file,
//! resolves every path (seeds included) once, and names the file in errors.

mod callout;
mod databases;
mod grants;
mod limits;
mod nats;
mod plugins;
mod runtime;
mod secret;

pub use callout::{AccountConfig, CalloutConfig, Mode};
pub use databases::{
    DEFAULT_MAX_FIELD_BYTES, DEFAULT_MAX_ROWS, DEFAULT_POOL_SIZE, DatabaseConfig, DatabaseTls,
};
pub use grants::Grants;
pub use limits::LimitsConfig;
pub use nats::{DEFAULT_MAX_IN_FLIGHT, NatsConfig, NatsTls};
pub use plugins::{
    ByteSize, DEFAULT_MAX_CONCURRENCY, DEFAULT_MAX_EXPIRY, DEFAULT_MEMORY_MB, DEFAULT_TIMEOUT_MS,
    PluginConfig,
};
pub use runtime::{DEFAULT_CACHE_MAX_AGE, RuntimeConfig, default_cache_dir};
pub use secret::{Secret, SecretError, SecretSource};

use portcullis_protocol::keys::SeedSource;
use portcullis_sources::PluginSource;
use serde::Deserialize;
use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

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

/// One invalid value, before the file is named: the key as the file spells
/// it and why.
#[derive(Debug)]
struct Invalid {
    key: String,
    message: String,
}

fn invalid(key: impl Into<String>, message: impl Into<String>) -> Invalid {
    Invalid {
        key: key.into(),
        message: message.into(),
    }
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
    #[serde(default)]
    pub limits: LimitsConfig,
    /// `[databases.NAME]`: what `grants = { sql = [...] }` may name.
    #[serde(default)]
    pub databases: BTreeMap<String, DatabaseConfig>,
    /// The file this was read from (not a key in the file).
    #[serde(skip)]
    pub path: PathBuf,
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

impl TrustConfig {
    fn validate(&self) -> Result<(), Invalid> {
        match self
            .trusted_signers
            .iter()
            .find(|k| nkeys::KeyPair::from_public_key(k).is_err())
        {
            Some(bad) => Err(invalid(
                "trust.trusted_signers",
                format!("{bad:?} is not an NKey public key"),
            )),
            None => Ok(()),
        }
    }
}

impl AuditConfig {
    fn validate(&self) -> Result<(), Invalid> {
        let subject = &self.subject;
        if subject.is_empty()
            || subject.contains(char::is_whitespace)
            || subject.contains(['*', '>'])
        {
            return Err(invalid(
                "audit.subject",
                "must be a NATS subject without wildcards or spaces",
            ));
        }
        Ok(())
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
        Config::parse_with_env(text, path, &|name| std::env::var(name).ok())
    }

    /// [`Config::parse`] with `env` looking up the `env:NAME` secrets.
    fn parse_with_env(
        text: &str,
        path: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Config, ConfigError> {
        let mut config: Config = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })?;
        config.path = path.to_owned();
        config.resolve_paths().map_err(|e| config.named(e))?;
        config.resolve_secrets(env).map_err(|e| config.named(e))?;
        config.validate().map_err(|e| config.named(e))?;
        Ok(config)
    }

    /// The directory relative paths are resolved against.
    pub fn base_dir(&self) -> PathBuf {
        match self.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        }
    }

    fn resolve_paths(&mut self) -> Result<(), Invalid> {
        let base = self.base_dir();
        let file = |path: &mut PathBuf| *path = base.join(&*path);
        let seed = |source: &mut SeedSource| {
            if let SeedSource::File(path) = source {
                *path = base.join(&*path);
            }
        };
        seed(&mut self.callout.issuer_seed);
        self.callout.xkey_seed.iter_mut().for_each(seed);
        self.nats.nkey.iter_mut().for_each(seed);
        for account in self.accounts.values_mut() {
            seed(&mut account.signing_seed);
            account.jwt.iter_mut().for_each(file);
        }
        self.nats.creds.iter_mut().for_each(file);
        if let Some(tls) = &mut self.nats.tls {
            [&mut tls.ca_file, &mut tls.cert_file, &mut tls.key_file]
                .into_iter()
                .flatten()
                .for_each(file);
        }
        for (i, plugin) in self.plugins.iter_mut().enumerate() {
            plugin.source = PluginSource::parse(&plugin.wasm, &base).map_err(|message| {
                invalid(format!("plugins[{i}] ({}).wasm", plugin.name), message)
            })?;
            if let PluginSource::Oci(oci) = &mut plugin.source {
                oci.insecure = plugin.insecure;
                oci.allow_unsigned = plugin.allow_unsigned;
                oci.max_size = plugin
                    .max_size
                    .map_or(portcullis_sources::oci::DEFAULT_MAX_SIZE, |size| size.0);
            }
            plugin.config_file.iter_mut().for_each(file);
            plugin.grants.http_ca_file.iter_mut().for_each(file);
            plugin.vectors.iter_mut().for_each(file);
        }
        self.runtime.cache_dir.iter_mut().for_each(file);
        for database in self.databases.values_mut() {
            [
                &mut database.ca_file,
                &mut database.cert_file,
                &mut database.key_file,
            ]
            .into_iter()
            .flatten()
            .for_each(file);
        }
        Ok(())
    }

    /// Read the `env:` and `file:` secrets, once: the NATS connection (and
    /// its reconnections) keeps what it was given, so a rotated password
    /// takes a restart.
    fn resolve_secrets(&mut self, env: &dyn Fn(&str) -> Option<String>) -> Result<(), Invalid> {
        let base = self.base_dir();
        for (key, secret) in [
            ("nats.password", &mut self.nats.password),
            ("nats.token", &mut self.nats.token),
        ] {
            if let Some(secret) = secret {
                secret
                    .resolve(&base, env)
                    .map_err(|e| invalid(key, e.to_string()))?;
            }
        }
        for (name, database) in &mut self.databases {
            if let Some(secret) = &mut database.password {
                secret
                    .resolve(&base, env)
                    .map_err(|e| invalid(format!("databases.{name}.password"), e.to_string()))?;
            }
        }
        Ok(())
    }

    /// Where the issuer seed is read from.
    pub fn issuer_seed(&self) -> &SeedSource {
        &self.callout.issuer_seed
    }

    /// Where an account's signing seed is read from (operator mode).
    pub fn signing_seed<'a>(&self, account: &'a AccountConfig) -> &'a SeedSource {
        &account.signing_seed
    }

    /// Where the xkey seed is read from, if configured.
    pub fn xkey_seed(&self) -> Option<&SeedSource> {
        self.callout.xkey_seed.as_ref()
    }

    /// Where the NATS user NKey seed is read from, if configured.
    pub fn nats_nkey_seed(&self) -> Option<&SeedSource> {
        self.nats.nkey.as_ref()
    }

    /// How long unused compiled components are kept; `None` = forever.
    pub fn cache_max_age(&self) -> Option<Duration> {
        self.runtime.cache_max_age()
    }

    /// The compiled-component cache directory, unless disabled.
    pub fn cache_dir(&self) -> Option<PathBuf> {
        self.runtime.cache_dir()
    }

    fn named(&self, e: Invalid) -> ConfigError {
        ConfigError::Invalid {
            path: self.path.clone(),
            key: e.key,
            message: e.message,
        }
    }

    /// Every section's checks, then the ones across sections.
    fn validate(&self) -> Result<(), Invalid> {
        self.nats.validate()?;
        self.runtime.validate()?;
        self.callout.validate(&self.accounts)?;
        self.trust.validate()?;
        self.limits.validate()?;
        if let Some(audit) = &self.audit {
            audit.validate()?;
        }
        if self.plugins.is_empty() {
            return Err(invalid(
                "plugins",
                "at least one [[plugins]] entry is required",
            ));
        }
        let mut privileged = self.callout.privileged_accounts().to_vec();
        if let Some(key) = &self.callout.callout_account {
            privileged.extend(
                self.accounts
                    .iter()
                    .filter(|(_, account)| &account.public_key == key)
                    .map(|(name, _)| name.as_str()),
            );
        }
        let context = plugins::PluginContext {
            mode: self.callout.mode,
            accounts: &self.accounts,
            signers_trusted: !self.trust.trusted_signers.is_empty(),
            privileged: &privileged,
        };
        for (name, database) in &self.databases {
            database.validate(name)?;
        }
        let mut names = HashSet::new();
        for (i, plugin) in self.plugins.iter().enumerate() {
            plugin.validate(i, &context)?;
            if let Some(unknown) = plugin
                .grants
                .sql
                .iter()
                .find(|db| !self.databases.contains_key(*db))
            {
                return Err(invalid(
                    format!("plugins[{i}] ({}).grants.sql", plugin.name),
                    format!("{unknown:?} has no [databases.{unknown}] entry"),
                ));
            }
            if !names.insert(plugin.name.as_str()) {
                return Err(invalid(
                    format!("plugins[{i}] ({}).name", plugin.name),
                    "duplicate plugin name",
                ));
            }
        }
        Ok(())
    }
}

/// Seeds are `env:NAME` or a path; paths are made absolute by
/// [`Config::resolve_paths`].
mod seed {
    use portcullis_protocol::keys::SeedSource;
    use serde::{Deserialize, Deserializer};
    use std::path::Path;

    pub fn required<'de, D: Deserializer<'de>>(d: D) -> Result<SeedSource, D::Error> {
        Ok(SeedSource::parse(&String::deserialize(d)?, Path::new("")))
    }

    pub fn optional<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SeedSource>, D::Error> {
        Ok(Option::<String>::deserialize(d)?.map(|s| SeedSource::parse(&s, Path::new(""))))
    }
}

mod duration {
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

#[cfg(test)]
mod tests;
