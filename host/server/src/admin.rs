//! The host as a NATS micro service, so a fleet is inspected with NATS
//! itself: `$SRV.PING|INFO|STATS.portcullis` reach every host (STATS carry
//! each host's counters and plugins), and every host answers on
//! [`PLUGINS_SUBJECT`] with the plugins it runs (`portcullis plugin list`).
//! No home-made discovery, no extra port.

use crate::metrics::Metrics;
use crate::registry::Registry;
use async_nats::service::{Service, ServiceExt};
use bytes::Bytes;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Service name in `$SRV` discovery.
pub const SERVICE_NAME: &str = "portcullis";
/// Every host answers requests here (each in a queue group of its own).
pub const PLUGINS_SUBJECT: &str = "portcullis.admin.plugins";

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("cannot register the {SERVICE_NAME} NATS service: {0}")]
    Register(String),
    #[error("cannot ask {subject}: {message}")]
    Query { subject: String, message: String },
}

/// One active plugin of one host.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PluginStatus {
    pub name: String,
    /// SHA-256 of the component, hex.
    pub digest: String,
    /// File path or `nats-object://` URL.
    pub origin: String,
    #[serde(default)]
    pub signer: Option<String>,
    /// When this version was loaded (Unix seconds).
    pub loaded_at: u64,
}

/// What one host reports about itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostStatus {
    /// The micro service instance id (`$SRV.*.portcullis.ID`).
    #[serde(default)]
    pub id: String,
    /// `[nats] name` of the host.
    pub name: String,
    pub version: String,
    pub queue: String,
    /// Requests answered since start.
    pub answered: u64,
    pub allowed: u64,
    /// Refused by a plugin, the host policy or a plugin failure.
    pub denied: u64,
    /// Refused at once because the host was saturated.
    pub rejected: u64,
    pub in_flight: u64,
    pub plugins: Vec<PluginStatus>,
}

/// Everything a status answer is built from.
#[derive(Clone)]
struct Source {
    name: String,
    queue: String,
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
}

impl Source {
    fn status(&self, id: &str) -> HostStatus {
        let stats = &self.metrics.service;
        let plugins = self
            .registry
            .chain()
            .plugins()
            .iter()
            .map(|p| PluginStatus {
                name: p.plugin.name().to_owned(),
                digest: p.digest.clone(),
                origin: p.origin.clone(),
                signer: p.signer.clone(),
                loaded_at: portcullis_protocol::time::unix_seconds(p.loaded_at) as u64,
            })
            .collect();
        HostStatus {
            id: id.to_owned(),
            name: self.name.clone(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            queue: self.queue.clone(),
            answered: stats.answered.load(Ordering::Relaxed),
            allowed: stats.allowed.load(Ordering::Relaxed),
            denied: stats.denied.load(Ordering::Relaxed),
            rejected: self.metrics.rejected.get(),
            in_flight: stats.in_flight.load(Ordering::Relaxed) as u64,
            plugins,
        }
    }
}

/// The registered service; stop it before draining.
pub struct Admin {
    service: Service,
    task: tokio::task::JoinHandle<()>,
    pub id: String,
}

impl Admin {
    pub async fn stop(self) {
        self.task.abort();
        let _ = self.service.stop().await;
    }
}

/// Register this host as an instance of the `portcullis` service.
pub async fn start(
    client: &async_nats::Client,
    name: &str,
    queue: &str,
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
) -> Result<Admin, AdminError> {
    let source = Source {
        name: name.to_owned(),
        queue: queue.to_owned(),
        registry,
        metrics,
    };
    let for_stats = source.clone();
    let service = client
        .service_builder()
        .description("NATS auth callout decided by sandboxed WebAssembly plugins")
        .metadata(HashMap::from([
            ("name".to_owned(), name.to_owned()),
            ("queue".to_owned(), queue.to_owned()),
        ]))
        .stats_handler(move |_endpoint, _stats| {
            serde_json::to_value(for_stats.status("")).unwrap_or_default()
        })
        .start(SERVICE_NAME, env!("CARGO_PKG_VERSION"))
        .await
        .map_err(|e| AdminError::Register(e.to_string()))?;
    let id = service.info().await.id;
    // A queue group of its own: every host answers a plugins request.
    let mut endpoint = service
        .endpoint_builder()
        .name("plugins")
        .queue_group(format!("{SERVICE_NAME}.{id}"))
        .add(PLUGINS_SUBJECT)
        .await
        .map_err(|e| AdminError::Register(e.to_string()))?;
    let host_id = id.clone();
    let task = tokio::spawn(async move {
        while let Some(request) = endpoint.next().await {
            let answer = serde_json::to_vec(&source.status(&host_id))
                .map(Bytes::from)
                .map_err(|e| async_nats::service::error::Error {
                    status: e.to_string(),
                    code: 500,
                });
            if let Err(e) = request.respond(answer).await {
                tracing::warn!(error = %e, "admin: cannot answer a plugins request");
            }
        }
    });
    tracing::info!(service = SERVICE_NAME, %id, "registered with NATS service discovery");
    Ok(Admin { service, task, id })
}

/// Scatter-gather: publish one request on `subject` and collect replies
/// until none arrived for `quiet` (at most `max_wait`, at most `max_replies`).
pub async fn gather(
    client: &async_nats::Client,
    subject: &str,
    quiet: Duration,
    max_wait: Duration,
) -> Result<Vec<Bytes>, AdminError> {
    const MAX_REPLIES: usize = 10_000;
    let failed = |e: &dyn std::fmt::Display| AdminError::Query {
        subject: subject.to_owned(),
        message: e.to_string(),
    };
    let inbox = client.new_inbox();
    let mut replies = client
        .subscribe(inbox.clone())
        .await
        .map_err(|e| failed(&e))?;
    client
        .publish_with_reply(subject.to_owned(), inbox, Bytes::new())
        .await
        .map_err(|e| failed(&e))?;
    client.flush().await.map_err(|e| failed(&e))?;
    let deadline = Instant::now() + max_wait;
    let mut out = Vec::new();
    while out.len() < MAX_REPLIES {
        let left = deadline.saturating_duration_since(Instant::now());
        // The first reply may take a round trip; later ones come together.
        let wait = if out.is_empty() {
            left
        } else {
            quiet.min(left)
        };
        match tokio::time::timeout(wait, replies.next()).await {
            Ok(Some(message)) => out.push(message.payload),
            Ok(None) | Err(_) => break,
        }
    }
    Ok(out)
}

/// Every host's status, as `plugin list` and `status` show it.
pub async fn fleet(
    client: &async_nats::Client,
    wait: Duration,
) -> Result<Vec<HostStatus>, AdminError> {
    let mut hosts: Vec<HostStatus> = gather(client, PLUGINS_SUBJECT, QUIET, wait)
        .await?
        .iter()
        .filter_map(|payload| serde_json::from_slice(payload).ok())
        .collect();
    hosts.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
    Ok(hosts)
}

/// How long `gather` waits for more replies after the last one.
pub const QUIET: Duration = Duration::from_millis(250);

/// A `$SRV.STATS` answer, as much of it as `status` reads.
#[derive(Debug, Deserialize)]
struct StatsReply {
    #[serde(default)]
    id: String,
    #[serde(default)]
    started: String,
    #[serde(default)]
    endpoints: Vec<EndpointStats>,
}

#[derive(Debug, Deserialize)]
struct EndpointStats {
    #[serde(default)]
    data: Option<serde_json::Value>,
}

/// A host as `$SRV.STATS.portcullis` describes it.
#[derive(Debug, Clone)]
pub struct FleetMember {
    pub status: HostStatus,
    /// When the host started (RFC 3339, as the service API reports it).
    pub started: String,
}

/// Every host of the fleet, from `$SRV.STATS.portcullis`.
pub async fn stats(
    client: &async_nats::Client,
    wait: Duration,
) -> Result<Vec<FleetMember>, AdminError> {
    let subject = format!("$SRV.STATS.{SERVICE_NAME}");
    let mut members: Vec<FleetMember> = gather(client, &subject, QUIET, wait)
        .await?
        .iter()
        .filter_map(|payload| serde_json::from_slice::<StatsReply>(payload).ok())
        .filter_map(|reply| {
            let data = reply.endpoints.into_iter().find_map(|e| e.data)?;
            let mut status: HostStatus = serde_json::from_value(data).ok()?;
            status.id = reply.id;
            Some(FleetMember {
                status,
                started: reply.started,
            })
        })
        .collect();
    members.sort_by(|a, b| (&a.status.name, &a.status.id).cmp(&(&b.status.name, &b.status.id)));
    Ok(members)
}
