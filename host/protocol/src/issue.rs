//! Who signs what, per server mode.
//!
//! - Config mode: the issuer account signs the user JWT; its `aud` names
//!   the target account, as the server config knows accounts by name.
//! - Operator mode: the target account's signing key signs the user JWT
//!   with `issuer_account` set; a scoped signing key carries the
//!   permissions in its template, so the JWT must carry none.

use crate::claims::User;
use crate::claims::UserClaims;
use crate::jwt::{self, JwtError};
use crate::keys::Signer;
use std::collections::BTreeMap;

/// A grant the host's policy approved: what the user JWT will say.
#[derive(Debug, Clone)]
pub struct Approved {
    /// The account users are placed in, as the host configuration names it.
    pub account: String,
    pub name: String,
    /// Unix seconds; `None`: the user JWT has no `exp` (the plugin's
    /// `max_expiry` is "unlimited" and the grant asked for none).
    pub expires_at: Option<i64>,
    pub user: User,
}

/// Signs user JWTs.
pub enum UserIssuer {
    Config(Box<Signer>),
    Operator(BTreeMap<String, AccountSigner>),
}

/// An account users may be placed in (operator mode).
pub struct AccountSigner {
    /// The account's public key (A...).
    pub account: String,
    /// Its signing key (or the account key itself).
    pub key: Signer,
    /// The signing key is scoped: permissions come from its template.
    pub scoped: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum IssueError {
    #[error("account {0:?} is not configured in [accounts]")]
    UnknownAccount(String),
    #[error(
        "account {0:?} uses a scoped signing key, whose template sets the permissions; the grant must not carry permissions or limits"
    )]
    ScopedPermissions(String),
    #[error("cannot sign user JWT: {0}")]
    Sign(#[from] JwtError),
}

impl UserIssuer {
    /// Sign the user JWT for `user_nkey` from an approved grant.
    pub fn issue(
        &self,
        user_nkey: &str,
        approved: Approved,
        now: i64,
    ) -> Result<String, IssueError> {
        let mut claims = UserClaims {
            iat: now,
            sub: user_nkey.to_owned(),
            name: approved.name,
            exp: approved.expires_at,
            nats: approved.user,
            ..UserClaims::default()
        };
        let signer = match self {
            UserIssuer::Config(issuer) => {
                claims.aud = approved.account;
                issuer
            }
            UserIssuer::Operator(accounts) => {
                let target = accounts
                    .get(&approved.account)
                    .ok_or_else(|| IssueError::UnknownAccount(approved.account.clone()))?;
                if target.scoped {
                    if !claims.nats.has_no_permissions_or_limits() {
                        return Err(IssueError::ScopedPermissions(approved.account));
                    }
                    // nats-io/jwt requires the permission/limit block to be
                    // entirely empty for a scoped signer: zero, not -1.
                    claims.nats.subs = 0;
                    claims.nats.data = 0;
                    claims.nats.payload = 0;
                }
                if target.key.public_key() != target.account {
                    claims.nats.issuer_account = target.account.clone();
                }
                &target.key
            }
        };
        claims.iss = signer.public_key().to_owned();
        Ok(jwt::encode(&mut claims, |c| &mut c.jti, signer)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use nkeys::KeyPair;

    fn issue(expires_at: Option<i64>) -> serde_json::Value {
        let issuer = Signer::new(&KeyPair::new_account()).expect("an account key signs");
        let approved = Approved {
            account: "APP1".into(),
            name: "alice".into(),
            expires_at,
            user: User::default(),
        };
        let token = UserIssuer::Config(Box::new(issuer))
            .issue(&KeyPair::new_user().public_key(), approved, 1000)
            .expect("signed");
        jwt::decode_verified(&token).expect("verifies")
    }

    #[test]
    fn an_expiry_becomes_exp() {
        let claims = issue(Some(4600));
        assert_eq!(claims["exp"], 4600, "{claims}");
        assert_eq!(claims["aud"], "APP1", "{claims}");
    }

    #[test]
    fn no_expiry_means_no_exp_claim() {
        let claims = issue(None);
        assert!(claims.get("exp").is_none(), "{claims}");
        assert_eq!(claims["iat"], 1000, "{claims}");
    }
}
