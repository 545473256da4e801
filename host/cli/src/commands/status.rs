//! `portcullis status`: every host of the fleet (from
//! `$SRV.STATS.portcullis`) with its version, plugins, requests answered
//! and their rate. The rate needs two samples, so the command asks twice,
//! `--interval` apart.

use super::fleet::{self, FLEET_WAIT};
use anyhow::Result;
use portcullis::admin;
use std::process::ExitCode;
use std::time::Duration;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub target: fleet::Target,
    /// Time between the two samples the rate is computed from.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub interval: Duration,
}

pub async fn run(args: Args) -> Result<ExitCode> {
    let interval = args.interval;
    let client = args.target.connect().await?;
    let ask = || admin::stats(&client, FLEET_WAIT);
    let first = ask().await?;
    tokio::time::sleep(interval).await;
    let second = ask().await?;
    println!(
        "{:<24} {:<8} {:<22} {:>10} {:>8} {:>8} {:>8} {:>6}  PLUGINS",
        "HOST", "VERSION", "STARTED", "ANSWERED", "RATE/s", "DENIED", "REJECTED", "BUSY"
    );
    for member in &second {
        let s = &member.status;
        let before = first
            .iter()
            .find(|m| m.status.id == s.id)
            .map(|m| m.status.answered);
        let rate = before
            .map(|b| {
                format!(
                    "{:.1}",
                    (s.answered - b.min(s.answered)) as f64 / interval.as_secs_f64()
                )
            })
            .unwrap_or_else(|| "-".into());
        let plugins: Vec<String> = s
            .plugins
            .iter()
            .map(|p| format!("{}@{}", p.name, &p.digest[..p.digest.len().min(12)]))
            .collect();
        println!(
            "{:<24} {:<8} {:<22} {:>10} {:>8} {:>8} {:>8} {:>6}  {}",
            format!("{}/{}", s.name, fleet::short(&s.id)),
            s.version,
            member.started.chars().take(19).collect::<String>(),
            s.answered,
            rate,
            s.denied,
            s.rejected,
            s.in_flight,
            plugins.join(", ")
        );
    }
    println!("{} host(s)", second.len());
    Ok(if second.is_empty() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}
