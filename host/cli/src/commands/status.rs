//! `portcullis status`: every host of the fleet (from
//! `$SRV.STATS.portcullis`) with its version, plugins, requests answered
//! and their rate, as a table or one JSON document. The rate needs two
//! samples: the command asks twice, `--interval` apart, or with `--watch`
//! keeps asking and redraws, each rate over the last interval.

use super::fleet::{self, FLEET_WAIT};
use anyhow::Result;
use portcullis::admin::{self, FleetMember, HostStatus};
use serde::Serialize;
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// `--watch` without a value: as `watch(1)` and `nats server watch` do.
const DEFAULT_WATCH: &str = "2s";

#[derive(clap::Args, Debug)]
pub struct Args {
    #[command(flatten)]
    pub target: fleet::Target,
    /// Time between the two samples the rate is computed from.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub interval: Duration,
    /// Print one JSON document (with --watch, one per line) instead of a
    /// table.
    #[arg(long)]
    pub json: bool,
    /// Redraw every INTERVAL (default 2s) until Ctrl-C.
    #[arg(
        long,
        value_name = "INTERVAL",
        num_args = 0..=1,
        default_missing_value = DEFAULT_WATCH,
        value_parser = humantime::parse_duration
    )]
    pub watch: Option<Duration>,
    /// With --watch: stop after this many samples.
    #[arg(long, requires = "watch")]
    pub count: Option<u64>,
}

/// What `--json` prints: the hosts as the table shows them.
#[derive(Debug, Serialize)]
pub struct Report<'a> {
    pub hosts: Vec<HostReport<'a>>,
}

#[derive(Debug, Serialize)]
pub struct HostReport<'a> {
    #[serde(flatten)]
    pub status: &'a HostStatus,
    /// When the host started (RFC 3339).
    pub started: &'a str,
    /// Requests answered per second since the previous sample; `None`
    /// for a host that was not in it.
    pub rate: Option<f64>,
}

/// Two samples of the fleet and the time between them.
struct Sample<'a> {
    before: Option<&'a [FleetMember]>,
    now: &'a [FleetMember],
    elapsed: Duration,
}

impl Sample<'_> {
    fn rate(&self, status: &HostStatus) -> Option<f64> {
        let before = self
            .before?
            .iter()
            .find(|m| m.status.id == status.id)?
            .status
            .answered;
        let secs = self.elapsed.as_secs_f64();
        (secs > 0.0).then(|| status.answered.saturating_sub(before) as f64 / secs)
    }

    fn report(&self) -> Report<'_> {
        Report {
            hosts: self
                .now
                .iter()
                .map(|m| HostReport {
                    status: &m.status,
                    started: &m.started,
                    rate: self.rate(&m.status),
                })
                .collect(),
        }
    }

    fn table(&self) -> String {
        let mut out = format!(
            "{:<24} {:<8} {:<22} {:>10} {:>8} {:>8} {:>8} {:>6}  PLUGINS\n",
            "HOST", "VERSION", "STARTED", "ANSWERED", "RATE/s", "DENIED", "REJECTED", "BUSY"
        );
        for member in self.now {
            let s = &member.status;
            let rate = self
                .rate(s)
                .map(|r| format!("{r:.1}"))
                .unwrap_or_else(|| "-".into());
            let plugins: Vec<String> = s
                .plugins
                .iter()
                .map(|p| format!("{}@{}", p.name, &p.digest[..p.digest.len().min(12)]))
                .collect();
            out += &format!(
                "{:<24} {:<8} {:<22} {:>10} {:>8} {:>8} {:>8} {:>6}  {}\n",
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
        out += &format!("{} host(s)\n", self.now.len());
        out
    }

    fn render(&self, json: bool) -> Result<String> {
        Ok(if json {
            format!("{}\n", serde_json::to_string(&self.report())?)
        } else {
            self.table()
        })
    }
}

pub async fn run(args: Args) -> Result<ExitCode> {
    let client = args.target.connect().await?;
    if let Some(every) = args.watch {
        return watch(&client, every, args.count, args.json).await;
    }
    let first = admin::stats(&client, FLEET_WAIT).await?;
    let started = Instant::now();
    tokio::time::sleep(args.interval).await;
    let second = admin::stats(&client, FLEET_WAIT).await?;
    let sample = Sample {
        before: Some(&first),
        now: &second,
        elapsed: started.elapsed(),
    };
    print!("{}", sample.render(args.json)?);
    Ok(if second.is_empty() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Sample every `every` (each query bounded by [`FLEET_WAIT`]) and redraw,
/// until Ctrl-C, `count` samples, or stdout closes.
async fn watch(
    client: &async_nats::Client,
    every: Duration,
    count: Option<u64>,
    json: bool,
) -> Result<ExitCode> {
    // On a terminal the screen is redrawn in place; elsewhere (a pipe, a
    // file) samples follow each other.
    let redraw = !json && std::io::stdout().is_terminal();
    let mut previous: Option<(Vec<FleetMember>, Instant)> = None;
    for n in 1..=count.unwrap_or(u64::MAX) {
        let now = admin::stats(client, FLEET_WAIT).await?;
        let taken = Instant::now();
        let sample = Sample {
            before: previous.as_ref().map(|(m, _)| m.as_slice()),
            now: &now,
            elapsed: previous
                .as_ref()
                .map(|(_, at)| taken - *at)
                .unwrap_or_default(),
        };
        let mut screen = sample.render(json)?;
        if redraw {
            screen = format!(
                "\x1b[H\x1b[2Jevery {}, Ctrl-C to stop\n\n{screen}",
                humantime::format_duration(every)
            );
        } else if !json {
            screen.push('\n');
        }
        let written = {
            let mut stdout = std::io::stdout().lock();
            stdout
                .write_all(screen.as_bytes())
                .and_then(|()| stdout.flush())
        };
        if written.is_err() {
            break;
        }
        if Some(n) == count {
            break;
        }
        previous = Some((now, taken));
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = tokio::time::sleep(every) => {}
        }
    }
    Ok(ExitCode::SUCCESS)
}
