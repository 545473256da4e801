//! The host in-process, as `portcullis run` runs it: tests reach into its
//! registry and metrics, and trigger reloads without signals.

use crate::WAIT;
use anyhow::{Context, Result, bail};
use std::time::{Duration, Instant};

/// The host running in-process. Shut down (and drained) on drop.
pub struct Host {
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), portcullis::host::HostError>>>,
    /// The live registry: the plugin chain serving now.
    pub registry: std::sync::Arc<portcullis::registry::Registry>,
    /// The host's metrics: reload counts, the service's in-flight count.
    pub metrics: std::sync::Arc<portcullis::metrics::Metrics>,
    /// Where `/metrics` is served, when configured.
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// The host's id in NATS service discovery.
    pub service_id: String,
    reload: tokio::sync::mpsc::Sender<()>,
}

/// Host logs on stderr when `PORTCULLIS_TEST_LOG` is set (a filter such
/// as `portcullis=debug`), for debugging a failing test.
fn init_test_logging() {
    static INIT: std::sync::Once = std::sync::Once::new();
    INIT.call_once(|| {
        if let Ok(filter) = std::env::var("PORTCULLIS_TEST_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
                .with_test_writer()
                .try_init();
        }
    });
}

impl Host {
    /// Start the host and wait until it is subscribed.
    pub async fn start(config: portcullis::config::Config) -> Result<Host> {
        init_test_logging();
        let (shutdown_tx, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let (reload_tx, reload_rx) = tokio::sync::mpsc::channel(1);
        let hooks = portcullis::host::Hooks {
            ready: Some(ready_tx),
            reload: Some(reload_rx),
        };
        let task = tokio::spawn(async move {
            portcullis::host::run(
                &config,
                async {
                    let _ = shutdown_rx.await;
                },
                hooks,
            )
            .await
        });
        match tokio::time::timeout(WAIT, ready_rx).await {
            Ok(Ok(running)) => Ok(Host {
                shutdown: Some(shutdown_tx),
                task: Some(task),
                registry: running.registry,
                metrics: running.metrics,
                metrics_addr: running.metrics_addr,
                service_id: running.service_id,
                reload: reload_tx,
            }),
            _ => {
                let err = match tokio::time::timeout(Duration::from_secs(1), task).await {
                    Ok(Ok(Err(e))) => e.to_string(),
                    _ => "no error reported".into(),
                };
                bail!("host did not become ready: {err}")
            }
        }
    }

    /// What SIGHUP does: re-read the configuration file and swap.
    pub async fn request_reload(&self) -> Result<()> {
        self.reload.send(()).await.context("host stopped")
    }

    /// Wait until the host has swapped or rejected `n` more reloads than
    /// in `before`; the counts then.
    pub async fn wait_for_swaps(
        &self,
        before: portcullis::metrics::ReloadCounts,
        swapped: u64,
        rejected: u64,
    ) -> Result<portcullis::metrics::ReloadCounts> {
        let deadline = Instant::now() + WAIT;
        loop {
            let now = self.metrics.reload_counts();
            if now.swapped >= before.swapped + swapped && now.rejected >= before.rejected + rejected
            {
                return Ok(now);
            }
            if Instant::now() > deadline {
                bail!(
                    "expected +{swapped} swaps and +{rejected} rejections since {before:?}, have {now:?}"
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stop and drain; the host's own result.
    pub async fn stop(mut self) -> Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let task = self.task.take().context("already stopped")?;
        tokio::time::timeout(WAIT, task)
            .await
            .context("host did not stop")???;
        Ok(())
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}
