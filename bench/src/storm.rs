//! The reconnect storm: what a callout service sees when a cluster
//! restarts and every client comes back at once. N clients start their
//! first login together; each failed attempt is retried after a jittered
//! exponential backoff, as NATS clients reconnect, until it is in, its
//! attempts run out, or the storm's deadline passes. A connected client
//! stays connected until the storm ends, as after a real restart.
//!
//! Failed attempts are told apart by how they failed: an authorization
//! violation within half of nats-server's auth timeout is a fast refusal
//! (the service answered with an error, e.g. "saturated"), one before the
//! timeout a late refusal (still an answer: the server waits the whole
//! timeout from when it sent the request, which is after the attempt
//! began), one at or past it the server giving up on an unanswered
//! callout. A client that async-nats reports connected but whose first
//! round trip fails was refused after the server's first PING: classified
//! the same way. A service should shed load by fast refusals, never by
//! timeouts.

use crate::load::{Percentiles, check_loopback};
use anyhow::{Result, ensure};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Upper bounds on what one storm may do, whatever it is asked.
pub const MAX_CLIENTS: usize = 20_000;
pub const MAX_DEADLINE: Duration = Duration::from_secs(600);
pub const MAX_ATTEMPTS: u32 = 1_000;

#[derive(Debug, Clone)]
pub struct Options {
    pub url: String,
    /// Client i logs in as user i mod len.
    pub users: Vec<(String, String)>,
    pub clients: usize,
    /// The whole storm, every retry included.
    pub deadline: Duration,
    /// Attempts per client before it gives up.
    pub max_attempts: u32,
    /// Backoff before the second attempt; doubles per failure up to
    /// `max_backoff`; each wait is drawn from [0.5, 1) of it.
    pub backoff: Duration,
    pub max_backoff: Duration,
    /// nats-server's `authorization { timeout }` (2 s by default): a
    /// refusal within half of it is fast, up to it late, and one at it or
    /// later a timeout.
    pub auth_timeout: Duration,
    /// One attempt (TCP connect, CONNECT, PING -> PONG), client side.
    pub attempt_timeout: Duration,
    pub threads: usize,
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
            !self.deadline.is_zero() && self.deadline <= MAX_DEADLINE,
            "deadline must be more than 0 and at most {MAX_DEADLINE:?}"
        );
        ensure!(
            (1..=MAX_ATTEMPTS).contains(&self.max_attempts),
            "attempts must be 1..={MAX_ATTEMPTS}"
        );
        ensure!(
            !self.attempt_timeout.is_zero(),
            "attempt timeout must be more than 0"
        );
        Ok(())
    }
}

/// The JSON line of one storm.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub bench: String,
    pub url: String,
    pub clients: usize,
    pub connected: usize,
    /// Clients that ran out of attempts or time.
    pub gave_up: usize,
    /// From the start of the storm to the last client connected; absent
    /// when some client never got in.
    pub all_connected_s: Option<f64>,
    pub attempts: u64,
    /// Authorization violations well within the auth timeout: the service
    /// answered, with an error ("saturated").
    pub refused_fast: u64,
    /// Authorization violations from half the auth timeout up to it: an
    /// answer (the server gives up only at the timeout), but a late one.
    pub refused_late: u64,
    /// Authorization violations at or past the auth timeout: the server
    /// gave up waiting for the service.
    pub auth_timeouts: u64,
    /// Attempts that ran into `attempt_timeout` on the client side.
    pub client_timeouts: u64,
    /// Anything else (TCP refused or reset, ...), by kind.
    pub other_failures: BTreeMap<String, u64>,
    /// Per connected client, storm start to connected, in microseconds.
    pub connected_after_us: Percentiles,
    /// The file descriptor limit this process ran with (raised to the hard
    /// limit at start), and what it was before.
    pub nofile: u64,
    pub nofile_before: u64,
}

/// How one attempt ended.
enum Attempt {
    Connected(async_nats::Client),
    RefusedFast,
    RefusedLate,
    AuthTimeout,
    ClientTimeout,
    Other(String),
}

#[derive(Default)]
struct ClientResult {
    connected: Option<(Duration, async_nats::Client)>,
    attempts: u64,
    refused_fast: u64,
    refused_late: u64,
    auth_timeouts: u64,
    client_timeouts: u64,
    other: BTreeMap<String, u64>,
}

/// Raise the soft limit on open files to the hard one: every client holds
/// a socket until the storm ends. Returns (before, after).
pub fn raise_nofile() -> (u64, u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return (0, 0);
        }
        let before = limit.rlim_cur;
        limit.rlim_cur = limit.rlim_max;
        if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
            return (before, before);
        }
        (before, limit.rlim_cur)
    }
}

pub fn run(options: Options) -> Result<Report> {
    options.validate()?;
    let (nofile_before, nofile) = raise_nofile();
    // Each client needs a socket, and a few are kept for the runtime.
    ensure!(
        nofile as usize > options.clients + 64,
        "{} clients need more open files than the limit of {nofile} (ulimit -Hn)",
        options.clients
    );
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
    let mut report = runtime.block_on(storm(options))?;
    report.nofile = nofile;
    report.nofile_before = nofile_before;
    Ok(report)
}

async fn storm(options: Options) -> Result<Report> {
    let options = std::sync::Arc::new(options);
    let start = Instant::now();
    let deadline = start + options.deadline;
    let mut clients = tokio::task::JoinSet::new();
    for idx in 0..options.clients {
        clients.spawn(client(idx, options.clone(), start, deadline));
    }
    let mut results = Vec::with_capacity(options.clients);
    while let Some(result) = clients.join_next().await {
        results.push(result?);
    }
    let mut after = Histogram::<u64>::new_with_bounds(1, 3_600_000_000, 3)?;
    let mut report = Report {
        bench: "portcullis-reconnect-storm".into(),
        url: options.url.clone(),
        clients: options.clients,
        connected: 0,
        gave_up: 0,
        all_connected_s: None,
        attempts: 0,
        refused_fast: 0,
        refused_late: 0,
        auth_timeouts: 0,
        client_timeouts: 0,
        other_failures: BTreeMap::new(),
        connected_after_us: Percentiles::default(),
        nofile: 0,
        nofile_before: 0,
    };
    let mut last = Duration::ZERO;
    for r in &results {
        report.attempts += r.attempts;
        report.refused_fast += r.refused_fast;
        report.refused_late += r.refused_late;
        report.auth_timeouts += r.auth_timeouts;
        report.client_timeouts += r.client_timeouts;
        for (kind, n) in &r.other {
            *report.other_failures.entry(kind.clone()).or_default() += n;
        }
        match &r.connected {
            Some((at, _)) => {
                report.connected += 1;
                last = last.max(*at);
                after.saturating_record(u64::try_from(at.as_micros()).unwrap_or(u64::MAX).max(1));
            }
            None => report.gave_up += 1,
        }
    }
    report.connected_after_us = Percentiles::of(&after);
    if report.gave_up == 0 {
        report.all_connected_s = Some((last.as_secs_f64() * 1000.0).round() / 1000.0);
    }
    // Every connection closes here, once the storm is over.
    drop(results);
    Ok(report)
}

/// One client: attempts with jittered exponential backoff until connected,
/// out of attempts or past the deadline.
async fn client(
    idx: usize,
    options: std::sync::Arc<Options>,
    start: Instant,
    deadline: Instant,
) -> ClientResult {
    let (user, pass) = &options.users[idx % options.users.len()];
    let mut result = ClientResult::default();
    let mut jitter = Jitter::new(idx as u64);
    let mut backoff = options.backoff;
    while result.attempts < u64::from(options.max_attempts) {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        result.attempts += 1;
        let timeout = options.attempt_timeout.min(deadline - now);
        match attempt(&options, user, pass, timeout).await {
            Attempt::Connected(client) => {
                result.connected = Some((start.elapsed(), client));
                break;
            }
            Attempt::RefusedFast => result.refused_fast += 1,
            Attempt::RefusedLate => result.refused_late += 1,
            Attempt::AuthTimeout => result.auth_timeouts += 1,
            Attempt::ClientTimeout => result.client_timeouts += 1,
            Attempt::Other(kind) => *result.other.entry(kind).or_default() += 1,
        }
        // The backoff a NATS client waits before it tries again.
        let wait = backoff.mul_f64(0.5 + jitter.fraction() / 2.0);
        let until = (Instant::now() + wait).min(deadline);
        tokio::time::sleep_until(until.into()).await;
        backoff = (backoff * 2).min(options.max_backoff);
    }
    result
}

/// The reconnect delay of a storm client: longer than any storm, so it
/// never reconnects on its own.
const NO_RECONNECT: Duration = Duration::from_secs(24 * 3600);

async fn attempt(options: &Options, user: &str, pass: &str, timeout: Duration) -> Attempt {
    let t0 = Instant::now();
    let connect = async_nats::ConnectOptions::with_user_and_password(user.into(), pass.into())
        .connection_timeout(timeout)
        .name("portcullis-storm")
        // This client's own reconnects would be logins the storm does not
        // count: it retries itself, so a dropped connection stays down. The
        // callback also gives the wait before the first connect.
        .reconnect_delay_callback({
            let first = std::sync::atomic::AtomicBool::new(true);
            move |_| {
                if first.swap(false, std::sync::atomic::Ordering::Relaxed) {
                    Duration::ZERO
                } else {
                    NO_RECONNECT
                }
            }
        })
        .connect(options.url.as_str());
    let refused = || {
        // The server waits the auth timeout from when it sent the request,
        // which is after this attempt began: a violation sooner than that
        // was an answer.
        let took = t0.elapsed();
        if took < options.auth_timeout / 2 {
            Attempt::RefusedFast
        } else if took < options.auth_timeout {
            Attempt::RefusedLate
        } else {
            Attempt::AuthTimeout
        }
    };
    match tokio::time::timeout(timeout, connect).await {
        Err(_) => Attempt::ClientTimeout,
        Ok(Ok(client)) => {
            // async-nats takes any reply to CONNECT + PING other than -ERR
            // as success, and nats-server sends its first PING to a client
            // whose CONNECT still waits on the callout (at the auth
            // timeout): such a client is refused right after it counted
            // as connected. A PING of our own, answered after the verdict,
            // tells: no PONG on the first connection is a refusal.
            let left = timeout.saturating_sub(t0.elapsed());
            let flushed = tokio::time::timeout(left, client.flush()).await;
            let connects = client
                .statistics()
                .connects
                .load(std::sync::atomic::Ordering::Relaxed);
            match flushed {
                Ok(Ok(())) if connects == 1 => Attempt::Connected(client),
                _ => refused(),
            }
        }
        Ok(Err(e)) => {
            use async_nats::ConnectErrorKind as Kind;
            match e.kind() {
                Kind::AuthorizationViolation => refused(),
                Kind::TimedOut => Attempt::ClientTimeout,
                kind => Attempt::Other(format!("{kind:?}").to_lowercase()),
            }
        }
    }
}

/// splitmix64: a different jitter sequence per client, no RNG dependency.
struct Jitter(u64);

impl Jitter {
    fn new(seed: u64) -> Jitter {
        let time = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        Jitter(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ time)
    }

    /// Uniform in [0, 1).
    fn fraction(&mut self) -> f64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        (z >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options() -> Options {
        Options {
            url: "nats://127.0.0.1:4222".into(),
            users: vec![("alice".into(), "alice".into())],
            clients: 10,
            deadline: Duration::from_secs(10),
            max_attempts: 5,
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(4),
            auth_timeout: Duration::from_secs(2),
            attempt_timeout: Duration::from_secs(5),
            threads: 1,
        }
    }

    #[test]
    fn a_storm_is_bounded_and_on_loopback() {
        assert!(options().validate().is_ok());
        for (what, o) in [
            (
                "remote",
                Options {
                    url: "nats://10.0.0.1:4222".into(),
                    ..options()
                },
            ),
            (
                "too many clients",
                Options {
                    clients: MAX_CLIENTS + 1,
                    ..options()
                },
            ),
            (
                "no deadline",
                Options {
                    deadline: Duration::ZERO,
                    ..options()
                },
            ),
            (
                "endless",
                Options {
                    deadline: MAX_DEADLINE + Duration::from_secs(1),
                    ..options()
                },
            ),
            (
                "unbounded attempts",
                Options {
                    max_attempts: MAX_ATTEMPTS + 1,
                    ..options()
                },
            ),
        ] {
            assert!(o.validate().is_err(), "{what} accepted");
        }
    }

    #[test]
    fn jitter_stays_in_the_unit_interval_and_differs_per_client() {
        let (mut a, mut b) = (Jitter::new(1), Jitter::new(2));
        let xs: Vec<f64> = (0..1000).map(|_| a.fraction()).collect();
        assert!(xs.iter().all(|x| (0.0..1.0).contains(x)));
        assert!(xs.iter().any(|x| *x < 0.1) && xs.iter().any(|x| *x > 0.9));
        assert_ne!(a.fraction(), b.fraction());
    }
}
