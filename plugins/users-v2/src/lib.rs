//! Test fixture for hot swap: "version 2" of a user directory, with a
//! fixed directory compiled in. alice (APP1), bob (APP2) and carol (APP1)
//! log in with their name as password; everyone else is left to the next
//! plugin. Its configuration is accepted and ignored, so it can replace
//! static-users under the same `[[plugins]]` entry and the hot-swap tests
//! can tell the two versions apart by whether carol gets in.

use portcullis_sdk::{AuthRequest, Authenticator, Decision, Grant};

pub struct UsersV2;

const USERS: [(&str, &str); 3] = [("alice", "APP1"), ("bob", "APP2"), ("carol", "APP1")];

impl Authenticator for UsersV2 {
    fn configure(_config: &str) -> Result<Self, String> {
        Ok(UsersV2)
    }

    fn authenticate(&self, request: &AuthRequest) -> Decision {
        let user = request.connect.user.as_deref().unwrap_or_default();
        let Some((_, account)) = USERS.iter().find(|(name, _)| *name == user) else {
            return Decision::Abstain;
        };
        if request.connect.pass.as_deref() == Some(user) {
            Decision::Allow(Grant::new(*account))
        } else {
            Decision::Deny("wrong password".into())
        }
    }
}

portcullis_sdk::export!(UsersV2);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn carol_is_admitted_and_strangers_are_left_to_others() {
        let plugin = UsersV2::configure("{}").unwrap();
        let carol = AuthRequest::with_password("carol", "carol");
        assert!(matches!(plugin.authenticate(&carol), Decision::Allow(g) if g.account == "APP1"));
        let wrong = AuthRequest::with_password("carol", "x");
        assert!(matches!(plugin.authenticate(&wrong), Decision::Deny(_)));
        let stranger = AuthRequest::with_password("mallory", "x");
        assert!(matches!(plugin.authenticate(&stranger), Decision::Abstain));
    }
}
