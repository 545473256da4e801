//! `[runtime]`: the Wasm engine's resources and the compile cache.

use super::{Invalid, invalid};
use serde::Deserialize;
use std::path::PathBuf;
use std::time::Duration;

/// How long an unused compiled component stays in the cache by default.
pub const DEFAULT_CACHE_MAX_AGE: Duration = Duration::from_secs(30 * 24 * 3600);

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
    /// Remove compiled components no host has loaded for this long, and
    /// registry pulls no reference names any more once this old; "0s"
    /// keeps them forever. Default [`DEFAULT_CACHE_MAX_AGE`].
    #[serde(default, with = "super::duration::option")]
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

impl RuntimeConfig {
    pub(super) fn validate(&self) -> Result<(), Invalid> {
        if self.workers.is_some_and(|w| !(1..=1024).contains(&w)) {
            return Err(invalid("runtime.workers", "must be between 1 and 1024"));
        }
        // Shorter would remove what other hosts sharing the directory may
        // still load, costing them a recompile (seconds for JS or Python).
        if self
            .cache_max_age
            .is_some_and(|age| !age.is_zero() && age < Duration::from_secs(3600))
        {
            return Err(invalid(
                "runtime.cache_max_age",
                "must be at least \"1h\", or \"0s\" to keep compiled components forever",
            ));
        }
        Ok(())
    }

    /// How long unused compiled components are kept; `None` = forever.
    pub fn cache_max_age(&self) -> Option<Duration> {
        match self.cache_max_age {
            Some(age) if age.is_zero() => None,
            Some(age) => Some(age),
            None => Some(DEFAULT_CACHE_MAX_AGE),
        }
    }

    /// The compiled-component cache directory, unless disabled.
    pub fn cache_dir(&self) -> Option<PathBuf> {
        if self.no_cache {
            return None;
        }
        self.cache_dir.clone().or_else(default_cache_dir)
    }
}

/// `$XDG_CACHE_HOME/portcullis`, else `~/.cache/portcullis`.
pub fn default_cache_dir() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .filter(|p| p.is_absolute())
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("portcullis"))
}
