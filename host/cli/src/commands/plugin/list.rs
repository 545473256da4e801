//! `portcullis plugin list`: per host of the fleet, the plugins it runs
//! (name, digest, signer, when it was loaded, where from), from the hosts'
//! `$SRV` service, as a table or JSON.

use crate::commands::fleet::{self, FLEET_WAIT};
use anyhow::Result;
use portcullis::admin;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub target: fleet::Target,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(args: Args) -> Result<ExitCode> {
    let client = args.target.connect().await?;
    let hosts = admin::fleet(&client, FLEET_WAIT).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&hosts)?);
    } else {
        let now = portcullis_protocol::time::unix_now().max(0) as u64;
        println!(
            "{:<24} {:<16} {:<14} {:<58} {:<12} ORIGIN",
            "HOST", "PLUGIN", "DIGEST", "SIGNER", "LOADED"
        );
        for host in &hosts {
            for p in &host.plugins {
                println!(
                    "{:<24} {:<16} {:<14} {:<58} {:<12} {}",
                    format!("{}/{}", host.name, fleet::short(&host.id)),
                    p.name,
                    &p.digest[..p.digest.len().min(12)],
                    p.signer.as_deref().unwrap_or("-"),
                    fleet::ago(p.loaded_at, now),
                    p.origin
                );
            }
        }
    }
    if hosts.is_empty() {
        eprintln!("no Portcullis host answered");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
