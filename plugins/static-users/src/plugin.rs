//! The plugin itself, shared by both builds: `static_users.wasm` (users
//! from the configuration only: it imports no KV, so it needs no grant)
//! and `static_users_kv.wasm` (plugins/static-users-kv, which compiles this
//! file too, with a `kv_get` that reads a granted bucket). A component
//! imports what its code can call, so the KV reads live in their own
//! build rather than behind a configuration switch.

use crate::directory::{Directory, User};
use plugin_support::Permissions;
use portcullis_sdk::{AuthRequest, Authenticator, Decision, Grant};

/// The configured user directory.
pub struct StaticUsers {
    users: Directory,
}

impl Authenticator for StaticUsers {
    fn configure(config: &str) -> Result<Self, String> {
        let users = Directory::parse(config)?;
        if users.kv_bucket.is_some() && !crate::READS_KV {
            return Err(
                "kv_bucket: this build of static-users reads no KV (so it needs no grant); \
                 use static_users_kv.wasm"
                    .into(),
            );
        }
        Ok(StaticUsers { users })
    }

    fn authenticate(&self, request: &AuthRequest) -> Decision {
        let Some(name) = request.connect.user.as_deref().filter(|u| !u.is_empty()) else {
            return self.by_token(request);
        };
        let pass = request.connect.pass.as_deref().unwrap_or_default();
        if let Some(bucket) = &self.users.kv_bucket {
            return match self.read_kv_user(bucket, name) {
                Ok(user) => check(name, &user, pass),
                Err(reason) => Decision::Deny(reason),
            };
        }
        match self.users.get(name) {
            Some(user) => check(name, user, pass),
            None => Decision::Deny(format!("unknown user {name:?}")),
        }
    }
}

/// The password check, for an entry from either source.
fn check(name: &str, user: &User, pass: &str) -> Decision {
    if !user.password_matches(pass) {
        return Decision::Deny(format!("wrong password for user {name:?}"));
    }
    Decision::Allow(grant_for(name, user))
}

impl StaticUsers {
    /// `name`'s entry from the bucket, or the deny reason.
    fn read_kv_user(&self, bucket: &str, name: &str) -> Result<User, String> {
        match crate::kv_get(bucket, name) {
            Ok(Some(value)) => User::from_json(name, &value),
            Ok(None) => Err(format!("unknown user {name:?}")),
            Err(e) => Err(format!(
                "cannot read user {name:?} from kv bucket {bucket:?}: {e}"
            )),
        }
    }

    /// A login without a user name: its `auth_token`, if tokens are
    /// configured. The reason never contains the token.
    fn by_token(&self, request: &AuthRequest) -> Decision {
        let token = request.connect.token.as_deref().filter(|t| !t.is_empty());
        match token {
            Some(token) if self.users.has_tokens() => match self.users.token(token) {
                Some(t) => Decision::Allow(grant(
                    &t.name,
                    &t.entry.account,
                    t.entry.permissions.as_ref(),
                )),
                None => Decision::Deny("unknown token".into()),
            },
            _ => Decision::Abstain,
        }
    }
}

fn grant_for(name: &str, user: &User) -> Grant {
    grant(name, &user.account, user.permissions.as_ref())
}

fn grant(name: &str, account: &str, permissions: Option<&Permissions>) -> Grant {
    let mut grant = Grant::new(account.to_owned());
    grant.display_name = Some(name.to_owned());
    if let Some(p) = permissions {
        grant.publish = p.publish.clone().into();
        grant.subscribe = p.subscribe.clone().into();
        grant.response = p.response.as_ref().map(Into::into);
    }
    grant
}

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

    /// `sha256:` + hex of `token`, as `portcullis hash-password --algorithm
    /// sha256-token` prints it.
    fn token_hash(token: &str) -> String {
        use sha2::{Digest as _, Sha256};
        let digest = Sha256::digest(token.as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        format!("sha256:{hex}")
    }

    fn with_tokens() -> StaticUsers {
        let config = format!(
            r#"{{"alice": {{"pass": "alice", "account": "APP1"}},
                "tokens": {{
                    "{}": {{"account": "APP2", "name": "sensors",
                            "permissions": {{"pub": {{"allow": ["sensors.>"]}}}}}},
                    "{}": {{"account": "APP1"}}
                }}}}"#,
            token_hash("s3cret-token"),
            token_hash("other-token")
                .to_uppercase()
                .replace("SHA256:", "sha256:"),
        );
        StaticUsers::configure(&config).unwrap()
    }

    fn token_request(token: &str) -> AuthRequest {
        let mut request = AuthRequest::empty();
        request.connect.token = Some(token.into());
        request
    }

    #[test]
    fn a_known_token_gets_its_grant_an_unknown_one_is_denied() {
        let plugin = with_tokens();
        let Decision::Allow(g) = plugin.authenticate(&token_request("s3cret-token")) else {
            panic!("the token must be admitted");
        };
        assert_eq!(g.account, "APP2");
        assert_eq!(g.display_name.as_deref(), Some("sensors"));
        assert_eq!(g.publish.allow, ["sensors.>"]);
        let Decision::Allow(other) = plugin.authenticate(&token_request("other-token")) else {
            panic!("upper-case hex names the same hash");
        };
        assert_eq!(other.account, "APP1");
        let default_name = &token_hash("other-token")[..19];
        assert_eq!(other.display_name.as_deref(), Some(default_name));
        for wrong in ["s3cret-tokeN", "s3cret-token ", "sensors"] {
            let Decision::Deny(reason) = plugin.authenticate(&token_request(wrong)) else {
                panic!("{wrong:?} must be denied");
            };
            assert_eq!(
                reason, "unknown token",
                "the reason never carries the token"
            );
        }
        // A user name decides by password, whatever the token.
        let mut both = AuthRequest::with_password("alice", "alice");
        both.connect.token = Some("s3cret-token".into());
        let Decision::Allow(alice) = plugin.authenticate(&both) else {
            panic!("alice must be allowed");
        };
        assert_eq!(alice.account, "APP1");
        assert!(matches!(
            plugin.authenticate(&token_request("")),
            Decision::Abstain
        ));
    }

    #[test]
    fn without_tokens_configured_a_token_login_abstains() {
        assert!(matches!(
            decide(&token_request("s3cret-token")),
            Decision::Abstain
        ));
    }

    #[test]
    fn malformed_token_sections_are_refused() {
        let good = token_hash("t");
        for bad in [
            r#"{"tokens": {"t": {"account": "A"}}}"#.to_owned(),
            r#"{"tokens": {"sha256:abc": {"account": "A"}}}"#.to_owned(),
            format!(
                r#"{{"tokens": {{"{}": {{"account": "A"}}}}}}"#,
                good.replace("sha256:", "sha512:")
            ),
            format!(
                r#"{{"tokens": {{"sha256:+{}": {{"account": "A"}}}}}}"#,
                &good[8..]
            ),
            format!(r#"{{"tokens": {{"{good}": {{"account": ""}}}}}}"#),
            format!(r#"{{"tokens": {{"{good}": {{"account": "A", "pass": "x"}}}}}}"#),
            format!(
                r#"{{"tokens": {{"{good}": {{"account": "A"}}, "{}": {{"account": "B"}}}}}}"#,
                good.to_uppercase().replace("SHA256:", "sha256:")
            ),
            r#"{"tokens": []}"#.to_owned(),
        ] {
            let err = StaticUsers::configure(&bad)
                .err()
                .unwrap_or_else(|| panic!("{bad} must be refused"));
            assert!(!err.is_empty());
            assert!(
                !err.contains("\"t\""),
                "a pasted token is not repeated: {err}"
            );
        }
    }

    #[test]
    fn kv_bucket_is_refused_by_the_build_that_reads_no_kv() {
        let configured = StaticUsers::configure(r#"{"kv_bucket": "users"}"#);
        if crate::READS_KV {
            assert!(configured.is_ok());
            return;
        }
        let err = configured.err().expect("refused");
        assert!(err.contains("static_users_kv.wasm"), "{err}");
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
