//! {{name}}: a Portcullis authentication plugin.
//!
//! Configuration: `{"alice": {"pass": "alice", "account": "APP1"}}`, where
//! `pass` is plaintext or a bcrypt hash (verified by the host). A login
//! without a user name is not ours (abstain); an unknown user or a wrong
//! password is denied.

use portcullis_sdk::host::{constant_time_eq, verify_password};
use portcullis_sdk::{AuthRequest, Authenticator, Decision, Grant};
use std::collections::HashMap;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct User {
    pass: String,
    account: String,
}

pub struct Plugin {
    users: HashMap<String, User>,
}

impl Authenticator for Plugin {
    fn configure(config: &str) -> Result<Self, String> {
        let users = portcullis_sdk::parse_config(config)?;
        Ok(Plugin { users })
    }

    fn authenticate(&self, request: &AuthRequest) -> Decision {
        let Some(name) = request.connect.user.as_deref().filter(|u| !u.is_empty()) else {
            return Decision::Abstain;
        };
        let Some(user) = self.users.get(name) else {
            return Decision::Deny(format!("unknown user {name:?}"));
        };
        let given = request.connect.pass.as_deref().unwrap_or_default();
        let matches = if user.pass.starts_with("$2") {
            verify_password(given, &user.pass)
        } else {
            constant_time_eq(&user.pass, given)
        };
        if !matches {
            return Decision::Deny(format!("wrong password for user {name:?}"));
        }
        let mut grant = Grant::new(user.account.clone());
        grant.display_name = Some(name.to_owned());
        Decision::Allow(grant)
    }
}

portcullis_sdk::export!(Plugin);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alice_in_wrong_password_out() {
        let plugin =
            Plugin::configure(r#"{"alice": {"pass": "alice", "account": "APP1"}}"#).unwrap();
        let allowed = plugin.authenticate(&AuthRequest::with_password("alice", "alice"));
        assert!(matches!(allowed, Decision::Allow(g) if g.account == "APP1"));
        let denied = plugin.authenticate(&AuthRequest::with_password("alice", "bob"));
        assert!(matches!(denied, Decision::Deny(_)));
        assert!(matches!(
            plugin.authenticate(&AuthRequest::empty()),
            Decision::Abstain
        ));
    }
}
