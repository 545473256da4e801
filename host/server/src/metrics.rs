//! Prometheus metrics (`[metrics] listen`), in the OpenMetrics text format
//! of the official client, and the probes orchestrators ask on the same
//! listener: `/healthz` (the process answers) and `/readyz` (it serves
//! logins). The HTTP side is three GET routes, so it is a few lines on a
//! TCP listener rather than a web framework.
//!
//! Whoever can reach the port can open connections, so the listener bounds
//! what it holds: connections at once, bytes per request, time per
//! connection.

use portcullis_runtime::{CallError, LogDropped};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// A request head larger than this is dropped: the endpoint must not
/// become a way to hold the host's memory.
const MAX_REQUEST: usize = 8 * 1024;
/// The longest one connection is served, from accept to the last byte of
/// the answer: a peer that sends nothing, or reads slowly, is cut off.
pub const SCRAPE_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served at once; one more is closed as soon as it is
/// accepted. Each holds a task, a socket and up to `MAX_REQUEST` bytes for
/// at most `SCRAPE_TIMEOUT`, so a flood of idle connections cannot take
/// the host's memory or file descriptors, which its NATS connection and
/// plugins need. A scraper and a few probes need a handful.
pub const MAX_CONNECTIONS: usize = 64;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    /// The plugin that decided; empty when every plugin abstained.
    pub plugin: String,
    /// `allow`, `deny` (plugin or host policy) or `error` (the plugin failed).
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PluginLabels {
    pub plugin: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    pub plugin: String,
    /// `timeout`, `out_of_memory`, `trap`, `busy`, `instantiate`, `config_rejected`.
    pub kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ThrottleLabels {
    /// `address` or `user`: the limit the login ran into.
    pub limit: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabels {
    /// `swapped` or `rejected`.
    pub result: &'static str,
}

/// How many reloads were swapped in and how many were rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ReloadCounts {
    pub swapped: u64,
    pub rejected: u64,
}

pub struct Metrics {
    registry: Registry,
    pub decisions: Family<DecisionLabels, Counter>,
    pub decision_seconds: Family<PluginLabels, Histogram>,
    pub plugin_failures: Family<FailureLabels, Counter>,
    /// Plugin log lines (and their bytes) dropped over the per-call budget.
    pub plugin_log_dropped: Family<PluginLabels, Counter>,
    pub plugin_log_dropped_bytes: Family<PluginLabels, Counter>,
    pub unverified: Counter,
    /// Batches of request signatures verified together (two or more
    /// requests that arrived together), and the requests in them: their
    /// ratio is the mean batch size.
    pub signature_batches: Counter,
    pub requests_in_batches: Counter,
    /// Requests refused without a decision because the host was saturated.
    pub rejected: Counter,
    /// Audit events not published because the publisher fell behind.
    pub audit_dropped: Counter,
    /// Logins refused without asking a plugin: too many failed logins.
    pub throttled: Family<ThrottleLabels, Counter>,
    pub reloads: Family<ReloadLabels, Counter>,
    in_flight: Gauge,
    /// Kept by the NATS service; read at scrape time.
    pub service: ServiceStats,
}

/// Counters of the NATS service.
#[derive(Debug, Default)]
pub struct ServiceStats {
    /// Requests received and not yet answered (or dropped).
    pub in_flight: AtomicUsize,
    /// Responses published.
    pub answered: AtomicU64,
    /// Logins allowed, and refused by a plugin or the host policy.
    pub allowed: AtomicU64,
    pub denied: AtomicU64,
    /// Subscribed with the plugin chain loaded, and not draining: what
    /// `/readyz` reports, with the connection below.
    pub ready: AtomicBool,
    /// The connection the service answers on: while it is down (nats-server
    /// restarting, the network cut) requests cannot reach this host, so it
    /// is not ready either, though it keeps reconnecting.
    pub connection: std::sync::OnceLock<async_nats::Client>,
}

impl ServiceStats {
    /// Whether this host answers logins now, or why not (for `/readyz`).
    pub fn readiness(&self) -> Result<(), &'static str> {
        if !self.ready.load(Ordering::Relaxed) {
            return Err("not serving: starting or draining");
        }
        match self.connection.get().map(|c| c.connection_state()) {
            None | Some(async_nats::connection::State::Connected) => Ok(()),
            Some(_) => Err("not serving: the NATS connection is down, reconnecting"),
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("portcullis");
        let decisions = Family::<DecisionLabels, Counter>::default();
        registry.register(
            "decisions",
            "Logins decided, by plugin and outcome",
            decisions.clone(),
        );
        // 10 us .. ~5 s: a warm Rust plugin sits at the bottom, a plugin
        // that runs into its deadline at the top.
        let decision_seconds = Family::<PluginLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(1e-5, 3.0, 12))
        });
        registry.register(
            "decision_duration_seconds",
            "Time from verified request to signed answer, by deciding plugin",
            decision_seconds.clone(),
        );
        let plugin_failures = Family::<FailureLabels, Counter>::default();
        registry.register(
            "plugin_failures",
            "Plugin calls that produced no decision (each a denied login), by kind",
            plugin_failures.clone(),
        );
        let plugin_log_dropped = Family::<PluginLabels, Counter>::default();
        registry.register(
            "plugin_log_dropped",
            "Plugin log lines dropped because a call wrote more than its log_lines / log_bytes",
            plugin_log_dropped.clone(),
        );
        let plugin_log_dropped_bytes = Family::<PluginLabels, Counter>::default();
        registry.register(
            "plugin_log_dropped_bytes",
            "Bytes of the plugin log lines dropped over budget, as the plugin sent them",
            plugin_log_dropped_bytes.clone(),
        );
        let unverified = Counter::default();
        registry.register(
            "requests_unverified",
            "Requests that did not verify and got no answer",
            unverified.clone(),
        );
        let signature_batches = Counter::default();
        registry.register(
            "signature_batches",
            "Batches of two or more request signatures verified together",
            signature_batches.clone(),
        );
        let requests_in_batches = Counter::default();
        registry.register(
            "requests_in_signature_batches",
            "Requests whose signature was verified in a batch of two or more",
            requests_in_batches.clone(),
        );
        let rejected = Counter::default();
        registry.register(
            "requests_rejected",
            "Requests answered with an error at once because the host had its maximum in flight",
            rejected.clone(),
        );
        let audit_dropped = Counter::default();
        registry.register(
            "audit_events_dropped",
            "Audit events not published on [audit] subject because the publisher fell behind",
            audit_dropped.clone(),
        );
        let throttled = Family::<ThrottleLabels, Counter>::default();
        registry.register(
            "logins_throttled",
            "Logins refused without asking a plugin after too many failed logins, by limit",
            throttled.clone(),
        );
        let reloads = Family::<ReloadLabels, Counter>::default();
        registry.register(
            "reloads",
            "Plugin chain reloads, swapped or rejected",
            reloads.clone(),
        );
        let in_flight = Gauge::default();
        registry.register(
            "requests_in_flight",
            "Requests received and not yet answered",
            in_flight.clone(),
        );
        Metrics {
            registry,
            decisions,
            decision_seconds,
            plugin_failures,
            plugin_log_dropped,
            plugin_log_dropped_bytes,
            unverified,
            signature_batches,
            requests_in_batches,
            rejected,
            audit_dropped,
            throttled,
            reloads,
            in_flight,
            service: ServiceStats::default(),
        }
    }

    /// Count one login refused by `limit` without asking a plugin.
    pub fn throttled(&self, limit: crate::throttle::Limited) {
        self.throttled
            .get_or_create(&ThrottleLabels {
                limit: limit.label(),
            })
            .inc();
    }

    /// Count one answered request: `plugin` decided (empty when all
    /// abstained) with `outcome`, `seconds` after it verified.
    pub fn decided(&self, plugin: &str, outcome: &'static str, seconds: f64) {
        let tally = if outcome == "allow" {
            &self.service.allowed
        } else {
            &self.service.denied
        };
        tally.fetch_add(1, Ordering::Relaxed);
        self.decisions
            .get_or_create(&DecisionLabels {
                plugin: plugin.to_owned(),
                outcome,
            })
            .inc();
        self.decision_seconds
            .get_or_create(&PluginLabels {
                plugin: plugin.to_owned(),
            })
            .observe(seconds);
    }

    pub fn plugin_failed(&self, plugin: &str, error: &CallError) {
        let kind = match error {
            CallError::Timeout(_) => "timeout",
            CallError::OutOfMemory(_) => "out_of_memory",
            CallError::Trap(_) => "trap",
            CallError::Busy(_) => "busy",
            CallError::Instantiate(_) | CallError::NotGranted { .. } => "instantiate",
            CallError::ConfigRejected(_) => "config_rejected",
        };
        self.plugin_failures
            .get_or_create(&FailureLabels {
                plugin: plugin.to_owned(),
                kind,
            })
            .inc();
    }

    /// Count what one call of `plugin` dropped from its log.
    pub fn log_dropped(&self, plugin: &str, dropped: LogDropped) {
        let labels = PluginLabels {
            plugin: plugin.to_owned(),
        };
        self.plugin_log_dropped
            .get_or_create(&labels)
            .inc_by(dropped.lines);
        self.plugin_log_dropped_bytes
            .get_or_create(&labels)
            .inc_by(dropped.bytes);
    }

    pub fn reloaded(&self, swapped: bool) {
        let result = if swapped { "swapped" } else { "rejected" };
        self.reloads.get_or_create(&ReloadLabels { result }).inc();
    }

    /// Reloads swapped in and rejected so far.
    pub fn reload_counts(&self) -> ReloadCounts {
        let count = |result| self.reloads.get_or_create(&ReloadLabels { result }).get();
        ReloadCounts {
            swapped: count("swapped"),
            rejected: count("rejected"),
        }
    }

    /// The exposition text.
    pub fn encode(&self) -> String {
        self.in_flight
            .set(self.service.in_flight.load(Ordering::Relaxed) as i64);
        let mut text = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}

/// Serve `GET /metrics`, `/healthz` and `/readyz` on `listener` until the
/// task is dropped.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let (mut stream, peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!(error = %e, "metrics: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            tracing::debug!(%peer, limit = MAX_CONNECTIONS, "metrics: too many connections, closed");
            continue;
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let answer = async {
                let mut request = Vec::with_capacity(512);
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    let n = stream.read(&mut buf).await?;
                    if n == 0 || request.len() + n > MAX_REQUEST {
                        return Ok(());
                    }
                    request.extend_from_slice(&buf[..n]);
                }
                let (status, content_type, body) = route(&request, &metrics);
                let head = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                stream.write_all(head.as_bytes()).await?;
                stream.write_all(body.as_bytes()).await?;
                stream.shutdown().await
            };
            match tokio::time::timeout(SCRAPE_TIMEOUT, answer).await {
                Ok(Err(e)) => tracing::debug!(%peer, error = %e, "metrics: scrape failed"),
                Err(_) => tracing::debug!(%peer, "metrics: scrape timed out"),
                Ok(Ok(())) => {}
            }
        });
    }
}

/// Status, content type and body for a request head.
fn route(request: &[u8], metrics: &Metrics) -> (&'static str, &'static str, String) {
    const TEXT: &str = "text/plain; charset=utf-8";
    let line = request.split(|&b| b == b'\r').next().unwrap_or_default();
    let mut parts = line.split(|&b| b == b' ');
    let (method, target) = (parts.next(), parts.next().unwrap_or_default());
    let path = target.split(|&b| b == b'?').next().unwrap_or_default();
    if method != Some(b"GET".as_slice()) {
        return ("405 Method Not Allowed", TEXT, "only GET here\n".into());
    }
    match path {
        b"/metrics" => (
            "200 OK",
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
            metrics.encode(),
        ),
        b"/healthz" => ("200 OK", TEXT, "ok\n".into()),
        b"/readyz" => match metrics.service.readiness() {
            Ok(()) => ("200 OK", TEXT, "ready\n".into()),
            Err(why) => ("503 Service Unavailable", TEXT, format!("{why}\n")),
        },
        _ => (
            "404 Not Found",
            TEXT,
            "GET /metrics, /healthz or /readyz\n".into(),
        ),
    }
}
