//! The loaded plugins, in chain order, behind an atomic pointer so that a
//! new chain can replace the old one without stopping logins: requests that
//! already hold the old chain finish on it.

use crate::config::{ConfigError, PluginConfig};
use crate::policy::PluginPolicy;
use crate::routing::Match;
use arc_swap::ArcSwap;
use portcullis_runtime::bindings::{AuthRequest, Decision, Grant, clean_text};
use portcullis_runtime::{
    CallError, Capabilities, Compiling, LogLimits, Plugin, PluginLimits, Runtime, RuntimeError,
};
use portcullis_sources::{SourceError, Sources};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant, SystemTime};

/// `configure` may parse a large directory; it gets this multiple of the
/// per-login deadline, and at least one second.
const CONFIGURE_TIMEOUT_FACTOR: u32 = 10;
const MIN_CONFIGURE_TIMEOUT: Duration = Duration::from_secs(1);

/// A compile still running after this gets a line saying why the load is
/// slow: a JavaScript or Python component takes seconds the first time,
/// milliseconds once its artifact is in the compile cache.
const SLOW_COMPILE_NOTICE: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("plugin {name}: fetch: {source}")]
    Fetch {
        name: String,
        #[source]
        source: SourceError,
    },
    #[error("plugin {name} ({origin}): compile: {source}")]
    Runtime {
        name: String,
        origin: String,
        #[source]
        source: RuntimeError,
    },
    #[error("plugin {name}: configuration: {source}")]
    Config {
        name: String,
        #[source]
        source: ConfigError,
    },
    #[error("plugin {name}: grants: {message}")]
    Grant { name: String, message: String },
    #[error("plugin {name} ({origin}): smoke test: {message}")]
    SmokeTest {
        name: String,
        origin: String,
        message: String,
    },
    #[error("plugin {name} ({origin}): grants: {source}")]
    Kv {
        name: String,
        origin: String,
        #[source]
        source: portcullis_runtime::capabilities::kv::KvOpenError,
    },
    #[error("plugin {name} ({origin}): configure: {source}")]
    Start {
        name: String,
        origin: String,
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
    /// Where it came from (file path or `nats-object://` URL).
    pub origin: String,
    /// Public NKey that signed this version (pushed plugins).
    pub signer: Option<String>,
    pub loaded_at: SystemTime,
    /// Everything that shaped this instance (component, configuration,
    /// limits, policy): a reload that finds the same identity keeps the
    /// running plugin, with its warm instances and load time.
    identity: String,
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
    sources: Sources,
    chain: ArcSwap<Chain>,
}

impl Registry {
    /// Load every plugin of `plugins`, in chain order; the first failure
    /// is returned.
    pub async fn load(
        plugins: &[PluginConfig],
        runtime: Runtime,
        sources: Sources,
    ) -> Result<Registry, LoadError> {
        let empty = Chain {
            plugins: Vec::new(),
        };
        let chain = load_chain(&runtime, &sources, plugins, &empty).await?;
        Ok(Registry {
            runtime,
            sources,
            chain: ArcSwap::from_pointee(chain),
        })
    }

    /// Load every plugin of `plugins` off the request path (fetched,
    /// compiled or taken from the cache, instantiated, configured) and only
    /// then swap the new chain in atomically. Logins in flight finish on
    /// the chain they started with. On any failure the running chain stays.
    /// Plugins whose component, configuration and limits did not change are
    /// carried over as they are; `Ok(false)` when that is all of them, in
    /// the same order (nothing to swap).
    pub async fn reload(&self, plugins: &[PluginConfig]) -> Result<bool, LoadError> {
        let running = self.chain();
        let chain = load_chain(&self.runtime, &self.sources, plugins, &running).await?;
        let unchanged = chain.plugins.len() == running.plugins.len()
            && chain
                .plugins
                .iter()
                .zip(&running.plugins)
                .all(|(new, old)| Arc::ptr_eq(new, old));
        if unchanged {
            return Ok(false);
        }
        self.chain.store(Arc::new(chain));
        Ok(true)
    }

    pub fn sources(&self) -> &Sources {
        &self.sources
    }

    /// The chain as it is now.
    pub fn chain(&self) -> Arc<Chain> {
        self.chain.load_full()
    }

    pub fn runtime(&self) -> &Runtime {
        &self.runtime
    }
}

async fn load_chain(
    runtime: &Runtime,
    sources: &Sources,
    configs: &[PluginConfig],
    running: &Chain,
) -> Result<Chain, LoadError> {
    let mut plugins = Vec::with_capacity(configs.len());
    for plugin in configs {
        let (fetched, config_json) = fetch(sources, plugin).await?;
        let identity = identity(plugin, &fetched.digest, &config_json);
        let kept = running
            .plugins
            .iter()
            .find(|p| p.plugin.name() == plugin.name && p.identity == identity);
        plugins.push(match kept {
            Some(p) => p.clone(),
            None => Arc::new(start(runtime, plugin, fetched, config_json, identity).await?),
        });
    }
    Ok(Chain { plugins })
}

fn identity(config: &PluginConfig, digest: &str, config_json: &str) -> String {
    portcullis_protocol::digest::sha256_hex(
        format!("{config:?}\n{digest}\n{config_json}").as_bytes(),
    )
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
        log: LogLimits {
            lines: config.log_lines,
            bytes: usize::try_from(config.log_bytes.0).unwrap_or(usize::MAX),
        },
    }
}

/// Fetch, compile (or take from the cache), link, instantiate and
/// configure one plugin.
pub async fn load_plugin(
    runtime: &Runtime,
    sources: &Sources,
    config: &PluginConfig,
) -> Result<LoadedPlugin, LoadError> {
    let (fetched, config_json) = fetch(sources, config).await?;
    let identity = identity(config, &fetched.digest, &config_json);
    start(runtime, config, fetched, config_json, identity).await
}

/// The component and the configuration it will be given: the one shipped
/// with a pushed release, else the plugin's `config` / `config_file`.
async fn fetch(
    sources: &Sources,
    config: &PluginConfig,
) -> Result<(portcullis_sources::Fetched, String), LoadError> {
    let fetched = sources
        .fetch(&config.source)
        .await
        .map_err(|source| LoadError::Fetch {
            name: config.name.clone(),
            source,
        })?;
    let config_json = match &fetched.config {
        Some(text) => text.clone(),
        None => config.config_json().map_err(|source| LoadError::Config {
            name: config.name.clone(),
            source,
        })?,
    };
    Ok((fetched, config_json))
}

async fn start(
    runtime: &Runtime,
    config: &PluginConfig,
    fetched: portcullis_sources::Fetched,
    config_json: String,
    identity: String,
) -> Result<LoadedPlugin, LoadError> {
    let name = config.name.clone();
    let origin = config.source.to_string();
    let bytes = fetched.bytes;
    let digest = fetched.digest;
    // Compiling takes milliseconds to seconds of CPU: keep it off the
    // async workers that answer logins.
    let rt = runtime.clone();
    let compile_error = |source| LoadError::Runtime {
        name: name.clone(),
        origin: origin.clone(),
        source,
    };
    let key = digest.clone();
    let compiling = Arc::new(OnceLock::new());
    let noted = compiling.clone();
    let preparing = tokio::task::spawn_blocking(move || {
        rt.prepare_noting(&bytes, &key, |c| {
            let _ = noted.set(c);
        })
    });
    let pre = noting_slow_compile(&name, preparing, &compiling)
        .await
        .map_err(|e| compile_error(RuntimeError::Compile(e.to_string())))?
        .map_err(compile_error)?;
    let http = config
        .grants
        .http_grant()
        .map_err(|message| LoadError::Grant {
            name: name.clone(),
            message,
        })?;
    // Granted buckets are watched before the plugin configures, so its
    // first login reads a current copy; a missing bucket fails the load.
    let kv = runtime
        .open_kv(&config.grants.kv)
        .await
        .map_err(|source| LoadError::Kv {
            name: name.clone(),
            origin: origin.clone(),
            source,
        })?;
    let plugin = Plugin::granted(
        &name,
        pre,
        limits(config),
        config_json,
        runtime.log_drop_hook(),
        Capabilities {
            sql: runtime.sql_grant(&config.grants.sql),
            http,
            kv,
        },
    )
    .await
    .map_err(|source| LoadError::Start {
        name: name.clone(),
        origin: origin.clone(),
        source,
    })?;
    let policy = config.policy();
    if let Some(dir) = &config.vectors {
        smoke_test(&plugin, &policy, dir)
            .await
            .map_err(|message| LoadError::SmokeTest {
                name: name.clone(),
                origin: origin.clone(),
                message,
            })?;
    }
    Ok(LoadedPlugin {
        plugin,
        policy,
        digest,
        origin,
        signer: fetched.signer,
        loaded_at: SystemTime::now(),
        identity,
        route: config.route.clone(),
    })
}

/// Run the plugin's conformance vectors; the failures, when any.
async fn smoke_test(
    plugin: &Plugin,
    policy: &PluginPolicy,
    dir: &std::path::Path,
) -> Result<(), String> {
    let vectors = crate::vectors::load_dir(dir).map_err(|e| e.to_string())?;
    let report = crate::vectors::run(plugin, &vectors, Some(policy)).await;
    if report.ok() {
        return Ok(());
    }
    let failures: Vec<String> = report
        .failures()
        .take(3)
        .map(|r| match &r.outcome {
            crate::vectors::Outcome::Fail(why) => format!("{}: {}", r.id, why.join("; ")),
            crate::vectors::Outcome::Error(why) => format!("{}: {why}", r.id),
            crate::vectors::Outcome::Pass => r.id.clone(),
        })
        .collect();
    Err(format!(
        "{} of {} vectors in {} failed: {}",
        report.failed(),
        vectors.len(),
        dir.display(),
        failures.join(" | ")
    ))
}

/// Await `preparing`; if it is still compiling after
/// [`SLOW_COMPILE_NOTICE`], say so (and, when done, how long it took).
/// A fast load, or a slow one that is not compiling, logs nothing.
async fn noting_slow_compile<T>(
    name: &str,
    mut preparing: tokio::task::JoinHandle<T>,
    compiling: &OnceLock<Compiling>,
) -> Result<T, tokio::task::JoinError> {
    let started = Instant::now();
    tokio::select! {
        joined = &mut preparing => return joined,
        _ = tokio::time::sleep(SLOW_COMPILE_NOTICE) => {}
    }
    match compiling.get() {
        Some(Compiling::Cached) => {
            tracing::info!(plugin = %name, "compiling {name} (first load, cached afterwards)")
        }
        Some(Compiling::Uncached) => {
            tracing::info!(plugin = %name, "compiling {name} (no compile cache: every load compiles)")
        }
        None => return preparing.await,
    }
    let joined = preparing.await;
    tracing::info!(
        plugin = %name,
        "compiled {name} in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    joined
}
