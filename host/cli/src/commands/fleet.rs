//! What the fleet commands (`status`, `plugin push`, `plugin rollback`,
//! `plugin list`) share: they reach every host through NATS (the object
//! store bucket and the `$SRV` service), connecting as the hosts do, with
//! the `[nats]` section of a portcullis.toml.

use anyhow::Result;
use portcullis::config::Config;
use portcullis::service;
use std::path::PathBuf;
use std::time::Duration;

/// How long fleet queries wait for the first host to answer.
pub const FLEET_WAIT: Duration = Duration::from_secs(2);

/// Where to connect: a config file's `[nats]`, optionally another URL.
#[derive(clap::Args, Debug)]
pub struct Target {
    #[arg(short, long, default_value = "portcullis.toml")]
    pub config: PathBuf,
    /// Connect to this NATS URL instead of `[nats] servers`.
    #[arg(long)]
    pub nats_url: Option<String>,
}

impl Target {
    pub async fn connect(&self) -> Result<async_nats::Client> {
        let mut config = Config::load(&self.config)?;
        if let Some(url) = &self.nats_url {
            config.nats.servers = vec![url.clone()];
        }
        Ok(service::connect(&config).await?)
    }
}

/// A host id short enough for a table column.
pub fn short(id: &str) -> &str {
    &id[..id.len().min(8)]
}
