//! Fleet commands: push, roll back and list plugin versions across every
//! host through NATS (the object store bucket and the `$SRV` service), and
//! print the fleet's status. They connect as the hosts do, with the
//! `[nats]` section of a portcullis.toml.

use anyhow::{Context, Result, bail};
use portcullis::admin;
use portcullis::config::Config;
use portcullis::service;
use portcullis_protocol::keys::SeedSource;
use portcullis_runtime::inspect;
use portcullis_sources::fleet::Bucket;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

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
    async fn connect(&self) -> Result<async_nats::Client> {
        let mut config = Config::load(&self.config)?;
        if let Some(url) = &self.nats_url {
            config.nats.servers = vec![url.clone()];
        }
        Ok(service::connect(&config).await?)
    }
}

/// Read a component and refuse what no host would load, before it
/// reaches the fleet or a registry.
pub fn read_loadable(wasm: &Path) -> Result<Vec<u8>> {
    let bytes = std::fs::read(wasm).with_context(|| format!("cannot read {}", wasm.display()))?;
    let info = inspect::inspect(&bytes).map_err(anyhow::Error::msg)?;
    match &info.plugin_version {
        Some(v) if inspect::compatible(v, portcullis_runtime::bindings::WIT_VERSION) => Ok(bytes),
        Some(v) => bail!(
            "{} targets portcullis:authenticator@{v}, which this version cannot load",
            wasm.display()
        ),
        None => bail!("{} is not a Portcullis plugin", wasm.display()),
    }
}

pub struct Push<'a> {
    pub target: &'a Target,
    pub bucket: &'a str,
    pub name: &'a str,
    pub wasm: &'a Path,
    pub config_file: Option<&'a Path>,
    pub signer: &'a str,
}

pub async fn push(push: Push<'_>) -> Result<ExitCode> {
    let bytes = read_loadable(push.wasm)?;
    let config = match push.config_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            serde_json::from_str::<serde_json::Value>(&text)
                .with_context(|| format!("{} is not valid JSON", path.display()))?;
            Some(text)
        }
        None => None,
    };
    let signer =
        portcullis_protocol::keys::user_key(&SeedSource::parse(push.signer, Path::new(".")))?;
    let client = push.target.connect().await?;
    let js = async_nats::jetstream::new(client);
    let bucket = Bucket::open(&js, push.bucket, true).await?;
    let release = bucket
        .push(push.name, &bytes, config.as_deref(), &signer)
        .await?;
    println!(
        "pushed {} to nats-object://{}/{}\n  sha256 {}\n  signer {}{}",
        push.wasm.display(),
        bucket.name(),
        push.name,
        release.wasm,
        release.signer,
        release
            .config
            .map(|c| format!("\n  config sha256 {c}"))
            .unwrap_or_default()
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn rollback(target: &Target, bucket: &str, name: &str) -> Result<ExitCode> {
    let client = target.connect().await?;
    let js = async_nats::jetstream::new(client);
    let bucket = Bucket::open(&js, bucket, false).await?;
    let release = bucket.rollback(name).await?;
    println!(
        "nats-object://{}/{name} is back at sha256 {} (signed by {})",
        bucket.name(),
        release.wasm,
        release.signer
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn list(target: &Target, json: bool) -> Result<ExitCode> {
    let client = target.connect().await?;
    let hosts = admin::fleet(&client, FLEET_WAIT).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&hosts)?);
    } else {
        println!(
            "{:<24} {:<16} {:<14} {:<58} {:<10} LOADED",
            "HOST", "PLUGIN", "DIGEST", "SIGNER", "AGE"
        );
        for host in &hosts {
            for p in &host.plugins {
                println!(
                    "{:<24} {:<16} {:<14} {:<58} {:<10} {}",
                    format!("{}/{}", host.name, short(&host.id)),
                    p.name,
                    &p.digest[..p.digest.len().min(12)],
                    p.signer.as_deref().unwrap_or("-"),
                    age(p.loaded_at),
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

pub async fn status(target: &Target, interval: Duration) -> Result<ExitCode> {
    let client = target.connect().await?;
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
            format!("{}/{}", s.name, short(&s.id)),
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

fn short(id: &str) -> &str {
    &id[..id.len().min(8)]
}

fn age(loaded_at: u64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    format!("{}s", now.saturating_sub(loaded_at))
}
