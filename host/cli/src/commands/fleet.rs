//! What the fleet commands (`status`, `plugin push`, `plugin rollback`,
//! `plugin list`) share: they reach every host through NATS (the object
//! store bucket and the `$SRV` service). They connect as the nats CLI
//! would (flags, `NATS_*`, contexts; see [`crate::connection`]), over a
//! portcullis.toml's `[nats]` when there is one, so an operator needs
//! neither that file nor the issuer seed on a laptop.

use crate::connection::{self, Env, NatsFlags};
use anyhow::Result;
use portcullis::config::Config;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// How long fleet queries wait for the first host to answer.
pub const FLEET_WAIT: Duration = Duration::from_secs(2);

/// The config file client commands read when none is given, if it exists.
const DEFAULT_CONFIG: &str = "portcullis.toml";

/// The name client commands connect with (server monitoring shows it).
const CLIENT_NAME: &str = "portcullis-cli";

/// Where to connect.
#[derive(clap::Args, Debug)]
pub struct Target {
    /// A portcullis.toml whose `[nats]` to start from [default:
    /// ./portcullis.toml if it exists; without one, flags, NATS_* and
    /// nats contexts decide alone].
    #[arg(short, long)]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub nats: NatsFlags,
}

impl Target {
    pub async fn connect(&self) -> Result<async_nats::Client> {
        let config = match &self.config {
            Some(path) => Some(Config::load(path)?),
            None if Path::new(DEFAULT_CONFIG).exists() => {
                Some(Config::load(Path::new(DEFAULT_CONFIG))?)
            }
            None => None,
        };
        let resolved = connection::resolve(
            &self.nats,
            &Env::from_process(),
            config.as_ref().map(|c| &c.nats),
        )?;
        if let Some((name, description)) = &resolved.context {
            tracing::debug!(context = %name, %description, "using a nats context");
        }
        Ok(connection::connect(&resolved, CLIENT_NAME).await?)
    }
}

/// A host id short enough for a table column.
pub fn short(id: &str) -> &str {
    &id[..id.len().min(8)]
}

