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

/// `then` (Unix seconds) as a person reads it next to `now`: "45s ago",
/// "3m 12s ago", "2h 5m ago"; a clock behind `then` reads "just now".
pub fn ago(then: u64, now: u64) -> String {
    match now.checked_sub(then) {
        Some(secs) if secs > 0 => format!("{} ago", human_duration(Duration::from_secs(secs))),
        _ => "just now".into(),
    }
}

/// A duration in its two largest units, to the second: "45s", "3m 12s",
/// "2h 5m", "3d 4h" (a zero second unit is left out: "2h").
pub fn human_duration(d: Duration) -> String {
    const UNITS: [(u64, &str); 4] = [(86_400, "d"), (3_600, "h"), (60, "m"), (1, "s")];
    let secs = d.as_secs();
    let Some(first) = UNITS.iter().position(|(size, _)| secs >= *size) else {
        return "0s".into();
    };
    let (size, unit) = UNITS[first];
    let mut out = format!("{}{unit}", secs / size);
    if let Some((next, next_unit)) = UNITS.get(first + 1) {
        let rest = secs % size / next;
        if rest > 0 {
            out += &format!(" {rest}{next_unit}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_in_their_two_largest_units() {
        let cases = [
            (0, "0s"),
            (45, "45s"),
            (60, "1m"),
            (192, "3m 12s"),
            (3_600, "1h"),
            (7_500, "2h 5m"),
            (7_259, "2h"),
            (86_400 * 3 + 3_600 * 4 + 59, "3d 4h"),
        ];
        for (secs, text) in cases {
            assert_eq!(human_duration(Duration::from_secs(secs)), text, "{secs}s");
        }
        assert_eq!(ago(1_000, 1_180), "3m ago");
        assert_eq!(ago(1_000, 1_000), "just now");
        assert_eq!(ago(2_000, 1_000), "just now", "a host clock ahead of ours");
    }
}
