//! The load generator: N async-nats clients, each looping connect -> flush
//! -> close against one loopback NATS server, for a bounded time and a
//! bounded number of connects. Logins made during the warm-up are not
//! counted. The result is one JSON line ([`Report`]) on stdout; a progress
//! line goes to stderr every second, with two marker lines that tell a
//! caller (the runner) when the measured window starts and ends.

use anyhow::{Context, Result, bail, ensure};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Upper bounds on what one invocation may do, whatever it is asked.
pub const MAX_CLIENTS: usize = 4096;
pub const MAX_DURATION: Duration = Duration::from_secs(3600);
pub const MAX_WARMUP: Duration = Duration::from_secs(600);

/// Printed on stderr when the measured window starts and when it ends.
pub const MEASURING: &str = "[load] measuring";
pub const MEASURED: &str = "[load] measured window over";

/// Latencies are recorded in microseconds, 1 us to 10 min, 3 significant digits.
const HIST_MAX_US: u64 = 600_000_000;

/// What one login presents in its CONNECT.
#[derive(Clone)]
pub enum Credential {
    /// `user` and `pass`.
    Password(String, String),
    /// `auth_token`: a bearer token such as an OIDC ID token.
    Token(String),
}

impl Credential {
    /// Connect options that present this credential.
    pub fn connect_options(&self) -> async_nats::ConnectOptions {
        match self {
            Credential::Password(user, pass) => {
                async_nats::ConnectOptions::with_user_and_password(user.into(), pass.into())
            }
            Credential::Token(token) => async_nats::ConnectOptions::with_token(token.into()),
        }
    }
}

impl std::fmt::Debug for Credential {
    /// Names the user; never shows a password or a token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Password(user, _) => write!(f, "Password({user:?}, ..)"),
            Credential::Token(_) => f.write_str("Token(..)"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    pub url: String,
    /// Credentials to log in with, in turn: client i starts with the i-th.
    pub users: Vec<Credential>,
    pub clients: usize,
    pub duration: Duration,
    pub warmup: Duration,
    /// Per connect + flush.
    pub timeout: Duration,
    /// Connects started, warm-up included, after which every client stops.
    pub max_connects: u64,
    /// Tokio worker threads; 1 = a current-thread runtime.
    pub threads: usize,
}

/// Latency summary in microseconds.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct Percentiles {
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
    pub mean: f64,
}

impl Percentiles {
    pub(crate) fn of(h: &Histogram<u64>) -> Percentiles {
        if h.is_empty() {
            return Percentiles::default();
        }
        Percentiles {
            p50: h.value_at_quantile(0.50),
            p90: h.value_at_quantile(0.90),
            p99: h.value_at_quantile(0.99),
            p999: h.value_at_quantile(0.999),
            max: h.max(),
            mean: (h.mean() * 10.0).round() / 10.0,
        }
    }
}

/// The JSON line.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub bench: String,
    pub url: String,
    pub clients: usize,
    pub users: usize,
    pub duration_s: f64,
    pub warmup_s: f64,
    /// Logins (connect + flush) completed in the measured window.
    pub ok: u64,
    pub failed: u64,
    /// Failed logins in the measured window by kind, e.g.
    /// `connect: authorization_violation`, `flush`, `timeout`.
    pub failures: BTreeMap<String, u64>,
    pub warmup_ok: u64,
    pub warmup_failed: u64,
    /// From the start of the window to the end of its last login.
    pub measured_s: f64,
    pub conn_per_s: f64,
    /// Start of connect to the connection being authorized (CONNECT + PING -> PONG).
    pub connect_us: Percentiles,
    /// Connect + flush + close.
    pub cycle_us: Percentiles,
}

/// Refuse anything but a loopback server: this tool opens thousands of
/// connections a second.
pub fn check_loopback(url: &str) -> Result<()> {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    let host = if let Some(v6) = rest.strip_prefix('[') {
        v6.split(']').next().unwrap_or_default()
    } else {
        rest.split([':', '/']).next().unwrap_or_default()
    };
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback());
    ensure!(
        loopback,
        "{host:?} is not a loopback address: the load generator only targets 127.0.0.0/8, ::1 or localhost"
    );
    Ok(())
}

/// Users from a nats-by-example `users.json` (`{"alice": {"pass": "alice", ...}}`),
/// in name order. Passwords must be plaintext: the generator logs in with them.
pub fn users_from_file(path: &Path) -> Result<Vec<(String, String)>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let doc: BTreeMap<String, serde_json::Value> = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a users.json object", path.display()))?;
    let mut users = Vec::new();
    for (name, entry) in doc {
        let Some(pass) = entry.get("pass").and_then(|p| p.as_str()) else {
            bail!("{}: user {name:?} has no \"pass\"", path.display());
        };
        if pass.starts_with("$2") {
            bail!(
                "{}: user {name:?} has a bcrypt hash; the load generator needs plaintext passwords",
                path.display()
            );
        }
        users.push((name, pass.to_owned()));
    }
    ensure!(!users.is_empty(), "{} names no user", path.display());
    Ok(users)
}

/// Bearer tokens, one a line (blank lines skipped): the runner signs ID
/// tokens before the load and hands them over in a file, not on the
/// command line where any process could read them.
pub fn tokens_from_file(path: &Path) -> Result<Vec<Credential>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let tokens: Vec<Credential> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(|t| Credential::Token(t.to_owned()))
        .collect();
    ensure!(!tokens.is_empty(), "{} holds no token", path.display());
    Ok(tokens)
}

/// `name:password`.
pub fn parse_user(spec: &str) -> Result<(String, String)> {
    let (user, pass) = spec
        .split_once(':')
        .with_context(|| format!("{spec:?}: expected NAME:PASSWORD"))?;
    Ok((user.to_owned(), pass.to_owned()))
}

impl Options {
    fn validate(&self) -> Result<()> {
        check_loopback(&self.url)?;
        ensure!(!self.users.is_empty(), "no users to log in as");
        ensure!(
            (1..=MAX_CLIENTS).contains(&self.clients),
            "clients must be 1..={MAX_CLIENTS}"
        );
        ensure!(
            !self.duration.is_zero() && self.duration <= MAX_DURATION,
            "duration must be more than 0 and at most {MAX_DURATION:?}"
        );
        ensure!(
            self.warmup <= MAX_WARMUP,
            "warm-up must be at most {MAX_WARMUP:?}"
        );
        ensure!(!self.timeout.is_zero(), "timeout must be more than 0");
        ensure!(self.max_connects > 0, "max connects must be more than 0");
        Ok(())
    }
}

/// Run the load and summarise it.
pub fn run(options: Options) -> Result<Report> {
    options.validate()?;
    let runtime = if options.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(options.threads)
            .enable_all()
            .build()?
    };
    runtime.block_on(generate(Arc::new(options)))
}

/// Counters the progress line reads while the clients run.
#[derive(Default)]
struct Live {
    started: AtomicU64,
    ok: AtomicU64,
    failed: AtomicU64,
    /// Window edges already announced on stderr.
    marked_start: AtomicBool,
    marked_end: AtomicBool,
}

struct ClientStats {
    connect: Histogram<u64>,
    cycle: Histogram<u64>,
    ok: u64,
    failed: u64,
    failures: BTreeMap<String, u64>,
    warmup_ok: u64,
    warmup_failed: u64,
    last_end: Option<Instant>,
}

impl ClientStats {
    fn new() -> ClientStats {
        let hist =
            || Histogram::new_with_bounds(1, HIST_MAX_US, 3).expect("valid histogram bounds");
        ClientStats {
            connect: hist(),
            cycle: hist(),
            ok: 0,
            failed: 0,
            failures: BTreeMap::new(),
            warmup_ok: 0,
            warmup_failed: 0,
            last_end: None,
        }
    }

    fn merge(&mut self, other: ClientStats) {
        // Both histograms have the same bounds, so adding cannot fail.
        let _ = self.connect.add(&other.connect);
        let _ = self.cycle.add(&other.cycle);
        self.ok += other.ok;
        self.failed += other.failed;
        for (kind, n) in other.failures {
            *self.failures.entry(kind).or_default() += n;
        }
        self.warmup_ok += other.warmup_ok;
        self.warmup_failed += other.warmup_failed;
        self.last_end = self.last_end.max(other.last_end);
    }
}

async fn generate(options: Arc<Options>) -> Result<Report> {
    let start = Instant::now();
    let measure_from = start + options.warmup;
    let deadline = measure_from + options.duration;
    let live = Arc::new(Live::default());

    let mut clients = tokio::task::JoinSet::new();
    for idx in 0..options.clients {
        clients.spawn(client(
            idx,
            options.clone(),
            live.clone(),
            measure_from,
            deadline,
        ));
    }
    let progress = tokio::spawn(progress(live.clone(), start, measure_from, deadline));
    let mut total = ClientStats::new();
    while let Some(stats) = clients.join_next().await {
        total.merge(stats.context("a client task failed")?);
    }
    progress.abort();
    let _ = progress.await;
    if std::io::stderr().is_terminal() {
        eprintln!();
    }
    // The last login may end right at the deadline, before the progress
    // task's timer: the caller still gets both markers, in order.
    if !live.marked_start.swap(true, Ordering::SeqCst) {
        eprintln!("{MEASURING}");
    }
    if !live.marked_end.swap(true, Ordering::SeqCst) {
        eprintln!("{MEASURED}");
    }

    let measured_s = total
        .last_end
        .map(|end| end.saturating_duration_since(measure_from))
        .filter(|d| !d.is_zero())
        .unwrap_or(options.duration)
        .as_secs_f64();
    Ok(Report {
        bench: "portcullis-connect-rate".into(),
        url: options.url.clone(),
        clients: options.clients,
        users: options.users.len(),
        duration_s: options.duration.as_secs_f64(),
        warmup_s: options.warmup.as_secs_f64(),
        ok: total.ok,
        failed: total.failed,
        failures: total.failures,
        warmup_ok: total.warmup_ok,
        warmup_failed: total.warmup_failed,
        measured_s: (measured_s * 1000.0).round() / 1000.0,
        conn_per_s: (total.ok as f64 / measured_s * 10.0).round() / 10.0,
        connect_us: Percentiles::of(&total.connect),
        cycle_us: Percentiles::of(&total.cycle),
    })
}

async fn client(
    idx: usize,
    options: Arc<Options>,
    live: Arc<Live>,
    measure_from: Instant,
    deadline: Instant,
) -> ClientStats {
    let mut stats = ClientStats::new();
    let mut turn = idx;
    loop {
        let t0 = Instant::now();
        if t0 >= deadline || live.started.fetch_add(1, Ordering::Relaxed) >= options.max_connects {
            break;
        }
        let credential = &options.users[turn % options.users.len()];
        turn += 1;
        let result = tokio::time::timeout(
            options.timeout,
            login(&options.url, credential, options.timeout),
        )
        .await
        .unwrap_or_else(|_| Err("timeout".to_owned()));
        let end = Instant::now();
        let measured = t0 >= measure_from;
        match result {
            Ok(connected) => {
                live.ok.fetch_add(1, Ordering::Relaxed);
                if measured {
                    stats.ok += 1;
                    stats.connect.saturating_record(micros(connected));
                    stats.cycle.saturating_record(micros(end - t0));
                } else {
                    stats.warmup_ok += 1;
                }
            }
            Err(kind) => {
                live.failed.fetch_add(1, Ordering::Relaxed);
                if measured {
                    stats.failed += 1;
                    *stats.failures.entry(kind).or_default() += 1;
                } else {
                    stats.warmup_failed += 1;
                }
            }
        }
        if measured {
            stats.last_end = Some(end);
        }
    }
    stats
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

/// One login: connect (CONNECT + PING, answered once the server authorized
/// the connection), flush (PING -> PONG), close (drop the last handle).
/// Returns the connect latency, or the kind of failure.
async fn login(url: &str, credential: &Credential, timeout: Duration) -> Result<Duration, String> {
    let t0 = Instant::now();
    let client = credential
        .connect_options()
        .connection_timeout(timeout)
        .name("portcullis-bench")
        .connect(url)
        .await
        .map_err(|e| format!("connect: {}", snake_case(&format!("{:?}", e.kind()))))?;
    let connected = t0.elapsed();
    client.flush().await.map_err(|_| "flush".to_owned())?;
    drop(client);
    Ok(connected)
}

fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

/// A progress line every second (overwritten in place on a terminal), and
/// the two markers at the edges of the measured window.
async fn progress(live: Arc<Live>, start: Instant, measure_from: Instant, deadline: Instant) {
    let terminal = std::io::stderr().is_terminal();
    let nl = if terminal { "\n" } else { "" };
    let mut tick = tokio::time::interval_at(
        tokio::time::Instant::now() + Duration::from_secs(1),
        Duration::from_secs(1),
    );
    let mut last_ok = 0;
    loop {
        let started = live.marked_start.load(Ordering::SeqCst);
        let ended = live.marked_end.load(Ordering::SeqCst);
        let next_edge = if !started {
            measure_from
        } else if !ended {
            deadline
        } else {
            // Only stragglers left: the caller aborts this task.
            deadline + Duration::from_secs(3600)
        };
        tokio::select! {
            _ = tokio::time::sleep_until(next_edge.into()) => {
                if !started {
                    if !live.marked_start.swap(true, Ordering::SeqCst) {
                        eprintln!("{nl}{MEASURING}");
                    }
                } else if !ended && !live.marked_end.swap(true, Ordering::SeqCst) {
                    eprintln!("{nl}{MEASURED}");
                }
            }
            _ = tick.tick() => {
                let ok = live.ok.load(Ordering::Relaxed);
                let failed = live.failed.load(Ordering::Relaxed);
                let phase = if !started { "warm-up" } else if !ended { "measuring" } else { "finishing" };
                let line = format!(
                    "[load] {:>5.1} s {phase:<9}  {ok} ok  {failed} failed  {} conn/s",
                    start.elapsed().as_secs_f64(),
                    ok - last_ok
                );
                last_ok = ok;
                let mut err = std::io::stderr().lock();
                let _ = if terminal { write!(err, "\r{line}   ") } else { writeln!(err, "{line}") };
                let _ = err.flush();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_servers_are_accepted() {
        for ok in [
            "nats://127.0.0.1:4222",
            "127.0.0.2:1",
            "nats://localhost:4222",
            "nats://u:p@127.0.0.1:4222",
            "nats://[::1]:4222",
        ] {
            assert!(check_loopback(ok).is_ok(), "{ok}");
        }
        for bad in [
            "nats://10.0.0.1:4222",
            "nats://demo.nats.io:4222",
            "nats://127.0.0.1@example.com:4222",
            "nats://[2001:db8::1]:4222",
            "",
        ] {
            assert!(check_loopback(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn users_file_gives_plaintext_users_in_name_order() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("users.json");
        std::fs::write(
            &path,
            r#"{"bob": {"pass": "bob", "account": "APP2"}, "alice": {"pass": "alice"}}"#,
        )
        .unwrap();
        let users = users_from_file(&path).unwrap();
        assert_eq!(
            users,
            [
                ("alice".into(), "alice".into()),
                ("bob".into(), "bob".into())
            ]
        );
        std::fs::write(&path, r#"{"carol": {"pass": "$2b$10$abc"}}"#).unwrap();
        assert!(users_from_file(&path).is_err(), "bcrypt hashes are refused");
        std::fs::write(&path, "{}").unwrap();
        assert!(users_from_file(&path).is_err());
    }

    #[test]
    fn tokens_file_gives_one_token_a_line_and_debug_hides_them() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens");
        std::fs::write(&path, "aaa.bbb.ccc\n\n  ddd.eee.fff  \n").unwrap();
        let tokens = tokens_from_file(&path).unwrap();
        let texts: Vec<&str> = tokens
            .iter()
            .map(|t| match t {
                Credential::Token(t) => t.as_str(),
                Credential::Password(..) => panic!("{t:?}"),
            })
            .collect();
        assert_eq!(texts, ["aaa.bbb.ccc", "ddd.eee.fff"]);
        let shown = format!(
            "{:?}",
            [
                tokens[0].clone(),
                Credential::Password("alice".into(), "s3cret".into())
            ]
        );
        assert!(
            !shown.contains("aaa") && !shown.contains("s3cret"),
            "{shown}"
        );
        assert!(shown.contains("alice"), "{shown}");
        std::fs::write(&path, "\n \n").unwrap();
        assert!(tokens_from_file(&path).is_err());
    }

    #[test]
    fn failure_kinds_read_as_snake_case() {
        assert_eq!(
            snake_case("AuthorizationViolation"),
            "authorization_violation"
        );
        assert_eq!(snake_case("Io"), "io");
    }
}
