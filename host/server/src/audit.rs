//! One audit record per decision: a log line always, and a JSON event on
//! `[audit] subject` when configured. Both carry who asked, who decided and
//! the outcome; never a password, token, JWT, signature or seed.
//!
//! Every string field that a client, a server or a plugin chose (user,
//! client host, server name, plugin, account, reason) is escaped with
//! [`logsafe`](portcullis_protocol::logsafe) in both records, the JSON event included:
//! JSON encoding keeps the event parseable, but collectors print decoded
//! fields (`jq -r .user`), and JSON leaves DEL, C1 controls and bidi
//! overrides raw. The escaping is reversible, so the event still names
//! exactly one original string.

use crate::metrics::Metrics;
use portcullis_protocol::claims::AuthorizationRequest;
use portcullis_protocol::logsafe::escape;
use serde::Serialize;
use std::borrow::Cow;
use std::sync::Arc;
use tokio::sync::mpsc;

/// How one login ended, as the audit records it.
pub enum Outcome<'a> {
    Allowed {
        plugin: &'a str,
        /// The plugin version (component digest) that decided.
        digest: &'a str,
        account: &'a str,
    },
    Refused {
        /// `deny`, `error`, `rejected` or `throttled`.
        outcome: &'static str,
        /// Empty when every plugin abstained or no plugin was asked.
        plugin: &'a str,
        reason: &'a str,
    },
}

/// One decision, as published to `[audit] subject`: the same facts as the
/// audit log line, string fields escaped as there.
#[derive(Debug, Serialize)]
pub struct AuditEvent<'a> {
    /// The one-time user nkey the server made for this login (the
    /// response's `sub`). Not the request's `jti`: nats-server hashes only
    /// the standard claims into it, which are the same for every request it
    /// sends within a second.
    pub request: Cow<'a, str>,
    pub time: i64,
    pub server: Cow<'a, str>,
    pub client: Cow<'a, str>,
    pub cid: u64,
    pub user: Cow<'a, str>,
    /// `allow`, `deny`, `error`, `rejected` or `throttled`.
    pub outcome: &'a str,
    pub plugin: Cow<'a, str>,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub digest: Cow<'a, str>,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub account: Cow<'a, str>,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub reason: Cow<'a, str>,
    pub micros: u64,
}

/// The audit log line of one decision.
pub fn log(info: &AuthorizationRequest, outcome: &Outcome<'_>, micros: u64) {
    match outcome {
        Outcome::Allowed {
            plugin,
            digest,
            account,
        } => tracing::info!(
            request = %escape(&info.user_nkey), server = %escape(&info.server_id.name),
            client = %escape(&info.client_info.host), cid = info.client_info.id,
            user = %escape(&info.connect_opts.user), plugin = %escape(plugin),
            digest = %escape(digest.get(..12).unwrap_or(digest)), account = %escape(account),
            micros, "login allowed"
        ),
        Outcome::Refused { reason, .. } => tracing::warn!(
            request = %escape(&info.user_nkey), server = %escape(&info.server_id.name),
            client = %escape(&info.client_info.host), cid = info.client_info.id,
            user = %escape(&info.connect_opts.user), reason = %escape(reason),
            micros, "login denied"
        ),
    }
}

/// Where audit events go besides the log.
pub struct Audit {
    sink: mpsc::Sender<Vec<u8>>,
    metrics: Arc<Metrics>,
}

impl Audit {
    pub fn new(sink: mpsc::Sender<Vec<u8>>, metrics: Arc<Metrics>) -> Audit {
        Audit { sink, metrics }
    }

    /// Queue the event of one decision; when the queue is full it is
    /// dropped and counted, never waited for.
    pub fn publish(
        &self,
        info: &AuthorizationRequest,
        outcome: &Outcome<'_>,
        now: i64,
        micros: u64,
    ) {
        let (outcome, plugin, digest, account, reason) = match *outcome {
            Outcome::Allowed {
                plugin,
                digest,
                account,
            } => ("allow", plugin, digest, account, ""),
            Outcome::Refused {
                outcome,
                plugin,
                reason,
            } => (outcome, plugin, "", "", reason),
        };
        let event = AuditEvent {
            request: escape(&info.user_nkey),
            time: now,
            server: escape(&info.server_id.name),
            client: escape(&info.client_info.host),
            cid: info.client_info.id,
            user: escape(&info.connect_opts.user),
            outcome,
            plugin: escape(plugin),
            digest: escape(digest),
            account: escape(account),
            reason: escape(reason),
            micros,
        };
        if let Ok(json) = serde_json::to_vec(&event)
            && self.sink.try_send(json).is_err()
        {
            self.metrics.audit_dropped.inc();
        }
    }
}

/// Audit events queued for publishing; beyond that they are dropped and
/// counted (the log line of each decision stays).
pub const BACKLOG: usize = 4096;

/// Publish queued events on `subject` until every sender is gone, then
/// flush.
pub async fn publish_all(
    client: async_nats::Client,
    subject: String,
    mut events: mpsc::Receiver<Vec<u8>>,
) {
    while let Some(event) = events.recv().await {
        if let Err(e) = client.publish(subject.clone(), event.into()).await {
            tracing::warn!(%subject, error = %e, "cannot publish audit event");
        }
    }
    let _ = client.flush().await;
}
