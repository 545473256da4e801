//! Wiring: from a validated [`Config`] to a serving host. Kept apart from
//! `main` so tests run the real host in-process with their own shutdown
//! signal and readiness notification.

use crate::callout::Callout;
use crate::config::{Config, DatabaseConfig, Mode, PluginConfig};
use crate::metrics::Metrics;
use crate::registry::{LoadError, Registry};
use crate::service::{self, ServiceError};
use crate::throttle::FailureLimits;
use portcullis_protocol::keys::{self, KeyError, Signer};
use portcullis_protocol::{AccountSigner, Signers, UserIssuer, Verifier};
use portcullis_runtime::{Runtime, RuntimeError, RuntimeOptions};
use portcullis_sources::Sources;
use std::collections::BTreeMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

#[derive(Debug, thiserror::Error)]
pub enum HostError {
    #[error("[callout] keys: {0}")]
    Keys(#[from] KeyError),
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    #[error(transparent)]
    Load(#[from] LoadError),
    #[error(transparent)]
    Service(#[from] ServiceError),
    #[error("[metrics] cannot listen on {0}: {1}")]
    Metrics(SocketAddr, #[source] std::io::Error),
    #[error(transparent)]
    Admin(#[from] crate::admin::AdminError),
    #[error(transparent)]
    Database(#[from] crate::databases::DatabaseError),
}

/// A configuration resolved once into what each crate needs: loaded keys
/// for the protocol, engine options for the runtime, sources built from
/// the cache directory and trusted signers, and the plugin entries for the
/// registry. Start-up reads the configuration here and nowhere else.
pub struct Parts {
    pub signers: Signers,
    pub verifier: Verifier,
    pub runtime: RuntimeOptions,
    pub sources: Sources,
    pub plugins: Vec<PluginConfig>,
    pub limits: FailureLimits,
    /// The host's connection, when it has one: granted KV buckets are
    /// watched over it.
    pub nats: Option<async_nats::Client>,
    /// `[databases]`: pooled when the host is built.
    pub databases: BTreeMap<String, DatabaseConfig>,
}

impl Parts {
    /// Load every key `config` names and build its sources (files and
    /// registries; buckets need [`Parts::with_nats`]).
    pub fn resolve(config: &Config) -> Result<Parts, KeyError> {
        Ok(Parts {
            signers: signers(config)?,
            verifier: Verifier {
                xkey: config.xkey_seed().map(keys::xkey).transpose()?,
                accept_unsealed: config.callout.accept_unsealed,
                servers: config.callout.servers.clone(),
                server_xkeys: config.callout.server_xkeys.clone(),
            },
            runtime: runtime_options(config),
            sources: sources(config),
            plugins: config.plugins.clone(),
            limits: config.limits.failure_limits(),
            nats: None,
            databases: config.databases.clone(),
        })
    }

    /// Also reach object store buckets and KV buckets through `client`.
    pub fn with_nats(self, client: async_nats::Client) -> Parts {
        Parts {
            sources: self.sources.with_nats(client.clone()),
            nats: Some(client),
            ..self
        }
    }
}

/// Engine options for `config`.
pub fn runtime_options(config: &Config) -> RuntimeOptions {
    RuntimeOptions {
        cache_dir: config.cache_dir(),
        cache_max_age: config.cache_max_age(),
        pool_instances: config.runtime.pool_instances,
        max_memory_bytes: config
            .plugins
            .iter()
            .map(|p| (p.memory_mb as usize) << 20)
            .max()
            .unwrap_or(0),
    }
}

/// Files and registries as `config` sets them up (trusted signers, cache
/// directory).
pub fn sources(config: &Config) -> Sources {
    Sources::new(
        config.cache_dir().as_deref(),
        config.trust.trusted_signers.clone(),
    )
}

/// Load keys and plugins from files and registries: everything needed to
/// answer requests (benchmarks and tests; `run` also reaches buckets).
pub async fn build(config: &Config) -> Result<Arc<Callout>, HostError> {
    build_from(Parts::resolve(config)?, Arc::new(Metrics::new())).await
}

/// Start the runtime and load every plugin of `parts`; the callout and
/// the runtime count into `metrics`.
pub async fn build_from(parts: Parts, metrics: Arc<Metrics>) -> Result<Arc<Callout>, HostError> {
    let mut runtime = Runtime::new(&parts.runtime)?;
    let counts = metrics.clone();
    runtime.count_log_drops(Arc::new(move |plugin, dropped| {
        counts.log_dropped(plugin, dropped)
    }));
    if let Some(client) = &parts.nats {
        runtime.serve_kv(Arc::new(crate::kv::KvStore::new(client.clone())));
    }
    if !parts.databases.is_empty() {
        let databases = crate::databases::Databases::new(&parts.databases)?;
        runtime.serve_sql(Arc::new(databases));
        tracing::info!(databases = ?parts.databases.keys().collect::<Vec<_>>(), "serving sql grants");
    }
    let registry = Registry::load(&parts.plugins, runtime, parts.sources).await?;
    for p in registry.chain().plugins() {
        tracing::info!(plugin = p.plugin.name(), origin = %p.origin, digest = %&p.digest[..12],
            signer = p.signer.as_deref().unwrap_or("-"), accounts = ?p.policy.accounts, "plugin loaded");
        if p.policy.max_expiry == crate::policy::MaxExpiry::Unlimited {
            tracing::warn!(
                plugin = p.plugin.name(),
                "max_expiry = \"unlimited\": users this plugin admits without asking for an expiry \
                 get a user JWT with no exp, which never expires"
            );
        }
    }
    Ok(Arc::new(Callout::new(
        parts.signers,
        parts.verifier,
        Arc::new(registry),
        parts.limits,
        metrics,
    )))
}

/// The signing keys `config` names, loaded.
pub fn signers(config: &Config) -> Result<Signers, KeyError> {
    let response = Signer::load(config.issuer_seed())?;
    let users = match config.callout.mode {
        Mode::Config => UserIssuer::Config(Box::new(response.clone())),
        Mode::Operator => {
            let mut accounts = BTreeMap::new();
            for (name, account) in &config.accounts {
                let key = Signer::load(&account.signing_seed)?;
                accounts.insert(
                    name.clone(),
                    AccountSigner {
                        account: account.public_key.clone(),
                        key,
                        scoped: account.scoped,
                    },
                );
            }
            UserIssuer::Operator(accounts)
        }
    };
    let response_account = config
        .callout
        .callout_account
        .clone()
        .filter(|account| account != response.public_key());
    Ok(Signers {
        response,
        response_account,
        users,
    })
}

/// How often the caches are pruned. Each prune also marks the running
/// plugins' compile-cache entries used, so a version is removed
/// `cache_max_age` (within a day) after the last host stopped running it.
const CACHE_PRUNE_INTERVAL: Duration = Duration::from_secs(24 * 3600);

/// Prune the compile cache and the registry pulls now and every
/// [`CACHE_PRUNE_INTERVAL`] until `stop` turns true.
async fn prune_cache(registry: Arc<Registry>, mut stop: watch::Receiver<bool>) {
    let mut every = tokio::time::interval(CACHE_PRUNE_INTERVAL);
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = every.tick() => {}
        }
        let runtime = registry.runtime().clone();
        let in_use: Vec<String> = registry
            .chain()
            .plugins()
            .iter()
            .map(|p| p.digest.clone())
            .collect();
        let sources = registry.sources().clone();
        let _ = tokio::task::spawn_blocking(move || {
            runtime.prune_cache(&in_use);
            if let Some(max_age) = runtime.cache_max_age() {
                sources.prune_cache(max_age);
            }
        })
        .await;
    }
}

/// A task that ends with the scope that started it, however that scope
/// is left (an error on the way to serving included).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// What the caller of [`run`] can observe and steer besides shutdown.
#[derive(Default)]
pub struct Hooks {
    /// Fires once the server has our subscription, with handles to watch
    /// the running host (tests; later the admin API).
    pub ready: Option<oneshot::Sender<Running>>,
    /// Each message re-reads the configuration file and swaps in its
    /// plugins (the CLI sends one per SIGHUP).
    pub reload: Option<mpsc::Receiver<()>>,
}

/// Handles to a running host.
pub struct Running {
    pub registry: Arc<Registry>,
    pub metrics: Arc<Metrics>,
    /// Where `/metrics` is served, when `[metrics]` is configured.
    pub metrics_addr: Option<SocketAddr>,
    /// This host's id in NATS service discovery (`$SRV.*.portcullis.ID`).
    pub service_id: String,
}

/// Connect, build the host and serve until `shutdown`, then drain. Plugin
/// sources are watched and swapped, metrics served and the host registered
/// with NATS service discovery while it runs.
pub async fn run(
    config: &Config,
    shutdown: impl Future<Output = ()>,
    hooks: Hooks,
) -> Result<(), HostError> {
    if config.callout.accept_unsealed {
        tracing::warn!(
            "[callout] accept_unsealed: unsealed requests are answered although xkey_seed is set; \
             anyone who can publish on the callout subject can make up a login. \
             Remove it once every server has the xkey"
        );
    }
    // Listening before anything slow (connecting, pulling and compiling
    // plugins): /healthz answers from the start and /readyz says 503 until
    // the host serves, so an orchestrator neither kills a host that is
    // still loading nor counts on it too early.
    let metrics = Arc::new(Metrics::new());
    let (_metrics_task, metrics_addr) = match &config.metrics {
        Some(m) => {
            let listener = tokio::net::TcpListener::bind(m.listen)
                .await
                .map_err(|e| HostError::Metrics(m.listen, e))?;
            let addr = listener
                .local_addr()
                .map_err(|e| HostError::Metrics(m.listen, e))?;
            tracing::info!(%addr, "serving /metrics, /healthz and /readyz");
            (
                Some(AbortOnDrop(tokio::spawn(crate::metrics::serve(
                    listener,
                    metrics.clone(),
                )))),
                Some(addr),
            )
        }
        None => (None, None),
    };
    // NATS may start after us (systemd, compose, Kubernetes start things
    // in any order): wait for it, and still obey a shutdown meanwhile.
    tokio::pin!(shutdown);
    let client = tokio::select! {
        client = service::connect_waiting(config) => client?,
        _ = &mut shutdown => {
            tracing::info!("shutdown requested before NATS was reached");
            return Ok(());
        }
    };
    let parts = Parts::resolve(config)?.with_nats(client.clone());
    let callout = build_from(parts, metrics.clone()).await?;
    let audit_task = config.audit.as_ref().map(|audit| {
        let (tx, rx) = mpsc::channel(crate::audit::BACKLOG);
        callout.audit_to(tx);
        tokio::spawn(crate::audit::publish_all(
            client.clone(),
            audit.subject.clone(),
            rx,
        ))
    });
    let registry = callout.registry().clone();
    let admin = crate::admin::start(
        &client,
        &config.nats.name,
        &config.nats.queue,
        registry.clone(),
        metrics.clone(),
    )
    .await?;
    let service_id = admin.id.clone();
    let (stop_tx, stop_rx) = watch::channel(false);
    let pruner_stop = stop_rx.clone();
    let supervisor = tokio::spawn(crate::reload::supervise(
        registry.clone(),
        metrics.clone(),
        config.clone(),
        hooks.reload,
        stop_rx,
    ));
    let (ready_tx, ready_rx) = oneshot::channel();
    let ready_hook = hooks.ready;
    tokio::spawn(async move {
        if ready_rx.await.is_err() {
            return;
        }
        tokio::spawn(prune_cache(registry.clone(), pruner_stop));
        crate::resident::release_startup_code("start-up");
        if let Some(ready) = ready_hook {
            let _ = ready.send(Running {
                registry,
                metrics,
                metrics_addr,
                service_id,
            });
        }
    });
    // Leave service discovery as soon as shutdown starts: a draining host
    // is no longer part of the fleet.
    let shutdown = async {
        shutdown.await;
        admin.stop().await;
    };
    let served = service::serve(
        client,
        &config.nats.queue,
        config.nats.max_in_flight,
        callout,
        shutdown,
        Some(ready_tx),
    )
    .await;
    let _ = stop_tx.send(true);
    let _ = supervisor.await;
    if let Some(task) = audit_task {
        // The callout (and the sender it held) is gone once serving
        // returned: the publisher drains what is queued and ends.
        let _ = tokio::time::timeout(service::DRAIN_TIMEOUT, task).await;
    }
    served?;
    Ok(())
}
