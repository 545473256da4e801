//! The static-users plugin: the user directory of the nats-by-example
//! auth-callout examples (`users.json`), as a Portcullis plugin.
//!
//! Configuration: `{"alice": {"pass": "alice", "account": "APP1"}, "bob":
//! {"pass": "$2b$...", "account": "APP2", "permissions": {"pub": {"allow":
//! ["bob.>"]}, "sub": {"allow": ["bob.>"]}, "resp": {"max": 1}}}}`.
//! `pass` is plaintext, a bcrypt hash or an argon2 PHC string. A login without a user name is not
//! this plugin's to decide (abstain); an unknown user or a wrong password is
//! denied.

mod directory;

use directory::{Directory, User};
use portcullis_sdk::{AuthRequest, Authenticator, Decision, Grant};

/// The configured user directory.
pub struct StaticUsers {
    users: Directory,
}

impl Authenticator for StaticUsers {
    fn configure(config: &str) -> Result<Self, String> {
        Ok(StaticUsers {
            users: Directory::parse(config)?,
        })
    }

    fn authenticate(&self, request: &AuthRequest) -> Decision {
        let Some(name) = request.connect.user.as_deref().filter(|u| !u.is_empty()) else {
            return Decision::Abstain;
        };
        let Some(user) = self.users.get(name) else {
            return Decision::Deny(format!("unknown user {name:?}"));
        };
        let pass = request.connect.pass.as_deref().unwrap_or_default();
        if !user.password_matches(pass) {
            return Decision::Deny(format!("wrong password for user {name:?}"));
        }
        Decision::Allow(grant_for(name, user))
    }
}

fn grant_for(name: &str, user: &User) -> Grant {
    let mut grant = Grant::new(user.account.clone());
    grant.display_name = Some(name.to_owned());
    if let Some(p) = &user.permissions {
        grant.publish = p.publish.clone().into();
        grant.subscribe = p.subscribe.clone().into();
        grant.response = p.response.as_ref().map(Into::into);
    }
    grant
}

portcullis_sdk::export!(StaticUsers);

#[cfg(test)]
mod tests {
    use super::*;

    const USERS: &str = r#"{
        "alice": {"pass": "alice", "account": "APP1"},
        "bob": {"pass": "bob", "account": "APP2",
                "permissions": {"pub": {"allow": ["bob.>"]}, "sub": {"allow": ["bob.>"]},
                                "resp": {"max": 1, "ttl": 5000000000}}}
    }"#;

    fn decide(request: &AuthRequest) -> Decision {
        StaticUsers::configure(USERS).unwrap().authenticate(request)
    }

    #[test]
    fn alice_and_bob_get_their_accounts_and_permissions() {
        let Decision::Allow(alice) = decide(&AuthRequest::with_password("alice", "alice")) else {
            panic!("alice must be allowed");
        };
        assert_eq!(alice.account, "APP1");
        assert!(alice.publish.allow.is_empty());

        let Decision::Allow(bob) = decide(&AuthRequest::with_password("bob", "bob")) else {
            panic!("bob must be allowed");
        };
        assert_eq!(bob.account, "APP2");
        assert_eq!(bob.display_name.as_deref(), Some("bob"));
        assert_eq!(bob.publish.allow, ["bob.>"]);
        assert_eq!(bob.subscribe.allow, ["bob.>"]);
        let resp = bob.response.unwrap();
        assert_eq!((resp.max, resp.ttl_ms), (1, 5000));
    }

    #[test]
    fn wrong_password_and_unknown_user_are_denied_anonymous_abstains() {
        assert!(
            matches!(decide(&AuthRequest::with_password("alice", "bob")), Decision::Deny(r) if r.contains("wrong password"))
        );
        assert!(
            matches!(decide(&AuthRequest::with_password("eve", "x")), Decision::Deny(r) if r.contains("unknown user"))
        );
        let mut no_pass = AuthRequest::with_password("alice", "");
        no_pass.connect.pass = None;
        assert!(matches!(decide(&no_pass), Decision::Deny(_)));
        assert!(matches!(decide(&AuthRequest::empty()), Decision::Abstain));
    }

    #[test]
    fn subjects_are_copied_as_written_not_filled_as_templates() {
        let users = r#"{"t": {"pass": "t", "account": "A",
            "permissions": {"pub": {"allow": ["a.{user}.>"], "deny": ["a.{x"]},
                            "sub": {"deny": ["{}"]}, "resp": {"ttl": 1999999}}}}"#;
        let Decision::Allow(t) = StaticUsers::configure(users)
            .unwrap()
            .authenticate(&AuthRequest::with_password("t", "t"))
        else {
            panic!("t must be allowed");
        };
        assert_eq!(t.publish.allow, ["a.{user}.>"]);
        assert_eq!(t.publish.deny, ["a.{x"]);
        assert!(t.subscribe.allow.is_empty());
        assert_eq!(t.subscribe.deny, ["{}"]);
        let resp = t.response.unwrap();
        assert_eq!((resp.max, resp.ttl_ms), (0, 1));
    }
}
