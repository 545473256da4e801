//! The static-users plugin: the user directory of the nats-by-example
//! auth-callout examples (`users.json`), as a Portcullis plugin.
//!
//! Configuration: `{"alice": {"pass": "alice", "account": "APP1"}, "bob":
//! {"pass": "$2b$...", "account": "APP2", "permissions": {"pub": {"allow":
//! ["bob.>"]}, "sub": {"allow": ["bob.>"]}, "resp": {"max": 1}}}}`.
//! `pass` is plaintext or a bcrypt hash. A login without a user name is not
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
