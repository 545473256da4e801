//! Step 2-3 of the request path: open the xkey box when the server sealed
//! the request, then decode and verify the request JWT. Nothing here
//! answers the server: an unverified request gets no response at all.

use crate::claims::{REQUEST_AUDIENCE, REQUEST_TYPE, RequestClaims};
use crate::jwt::{self, JwtError};
use crate::keys::{KeyError, Xkey, is_public_key};

#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("request is sealed with xkey but no [callout] xkey_seed is configured")]
    NoXkeyConfigured,
    #[error("cannot open sealed request: {0}")]
    Open(#[source] KeyError),
    #[error("request is not UTF-8 text")]
    NotText,
    #[error("request JWT: {0}")]
    Jwt(#[from] JwtError),
    #[error("request issuer {0:?} is not a server key (N...)")]
    IssuerNotServer(String),
    #[error("request issuer {iss:?} is not the server it names ({server_id:?})")]
    ServerMismatch { iss: String, server_id: String },
    #[error("request audience is {0:?}, expected \"nats-authorization-request\"")]
    Audience(String),
    #[error("request type is {0:?}, expected \"authorization_request\"")]
    Type(String),
    #[error("request expired at {exp} (now {now})")]
    Expired { exp: i64, now: i64 },
    #[error("request carries no expiry")]
    NoExpiry,
    #[error("request user_nkey {0:?} is not a user public key")]
    UserNkey(String),
    #[error("request from server {0} which is not in [callout] servers")]
    ServerNotPinned(String),
    #[error("request sealed by server xkey {0} which is not in [callout] server_xkeys")]
    ServerXkeyNotPinned(String),
    #[error("request is not sealed, but [callout] server_xkeys requires it")]
    NotSealed,
    #[error(
        "request is not sealed, but a server with our xkey seals every request \
         (set [callout] accept_unsealed while servers are being given the xkey)"
    )]
    Unsealed,
}

/// What a request must satisfy beyond a valid signature: our xkey to open
/// it, and optionally the servers (ids, xkeys) we answer at all.
///
/// With an xkey, a request must also be sealed. A server configured with
/// our xkey seals every request it makes, so an unsealed one was put on the
/// callout subject by someone else (a service import of the subject, a
/// client allowed to publish there), and everything in it that the plugins
/// trust as the server's word (client address, TLS chain, server tags) is
/// theirs to choose. Any server key signs a valid request unless `servers`
/// pins them, so the signature alone does not tell.
#[derive(Debug, Default)]
pub struct Verifier {
    /// Our xkey, when requests are sealed.
    pub xkey: Option<Xkey>,
    /// Answer unsealed requests although we have an xkey: only while
    /// servers are being moved to the xkey.
    pub accept_unsealed: bool,
    /// When non-empty, only requests signed by these server keys verify.
    pub servers: Vec<String>,
    /// When non-empty, only requests sealed by these server xkeys verify.
    pub server_xkeys: Vec<String>,
}

impl Verifier {
    /// The checks on how a request arrived, before it is opened: sealed
    /// when it must be, by a pinned server xkey.
    fn admit(&self, server_xkey: Option<&str>) -> Result<(), RequestError> {
        if !self.server_xkeys.is_empty() {
            match server_xkey {
                None => return Err(RequestError::NotSealed),
                Some(x) if !self.server_xkeys.iter().any(|p| p == x) => {
                    return Err(RequestError::ServerXkeyNotPinned(x.to_owned()));
                }
                Some(_) => {}
            }
        }
        if self.xkey.is_some() && server_xkey.is_none() && !self.accept_unsealed {
            return Err(RequestError::Unsealed);
        }
        Ok(())
    }

    /// Verify a request; `server_xkey` is the `Nats-Server-Xkey` header.
    pub fn verify(
        &self,
        payload: &[u8],
        server_xkey: Option<&str>,
        now: i64,
    ) -> Result<VerifiedRequest, RequestError> {
        self.admit(server_xkey)?;
        let (token, server_xkey) = decode_request(payload, server_xkey, self.xkey.as_ref())?;
        self.check(token.verify()?, server_xkey, now)
    }

    /// Verify requests that arrived together, answers in their order. The
    /// signatures of requests from one server are checked in one batch
    /// ([`crate::batch`]); a request that fails (forged, expired, unsealed)
    /// fails alone and never makes another fail.
    pub fn verify_all<'a>(
        &self,
        requests: impl IntoIterator<Item = (&'a [u8], Option<&'a str>)>,
        now: i64,
    ) -> Vec<Result<VerifiedRequest, RequestError>> {
        let decoded = requests
            .into_iter()
            .map(|(payload, server_xkey)| {
                self.admit(server_xkey)?;
                let decoded = decode_request(payload, server_xkey, self.xkey.as_ref())?;
                // A request past its expiry gets no answer whatever its
                // signature says, so it is dropped before the signature
                // check: in a reconnect storm the backlog holds many the
                // server has already given up on, and checking them was
                // most of their cost.
                let exp = decoded.0.unverified_claims().exp;
                if exp != 0 && exp < now {
                    return Err(RequestError::Expired { exp, now });
                }
                Ok(decoded)
            })
            .collect();
        crate::batch::verify(decoded)
            .into_iter()
            .map(|r| r.and_then(|(claims, server_xkey)| self.check(claims, server_xkey, now)))
            .collect()
    }

    /// The claims checks and the server pin, once the signature verified.
    fn check(
        &self,
        claims: RequestClaims,
        server_xkey: Option<String>,
        now: i64,
    ) -> Result<VerifiedRequest, RequestError> {
        check_claims(&claims, now)?;
        if !self.servers.is_empty() && !self.servers.contains(&claims.iss) {
            return Err(RequestError::ServerNotPinned(claims.iss));
        }
        Ok(VerifiedRequest {
            claims,
            server_xkey,
        })
    }
}

/// A verified request and, when it was sealed, the server's xkey to seal
/// the response for.
#[derive(Debug)]
pub struct VerifiedRequest {
    pub claims: RequestClaims,
    pub server_xkey: Option<String>,
}

/// Open (when `server_xkey` is set) and verify a request. `now` is Unix
/// seconds.
pub fn verify_request(
    payload: &[u8],
    server_xkey: Option<&str>,
    our_xkey: Option<&Xkey>,
    now: i64,
) -> Result<VerifiedRequest, RequestError> {
    let (token, server_xkey) = decode_request(payload, server_xkey, our_xkey)?;
    let claims = token.verify()?;
    check_claims(&claims, now)?;
    Ok(VerifiedRequest {
        claims,
        server_xkey,
    })
}

/// A request opened and its claims parsed (once), its signature not yet
/// checked, with the server xkey it was sealed by.
type Decoded = (jwt::Unverified<RequestClaims>, Option<String>);

fn decode_request(
    payload: &[u8],
    server_xkey: Option<&str>,
    our_xkey: Option<&Xkey>,
) -> Result<Decoded, RequestError> {
    let token = match server_xkey {
        Some(sender) => {
            let key = our_xkey.ok_or(RequestError::NoXkeyConfigured)?;
            key.open(payload, sender).map_err(RequestError::Open)?
        }
        None => payload.to_vec(),
    };
    let token = String::from_utf8(token).map_err(|_| RequestError::NotText)?;
    let token = jwt::decode_unverified(token, |c: &RequestClaims| &c.iss)?;
    Ok((token, server_xkey.map(str::to_owned)))
}

fn check_claims(c: &RequestClaims, now: i64) -> Result<(), RequestError> {
    if !is_public_key(&c.iss, 'N') {
        return Err(RequestError::IssuerNotServer(c.iss.clone()));
    }
    // The server signs with the key that is its id; the response's `aud` is
    // that id, so both must agree.
    if c.nats.server_id.id != c.iss {
        return Err(RequestError::ServerMismatch {
            iss: c.iss.clone(),
            server_id: c.nats.server_id.id.clone(),
        });
    }
    if c.aud != REQUEST_AUDIENCE {
        return Err(RequestError::Audience(c.aud.clone()));
    }
    if c.nats.claim_type != REQUEST_TYPE {
        return Err(RequestError::Type(c.nats.claim_type.clone()));
    }
    if c.exp == 0 {
        return Err(RequestError::NoExpiry);
    }
    if c.exp < now {
        return Err(RequestError::Expired { exp: c.exp, now });
    }
    if !is_public_key(&c.nats.user_nkey, 'U') {
        return Err(RequestError::UserNkey(c.nats.user_nkey.clone()));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
