//! The `users.json` format and password checks, kept apart from the plugin
//! glue so they unit-test natively.

use portcullis_sdk::host::{MAX_BCRYPT_COST, constant_time_eq, verify_password};
use portcullis_sdk::{Permission, ResponsePermission};
use serde::Deserialize;
use std::collections::HashMap;

/// user name -> entry.
pub struct Directory(HashMap<String, User>);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    /// Plaintext, or a bcrypt hash (`$2a$`, `$2b$`, `$2y$`).
    pub pass: String,
    pub account: String,
    #[serde(default)]
    pub permissions: Option<Permissions>,
}

/// The nats-io/jwt `Permissions` JSON shape.
#[derive(Deserialize, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct Permissions {
    #[serde(default, rename = "pub")]
    pub publish: SubjectList,
    #[serde(default, rename = "sub")]
    pub subscribe: SubjectList,
    #[serde(default, rename = "resp")]
    pub response: Option<Response>,
}

#[derive(Deserialize, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct SubjectList {
    #[serde(default)]
    pub allow: Vec<String>,
    #[serde(default)]
    pub deny: Vec<String>,
}

/// `ttl` is nanoseconds, as Go's `time.Duration` serialises.
#[derive(Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct Response {
    #[serde(default)]
    pub max: u32,
    #[serde(default)]
    pub ttl: u64,
}

impl From<SubjectList> for Permission {
    fn from(list: SubjectList) -> Self {
        Permission {
            allow: list.allow,
            deny: list.deny,
        }
    }
}

impl From<&Response> for ResponsePermission {
    fn from(r: &Response) -> Self {
        ResponsePermission {
            max: r.max,
            ttl_ms: r.ttl / 1_000_000,
        }
    }
}

impl Directory {
    pub fn parse(config: &str) -> Result<Self, String> {
        let users: HashMap<String, User> = portcullis_sdk::parse_config(config)?;
        for (name, user) in &users {
            if user.account.is_empty() {
                return Err(format!("user {name:?} has an empty account"));
            }
            if user.is_bcrypt() {
                match bcrypt_cost(&user.pass) {
                    None => return Err(format!("user {name:?} has a malformed bcrypt hash")),
                    Some(cost) if cost > MAX_BCRYPT_COST => {
                        return Err(format!(
                            "user {name:?} has a bcrypt cost of {cost}, above the host's maximum of {MAX_BCRYPT_COST}"
                        ));
                    }
                    Some(_) => {}
                }
            }
        }
        Ok(Directory(users))
    }

    pub fn get(&self, name: &str) -> Option<&User> {
        self.0.get(name)
    }
}

impl User {
    fn is_bcrypt(&self) -> bool {
        ["$2a$", "$2b$", "$2y$"]
            .iter()
            .any(|p| self.pass.starts_with(p))
    }

    /// bcrypt runs in the host (natively, against the login's deadline).
    pub fn password_matches(&self, given: &str) -> bool {
        if self.is_bcrypt() {
            verify_password(given, &self.pass)
        } else {
            constant_time_eq(&self.pass, given)
        }
    }
}

fn bcrypt_cost(hash: &str) -> Option<u32> {
    hash.get(4..6)?
        .parse()
        .ok()
        .filter(|c| (4..=31).contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plaintext_and_bcrypt_passwords() {
        let hash = bcrypt::hash("s3cret", 4).unwrap();
        let dir = Directory::parse(&format!(
            r#"{{"alice":{{"pass":"alice","account":"APP1"}},"carol":{{"pass":"{hash}","account":"APP1"}}}}"#
        ))
        .unwrap();
        assert!(dir.get("alice").unwrap().password_matches("alice"));
        assert!(!dir.get("alice").unwrap().password_matches("alicf"));
        assert!(!dir.get("alice").unwrap().password_matches(""));
        assert!(dir.get("carol").unwrap().password_matches("s3cret"));
        assert!(!dir.get("carol").unwrap().password_matches("wrong"));
    }

    #[test]
    fn rejects_unknown_keys_and_bad_hashes() {
        assert!(Directory::parse(r#"{"a":{"pass":"x","account":"A","acount":"B"}}"#).is_err());
        assert!(Directory::parse(r#"{"a":{"pass":"$2b$xx$abc","account":"A"}}"#).is_err());
        let costly = Directory::parse(r#"{"a":{"pass":"$2b$15$abc","account":"A"}}"#);
        assert!(costly.err().unwrap().contains("above the host's maximum"));
        assert!(Directory::parse(r#"{"a":{"pass":"x","account":""}}"#).is_err());
        assert!(Directory::parse("[]").is_err());
    }
}
