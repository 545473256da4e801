//! The x509 plugin: mutual TLS. With `tls { verify: true }` nats-server
//! verifies the client certificate against its CAs and passes the verified
//! chain (PEM, leaf first) in the request's `client_tls.verified_chains`;
//! this plugin maps the leaf's subject and SAN fields to an account and
//! permissions by rules.
//!
//! Configuration (docs/authenticators.md has every key):
//!
//! ```json
//! { "rules": [
//!     { "when": { "ou": "devices", "san_dns": "*.devices.example.com" },
//!       "account": "DEVICES", "name": "{cn}",
//!       "permissions": { "pub": { "allow": ["devices.{cn}.>"] } } } ] }
//! ```
//!
//! A login without a client certificate is not this plugin's (abstain). A
//! certificate the server did not verify is refused unless
//! `"require_verified": false`; one that matches no rule is denied (or,
//! with `"unmatched": "abstain"`, left to the next plugin). The user JWT
//! never outlives the certificate.

mod cert;

use cert::CertInfo;
use plugin_support::{GrantSpec, glob};
use portcullis_sdk::{AuthRequest, Authenticator, Decision, TlsInfo};
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    #[serde(default = "yes")]
    require_verified: bool,
    #[serde(default)]
    unmatched: Unmatched,
    /// Longest user JWT asked for; keep it within the plugin's
    /// `max_expiry` in portcullis.toml.
    #[serde(default)]
    max_expires_in_secs: Option<u64>,
    rules: Vec<Value>,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize, Default, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum Unmatched {
    #[default]
    Deny,
    Abstain,
}

/// One rule: every condition (field -> glob, or list of globs meaning any)
/// must match some value of that field.
struct Rule {
    when: Vec<(String, Vec<String>)>,
    grant: GrantSpec,
}

impl Rule {
    fn parse(value: Value, what: &str) -> Result<Rule, String> {
        let Value::Object(mut map) = value else {
            return Err(format!("{what}: must be an object"));
        };
        let mut when = Vec::new();
        if let Some(w) = map.remove("when") {
            let Value::Object(w) = w else {
                return Err(format!("{what}.when: must be an object of field: pattern"));
            };
            for (field, patterns) in w {
                if !cert::FIELDS.contains(&field.as_str()) {
                    return Err(format!(
                        "{what}.when: unknown field {field:?} (known: {})",
                        cert::FIELDS.join(", ")
                    ));
                }
                let patterns = match patterns {
                    Value::String(p) => vec![p],
                    Value::Array(list) => list
                        .into_iter()
                        .map(|p| match p {
                            Value::String(p) => Ok(p),
                            _ => Err(format!("{what}.when.{field}: patterns are strings")),
                        })
                        .collect::<Result<_, _>>()?,
                    _ => return Err(format!("{what}.when.{field}: a pattern or a list of them")),
                };
                if patterns.is_empty() || patterns.iter().any(String::is_empty) {
                    return Err(format!("{what}.when.{field}: empty pattern"));
                }
                when.push((field, patterns));
            }
        }
        let grant = GrantSpec::from_value(Value::Object(map), what)?;
        grant.validate(what, Some(cert::FIELDS))?;
        Ok(Rule { when, grant })
    }

    fn applies(&self, cert: &CertInfo) -> bool {
        self.when.iter().all(|(field, patterns)| {
            let values = cert.field(field).unwrap_or_default();
            values
                .iter()
                .any(|v| patterns.iter().any(|p| glob::matches(p, v)))
        })
    }
}

pub struct X509 {
    require_verified: bool,
    unmatched: Unmatched,
    max_expires_in_secs: u64,
    rules: Vec<Rule>,
}

impl X509 {
    /// The leaf certificate to judge and whether the server verified it.
    fn leaf(tls: &TlsInfo) -> Option<(&str, bool)> {
        if let Some(leaf) = tls.verified_chains.first().and_then(|c| c.first()) {
            return Some((leaf, true));
        }
        tls.certs.first().map(|c| (c.as_str(), false))
    }

    /// Decide as of `now` (Unix seconds).
    pub fn decide(&self, request: &AuthRequest, now: u64) -> Decision {
        let Some((pem, verified)) = request.tls.as_ref().and_then(X509::leaf) else {
            return Decision::Abstain;
        };
        if !verified && self.require_verified {
            return Decision::Deny(
                "client certificate was not verified by the server (set tls { verify: true })"
                    .into(),
            );
        }
        let cert = match CertInfo::from_pem(pem) {
            Ok(c) => c,
            Err(e) => return Decision::Deny(e),
        };
        if cert.not_after <= now {
            return Decision::Deny(format!("client certificate {} has expired", cert.subject));
        }
        let Some(rule) = self.rules.iter().find(|r| r.applies(&cert)) else {
            return match self.unmatched {
                Unmatched::Deny => Decision::Deny(format!(
                    "no rule matches client certificate {}",
                    cert.subject
                )),
                Unmatched::Abstain => Decision::Abstain,
            };
        };
        let lookup = |var: &str| {
            cert.field(var)
                .and_then(|v| v.first().map(|s| (*s).to_owned()))
        };
        match rule.grant.grant(&lookup) {
            Ok(mut grant) => {
                grant.expires_in_secs = Some(plugin_support::grant::capped_lifetime(
                    grant.expires_in_secs,
                    self.max_expires_in_secs,
                    cert.not_after - now,
                ));
                if grant.display_name.is_none() {
                    grant.display_name = Some(cert.subject.clone());
                }
                Decision::Allow(grant)
            }
            Err(e) => Decision::Deny(format!("client certificate {}: {e}", cert.subject)),
        }
    }
}

impl Authenticator for X509 {
    fn configure(config: &str) -> Result<Self, String> {
        let config: Config = portcullis_sdk::parse_config(config)?;
        if config.rules.is_empty() {
            return Err("rules: at least one rule is required".into());
        }
        let rules = config
            .rules
            .into_iter()
            .enumerate()
            .map(|(i, v)| Rule::parse(v, &format!("rules[{i}]")))
            .collect::<Result<_, _>>()?;
        let max_expires_in_secs = config
            .max_expires_in_secs
            .unwrap_or(plugin_support::grant::DEFAULT_MAX_EXPIRES_IN_SECS);
        if max_expires_in_secs == 0 {
            return Err("max_expires_in_secs: at least 1".into());
        }
        Ok(X509 {
            require_verified: config.require_verified,
            unmatched: config.unmatched,
            max_expires_in_secs,
            rules,
        })
    }

    fn authenticate(&self, request: &AuthRequest) -> Decision {
        self.decide(request, portcullis_sdk::host::now_unix_ms() / 1000)
    }
}

portcullis_sdk::export!(X509);

#[cfg(test)]
mod tests;
