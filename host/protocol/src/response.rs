//! The authorization response: who signs it, what it carries, and the
//! xkey seal when the request came sealed.

use crate::claims::{AuthorizationResponse, CLAIMS_VERSION, RESPONSE_TYPE, ResponseClaims};
use crate::issue::UserIssuer;
use crate::jwt::{self, JwtError};
use crate::keys::{KeyError, Signer, Xkey};
use crate::verify::VerifiedRequest;

#[derive(Debug, thiserror::Error)]
pub enum ResponseError {
    #[error("cannot sign response: {0}")]
    Sign(#[from] JwtError),
    #[error("cannot seal response: {0}")]
    Seal(#[from] KeyError),
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

impl Signers {
    /// Build and sign the response to `verified`: the user JWT, or the
    /// reason the login is refused. Sealed for the server with `xkey` when
    /// the request was sealed.
    pub fn respond(
        &self,
        verified: &VerifiedRequest,
        xkey: Option<&Xkey>,
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
            iss: self.response.public_key().to_owned(),
            sub: request.user_nkey.clone(),
            aud: request.server_id.id.clone(),
            nats: AuthorizationResponse {
                jwt: user_jwt,
                error,
                issuer_account: self.response_account.clone().unwrap_or_default(),
                claim_type: RESPONSE_TYPE,
                version: CLAIMS_VERSION,
            },
        };
        let token = jwt::encode(&mut response, |c| &mut c.jti, &self.response)?;
        Ok(match (&verified.server_xkey, xkey) {
            (Some(server), Some(ours)) => ours.seal(token.as_bytes(), server)?,
            _ => token.into_bytes(),
        })
    }
}
