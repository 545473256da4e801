//! The `users.json` format and password checks, kept apart from the plugin
//! glue so they unit-test natively.

use plugin_support::Permissions;
use portcullis_sdk::host::{MAX_BCRYPT_COST, constant_time_eq, verify_password};
use serde::Deserialize;
use std::collections::HashMap;

/// user name -> entry.
pub struct Directory(HashMap<String, User>);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    /// Plaintext, a bcrypt hash (`$2a$`, `$2b$`, `$2y$`) or an argon2 PHC
    /// string (`$argon2id$`, `$argon2i$`, `$argon2d$`), as
    /// `portcullis hash-password` prints them.
    pub pass: String,
    pub account: String,
    /// The nats-io `Permissions` shape, as in the other bundled plugins'
    /// entries, but not templated: `users.json` names one user per entry, so
    /// its subjects are granted as written.
    #[serde(default)]
    pub permissions: Option<Permissions>,
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
            if user.is_argon2() {
                argon2_hash(&user.pass)
                    .map_err(|e| format!("user {name:?} has a malformed argon2 hash: {e}"))?;
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

    fn is_argon2(&self) -> bool {
        ["$argon2id$", "$argon2i$", "$argon2d$"]
            .iter()
            .any(|p| self.pass.starts_with(p))
    }

    /// bcrypt runs in the host (natively, against the login's deadline);
    /// argon2 in the plugin.
    pub fn password_matches(&self, given: &str) -> bool {
        if self.is_bcrypt() {
            verify_password(given, &self.pass)
        } else if self.is_argon2() {
            use argon2::PasswordVerifier as _;
            // Parameters (variant, memory, passes, lanes) come from the
            // hash itself; they were checked at configure time.
            argon2_hash(&self.pass).is_ok_and(|hash| {
                argon2::Argon2::default()
                    .verify_password(given.as_bytes(), &hash)
                    .is_ok()
            })
        } else {
            constant_time_eq(&self.pass, given)
        }
    }
}

/// Parse an argon2 PHC string and check its parameters are ones argon2
/// accepts, so a bad entry fails at configure time, not at login.
fn argon2_hash(phc: &str) -> Result<argon2::PasswordHash<'_>, String> {
    let hash = argon2::PasswordHash::new(phc).map_err(|e| e.to_string())?;
    argon2::Algorithm::try_from(hash.algorithm).map_err(|e| e.to_string())?;
    argon2::Params::try_from(&hash).map_err(|e| e.to_string())?;
    if hash.hash.is_none() {
        return Err("no hash value".into());
    }
    Ok(hash)
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
    fn argon2_hashes() {
        // An argon2id PHC string for "s3cret" with small parameters
        // (m=256 KiB, t=1) to keep this fast.
        let hash = "$argon2id$v=19$m=256,t=1,p=1$c2FsdHNhbHRzYWx0$xAMWaGgK8mruxPM6JN9A4MWl5oGtgsap0PaSfrRGo2o";
        let dir = Directory::parse(&format!(
            r#"{{"dave":{{"pass":"{hash}","account":"APP1"}}}}"#
        ))
        .unwrap();
        assert!(dir.get("dave").unwrap().password_matches("s3cret"));
        assert!(!dir.get("dave").unwrap().password_matches("s3cres"));
        assert!(!dir.get("dave").unwrap().password_matches(""));
        for bad in [
            "$argon2id$v=19$m=256,t=1,p=1$c2FsdHNhbHRzYWx0",
            "$argon2id$v=19$m=1,t=1,p=1$c2FsdHNhbHRzYWx0$4Wk6CbVoVOCa4kUhT0RAlptuE5dvyEEH/qC+IqmxtWQ",
            "$argon2id$garbage",
        ] {
            let err = Directory::parse(&format!(r#"{{"d":{{"pass":"{bad}","account":"A"}}}}"#))
                .err()
                .unwrap_or_else(|| panic!("{bad} must be refused"));
            assert!(err.contains("malformed argon2"), "{err}");
        }
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

    #[test]
    fn permissions_are_the_nats_io_shape_and_nothing_else() {
        let ok = |p: &str| {
            Directory::parse(&format!(
                r#"{{"a":{{"pass":"x","account":"A","permissions":{p}}}}}"#
            ))
        };
        for good in [
            "null",
            "{}",
            r#"{"pub":{},"sub":{"deny":[">"]},"resp":{}}"#,
            r#"{"pub":{"allow":["a.{b}"],"deny":[]},"resp":{"max":1,"ttl":5}}"#,
            // serde also reads a struct from a sequence (fields in order);
            // pinned so that refusing it is a deliberate change.
            "[]",
        ] {
            assert!(ok(good).is_ok(), "{good} must be accepted");
        }
        for bad in [
            r#"{"publish":{}}"#,
            r#"{"pub":{"alow":["a"]}}"#,
            r#"{"sub":{"allow":"a"}}"#,
            r#"{"resp":{"max":1,"ttl_ms":5}}"#,
            r#"{"resp":{"max":-1}}"#,
            r#"{"pub":[["a"],["b"],["c"]]}"#,
        ] {
            assert!(ok(bad).is_err(), "{bad} must be refused");
        }
    }
}
