//! Hot swap on one host: when a plugin's `wasm` or `config_file` changes
//! on disk, or on a reload request (SIGHUP re-reads portcullis.toml), the
//! registry loads a complete new chain off the request path and swaps it
//! in atomically; a change that fails any step is logged with the step and
//! the reason and the running chain keeps serving.
//!
//! Files are watched by polling their identity (inode, size, mtime): cheap
//! for a handful of files, and it sees the write-temp-then-rename that
//! editors and deploy tools do, where event APIs lose the watched inode.
//! Object store buckets (`nats-object://`) are watched with JetStream: a
//! new manifest for a plugin this host runs triggers the same reload.
//! OCI tags are re-resolved on a reload request and every `refresh`
//! interval; an unchanged digest leaves the running plugin as it is.

use crate::config::Config;
use crate::metrics::Metrics;
use crate::registry::Registry;
use async_nats::jetstream;
use futures::StreamExt;
use portcullis_protocol::logsafe::Escaped;
use portcullis_sources::PluginSource;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};
use tokio::sync::{mpsc, watch};

/// How often watched files are looked at.
pub const POLL: Duration = Duration::from_millis(100);
/// A change is loaded once the files have been unchanged this long, so a
/// burst of writes (or a copy in progress) becomes one reload.
pub const DEBOUNCE: Duration = Duration::from_millis(150);

/// Identity of one file as seen by `stat`; `None` while it does not exist.
type Fingerprint = Option<(u64, u64, SystemTime)>;

fn fingerprint(path: &Path) -> Fingerprint {
    let meta = std::fs::metadata(path).ok()?;
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(&meta);
    #[cfg(not(unix))]
    let inode = 0;
    Some((inode, meta.len(), meta.modified().ok()?))
}

/// The files whose change triggers a reload.
fn watched(config: &Config) -> Vec<PathBuf> {
    config
        .plugins
        .iter()
        .flat_map(|p| {
            p.source
                .file()
                .map(Path::to_owned)
                .into_iter()
                .chain(p.config_file.clone())
        })
        .collect()
}

fn fingerprints(paths: &[PathBuf]) -> Vec<Fingerprint> {
    paths.iter().map(|p| fingerprint(p)).collect()
}

/// Why a reload happened, for the log.
#[derive(Debug, Clone)]
enum Trigger {
    FileChanged,
    Requested,
    /// A new release in `nats-object://BUCKET/NAME`.
    Pushed(String),
    /// The `refresh` interval of registry plugins.
    Refresh,
}

impl std::fmt::Display for Trigger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Trigger::FileChanged => f.write_str("file changed"),
            Trigger::Requested => f.write_str("reload requested"),
            // Object names are chosen by whoever can write the bucket.
            Trigger::Pushed(what) => write!(f, "release pushed to nats-object://{}", Escaped(what)),
            Trigger::Refresh => f.write_str("registry refresh"),
        }
    }
}

/// Watch files and reload requests until `stop` turns true. `config` is
/// the configuration the running chain was built from.
pub async fn supervise(
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
    mut config: Config,
    mut requests: Option<mpsc::Receiver<()>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut paths = watched(&config);
    let mut seen = fingerprints(&paths);
    let mut tick = tokio::time::interval(POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let (pushed_tx, mut pushed_rx) = mpsc::channel(16);
    let mut buckets = BucketWatches::default();
    buckets.update(registry.sources().jetstream(), &config, &pushed_tx);
    let mut refresh = refresh_timer(&config);
    loop {
        let trigger = tokio::select! {
            _ = stop.changed() => return,
            _ = tick_or_never(&mut refresh) => Trigger::Refresh,
            Some(what) = pushed_rx.recv() => Trigger::Pushed(what),
            request = recv(&mut requests) => match request {
                Some(()) => Trigger::Requested,
                None => { requests = None; continue; }
            },
            _ = tick.tick() => {
                if fingerprints(&paths) == seen {
                    continue;
                }
                settle(&paths).await;
                Trigger::FileChanged
            }
        };
        tracing::debug!(%trigger, "reload triggered");
        if let Trigger::Requested = trigger {
            match Config::load(&config.path) {
                Ok(new) => {
                    config = new;
                    buckets.update(registry.sources().jetstream(), &config, &pushed_tx);
                    refresh = refresh_timer(&config);
                }
                Err(e) => {
                    metrics.reloaded(false);
                    tracing::error!(error = %e, "reload: configuration rejected, the running one stays");
                    continue;
                }
            }
        }
        // Take the fingerprints before loading, so a change made while
        // loading is seen on the next tick.
        paths = watched(&config);
        seen = fingerprints(&paths);
        let reloaded = registry.reload(&config.plugins).await;
        match &reloaded {
            Ok(false) => {
                tracing::debug!(%trigger, "reload: nothing changed");
                continue;
            }
            Ok(true) => {
                metrics.reloaded(true);
                // Loading may have compiled: the compiler's code is mapped
                // again, and not needed until the next reload.
                crate::resident::release_startup_code("reload");
            }
            Err(_) => metrics.reloaded(false),
        }
        match reloaded {
            Ok(_) => {
                let chain = registry.chain();
                let plugins: Vec<String> = chain
                    .plugins()
                    .iter()
                    .map(|p| format!("{}@{}", p.plugin.name(), &p.digest[..12]))
                    .collect();
                tracing::info!(%trigger, ?plugins, "reload: new plugin chain swapped in");
            }
            // The error may quote what a plugin's `configure` returned or
            // what a registry answered.
            Err(e) => {
                tracing::error!(%trigger, error = %Escaped(&e), "reload: rejected, the running plugins stay")
            }
        }
    }
}

/// One timer at the shortest `refresh` of the registry plugins: a reload
/// re-resolves every tag anyway.
fn refresh_timer(config: &Config) -> Option<tokio::time::Interval> {
    let every = config.plugins.iter().filter_map(|p| p.refresh).min()?;
    let mut timer = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    timer.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    Some(timer)
}

async fn tick_or_never(timer: &mut Option<tokio::time::Interval>) {
    match timer {
        Some(timer) => {
            timer.tick().await;
        }
        None => std::future::pending().await,
    }
}

async fn recv(requests: &mut Option<mpsc::Receiver<()>>) -> Option<()> {
    match requests {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}

/// Wait until the files stop changing (bounded: a file rewritten forever
/// is loaded as it is after a second).
async fn settle(paths: &[PathBuf]) {
    let mut last = fingerprints(paths);
    for _ in 0..(Duration::from_secs(1).as_millis() / DEBOUNCE.as_millis()) {
        tokio::time::sleep(DEBOUNCE).await;
        let now = fingerprints(paths);
        if now == last {
            return;
        }
        last = now;
    }
}

/// One JetStream watch per bucket the configuration loads plugins from;
/// each sends `BUCKET/NAME` when a manifest of a plugin in use changes.
#[derive(Default)]
struct BucketWatches {
    watching: BTreeMap<String, BTreeSet<String>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl BucketWatches {
    fn update(
        &mut self,
        js: Option<&jetstream::Context>,
        config: &Config,
        changed: &mpsc::Sender<String>,
    ) {
        let mut wanted: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        for plugin in &config.plugins {
            if let PluginSource::Object { bucket, name } = &plugin.source {
                wanted
                    .entry(bucket.clone())
                    .or_default()
                    .insert(name.clone());
            }
        }
        if wanted == self.watching {
            return;
        }
        for task in self.tasks.drain(..) {
            task.abort();
        }
        let Some(js) = js else {
            if !wanted.is_empty() {
                tracing::error!("plugins from object store buckets cannot be watched without NATS");
            }
            return;
        };
        for (bucket, names) in &wanted {
            self.tasks.push(tokio::spawn(watch_bucket(
                js.clone(),
                bucket.clone(),
                names.clone(),
                changed.clone(),
            )));
        }
        self.watching = wanted;
    }
}

impl Drop for BucketWatches {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// How long a lost bucket watch waits before it is re-created.
const REWATCH: Duration = Duration::from_secs(1);

async fn watch_bucket(
    js: jetstream::Context,
    bucket: String,
    names: BTreeSet<String>,
    changed: mpsc::Sender<String>,
) {
    let mut first = true;
    loop {
        if !first {
            tokio::time::sleep(REWATCH).await;
        }
        first = false;
        let store = match js.get_object_store(&bucket).await {
            Ok(store) => store,
            Err(e) => {
                tracing::warn!(%bucket, error = %e, "cannot open plugin bucket; retrying");
                continue;
            }
        };
        let mut watch = match store.watch().await {
            Ok(watch) => watch,
            Err(e) => {
                tracing::warn!(%bucket, error = %e, "cannot watch plugin bucket; retrying");
                continue;
            }
        };
        tracing::debug!(%bucket, ?names, "watching plugin bucket");
        // A release pushed between loading and watching would be missed:
        // look once now (an unchanged plugin is kept as it is).
        let _ = changed.try_send(format!("{bucket}/*"));
        while let Some(event) = watch.next().await {
            tracing::debug!(%bucket, ?event, "plugin bucket event");
            match event {
                Ok(info) if names.contains(&info.name) => {
                    let _ = changed.try_send(format!("{bucket}/{}", info.name));
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(%bucket, error = %e, "plugin bucket watch lost; re-watching");
                    break;
                }
            }
        }
    }
}
