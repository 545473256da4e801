//! Hot swap on one host: when a plugin's `wasm` or `config_file` changes
//! on disk, or on a reload request (SIGHUP re-reads portcullis.toml), the
//! registry loads a complete new chain off the request path and swaps it
//! in atomically; a change that fails any step is logged with the step and
//! the reason and the running chain keeps serving.
//!
//! Files are watched by polling their identity (inode, size, mtime): cheap
//! for a handful of files, and it sees the write-temp-then-rename that
//! editors and deploy tools do, where event APIs lose the watched inode.

use crate::config::Config;
use crate::metrics::Metrics;
use crate::registry::Registry;
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
        .flat_map(|p| std::iter::once(p.wasm.clone()).chain(p.config_file.clone()))
        .collect()
}

fn fingerprints(paths: &[PathBuf]) -> Vec<Fingerprint> {
    paths.iter().map(|p| fingerprint(p)).collect()
}

/// Why a reload happened, for the log.
#[derive(Debug, Clone, Copy)]
enum Trigger {
    FileChanged,
    Requested,
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
    loop {
        let trigger = tokio::select! {
            _ = stop.changed() => return,
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
        if let Trigger::Requested = trigger {
            match Config::load(&config.path) {
                Ok(new) => config = new,
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
        let reloaded = registry.reload(&config).await;
        metrics.reloaded(reloaded.is_ok());
        match reloaded {
            Ok(()) => {
                let chain = registry.chain();
                let plugins: Vec<String> = chain
                    .plugins()
                    .iter()
                    .map(|p| format!("{}@{}", p.plugin.name(), &p.digest[..12]))
                    .collect();
                tracing::info!(?trigger, ?plugins, "reload: new plugin chain swapped in");
            }
            Err(e) => {
                tracing::error!(?trigger, error = %e, "reload: rejected, the running plugins stay")
            }
        }
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
