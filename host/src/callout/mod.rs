//! The auth-callout protocol: turn one request message into one response
//! message. No NATS here, so the whole path from raw request bytes to
//! response bytes is testable and benchmarkable in-process.
//!
//! Every refusal after the request verified is a signed error response
//! with a reason, so the server refuses the client at once and logs why.
//! A request that does not verify gets no answer at all.

pub mod claims;
pub mod jwt;
pub mod verify;

use crate::keys::Xkey;
use crate::policy::{self, Approved};
use crate::registry::{ChainOutcome, Registry};
use crate::runtime::bindings::AuthRequest;
use claims::{
    AuthorizationResponse, CLAIMS_VERSION, RESPONSE_TYPE, RequestClaims, ResponseClaims, UserClaims,
};
use nkeys::KeyPair;
use std::sync::Arc;
use std::time::Instant;
pub use verify::{RequestError, VerifiedRequest, verify_request};

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

/// What happened to one request, for logs, metrics and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Allowed into `account` by `plugin`.
    Allowed { plugin: String, account: String },
    /// Refused, with the reason sent to the server.
    Denied { reason: String },
}

/// The answer to one request.
pub struct Answer {
    /// The response message body (sealed when the request was).
    pub payload: Vec<u8>,
    pub verdict: Verdict,
}

/// Signs responses for one callout issuer.
pub struct Callout {
    issuer: KeyPair,
    issuer_public: String,
    xkey: Option<Xkey>,
    registry: Arc<Registry>,
}

impl Callout {
    pub fn new(issuer: KeyPair, xkey: Option<Xkey>, registry: Arc<Registry>) -> Callout {
        Callout {
            issuer_public: issuer.public_key(),
            issuer,
            xkey,
            registry,
        }
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Answer one request message. `Err` means no answer can be sent: the
    /// request did not verify (or, never in practice, signing failed).
    pub async fn handle(
        &self,
        server_xkey: Option<&str>,
        payload: &[u8],
    ) -> Result<Answer, HandleError> {
        let started = Instant::now();
        let now = unix_now();
        let verified = verify_request(payload, server_xkey, self.xkey.as_ref(), now)?;
        let request = &verified.claims;
        let result = self.decide(request, now).await;
        let verdict = match &result {
            Ok((plugin, approved)) => Verdict::Allowed {
                plugin: plugin.clone(),
                account: approved.account.clone(),
            },
            Err(reason) => Verdict::Denied {
                reason: reason.clone(),
            },
        };
        let info = &request.nats;
        match &verdict {
            Verdict::Allowed { plugin, account } => tracing::info!(
                server = %info.server_id.name, client = %info.client_info.host, cid = info.client_info.id,
                user = %info.connect_opts.user, plugin = %plugin, account = %account,
                micros = started.elapsed().as_micros() as u64, "login allowed"
            ),
            Verdict::Denied { reason } => tracing::warn!(
                server = %info.server_id.name, client = %info.client_info.host, cid = info.client_info.id,
                user = %info.connect_opts.user, reason = %reason,
                micros = started.elapsed().as_micros() as u64, "login denied"
            ),
        }
        let payload = self.respond(&verified, result.map(|(_, a)| a), now)?;
        Ok(Answer { payload, verdict })
    }

    /// Run the chain and the host policy: the plugin that allowed and the
    /// approved grant, or the reason for the refusal.
    async fn decide(
        &self,
        request: &RequestClaims,
        now: i64,
    ) -> Result<(String, Approved), String> {
        let wit_request = AuthRequest::from(&request.nats);
        match self.registry.chain().decide(&wit_request).await {
            ChainOutcome::Allow { plugin, grant } => {
                let name = plugin.plugin.name().to_owned();
                match policy::check(&grant, &plugin.policy, &request.nats, now) {
                    Ok(approved) => Ok((name, approved)),
                    Err(violation) => Err(format!(
                        "plugin {name}: grant refused by host policy: {violation}"
                    )),
                }
            }
            ChainOutcome::Deny { plugin, reason } => {
                Err(format!("denied by plugin {plugin}: {reason}"))
            }
            ChainOutcome::Failed { plugin, error } => {
                Err(format!("plugin {plugin} failed: {error}"))
            }
            ChainOutcome::NoDecision => Err("no plugin accepted this login".into()),
        }
    }

    /// Build, sign and (when the request was sealed) seal the response.
    fn respond(
        &self,
        verified: &VerifiedRequest,
        result: Result<Approved, String>,
        now: i64,
    ) -> Result<Vec<u8>, ResponseError> {
        let request = &verified.claims.nats;
        let (user_jwt, error) = match result {
            Ok(approved) => match self.user_jwt(request.user_nkey.clone(), approved, now) {
                Ok(token) => (token, String::new()),
                Err(e) => {
                    tracing::error!(error = %e, "cannot sign user JWT");
                    (
                        String::new(),
                        "callout service could not sign the user JWT".into(),
                    )
                }
            },
            Err(reason) => (String::new(), reason),
        };
        let mut response = ResponseClaims {
            jti: String::new(),
            iat: now,
            iss: self.issuer_public.clone(),
            sub: request.user_nkey.clone(),
            aud: request.server_id.id.clone(),
            nats: AuthorizationResponse {
                jwt: user_jwt,
                error,
                issuer_account: String::new(),
                claim_type: RESPONSE_TYPE,
                version: CLAIMS_VERSION,
            },
        };
        let token = jwt::encode(&mut response, |c| &mut c.jti, &self.issuer)?;
        Ok(match (&verified.server_xkey, &self.xkey) {
            (Some(server), Some(ours)) => ours.seal(token.as_bytes(), server)?,
            _ => token.into_bytes(),
        })
    }

    /// Config mode: the issuer account signs; `aud` names the target account.
    fn user_jwt(
        &self,
        user_nkey: String,
        approved: Approved,
        now: i64,
    ) -> Result<String, jwt::JwtError> {
        let mut claims = UserClaims {
            jti: String::new(),
            iat: now,
            iss: self.issuer_public.clone(),
            sub: user_nkey,
            name: approved.name,
            aud: approved.account,
            exp: Some(approved.expires_at),
            nats: approved.user,
        };
        jwt::encode(&mut claims, |c| &mut c.jti, &self.issuer)
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
