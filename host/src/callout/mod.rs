//! The auth-callout protocol: turn one request message into one response
//! message. No NATS here, so the whole path from raw request bytes to
//! response bytes is testable and benchmarkable in-process.
//!
//! Every refusal after the request verified is a signed error response
//! with a reason, so the server refuses the client at once and logs why.
//! A request that does not verify gets no answer at all.

pub mod claims;
pub mod issue;
pub mod jwt;
pub mod verify;

use crate::keys::Signer;
use crate::metrics::Metrics;
use crate::policy;
use crate::registry::{ChainOutcome, Registry};
use crate::runtime::bindings::AuthRequest;
use claims::{AuthorizationResponse, CLAIMS_VERSION, RESPONSE_TYPE, RequestClaims, ResponseClaims};
pub use issue::{AccountSigner, IssueError, UserIssuer};
use serde::Serialize;
use std::sync::{Arc, OnceLock};
use std::time::Instant;
use tokio::sync::mpsc;
pub use verify::{RequestError, VerifiedRequest, Verifier, verify_request};

/// Header in which nats-server sends its xkey when it sealed the request.
pub const SERVER_XKEY_HEADER: &str = "Nats-Server-Xkey";
/// Subject the server sends authorization requests to.
pub const CALLOUT_SUBJECT: &str = "$SYS.REQ.USER.AUTH";

#[derive(Debug, thiserror::Error)]
pub enum ResponseError {
    #[error("cannot sign response: {0}")]
    Sign(#[from] jwt::JwtError),
    #[error("cannot seal response: {0}")]
    Seal(#[from] crate::keys::KeyError),
}

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
/// (`error`) or back-pressure (`rejected`), and the reason sent to the
/// server.
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

/// The keys that sign, per server mode.
pub struct Signers {
    /// Signs responses: the issuer account (config mode), or the callout
    /// account or one of its signing keys (operator mode).
    pub response: Signer,
    /// The callout account, when `response` is one of its signing keys.
    pub response_account: Option<String>,
    /// Signs user JWTs.
    pub users: UserIssuer,
}

/// Answers authorization requests for one callout account.
pub struct Callout {
    signers: Signers,
    verifier: Verifier,
    registry: Arc<Registry>,
    metrics: Arc<Metrics>,
    /// Where audit events go besides the log (`[audit] subject`), as JSON.
    audit: OnceLock<mpsc::Sender<Vec<u8>>>,
}

/// One decision, as published to `[audit] subject`: the same facts as the
/// audit log line, never a password, token, JWT, signature or seed.
#[derive(Debug, Serialize)]
pub struct AuditEvent<'a> {
    /// The one-time user nkey the server made for this login (the
    /// response's `sub`). Not the request's `jti`: nats-server hashes only
    /// the standard claims into it, which are the same for every request it
    /// sends within a second.
    pub request: &'a str,
    pub time: i64,
    pub server: &'a str,
    pub client: &'a str,
    pub cid: u64,
    pub user: &'a str,
    /// `allow`, `deny`, `error` or `rejected`.
    pub outcome: &'a str,
    pub plugin: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub digest: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub account: &'a str,
    #[serde(skip_serializing_if = "str::is_empty")]
    pub reason: &'a str,
    pub micros: u64,
}

impl Callout {
    pub fn new(signers: Signers, verifier: Verifier, registry: Arc<Registry>) -> Callout {
        Callout {
            signers,
            verifier,
            registry,
            metrics: Arc::new(Metrics::new()),
            audit: OnceLock::new(),
        }
    }

    /// Also send every decision as a JSON [`AuditEvent`] to `sink` (the
    /// host publishes them on `[audit] subject`). When the sink is full the
    /// event is dropped (the log line stays): auditing never holds a login.
    pub fn audit_to(&self, sink: mpsc::Sender<Vec<u8>>) {
        let _ = self.audit.set(sink);
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
        let request = &verified.claims;
        let result = match refusal {
            None => self.decide(request, now).await,
            Some(reason) => {
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
            Err(r) if refusal.is_none() => self.metrics.decided(&r.plugin, r.outcome, seconds),
            Err(_) => {}
        }
        // One audit line per decision. Never a password, token, JWT or
        // signature: only who asked, who decided, and the outcome.
        let info = &request.nats;
        let micros = started.elapsed().as_micros() as u64;
        match &result {
            Ok(g) => tracing::info!(
                request = %info.user_nkey, server = %info.server_id.name, client = %info.client_info.host,
                cid = info.client_info.id, user = %info.connect_opts.user, plugin = %g.plugin,
                digest = %&g.digest[..12], account = %g.account, micros, "login allowed"
            ),
            Err(r) => tracing::warn!(
                request = %info.user_nkey, server = %info.server_id.name, client = %info.client_info.host,
                cid = info.client_info.id, user = %info.connect_opts.user, reason = %r.reason,
                micros, "login denied"
            ),
        }
        if let Some(sink) = self.audit.get() {
            let (outcome, plugin, digest, account, reason) = match &result {
                Ok(g) => (
                    "allow",
                    g.plugin.as_str(),
                    g.digest.as_str(),
                    g.account.as_str(),
                    "",
                ),
                Err(r) => (r.outcome, r.plugin.as_str(), "", "", r.reason.as_str()),
            };
            let event = AuditEvent {
                request: &info.user_nkey,
                time: now,
                server: &info.server_id.name,
                client: &info.client_info.host,
                cid: info.client_info.id,
                user: &info.connect_opts.user,
                outcome,
                plugin,
                digest,
                account,
                reason,
                micros,
            };
            if let Ok(json) = serde_json::to_vec(&event)
                && sink.try_send(json).is_err()
            {
                self.metrics.audit_dropped.inc();
            }
        }
        Ok(self.respond(
            &verified,
            result.map(|g| g.user_jwt).map_err(|r| r.reason),
            now,
        )?)
    }

    /// Run the chain and the host policy and sign the user JWT, or say why
    /// the login is refused.
    async fn decide(&self, request: &RequestClaims, now: i64) -> Result<Granted, Refusal> {
        let wit_request = AuthRequest::from(&request.nats);
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
        let refused = |why: String| {
            Refusal::deny(
                name.clone(),
                format!("plugin {name}: grant refused by host policy: {why}"),
            )
        };
        let approved = policy::check(&grant, &plugin.policy, &request.nats, now)
            .map_err(|v| refused(v.to_string()))?;
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
            Err(e) => Err(refused(e.to_string())),
        }
    }

    /// Build, sign and (when the request was sealed) seal the response.
    fn respond(
        &self,
        verified: &VerifiedRequest,
        result: Result<String, String>,
        now: i64,
    ) -> Result<Vec<u8>, ResponseError> {
        let request = &verified.claims.nats;
        let (user_jwt, error) = match result {
            Ok(user_jwt) => (user_jwt, String::new()),
            Err(reason) => (String::new(), reason),
        };
        let mut response = ResponseClaims {
            jti: String::new(),
            iat: now,
            iss: self.signers.response.public_key().to_owned(),
            sub: request.user_nkey.clone(),
            aud: request.server_id.id.clone(),
            nats: AuthorizationResponse {
                jwt: user_jwt,
                error,
                issuer_account: self.signers.response_account.clone().unwrap_or_default(),
                claim_type: RESPONSE_TYPE,
                version: CLAIMS_VERSION,
            },
        };
        let token = jwt::encode(&mut response, |c| &mut c.jti, &self.signers.response)?;
        Ok(match (&verified.server_xkey, &self.verifier.xkey) {
            (Some(server), Some(ours)) => ours.seal(token.as_bytes(), server)?,
            _ => token.into_bytes(),
        })
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

pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
