//! `portcullis run`: the host itself. Serves authorization requests until
//! SIGINT or SIGTERM, then drains; SIGHUP reloads the configuration.

use crate::connection::{self, Env, NatsFlags};
use anyhow::Result;
use portcullis::config::Config;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(short, long, default_value = "portcullis.toml")]
    pub config: PathBuf,
    /// Overrides of `[nats]`: server, credentials, a nats context (the
    /// one `nats context select` chose is never used by `run`).
    #[command(flatten)]
    pub nats: NatsFlags,
}

pub async fn run(args: Args) -> Result<ExitCode> {
    let mut config = Config::load(&args.config)?;
    let changed = connection::apply_overrides(&args.nats, &Env::from_process(), &mut config.nats)?;
    if !changed.is_empty() {
        tracing::info!(overrides = %changed.join(", "), "[nats] overridden");
    }
    let (reload_tx, reload_rx) = tokio::sync::mpsc::channel(1);
    forward_sighup(reload_tx);
    let hooks = portcullis::host::Hooks {
        reload: Some(reload_rx),
        ..Default::default()
    };
    portcullis::host::run(&config, shutdown_signal(), hooks).await?;
    Ok(ExitCode::SUCCESS)
}

/// Each SIGHUP becomes a reload request (several pending ones fold into one).
fn forward_sighup(reload: tokio::sync::mpsc::Sender<()>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::hangup()) {
            Ok(mut hup) => {
                tokio::spawn(async move {
                    while hup.recv().await.is_some() {
                        tracing::info!("SIGHUP: reloading the configuration");
                        let _ = reload.try_send(());
                    }
                });
            }
            Err(e) => tracing::warn!(error = %e, "cannot watch SIGHUP; reload by restarting"),
        }
    }
    #[cfg(not(unix))]
    let _ = reload;
}

/// Resolves on the first SIGINT or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {},
                    _ = term.recv() => {},
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch SIGTERM; only SIGINT stops the host");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
    tracing::info!("shutdown requested");
}
