//! What a configuration entry grants, in the JSON shapes NATS operators
//! already know: `permissions` is the nats-io `Permissions` object of
//! `users.json` (`pub`/`sub` allow/deny lists, `resp`), `src` and
//! `allowed_connection_types` are named as in a NATS user JWT.

use crate::template;
use portcullis_sdk::{Grant, Permission, ResponsePermission};
use serde::Deserialize;

/// An account plus what users placed there may do. Subjects and `name` may
/// use `{variables}` the plugin fills per login (see [`template`]).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantSpec {
    /// Account name, as the host configuration names it.
    pub account: String,
    /// Display name of the user (template).
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub permissions: Option<Permissions>,
    /// Lifetime of the user JWT; absent = the plugin's `max_expiry` in the
    /// host configuration (or less, where the credential expires sooner).
    #[serde(default)]
    pub expires_in_secs: Option<u64>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Source networks (CIDRs) the client must connect from.
    #[serde(default)]
    pub src: Vec<String>,
    /// Connection types allowed (`STANDARD`, `WEBSOCKET`, `MQTT`, ...).
    #[serde(default)]
    pub allowed_connection_types: Vec<String>,
}

/// The nats-io/jwt `Permissions` JSON shape.
#[derive(Debug, Deserialize, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct Permissions {
    #[serde(default, rename = "pub")]
    pub publish: SubjectList,
    #[serde(default, rename = "sub")]
    pub subscribe: SubjectList,
    #[serde(default, rename = "resp")]
    pub response: Option<Response>,
}

#[derive(Debug, Deserialize, Clone, Default)]
#[serde(deny_unknown_fields)]
pub struct SubjectList {
    #[serde(default)]
    pub allow: Vec<String>,
    #[serde(default)]
    pub deny: Vec<String>,
}

/// `ttl` is nanoseconds, as Go's `time.Duration` serialises.
#[derive(Debug, Deserialize, Clone)]
#[serde(deny_unknown_fields)]
pub struct Response {
    #[serde(default)]
    pub max: u32,
    #[serde(default)]
    pub ttl: u64,
}

/// Subjects as written, for entries that are not templates (static-users);
/// [`GrantSpec::grant`] fills templates instead.
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

impl Permissions {
    fn subjects(&self) -> impl Iterator<Item = &String> {
        [
            &self.publish.allow,
            &self.publish.deny,
            &self.subscribe.allow,
            &self.subscribe.deny,
        ]
        .into_iter()
        .flatten()
    }
}

impl GrantSpec {
    /// Parse one entry from a JSON value; `what` names it in errors.
    pub fn from_value(value: serde_json::Value, what: &str) -> Result<Self, String> {
        serde_json::from_value(value).map_err(|e| format!("{what}: {e}"))
    }

    /// Configuration-time checks: an account, templates that parse and use
    /// only the variables in `known` (when the plugin knows them all).
    pub fn validate(&self, what: &str, known: Option<&[&str]>) -> Result<(), String> {
        if self.account.is_empty() {
            return Err(format!("{what}: account must not be empty"));
        }
        if self.expires_in_secs == Some(0) {
            return Err(format!("{what}: expires_in_secs must be at least 1"));
        }
        let templates = self
            .permissions
            .iter()
            .flat_map(Permissions::subjects)
            .chain(self.name.iter());
        for t in templates {
            template::check(t, known).map_err(|e| format!("{what}: {e}"))?;
        }
        Ok(())
    }

    /// The grant for one login, with `lookup` filling the templates. Fails
    /// (and the plugin should deny) when a template cannot be filled safely:
    /// a missing deny rule would widen the grant.
    pub fn grant(&self, lookup: &dyn Fn(&str) -> Option<String>) -> Result<Grant, String> {
        let list = |l: &[String]| -> Result<Vec<String>, String> {
            l.iter().map(|s| template::subject(s, lookup)).collect()
        };
        let mut grant = Grant::new(self.account.clone());
        grant.display_name = self
            .name
            .as_deref()
            .map(|n| template::text(n, lookup))
            .transpose()?;
        if let Some(p) = &self.permissions {
            grant.publish = Permission {
                allow: list(&p.publish.allow)?,
                deny: list(&p.publish.deny)?,
            };
            grant.subscribe = Permission {
                allow: list(&p.subscribe.allow)?,
                deny: list(&p.subscribe.deny)?,
            };
            grant.response = p.response.as_ref().map(Into::into);
        }
        grant.expires_in_secs = self.expires_in_secs;
        grant.tags = self.tags.clone();
        grant.source_cidrs = self.src.clone();
        grant.connection_types = self.allowed_connection_types.clone();
        Ok(grant)
    }
}

/// Default for plugins whose credentials expire (oidc, x509): the longest
/// user JWT they ask for. The host refuses grants longer than the plugin's
/// `max_expiry` in portcullis.toml (and the plugin cannot see that value),
/// so this must not exceed it; 3600 matches the `max_expiry = "1h"` the
/// examples use.
pub const DEFAULT_MAX_EXPIRES_IN_SECS: u64 = 3600;

/// The lifetime to ask for when the credential itself expires in
/// `remaining` seconds: the rule's lifetime (or `max`), never more than
/// `max`, never past the credential.
pub fn capped_lifetime(rule: Option<u64>, max: u64, remaining: u64) -> u64 {
    rule.unwrap_or(max).min(max).min(remaining)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(json: &str) -> GrantSpec {
        GrantSpec::from_value(serde_json::from_str(json).unwrap(), "test").unwrap()
    }

    #[test]
    fn fills_templates_everywhere_and_copies_the_rest() {
        let s = spec(
            r#"{"account": "APP1", "name": "{sub}",
                "permissions": {"pub": {"allow": ["u.{sub}.>"], "deny": ["u.{sub}.admin"]},
                                "sub": {"allow": ["_INBOX.>"]}, "resp": {"max": 1, "ttl": 2000000000}},
                "expires_in_secs": 60, "tags": ["t"], "src": ["127.0.0.0/8"],
                "allowed_connection_types": ["STANDARD"]}"#,
        );
        s.validate("test", Some(&["sub"])).unwrap();
        let g = s
            .grant(&|v| (v == "sub").then(|| "alice".to_owned()))
            .unwrap();
        assert_eq!(g.account, "APP1");
        assert_eq!(g.display_name.as_deref(), Some("alice"));
        assert_eq!(g.publish.allow, ["u.alice.>"]);
        assert_eq!(g.publish.deny, ["u.alice.admin"]);
        assert_eq!(g.subscribe.allow, ["_INBOX.>"]);
        let r = g.response.unwrap();
        assert_eq!((r.max, r.ttl_ms), (1, 2000));
        assert_eq!(g.expires_in_secs, Some(60));
        assert_eq!(g.tags, ["t"]);
        assert_eq!(g.source_cidrs, ["127.0.0.0/8"]);
        assert_eq!(g.connection_types, ["STANDARD"]);
    }

    #[test]
    fn a_deny_rule_that_cannot_be_filled_refuses_the_login() {
        let s = spec(r#"{"account": "A", "permissions": {"pub": {"deny": ["u.{sub}"]}}}"#);
        assert!(s.grant(&|_| Some("*".into())).is_err());
        assert!(s.grant(&|_| None).is_err());
    }

    #[test]
    fn configuration_errors() {
        assert!(GrantSpec::from_value(serde_json::json!({"acount": "A"}), "x").is_err());
        assert!(spec(r#"{"account": ""}"#).validate("x", None).is_err());
        assert!(
            spec(r#"{"account": "A", "expires_in_secs": 0}"#)
                .validate("x", None)
                .is_err()
        );
        let unknown = spec(r#"{"account": "A", "permissions": {"sub": {"allow": ["{nope}"]}}}"#);
        assert!(
            unknown
                .validate("x", Some(&["sub"]))
                .unwrap_err()
                .contains("nope")
        );
        assert!(unknown.validate("x", None).is_ok());
    }

    #[test]
    fn the_shortest_lifetime_wins() {
        assert_eq!(capped_lifetime(Some(60), 3600, 7200), 60);
        assert_eq!(capped_lifetime(None, 3600, 7200), 3600);
        assert_eq!(capped_lifetime(Some(9000), 3600, 7200), 3600);
        assert_eq!(capped_lifetime(Some(600), 3600, 30), 30);
        assert_eq!(capped_lifetime(None, 3600, 30), 30);
    }
}
