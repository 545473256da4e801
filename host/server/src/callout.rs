//! Turn one request message into one response message: verify, ask the
//! plugin chain, apply the host policy, issue. No NATS here, so the whole
//! path from raw request bytes to response bytes is testable and
//! benchmarkable in-process.
//!
//! Every refusal after the request verified is a signed error response
//! with a reason, so the server refuses the client at once and logs why.
//! A request that does not verify gets no answer at all.

use crate::audit::{Audit, Outcome};
use crate::metrics::Metrics;
use crate::policy;
use crate::registry::{ChainOutcome, Registry};
use crate::throttle::{FailureLimits, Throttle};
use portcullis_protocol::claims::RequestClaims;
use portcullis_protocol::time::unix_now;
use portcullis_protocol::{
    IssueError, RequestError, ResponseError, Signers, VerifiedRequest, Verifier,
};
use std::sync::{Arc, OnceLock};
use std::time::Instant;
use tokio::sync::mpsc;

/// A login the chain, the policy and the issuer all agreed to.
struct Granted {
    plugin: String,
    /// The plugin version (component digest) that decided.
    digest: String,
    account: String,
    user_jwt: String,
}

/// A login refused: by whom (empty when every plugin abstained or no
/// plugin was asked), whether it was a decision (`deny`), a failure
/// (`error`), back-pressure (`rejected`) or too many failed logins
/// (`throttled`), and the reason sent to the server.
struct Refusal {
    plugin: String,
    outcome: &'static str,
    reason: String,
}

impl Refusal {
    fn deny(plugin: String, reason: String) -> Refusal {
        Refusal {
            plugin,
            outcome: "deny",
            reason,
        }
    }
}

/// Answers authorization requests for one callout account.
pub struct Callout {
    signers: Signers,
    verifier: Verifier,
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
    /// Where audit events go besides the log (`[audit] subject`), as JSON.
    audit: OnceLock<Audit>,
    /// Failed logins per client address and user name.
    throttle: Throttle,
}

impl Callout {
    /// `metrics` are the host's: they may already be served (the probes
    /// answer before the plugins are loaded) and the runtime counts into
    /// them while the registry loads.
    pub fn new(
        signers: Signers,
        verifier: Verifier,
        registry: Arc<Registry>,
        limits: FailureLimits,
        metrics: Arc<Metrics>,
    ) -> Callout {
        Callout {
            signers,
            verifier,
            registry,
            metrics,
            audit: OnceLock::new(),
            throttle: Throttle::new(limits),
        }
    }

    /// Also send every decision as a JSON [`AuditEvent`](crate::audit::AuditEvent)
    /// to `sink` (the host publishes them on `[audit] subject`). When the
    /// sink is full the event is dropped (the log line stays): auditing
    /// never holds a login.
    pub fn audit_to(&self, sink: mpsc::Sender<Vec<u8>>) {
        let _ = self.audit.set(Audit::new(sink, self.metrics.clone()));
    }

    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Answer one request message with the response body (sealed when the
    /// request was). `Err` means no answer can be sent: the request did not
    /// verify (or, never in practice, signing failed).
    pub async fn handle(
        &self,
        server_xkey: Option<&str>,
        payload: &[u8],
    ) -> Result<Vec<u8>, HandleError> {
        self.answer(server_xkey, payload, None).await
    }

    /// Answer one request with a signed error without asking any plugin:
    /// the service is saturated. The server then refuses the client at once
    /// with `reason` instead of letting it wait for its auth timeout.
    pub async fn refuse(
        &self,
        server_xkey: Option<&str>,
        payload: &[u8],
        reason: &str,
    ) -> Result<Vec<u8>, HandleError> {
        self.answer(server_xkey, payload, Some(reason)).await
    }

    async fn answer(
        &self,
        server_xkey: Option<&str>,
        payload: &[u8],
        refusal: Option<&str>,
    ) -> Result<Vec<u8>, HandleError> {
        let started = Instant::now();
        let now = unix_now();
        let verified = match self.verifier.verify(payload, server_xkey, now) {
            Ok(v) => v,
            Err(e) => {
                self.metrics.unverified.inc();
                return Err(e.into());
            }
        };
        Ok(self
            .answer_verified(verified, refusal, started, now)
            .await?)
    }

    /// Verify requests that arrived together (`(payload, server xkey)`
    /// each), answers in their order: their signatures are checked in a
    /// batch (see [`portcullis_protocol::batch`]), and a request that does
    /// not verify fails alone. Answer the verified ones with
    /// [`Callout::answer_verified`].
    pub fn verify_all<'a>(
        &self,
        requests: impl ExactSizeIterator<Item = (&'a [u8], Option<&'a str>)>,
        now: i64,
    ) -> Vec<Result<VerifiedRequest, RequestError>> {
        let n = requests.len();
        let verified = self.verifier.verify_all(requests, now);
        if n > 1 {
            self.metrics.signature_batches.inc();
            self.metrics.requests_in_batches.inc_by(n as u64);
        }
        let failed = verified.iter().filter(|v| v.is_err()).count();
        self.metrics.unverified.inc_by(failed as u64);
        verified
    }

    /// Answer one verified request with the response body (sealed when the
    /// request was), or, with `refusal`, refuse it without asking any
    /// plugin. `started` is when its verification began, `now` the Unix
    /// time it was verified at.
    pub async fn answer_verified(
        &self,
        verified: VerifiedRequest,
        refusal: Option<&str>,
        started: Instant,
        now: i64,
    ) -> Result<Vec<u8>, ResponseError> {
        let request = &verified.claims;
        let address = &request.nats.client_info.host;
        let user = &request.nats.connect_opts.user;
        let limited = refusal
            .is_none()
            .then(|| self.throttle.check(address, user))
            .flatten();
        let result = match (refusal, limited) {
            (None, None) => {
                let result = self.decide(request, now).await;
                if result.is_err() {
                    self.throttle.failed(address, user);
                }
                result
            }
            (None, Some(limit)) => {
                self.metrics.throttled(limit);
                Err(Refusal {
                    plugin: String::new(),
                    outcome: "throttled",
                    reason: limit.reason().into(),
                })
            }
            (Some(reason), _) => {
                self.metrics.rejected.inc();
                Err(Refusal {
                    plugin: String::new(),
                    outcome: "rejected",
                    reason: reason.to_owned(),
                })
            }
        };
        let seconds = started.elapsed().as_secs_f64();
        match &result {
            Ok(g) => self.metrics.decided(&g.plugin, "allow", seconds),
            Err(r) if refusal.is_none() && limited.is_none() => {
                self.metrics.decided(&r.plugin, r.outcome, seconds)
            }
            Err(_) => {}
        }
        let outcome = match &result {
            Ok(g) => Outcome::Allowed {
                plugin: &g.plugin,
                digest: &g.digest,
                account: &g.account,
            },
            Err(r) => Outcome::Refused {
                outcome: r.outcome,
                plugin: &r.plugin,
                reason: &r.reason,
            },
        };
        let micros = started.elapsed().as_micros() as u64;
        crate::audit::log(&request.nats, &outcome, micros);
        if let Some(audit) = self.audit.get() {
            audit.publish(&request.nats, &outcome, now, micros);
        }
        // nats-server logs the reason: it gets the escaped form too, so a
        // plugin's reason (or a user name it quotes) cannot forge lines in
        // the server's log either.
        let response = result
            .map(|g| g.user_jwt)
            .map_err(|r| portcullis_protocol::logsafe::escape(&r.reason).into_owned());
        self.signers
            .respond(&verified, self.verifier.xkey.as_ref(), response, now)
    }
    /// Run the chain and the host policy and sign the user JWT, or say why
    /// the login is refused.
    async fn decide(&self, request: &RequestClaims, now: i64) -> Result<Granted, Refusal> {
        let wit_request = crate::request::auth_request(&request.nats);
        let (plugin, grant) = match self.registry.chain().decide(&wit_request).await {
            ChainOutcome::Allow { plugin, grant } => (plugin, grant),
            ChainOutcome::Deny { plugin, reason } => {
                let reason = format!("denied by plugin {plugin}: {reason}");
                return Err(Refusal::deny(plugin, reason));
            }
            ChainOutcome::Failed { plugin, error } => {
                self.metrics.plugin_failed(&plugin, &error);
                let reason = format!("plugin {plugin} failed: {error}");
                return Err(Refusal {
                    plugin,
                    outcome: "error",
                    reason,
                });
            }
            ChainOutcome::NoDecision => {
                return Err(Refusal::deny(
                    String::new(),
                    "no plugin accepted this login".into(),
                ));
            }
        };
        let name = plugin.plugin.name().to_owned();
        let refused =
            |reason: String| Refusal::deny(name.clone(), format!("plugin {name}: {reason}"));
        let approved = policy::check(&grant, &plugin.policy, &request.nats, now)
            .map_err(|v| refused(policy::refused(v)))?;
        let account = approved.account.clone();
        match self
            .signers
            .users
            .issue(&request.nats.user_nkey, approved, now)
        {
            Ok(user_jwt) => Ok(Granted {
                plugin: name,
                digest: plugin.digest.clone(),
                account,
                user_jwt,
            }),
            Err(IssueError::Sign(e)) => {
                tracing::error!(error = %e, "cannot sign user JWT");
                Err(Refusal {
                    plugin: name,
                    outcome: "error",
                    reason: "callout service could not sign the user JWT".into(),
                })
            }
            Err(e) => Err(refused(policy::refused(e))),
        }
    }
}

/// Why a request got no answer.
#[derive(Debug, thiserror::Error)]
pub enum HandleError {
    #[error("unverified request: {0}")]
    Request(#[from] RequestError),
    #[error(transparent)]
    Response(#[from] ResponseError),
}
