//! `portcullis-bench`: how many logins per second Portcullis answers, at
//! what latency and for how much CPU and memory, next to nats-server's own
//! static users (the ceiling) and per plugin language.
//!
//! - `portcullis-bench load`: the load generator (one JSON line on stdout).
//! - `portcullis-bench storm`: a reconnect storm, N clients at once with
//!   jittered backoff retries (one JSON line on stdout); `bench/storm`
//!   runs it against Portcullis and callout.go side by side.
//! - `portcullis-bench run`: the side-by-side runner; writes
//!   docs/benchmarks.md (between its markers) and docs/benchmarks.svg.
//!   `bench/run` builds everything and calls it.

mod deploy;
mod load;
mod plot;
// The test harness's PostgreSQL (initdb + pg_ctl on an ephemeral loopback
// port, as the postgres user when root), compiled into the bench rather
// than copied: the `sql` target's database. The bench needs no TLS server,
// which the tests start from the same file.
#[path = "../../tests/postgres.rs"]
#[allow(dead_code)]
mod postgres;
// The oidc targets' identity provider: the test harness's keys, token
// signing and HTTP provider (discovery + JWKS with Cache-Control and ETag),
// compiled in rather than copied, as for PostgreSQL.
#[path = "../../tests/http_service.rs"]
#[allow(dead_code)]
mod http_service;
#[path = "../../tests/idp.rs"]
#[allow(dead_code)]
mod idp;
mod procfs;
mod report;
mod runner;
mod storm;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "portcullis-bench",
    version,
    about = "Connection-rate benchmarks for Portcullis (loopback only)"
)]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// N clients loop connect -> flush -> close against one loopback server;
    /// prints one JSON line.
    Load(LoadArgs),
    /// N clients log in at once, each retrying with jittered backoff until
    /// in: time until all are connected, fast refusals and auth timeouts;
    /// prints one JSON line.
    Storm(StormArgs),
    /// Every target side by side, interleaved; writes docs/benchmarks.md and the SVG plot.
    Run(RunArgs),
}

#[derive(clap::Args)]
struct LoadArgs {
    /// Server to log in to (127.0.0.0/8, ::1 or localhost only).
    #[arg(long)]
    url: String,
    /// A users.json (nats-by-example format, plaintext passwords): its users log in in turn.
    #[arg(long)]
    users_file: Option<PathBuf>,
    /// NAME:PASSWORD, repeatable; added after the users file's.
    #[arg(long = "user")]
    users: Vec<String>,
    /// Bearer tokens (e.g. OIDC ID tokens), one a line, presented as the
    /// CONNECT token; added after the users.
    #[arg(long)]
    tokens_file: Option<PathBuf>,
    #[arg(long, default_value_t = 8)]
    clients: usize,
    /// Measured seconds.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Seconds of load before the measured window.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Per login (connect + flush).
    #[arg(long, default_value_t = 5000)]
    timeout_ms: u64,
    /// Stop after this many connects (warm-up included), whatever the time.
    #[arg(long, default_value_t = 10_000_000)]
    max_connects: u64,
    /// Tokio worker threads of the generator (1 = current-thread runtime).
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

#[derive(clap::Args)]
struct StormArgs {
    /// Server to log in to (127.0.0.0/8, ::1 or localhost only).
    #[arg(long)]
    url: String,
    /// A users.json (nats-by-example format, plaintext passwords): client i logs in as user i mod len.
    #[arg(long)]
    users_file: Option<PathBuf>,
    /// NAME:PASSWORD, repeatable; added after the users file's.
    #[arg(long = "user")]
    users: Vec<String>,
    /// Clients in the storm (at most 20000).
    #[arg(long, default_value_t = 2000)]
    clients: usize,
    /// Seconds the whole storm may last, retries included.
    #[arg(long, default_value_t = 60.0)]
    deadline: f64,
    /// Attempts per client before it gives up.
    #[arg(long, default_value_t = 100)]
    max_attempts: u32,
    /// Wait before the second attempt; doubles per failure up to --max-backoff-ms, each wait jittered to [0.5, 1) of it.
    #[arg(long, default_value_t = 100)]
    backoff_ms: u64,
    #[arg(long, default_value_t = 4000)]
    max_backoff_ms: u64,
    /// nats-server's auth timeout: an authorization violation within half of it is a fast refusal, up to it a late one, at it or later a timeout.
    #[arg(long, default_value_t = 2000)]
    auth_timeout_ms: u64,
    /// One attempt, client side.
    #[arg(long, default_value_t = 10_000)]
    attempt_timeout_ms: u64,
    /// Tokio worker threads of the generator (1 = current-thread runtime).
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

#[derive(clap::Args)]
struct RunArgs {
    /// Interleaved runs per target and concurrency.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Concurrency sweep.
    #[arg(long, value_delimiter = ',', default_value = "1,8,32,128")]
    clients: Vec<usize>,
    /// The concurrency of the headline table.
    #[arg(long, default_value_t = 8)]
    reference_clients: usize,
    /// Measured seconds per run.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    #[arg(long, default_value_t = 5000)]
    timeout_ms: u64,
    /// Only these targets (ceiling, rust, rust-noxkey, js, py, chain3, sql, kv, oidc, oidc-uri).
    #[arg(long, value_delimiter = ',')]
    targets: Vec<String>,
    /// Markdown file whose bench section is (re)written.
    #[arg(long)]
    out: Option<PathBuf>,
    /// The plot.
    #[arg(long)]
    svg: Option<PathBuf>,
    /// Print the results but write neither the markdown nor the plot.
    #[arg(long)]
    no_write: bool,
    /// Append every measurement as a JSON line here.
    #[arg(long)]
    json_out: Option<PathBuf>,
    #[arg(long)]
    nats_server: Option<PathBuf>,
    /// The portcullis binary to measure (a release build).
    #[arg(long)]
    portcullis: Option<PathBuf>,
    /// Where the plugin components are.
    #[arg(long)]
    plugin_dir: Option<PathBuf>,
    /// The JavaScript static-users component (default: found in the plugin dir).
    #[arg(long)]
    js_wasm: Option<PathBuf>,
    /// The Python static-users component (default: found in the plugin dir).
    #[arg(long)]
    py_wasm: Option<PathBuf>,
    /// Compile cache for the services.
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Load generator threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Keep every measurement's directory (configs, logs).
    #[arg(long)]
    keep: bool,
}

/// How long tests/postgres.rs waits for PostgreSQL (it names `crate::WAIT`).
const WAIT: Duration = Duration::from_secs(20);

/// A free 127.0.0.1 port (tests/postgres.rs names `crate::free_port`).
fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Cmd::Load(args) => load_command(args),
        Cmd::Storm(args) => storm_command(args),
        Cmd::Run(args) => run_command(args),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn seconds(s: f64, what: &str) -> Result<Duration> {
    Duration::try_from_secs_f64(s)
        .with_context(|| format!("{what}: {s} is not a duration in seconds"))
}

fn load_command(args: LoadArgs) -> Result<ExitCode> {
    let mut users = match &args.users_file {
        Some(path) => load::users_from_file(path)?,
        None => Vec::new(),
    };
    for spec in &args.users {
        users.push(load::parse_user(spec)?);
    }
    let mut users: Vec<load::Credential> = users
        .into_iter()
        .map(|(user, pass)| load::Credential::Password(user, pass))
        .collect();
    if let Some(path) = &args.tokens_file {
        users.extend(load::tokens_from_file(path)?);
    }
    if users.is_empty() {
        bail!("no users: pass --users-file, --user NAME:PASSWORD or --tokens-file");
    }
    let report = load::run(load::Options {
        url: args.url,
        users,
        clients: args.clients,
        duration: seconds(args.duration, "--duration")?,
        warmup: seconds(args.warmup, "--warmup")?,
        timeout: Duration::from_millis(args.timeout_ms),
        max_connects: args.max_connects,
        threads: args.threads,
    })?;
    let line = serde_json::to_string(&report)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

fn storm_command(args: StormArgs) -> Result<ExitCode> {
    let mut users = match &args.users_file {
        Some(path) => load::users_from_file(path)?,
        None => Vec::new(),
    };
    for spec in &args.users {
        users.push(load::parse_user(spec)?);
    }
    if users.is_empty() {
        bail!("no users: pass --users-file or --user NAME:PASSWORD");
    }
    let report = storm::run(storm::Options {
        url: args.url,
        users,
        clients: args.clients,
        deadline: seconds(args.deadline, "--deadline")?,
        max_attempts: args.max_attempts,
        backoff: Duration::from_millis(args.backoff_ms),
        max_backoff: Duration::from_millis(args.max_backoff_ms),
        auth_timeout: Duration::from_millis(args.auth_timeout_ms),
        attempt_timeout: Duration::from_millis(args.attempt_timeout_ms),
        threads: args.threads,
    })?;
    let line = serde_json::to_string(&report)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}")?;
    out.flush()?;
    Ok(if report.gave_up == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The workspace this binary was built in: default location of the
/// binaries, plugins and docs it measures and writes.
fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_owned)
        .unwrap_or_default()
}

fn first_line_of(cmd: &Path, args: &[&str]) -> String {
    std::process::Command::new(cmd)
        .args(args)
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.lines().next().map(str::to_owned))
        .unwrap_or_else(|| "unknown".into())
}

/// `YYYY-MM-DD` (UTC) of now, without a date crate.
fn today() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs()) as i64;
    // Howard Hinnant's days-to-civil.
    let z = secs.div_euclid(86_400) + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

fn run_command(args: RunArgs) -> Result<ExitCode> {
    let root = workspace();
    let nats_server = args
        .nats_server
        .clone()
        .unwrap_or_else(|| root.join(".venv/bin/nats-server"));
    let portcullis = args
        .portcullis
        .clone()
        .unwrap_or_else(|| root.join("target/release/portcullis"));
    let plugin_dir = args
        .plugin_dir
        .clone()
        .unwrap_or_else(|| root.join("target/wasm32-wasip2/release"));
    for (path, how) in [
        (&nats_server, "scripts/setup"),
        (&portcullis, "cargo build --release -p portcullis-cli"),
    ] {
        if !path.exists() {
            bail!(
                "{} is missing: run {how} (bench/run does both)",
                path.display()
            );
        }
    }
    if args.runs == 0 || args.clients.is_empty() {
        bail!("nothing to run: --runs and --clients must not be empty");
    }
    let plugins = deploy::Plugins::find(&plugin_dir, args.js_wasm.clone(), args.py_wasm.clone());
    let (all, mut notes) = deploy::targets(&plugins);
    let mut targets = Vec::new();
    for t in all {
        if !args.targets.is_empty() && !args.targets.iter().any(|id| id == t.id) {
            continue;
        }
        let missing = t.missing();
        if missing.is_empty() {
            targets.push(t);
        } else {
            notes.push(format!(
                "`{}` skipped: {} missing (scripts/build-plugins)",
                t.id,
                missing[0].display()
            ));
        }
    }
    for wanted in &args.targets {
        if !targets.iter().any(|t| t.id == wanted)
            && !notes.iter().any(|n| n.contains(&format!("`{wanted}`")))
        {
            bail!(
                "unknown target {wanted:?}: ceiling, rust, rust-noxkey, js, py, chain3, sql, kv, oidc, oidc-uri"
            );
        }
    }
    notes.retain(|n| {
        args.targets.is_empty() || args.targets.iter().any(|id| n.contains(&format!("`{id}`")))
    });
    for note in &notes {
        eprintln!("[bench] note: {note}");
    }
    if targets.is_empty() {
        bail!("no target can run here");
    }

    let options = runner::RunOptions {
        runs: args.runs,
        clients: args.clients.clone(),
        duration: seconds(args.duration, "--duration")?,
        warmup: seconds(args.warmup, "--warmup")?,
        timeout: Duration::from_millis(args.timeout_ms),
        nats_server: nats_server.clone(),
        portcullis: portcullis.clone(),
        cache_dir: args
            .cache_dir
            .clone()
            .unwrap_or_else(|| root.join("target/portcullis-bench-cache")),
        threads: args.threads,
        keep: args.keep,
    };
    let mut json_out = match &args.json_out {
        Some(path) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("cannot open {}", path.display()))?,
        ),
        None => None,
    };
    let measurements = runner::run_all(&options, &targets, |m| {
        if let Some(f) = json_out.as_mut()
            && let Ok(line) = serde_json::to_string(m)
        {
            let _ = writeln!(f, "{line}");
        }
    });
    let summaries = runner::summarise(&measurements, &targets, &args.clients);

    let out = args
        .out
        .clone()
        .unwrap_or_else(|| root.join("docs/benchmarks.md"));
    let svg = args
        .svg
        .clone()
        .unwrap_or_else(|| root.join("docs/benchmarks.svg"));
    let svg_link = svg
        .strip_prefix(out.parent().unwrap_or(Path::new("")))
        .map(|p| p.display().to_string())
        .unwrap_or_else(|_| svg.display().to_string());
    // Paths in the report relative to the workspace, as a reader's checkout has them.
    let prefix = format!("{}/", root.display());
    for note in &mut notes {
        *note = note.replace(&prefix, "");
    }
    for (kind, n) in runner::failure_kinds(&measurements) {
        notes.push(format!("failed logins: {kind}: {n}"));
    }
    let command = std::env::var("PORTCULLIS_BENCH_COMMAND")
        .unwrap_or_else(|_| std::env::args().collect::<Vec<_>>().join(" "));
    let git = first_line_of(
        Path::new("git"),
        &[
            "-C",
            &root.display().to_string(),
            "rev-parse",
            "--short",
            "HEAD",
        ],
    );
    let ctx = report::Context {
        date: today(),
        machine: procfs::machine(),
        versions: format!(
            "nats-server {}, {} (commit {git}), {}",
            first_line_of(&nats_server, &["--version"]).trim_start_matches("nats-server: "),
            first_line_of(&portcullis, &["--version"]),
            first_line_of(Path::new("rustc"), &["-V"]),
        ),
        command,
        runs: args.runs,
        duration_s: args.duration,
        warmup_s: args.warmup,
        reference_clients: args.reference_clients,
        notes,
        svg: (!args.no_write).then_some(svg_link),
    };
    let section = report::section(&ctx, &targets, &summaries);
    println!("{section}");
    if !args.no_write {
        let series: Vec<plot::Series> = targets
            .iter()
            .map(|t| plot::Series {
                name: t.id.to_owned(),
                points: summaries
                    .iter()
                    .filter(|s| s.target == t.id)
                    .filter_map(|s| {
                        Some((s.clients as f64, s.conn_per_s?.median, s.p99_ms?.median))
                    })
                    .collect(),
            })
            .filter(|s| !s.points.is_empty())
            .collect();
        plot::write_svg(
            &svg,
            &series,
            &format!("Portcullis logins, {} ({})", ctx.date, ctx.machine),
        )?;
        let doc = std::fs::read_to_string(&out).unwrap_or_else(|_| "# Benchmarks\n".into());
        std::fs::write(&out, report::splice(&doc, &section))
            .with_context(|| format!("cannot write {}", out.display()))?;
        eprintln!("[bench] wrote {} and {}", out.display(), svg.display());
    }
    let clean = measurements
        .iter()
        .all(|m| m.error.is_none() && m.report.as_ref().is_some_and(|r| r.failed == 0));
    Ok(if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn today_is_a_date() {
        let d = super::today();
        assert_eq!(d.len(), 10, "{d}");
        assert!(d.starts_with("20"), "{d}");
    }
}
