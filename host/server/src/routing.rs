//! Routing: which logins a plugin is asked about. A `[[plugins]]` entry may
//! carry a `match` table; a plugin whose match does not apply to a login is
//! skipped exactly as if it had abstained, so the chain keeps its one rule
//! (first allow or deny wins, all abstain = deny) and routing only narrows
//! who gets asked.
//!
//! Routing is a convenience and a speed-up, not a security boundary: every
//! plugin still checks the credential it is handed.

use portcullis_runtime::bindings::AuthRequest;
use serde::{Deserialize, Deserializer};

/// Conditions on a login; every condition given must hold.
#[derive(Debug, Clone, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Match {
    /// Globs (`*`, `?`) on the CONNECT user name; any may match. A login
    /// without a user name matches none.
    #[serde(default, deserialize_with = "one_or_many")]
    pub user: Vec<String>,
    /// Connection types: `nats` (also `standard`), `websocket`, `mqtt`,
    /// `leafnode`; any may match.
    #[serde(default, deserialize_with = "one_or_many")]
    pub connection_types: Vec<String>,
    /// The login carries (true) or lacks (false) an auth token.
    #[serde(default)]
    pub token: Option<bool>,
    /// The login carries (true) or lacks (false) an NKey.
    #[serde(default)]
    pub nkey: Option<bool>,
    /// The login presents (true) or lacks (false) a TLS client certificate.
    #[serde(default)]
    pub client_cert: Option<bool>,
    /// Tags the client must all have (`client_info.tags`).
    #[serde(default, deserialize_with = "one_or_many")]
    pub client_tags: Vec<String>,
    /// Tags the asking server must all have (its `server_tags`).
    #[serde(default, deserialize_with = "one_or_many")]
    pub server_tags: Vec<String>,
}

/// A `match` table that cannot work; `key` is relative to the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MatchError {
    pub key: &'static str,
    pub message: String,
}

/// Connection types as `match.connection_types` may name them, with the
/// `client_info` value each one stands for.
const CONNECTION_TYPES: [(&str, &str); 5] = [
    ("nats", "nats"),
    ("standard", "nats"),
    ("websocket", "websocket"),
    ("mqtt", "mqtt"),
    ("leafnode", "leafnode"),
];

fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    match OneOrMany::deserialize(d) {
        Ok(OneOrMany::One(s)) => Ok(vec![s]),
        Ok(OneOrMany::Many(v)) => Ok(v),
        Err(_) => Err(serde::de::Error::custom(
            "expected a string or a list of strings",
        )),
    }
}

impl Match {
    /// Checks that serde cannot make: no empty patterns, known types.
    pub fn validate(&self) -> Result<(), MatchError> {
        let empty = |key, list: &[String]| {
            if list.iter().any(|s| s.is_empty()) {
                Err(MatchError {
                    key,
                    message: "empty entry".into(),
                })
            } else {
                Ok(())
            }
        };
        empty("user", &self.user)?;
        empty("client_tags", &self.client_tags)?;
        empty("server_tags", &self.server_tags)?;
        if let Some(bad) = self
            .connection_types
            .iter()
            .find(|t| canonical_type(t).is_none())
        {
            return Err(MatchError {
                key: "connection_types",
                message: format!(
                    "unknown connection type {bad:?} (known: nats, standard, websocket, mqtt, leafnode)"
                ),
            });
        }
        Ok(())
    }

    /// True when every condition holds for `request`.
    pub fn applies(&self, request: &AuthRequest) -> bool {
        let connect = &request.connect;
        let present = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.is_empty());
        let wants = |want: Option<bool>, have: bool| want.is_none_or(|w| w == have);
        if !self.user.is_empty() {
            let Some(user) = connect.user.as_deref().filter(|u| !u.is_empty()) else {
                return false;
            };
            if !self.user.iter().any(|g| glob(g, user)) {
                return false;
            }
        }
        if !self.connection_types.is_empty() {
            let actual = connection_type(request);
            if !self
                .connection_types
                .iter()
                .any(|t| canonical_type(t) == Some(actual.as_str()))
            {
                return false;
            }
        }
        let cert = request.tls.as_ref().is_some_and(|t| {
            !t.certs.is_empty() || t.verified_chains.iter().any(|c| !c.is_empty())
        });
        wants(self.token, present(&connect.token))
            && wants(self.nkey, present(&connect.nkey))
            && wants(self.client_cert, cert)
            && self
                .client_tags
                .iter()
                .all(|t| request.client.tags.contains(t))
            && self
                .server_tags
                .iter()
                .all(|t| request.server.tags.contains(t))
    }
}

fn canonical_type(name: &str) -> Option<&'static str> {
    CONNECTION_TYPES
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, canonical)| *canonical)
}

/// nats-server reports leafnode connections by kind, with an empty type.
fn connection_type(request: &AuthRequest) -> String {
    if request.client.kind.eq_ignore_ascii_case("leafnode") {
        return "leafnode".into();
    }
    request.client.connection_type.to_ascii_lowercase()
}

/// Shell-style glob: `*` any run of characters, `?` exactly one.
/// Backtracks over the last `*` only, so it stays linear-ish whatever the
/// pattern.
pub fn glob(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && p[pi] != '*' && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_protocol::claims::{AuthorizationRequest, ClientTls};

    fn request(edit: impl FnOnce(&mut AuthorizationRequest)) -> AuthRequest {
        let mut r = AuthorizationRequest::default();
        r.client_info.kind = "Client".into();
        r.client_info.client_type = "nats".into();
        edit(&mut r);
        crate::request::auth_request(&r)
    }

    fn parse(toml_text: &str) -> Result<Match, String> {
        let m: Match = toml::from_str(toml_text).map_err(|e| e.to_string())?;
        m.validate()
            .map_err(|e| format!("{}: {}", e.key, e.message))?;
        Ok(m)
    }

    #[test]
    fn empty_match_applies_to_everything() {
        let m = parse("").unwrap();
        assert!(m.applies(&request(|_| {})));
        assert!(m.applies(&request(|r| r.connect_opts.user = "x".into())));
    }

    #[test]
    fn user_globs() {
        let m = parse(r#"user = ["svc-*", "admin"]"#).unwrap();
        assert!(m.applies(&request(|r| r.connect_opts.user = "svc-metrics".into())));
        assert!(m.applies(&request(|r| r.connect_opts.user = "admin".into())));
        assert!(!m.applies(&request(|r| r.connect_opts.user = "administrator".into())));
        assert!(!m.applies(&request(|_| {})), "no user name, no match");
        let star = parse(r#"user = "*""#).unwrap();
        assert!(
            !star.applies(&request(|_| {})),
            "even '*' needs a user name"
        );
    }

    #[test]
    fn credential_presence() {
        let m = parse("nkey = true\ntoken = false").unwrap();
        assert!(m.applies(&request(|r| r.connect_opts.nkey = "UABC".into())));
        assert!(!m.applies(&request(|r| {
            r.connect_opts.nkey = "UABC".into();
            r.connect_opts.auth_token = "t".into();
        })));
        assert!(!m.applies(&request(|_| {})));

        let cert = parse("client_cert = true").unwrap();
        assert!(!cert.applies(&request(|_| {})));
        assert!(!cert.applies(&request(|r| r.client_tls = Some(ClientTls::default()))));
        assert!(cert.applies(&request(|r| {
            r.client_tls = Some(ClientTls {
                verified_chains: vec![vec!["PEM".into()]],
                ..Default::default()
            })
        })));
        assert!(cert.applies(&request(|r| {
            r.client_tls = Some(ClientTls {
                certs: vec!["PEM".into()],
                ..Default::default()
            })
        })));
    }

    #[test]
    fn connection_types_and_tags() {
        let m = parse(r#"connection_types = ["WebSocket", "leafnode"]"#).unwrap();
        assert!(m.applies(&request(|r| r.client_info.client_type = "websocket".into())));
        assert!(m.applies(&request(|r| {
            r.client_info.kind = "Leafnode".into();
            r.client_info.client_type = String::new();
        })));
        assert!(!m.applies(&request(|_| {})));
        assert!(
            parse(r#"connection_types = "standard""#)
                .unwrap()
                .applies(&request(|_| {}))
        );

        let m = parse("client_tags = [\"a\", \"b\"]\nserver_tags = \"eu\"").unwrap();
        assert!(m.applies(&request(|r| {
            r.client_info.tags = vec!["b".into(), "a".into(), "c".into()];
            r.server_id.tags = vec!["eu".into()];
        })));
        assert!(!m.applies(&request(|r| {
            r.client_info.tags = vec!["a".into()];
            r.server_id.tags = vec!["eu".into()];
        })));
        assert!(!m.applies(&request(|r| {
            r.client_info.tags = vec!["a".into(), "b".into()];
        })));
    }

    #[test]
    fn bad_tables_name_the_key() {
        assert!(
            parse("usr = \"x\"")
                .unwrap_err()
                .contains("unknown field `usr`")
        );
        assert!(
            parse("connection_types = [\"tcp\"]")
                .unwrap_err()
                .starts_with("connection_types: unknown connection type \"tcp\"")
        );
        assert!(
            parse("user = [\"\"]")
                .unwrap_err()
                .starts_with("user: empty")
        );
        assert!(parse("token = \"yes\"").is_err());
        assert!(parse("user = 3").unwrap_err().contains("string or a list"));
    }

    #[test]
    fn globs() {
        assert!(glob("svc-*", "svc-a"));
        assert!(glob("a?c", "abc"));
        assert!(!glob("a?c", "ac"));
        assert!(glob("*x*", "aaxaa"));
        assert!(!glob("svc-*", "svc"));
        assert!(!glob(&format!("{}b", "*a".repeat(40)), &"a".repeat(4000)));
    }
}
