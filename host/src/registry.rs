//! The loaded plugins, in chain order, behind an atomic pointer so that a
//! new chain can replace the old one without stopping logins: requests that
//! already hold the old chain finish on it.

use crate::config::{Config, ConfigError, PluginConfig};
use crate::policy::PluginPolicy;
use crate::routing::Match;
use crate::runtime::bindings::{AuthRequest, Decision, Grant, clean_text};
use crate::runtime::{CallError, Plugin, PluginLimits, Runtime, RuntimeError};
use arc_swap::ArcSwap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// `configure` may parse a large directory; it gets this multiple of the
/// per-login deadline, and at least one second.
const CONFIGURE_TIMEOUT_FACTOR: u32 = 10;
const MIN_CONFIGURE_TIMEOUT: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("plugin {name}: cannot read {}: {source}", path.display())]
    Read {
        name: String,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("plugin {name} ({}): {source}", path.display())]
    Runtime {
        name: String,
        path: PathBuf,
        #[source]
        source: RuntimeError,
    },
    #[error("plugin {name}: {source}")]
    Config {
        name: String,
        #[source]
        source: ConfigError,
    },
    #[error("plugin {name} ({}) did not start: {source}", path.display())]
    Start {
        name: String,
        path: PathBuf,
        #[source]
        source: CallError,
    },
}

/// A plugin ready to serve, with the host policy that applies to it.
pub struct LoadedPlugin {
    pub plugin: Plugin,
    pub policy: PluginPolicy,
    /// SHA-256 of the component, hex.
    pub digest: String,
    /// Which logins it is asked about; `None` = all.
    pub route: Option<Match>,
}

/// How the chain answered one login.
pub enum ChainOutcome {
    /// A plugin allowed; its grant still has to pass host policy.
    Allow {
        plugin: Arc<LoadedPlugin>,
        grant: Box<Grant>,
    },
    /// A plugin denied.
    Deny { plugin: String, reason: String },
    /// A plugin failed (trap, timeout, out of memory, busy): a deny.
    Failed { plugin: String, error: CallError },
    /// Every plugin abstained: a deny.
    NoDecision,
}

pub struct Chain {
    plugins: Vec<Arc<LoadedPlugin>>,
}

impl Chain {
    /// Ask the plugins in order; the first allow or deny wins. A plugin
    /// whose `match` does not apply is skipped as if it abstained.
    pub async fn decide(&self, request: &AuthRequest) -> ChainOutcome {
        for loaded in &self.plugins {
            if loaded.route.as_ref().is_some_and(|m| !m.applies(request)) {
                continue;
            }
            let name = loaded.plugin.name().to_owned();
            match loaded.plugin.authenticate(request).await {
                Ok(Decision::Abstain) => continue,
                Ok(Decision::Allow(grant)) => {
                    return ChainOutcome::Allow {
                        plugin: loaded.clone(),
                        grant: Box::new(grant),
                    };
                }
                Ok(Decision::Deny(reason)) => {
                    return ChainOutcome::Deny {
                        plugin: name,
                        reason: clean_text(&reason),
                    };
                }
                // Fail closed: a broken plugin denies, it does not pass the
                // login on to a more lenient one.
                Err(error) => {
                    return ChainOutcome::Failed {
                        plugin: name,
                        error,
                    };
                }
            }
        }
        ChainOutcome::NoDecision
    }

    pub fn plugins(&self) -> &[Arc<LoadedPlugin>] {
        &self.plugins
    }
}

pub struct Registry {
    runtime: Runtime,
    chain: ArcSwap<Chain>,
}

impl Registry {
    /// Load every plugin of `config`; the first failure is returned.
    pub async fn load(config: &Config, runtime: Runtime) -> Result<Registry, LoadError> {
        let chain = load_chain(&runtime, config).await?;
        Ok(Registry {
            runtime,
            chain: ArcSwap::from_pointee(chain),
        })
    }

    /// Load every plugin of `config` off the request path (compiled or
    /// from the cache, instantiated, configured) and only then swap the new
    /// chain in atomically. Logins in flight finish on the chain they
    /// started with. On any failure the running chain stays.
    pub async fn reload(&self, config: &Config) -> Result<(), LoadError> {
        let chain = load_chain(&self.runtime, config).await?;
        self.chain.store(Arc::new(chain));
        Ok(())
    }

    /// The chain as it is now.
    pub fn chain(&self) -> Arc<Chain> {
        self.chain.load_full()
    }

    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }
}

async fn load_chain(runtime: &Runtime, config: &Config) -> Result<Chain, LoadError> {
    let mut plugins = Vec::with_capacity(config.plugins.len());
    for plugin in &config.plugins {
        plugins.push(Arc::new(load_plugin(runtime, plugin).await?));
    }
    Ok(Chain { plugins })
}

/// The limits `config` sets for one plugin.
pub fn limits(config: &PluginConfig) -> PluginLimits {
    let timeout = Duration::from_millis(config.timeout_ms);
    PluginLimits {
        timeout,
        configure_timeout: (timeout * CONFIGURE_TIMEOUT_FACTOR).max(MIN_CONFIGURE_TIMEOUT),
        memory_bytes: (config.memory_mb as usize) << 20,
        max_concurrency: config.max_concurrency,
        // A login waits at most one call's budget for a free instance.
        queue_timeout: timeout,
    }
}

/// Read, compile (or take from the cache), link, instantiate and configure
/// one plugin.
pub async fn load_plugin(
    runtime: &Runtime,
    config: &PluginConfig,
) -> Result<LoadedPlugin, LoadError> {
    let name = config.name.clone();
    let path = config.wasm.clone();
    let bytes = tokio::fs::read(&path)
        .await
        .map_err(|source| LoadError::Read {
            name: name.clone(),
            path: path.clone(),
            source,
        })?;
    let digest = crate::runtime::sha256_hex(&bytes);
    let config_json = config.config_json().map_err(|source| LoadError::Config {
        name: name.clone(),
        source,
    })?;
    // Compiling takes milliseconds to seconds of CPU: keep it off the
    // async workers that answer logins.
    let rt = runtime.clone();
    let pre = tokio::task::spawn_blocking(move || rt.prepare(&bytes))
        .await
        .map_err(|e| LoadError::Runtime {
            name: name.clone(),
            path: path.clone(),
            source: RuntimeError::Compile(e.to_string()),
        })?
        .map_err(|source| LoadError::Runtime {
            name: name.clone(),
            path: path.clone(),
            source,
        })?;
    let plugin = Plugin::new(&name, pre, limits(config), config_json)
        .await
        .map_err(|source| LoadError::Start {
            name: name.clone(),
            path: path.clone(),
            source,
        })?;
    Ok(LoadedPlugin {
        plugin,
        policy: PluginPolicy {
            accounts: config.accounts.clone(),
            max_expiry: config.max_expiry,
        },
        digest,
        route: config.route.clone(),
    })
}
