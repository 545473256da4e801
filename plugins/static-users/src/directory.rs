//! The `users.json` format and password checks, kept apart from the plugin
//! glue so they unit-test natively.

use plugin_support::Permissions;
use serde::Deserialize;
use serde::de::{MapAccess, Visitor};
use sha2::{Digest as _, Sha256};
use std::collections::HashMap;

/// The key of the token section: no user can have this name.
pub const TOKENS: &str = "tokens";
/// The key naming a KV bucket of users (one key per user, the value that
/// user's entry as JSON): no user in the configuration can have this name.
pub const KV_BUCKET: &str = "kv_bucket";
/// How a token's hash is written: `sha256:` and 64 hex digits.
const TOKEN_PREFIX: &str = "sha256:";

/// user name -> entry, and the shared tokens.
pub struct Directory {
    users: HashMap<String, User>,
    tokens: Vec<Token>,
    /// Users are read from this granted KV bucket instead of `users`.
    pub kv_bucket: Option<String>,
}

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

/// A shared token (`"tokens": {"sha256:HEX": {...}}`): an opaque secret
/// several clients present as `auth_token`, granted one account and
/// permissions.
///
/// Tokens are looked up by an unsalted SHA-256 of the token, unlike
/// passwords: a token is a high-entropy random secret (`openssl rand -hex
/// 32`), so its hash cannot be reversed by guessing, and a salted slow hash
/// would cost every login time while defending nothing. A person-chosen
/// password is not safe this way: give those to users with argon2 or
/// bcrypt.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenEntry {
    pub account: String,
    /// The user JWT's name (logs, audit); default: the first 12 hex digits
    /// of the hash, which identify the entry without revealing the token.
    #[serde(default)]
    pub name: Option<String>,
    /// As for users: granted as written.
    #[serde(default)]
    pub permissions: Option<Permissions>,
}

/// A token entry with its parsed hash.
pub struct Token {
    digest: [u8; 32],
    pub name: String,
    pub entry: TokenEntry,
}

/// The configuration as written: users by name, and the token section.
struct Raw {
    users: HashMap<String, User>,
    tokens: HashMap<String, TokenEntry>,
    kv_bucket: Option<String>,
}

impl<'de> Deserialize<'de> for Raw {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct RawVisitor;
        impl<'de> Visitor<'de> for RawVisitor {
            type Value = Raw;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an object of users by name (and \"tokens\")")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
                let mut raw = Raw {
                    users: HashMap::new(),
                    tokens: HashMap::new(),
                    kv_bucket: None,
                };
                while let Some(key) = map.next_key::<String>()? {
                    if key == TOKENS {
                        raw.tokens = map.next_value()?;
                    } else if key == KV_BUCKET {
                        raw.kv_bucket = Some(map.next_value()?);
                    } else {
                        // A name given twice: the last entry, as before.
                        raw.users.insert(key, map.next_value()?);
                    }
                }
                Ok(raw)
            }
        }
        d.deserialize_map(RawVisitor)
    }
}

impl Directory {
    pub fn parse(config: &str) -> Result<Self, String> {
        let Raw {
            users,
            tokens,
            kv_bucket,
        } = portcullis_sdk::parse_config(config)?;
        if let Some(bucket) = &kv_bucket {
            if bucket.is_empty() {
                return Err(format!("{KV_BUCKET} is empty: name the granted bucket"));
            }
            if !users.is_empty() {
                return Err(format!(
                    "give users in the configuration or {KV_BUCKET}, not both"
                ));
            }
        }
        for (name, user) in &users {
            user.check(name)?;
        }
        let mut parsed: Vec<Token> = Vec::with_capacity(tokens.len());
        for (key, entry) in tokens {
            // Not repeated in the error: a malformed key may be a token
            // pasted where its hash belongs.
            let digest = parse_token_hash(&key).ok_or_else(|| {
                "a key of \"tokens\" is not \"sha256:\" and 64 hex digits (portcullis hash-password --algorithm sha256-token)".to_owned()
            })?;
            if entry.account.is_empty() {
                return Err(format!("token {key:?} has an empty account"));
            }
            if parsed.iter().any(|t| t.digest == digest) {
                return Err(format!("token {key:?} is listed twice"));
            }
            let name = entry
                .name
                .clone()
                .unwrap_or_else(|| format!("{TOKEN_PREFIX}{}", &hex(&digest)[..12]));
            parsed.push(Token {
                digest,
                name,
                entry,
            });
        }
        Ok(Directory {
            users,
            tokens: parsed,
            kv_bucket,
        })
    }

    pub fn get(&self, name: &str) -> Option<&User> {
        self.users.get(name)
    }

    /// Whether the configuration has a token section with any token.
    pub fn has_tokens(&self) -> bool {
        !self.tokens.is_empty()
    }

    /// The token entry whose hash is `given`'s. Every entry is compared, in
    /// constant time, so how long this takes says nothing about which
    /// entry (or how much of a hash) matched.
    pub fn token(&self, given: &str) -> Option<&Token> {
        let digest: [u8; 32] = Sha256::digest(given.as_bytes()).into();
        let mut found = None;
        for token in &self.tokens {
            let same = token
                .digest
                .iter()
                .zip(&digest)
                .fold(0u8, |acc, (x, y)| acc | (x ^ y))
                == 0;
            if same {
                found = Some(token);
            }
        }
        found
    }
}

/// `sha256:` and 64 hex digits (either case) -> the 32 bytes.
fn parse_token_hash(key: &str) -> Option<[u8; 32]> {
    let hex = key.strip_prefix(TOKEN_PREFIX)?;
    if hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut digest = [0u8; 32];
    for (byte, pair) in digest.iter_mut().zip(hex.as_bytes().chunks(2)) {
        let pair = std::str::from_utf8(pair).ok()?;
        *byte = u8::from_str_radix(pair, 16).ok()?;
    }
    Some(digest)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl User {
    /// The checks of one entry: a bad entry fails at configure time (or,
    /// read from a bucket, at its login), not at the password check.
    pub fn check(&self, name: &str) -> Result<(), String> {
        if self.account.is_empty() {
            return Err(format!("user {name:?} has an empty account"));
        }
        plugin_support::password::check(&self.pass).map_err(|e| format!("user {name:?} has a {e}"))
    }

    /// One user's entry as stored in a KV bucket: the JSON of that user's
    /// `users.json` entry, checked as the configuration's are.
    pub fn from_json(name: &str, value: &[u8]) -> Result<User, String> {
        let user: User = serde_json::from_slice(value)
            .map_err(|e| format!("the entry of user {name:?} is not valid: {e}"))?;
        user.check(name)?;
        Ok(user)
    }

    /// bcrypt runs in the host (natively, against the login's deadline);
    /// argon2 in the plugin.
    pub fn password_matches(&self, given: &str) -> bool {
        plugin_support::password::matches(&self.pass, given)
    }
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
