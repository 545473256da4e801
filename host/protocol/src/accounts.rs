//! Operator mode (decentralized JWT) claims: enough of nats-io/jwt's
//! operator, account and user claims to write a complete deployment
//! (`portcullis init --mode operator`) and to check that configured
//! signing keys belong to the accounts they are named for.

use crate::claims::{CLAIMS_VERSION, Permission, User, UserClaims};
use crate::jwt::{self, JwtError};
use nkeys::KeyPair;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct OperatorClaims {
    pub jti: String,
    pub iat: i64,
    pub iss: String,
    pub sub: String,
    pub name: String,
    pub nats: Operator,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Operator {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub signing_keys: Vec<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub system_account: String,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub strict_signing_key_usage: bool,
    #[serde(rename = "type")]
    pub claim_type: String,
    pub version: i32,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct AccountClaims {
    pub jti: String,
    pub iat: i64,
    pub iss: String,
    pub sub: String,
    pub name: String,
    pub nats: Account,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Account {
    pub limits: AccountLimits,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub signing_keys: Vec<SigningKey>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub authorization: Option<ExternalAuthorization>,
    #[serde(rename = "type")]
    pub claim_type: String,
    pub version: i32,
}

/// -1 = unlimited. Zero would mean "none allowed", so every field is set.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct AccountLimits {
    pub subs: i64,
    pub data: i64,
    pub payload: i64,
    pub imports: i64,
    pub exports: i64,
    pub wildcards: bool,
    pub conn: i64,
    pub leaf: i64,
}

impl Default for AccountLimits {
    fn default() -> Self {
        AccountLimits {
            subs: -1,
            data: -1,
            payload: -1,
            imports: -1,
            exports: -1,
            wildcards: true,
            conn: -1,
            leaf: -1,
        }
    }
}

/// A signing key: a bare key, or a scoped one with a user template.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SigningKey {
    Plain(String),
    Scoped {
        kind: String,
        key: String,
        #[serde(default)]
        role: String,
        #[serde(default)]
        template: serde_json::Value,
    },
}

impl SigningKey {
    pub fn key(&self) -> &str {
        match self {
            SigningKey::Plain(k) => k,
            SigningKey::Scoped { key, .. } => key,
        }
    }

    pub fn is_scoped(&self) -> bool {
        matches!(self, SigningKey::Scoped { .. })
    }
}

/// `authorization` of the callout account: who is exempt from the callout,
/// where it may place users, and the xkey requests are sealed to.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct ExternalAuthorization {
    pub auth_users: Vec<String>,
    pub allowed_accounts: Vec<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub xkey: String,
}

/// Sign an account JWT with `signer` (the operator or its signing key).
pub fn account_jwt(
    name: &str,
    account: &str,
    body: Account,
    signer: &KeyPair,
    now: i64,
) -> Result<String, JwtError> {
    let mut claims = AccountClaims {
        iat: now,
        iss: signer.public_key(),
        sub: account.to_owned(),
        name: name.to_owned(),
        nats: Account {
            claim_type: "account".into(),
            version: CLAIMS_VERSION,
            ..body
        },
        ..Default::default()
    };
    jwt::encode(&mut claims, |c| &mut c.jti, signer)
}

/// A creds file: the user JWT and its seed, in the decorated format
/// nats clients read.
pub fn creds_file(jwt: &str, seed: &str) -> String {
    format!(
        "-----BEGIN NATS USER JWT-----\n{jwt}\n------END NATS USER JWT------\n\n\
         ************************* IMPORTANT *************************\n\
         NKEY Seed printed below can be used to sign and prove identity.\n\
         NKEYs are sensitive and should be treated as secrets.\n\n\
         -----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n\n\
         *************************************************************\n"
    )
}

/// Sign a user JWT for a creds file, issued by `signer` on behalf of
/// `account` (the signer is a signing key of it, or the account itself).
pub fn creds_user_jwt(
    name: &str,
    user: &KeyPair,
    account: &str,
    signer: &KeyPair,
    deny_all: bool,
    now: i64,
) -> Result<String, JwtError> {
    let deny = || Permission {
        allow: Vec::new(),
        deny: if deny_all {
            vec![">".into()]
        } else {
            Vec::new()
        },
    };
    let mut claims = UserClaims {
        iat: now,
        iss: signer.public_key(),
        sub: user.public_key(),
        name: name.to_owned(),
        nats: User {
            publish: deny(),
            subscribe: deny(),
            issuer_account: if signer.public_key() == account {
                String::new()
            } else {
                account.to_owned()
            },
            ..User::default()
        },
        ..UserClaims::default()
    };
    jwt::encode(&mut claims, |c| &mut c.jti, signer)
}

/// Decode (and verify the signature of) an account JWT.
pub fn decode_account(token: &str) -> Result<AccountClaims, JwtError> {
    jwt::decode_verified(token)
}

/// Why a configured signing key does not fit the account JWT.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SigningKeyMismatch {
    #[error("the account JWT is for {found}, not {expected}")]
    WrongAccount { expected: String, found: String },
    #[error("signing key {0} is not one of the account's signing keys")]
    NotASigningKey(String),
    #[error("signing key {key} is {actual} in the account JWT but configured as {configured}")]
    Scope {
        key: String,
        actual: &'static str,
        configured: &'static str,
    },
}

/// Check that `signing` (public key) may sign users for the account that
/// `claims` describe, as `[accounts.NAME]` says (`public_key`, `scoped`).
pub fn check_signing_key(
    claims: &AccountClaims,
    public_key: &str,
    signing: &str,
    scoped: bool,
) -> Result<(), SigningKeyMismatch> {
    if claims.sub != public_key {
        return Err(SigningKeyMismatch::WrongAccount {
            expected: public_key.to_owned(),
            found: claims.sub.clone(),
        });
    }
    let kind = |s: bool| if s { "scoped" } else { "not scoped" };
    if signing == public_key {
        // The account's own key: never scoped.
        return match scoped {
            false => Ok(()),
            true => Err(SigningKeyMismatch::Scope {
                key: signing.to_owned(),
                actual: kind(false),
                configured: kind(true),
            }),
        };
    }
    let key = claims
        .nats
        .signing_keys
        .iter()
        .find(|k| k.key() == signing)
        .ok_or_else(|| SigningKeyMismatch::NotASigningKey(signing.to_owned()))?;
    if key.is_scoped() != scoped {
        return Err(SigningKeyMismatch::Scope {
            key: signing.to_owned(),
            actual: kind(key.is_scoped()),
            configured: kind(scoped),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signing_keys_must_belong_to_their_account() {
        let operator = KeyPair::new_operator();
        let account = KeyPair::new_account();
        let signing = KeyPair::new_account();
        let scoped = KeyPair::new_account();
        let body = Account {
            signing_keys: vec![
                SigningKey::Plain(signing.public_key()),
                SigningKey::Scoped {
                    kind: "user_scope".into(),
                    key: scoped.public_key(),
                    role: String::new(),
                    template: serde_json::Value::Null,
                },
            ],
            ..Account::default()
        };
        let token = account_jwt("APP1", &account.public_key(), body, &operator, 0).unwrap();
        let claims = decode_account(&token).unwrap();
        let a = account.public_key();

        assert_eq!(
            check_signing_key(&claims, &a, &signing.public_key(), false),
            Ok(())
        );
        assert_eq!(
            check_signing_key(&claims, &a, &scoped.public_key(), true),
            Ok(())
        );
        assert_eq!(check_signing_key(&claims, &a, &a, false), Ok(()));
        assert!(matches!(
            check_signing_key(&claims, &a, &scoped.public_key(), false),
            Err(SigningKeyMismatch::Scope { .. })
        ));
        assert!(matches!(
            check_signing_key(&claims, &a, &KeyPair::new_account().public_key(), false),
            Err(SigningKeyMismatch::NotASigningKey(_))
        ));
        assert!(matches!(
            check_signing_key(
                &claims,
                &KeyPair::new_account().public_key(),
                &signing.public_key(),
                false
            ),
            Err(SigningKeyMismatch::WrongAccount { .. })
        ));
    }
}
