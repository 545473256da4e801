//! The oidc plugin: OAuth2 / OpenID Connect bearer tokens. A client passes
//! a JWT as its token (or password); the plugin verifies the signature
//! (RS256 or ES256) against the JWKS in its configuration, checks `iss`,
//! `aud`, `exp` and `nbf`, and maps the claims to an account and
//! permissions through the first matching rule. The user JWT never outlives
//! the token: its expiry is at most the token's `exp`.
//!
//! Configuration (docs/authenticators.md has every key):
//!
//! ```json
//! { "issuer": "https://id.example.com/realms/nats",
//!   "audience": "nats",
//!   "jwks": { "keys": [ { "kty": "RSA", "kid": "k1", "n": "...", "e": "AQAB" } ] },
//!   "rules": [
//!     { "when": { "groups": "nats-admins" }, "account": "ADMIN" },
//!     { "account": "APP1", "name": "{email}",
//!       "permissions": { "pub": { "allow": ["user.{sub}.>"] },
//!                        "sub": { "allow": ["user.{sub}.>", "_INBOX.>"] } } } ] }
//! ```
//!
//! Instead of `jwks`, `"jwks_uri": "https://..."` or `"discovery": true`
//! fetch the keys from the identity provider under the plugin's `http`
//! grant and follow its key rotation without a reload (see `remote`).
//! That needs the crate feature `remote`, built as its own component
//! (plugins/oidc-http, `oidc_http_auth.wasm`): a component that can make
//! requests imports `wasi:http`, which the host refuses to load without an
//! `http` grant, and a deployment with keys in its configuration should
//! need no grant at all.
//!
//! A login whose token (or password) is not shaped like a JWT is not this
//! plugin's (abstain); a JWT that fails any check, or matches no rule, is
//! denied with the reason.

mod jws;
#[cfg(feature = "remote")]
mod remote;
mod rules;

use jws::{Alg, Key};
use portcullis_sdk::{AuthRequest, Authenticator, Decision};
#[cfg(feature = "remote")]
use remote::Remote;
use rules::Rule;
use serde::Deserialize;
use serde_json::Value;
#[cfg(feature = "remote")]
use std::cell::RefCell;

/// Default tolerated clock skew for `nbf` and `iat`.
const DEFAULT_LEEWAY_SECS: u64 = 60;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    issuer: String,
    audience: OneOrMany,
    /// Keys given in the configuration.
    #[serde(default)]
    jwks: Option<Value>,
    /// Keys fetched from this URL.
    #[serde(default)]
    jwks_uri: Option<String>,
    /// Keys fetched from the `jwks_uri` of the issuer's discovery document.
    #[serde(default)]
    discovery: bool,
    #[serde(default)]
    jwks_refetch_secs: Option<u64>,
    #[serde(default)]
    jwks_refresh_secs: Option<u64>,
    #[serde(default)]
    http_timeout_ms: Option<u64>,
    #[serde(default)]
    leeway_secs: Option<u64>,
    /// Longest user JWT asked for; keep it within the plugin's
    /// `max_expiry` in portcullis.toml.
    #[serde(default)]
    max_expires_in_secs: Option<u64>,
    #[serde(default)]
    algorithms: Option<Vec<Alg>>,
    #[serde(default)]
    token_sources: Option<Vec<Source>>,
    rules: Vec<Value>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

/// Where in CONNECT the token is looked for.
#[derive(Deserialize, Clone, Copy, PartialEq, Eq, Debug)]
#[serde(rename_all = "lowercase")]
enum Source {
    Token,
    Password,
}

/// Where the verification keys come from.
enum Keys {
    Static(Vec<Key>),
    /// A component instance is single threaded; the cell only lets a
    /// login (`&self`) refresh the keys.
    #[cfg(feature = "remote")]
    Remote(RefCell<Remote>),
}

pub struct Oidc {
    issuer: String,
    audiences: Vec<String>,
    keys: Keys,
    algorithms: Vec<Alg>,
    leeway: i64,
    max_expires_in_secs: u64,
    sources: Vec<Source>,
    rules: Vec<Rule>,
}

impl Oidc {
    /// The bearer token of this login, if it has one shaped like a JWT.
    fn token<'r>(&self, request: &'r AuthRequest) -> Option<&'r str> {
        self.sources
            .iter()
            .filter_map(|s| match s {
                Source::Token => request.connect.token.as_deref(),
                Source::Password => request.connect.pass.as_deref(),
            })
            .find(|t| jws::looks_like_jws(t))
    }

    /// Decide as of `now` (Unix seconds).
    pub fn decide(&self, request: &AuthRequest, now: i64) -> Decision {
        let Some(token) = self.token(request) else {
            return Decision::Abstain;
        };
        match self.check(token, now) {
            Ok((claims, remaining)) => self.grant(&claims, remaining),
            Err(reason) => Decision::Deny(reason),
        }
    }

    /// Signature, then the registered claims; the claims and the token's
    /// remaining lifetime in seconds.
    fn check(&self, token: &str, now: i64) -> Result<(Value, u64), String> {
        let claims = self.verify(token, now)?;
        if claims.get("iss").and_then(Value::as_str) != Some(self.issuer.as_str()) {
            return Err(format!("token issuer is not {:?}", self.issuer));
        }
        let audience_ok = match claims.get("aud") {
            Some(Value::String(a)) => self.audiences.contains(a),
            Some(Value::Array(list)) => list
                .iter()
                .filter_map(Value::as_str)
                .any(|a| self.audiences.iter().any(|want| want == a)),
            _ => false,
        };
        if !audience_ok {
            return Err(format!(
                "token audience does not include {}",
                self.audiences.join(" or ")
            ));
        }
        let time = |name: &str| -> Result<Option<i64>, String> {
            match claims.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => v
                    .as_i64()
                    .or_else(|| v.as_f64().map(|f| f as i64))
                    .map(Some)
                    .ok_or_else(|| format!("token claim {name} is not a number")),
            }
        };
        let exp = time("exp")?.ok_or("token has no exp")?;
        // The user JWT expires no later than the token, so a token past its
        // exp cannot be admitted, leeway or not: leeway covers only a
        // token that looks issued slightly in the future.
        if exp <= now {
            return Err(format!("token expired at {exp}"));
        }
        if let Some(nbf) = time("nbf")?
            && nbf > now + self.leeway
        {
            return Err(format!("token not valid before {nbf}"));
        }
        if let Some(iat) = time("iat")?
            && iat > now + self.leeway
        {
            return Err(format!("token issued in the future ({iat})"));
        }
        Ok((claims, (exp - now) as u64))
    }

    /// The token's claims if its signature verifies with a key of the
    /// set; an unknown key id refetches a remote set first (rate-limited).
    fn verify(&self, token: &str, now: i64) -> Result<Value, String> {
        match &self.keys {
            Keys::Static(keys) => {
                let _ = now;
                jws::verify(token, keys, &self.algorithms).map_err(|e| e.to_string())
            }
            #[cfg(feature = "remote")]
            Keys::Remote(remote) => {
                let mut remote = remote.borrow_mut();
                match jws::verify(token, remote.keys(now)?, &self.algorithms) {
                    Err(unknown @ jws::JwsError::UnknownKid(_)) => {
                        remote
                            .refetch_for_unknown_kid(now)
                            .map_err(|why| format!("{unknown} ({why})"))?;
                        jws::verify(token, remote.keys(now)?, &self.algorithms)
                            .map_err(|e| e.to_string())
                    }
                    other => other.map_err(|e| e.to_string()),
                }
            }
        }
    }

    fn grant(&self, claims: &Value, remaining: u64) -> Decision {
        let Some(rule) = self.rules.iter().find(|r| r.applies(claims)) else {
            return Decision::Deny("token claims match no rule".into());
        };
        let lookup = |var: &str| rules::claim_text(claims, var);
        match rule.grant.grant(&lookup) {
            Ok(mut grant) => {
                grant.expires_in_secs = Some(plugin_support::grant::capped_lifetime(
                    grant.expires_in_secs,
                    self.max_expires_in_secs,
                    remaining,
                ));
                if grant.display_name.is_none() {
                    grant.display_name = lookup("sub");
                }
                Decision::Allow(grant)
            }
            Err(e) => Decision::Deny(format!("token claims: {e}")),
        }
    }
}

impl Authenticator for Oidc {
    fn configure(config: &str) -> Result<Self, String> {
        let config: Config = portcullis_sdk::parse_config(config)?;
        if config.issuer.is_empty() {
            return Err("issuer must not be empty".into());
        }
        let audiences = match config.audience {
            OneOrMany::One(a) => vec![a],
            OneOrMany::Many(list) => list,
        };
        if audiences.is_empty() || audiences.iter().any(String::is_empty) {
            return Err("audience: give at least one non-empty audience".into());
        }
        let algorithms = config
            .algorithms
            .unwrap_or_else(|| vec![Alg::RS256, Alg::ES256]);
        if algorithms.is_empty() {
            return Err("algorithms: give at least one of RS256, ES256".into());
        }
        let sources = config
            .token_sources
            .unwrap_or_else(|| vec![Source::Token, Source::Password]);
        if sources.is_empty() {
            return Err("token_sources: give at least one of token, password".into());
        }
        let leeway = config.leeway_secs.unwrap_or(DEFAULT_LEEWAY_SECS);
        if leeway > 3600 {
            return Err("leeway_secs: at most 3600".into());
        }
        let max_expires_in_secs = config
            .max_expires_in_secs
            .unwrap_or(plugin_support::grant::DEFAULT_MAX_EXPIRES_IN_SECS);
        if max_expires_in_secs == 0 {
            return Err("max_expires_in_secs: at least 1".into());
        }
        let keys = match (config.jwks, config.jwks_uri, config.discovery) {
            (Some(jwks), None, false) => Keys::Static(jws::parse_jwks(&jwks)?),
            #[cfg(not(feature = "remote"))]
            (None, uri, discovery) if uri.is_some() != discovery => {
                return Err(
                    "jwks_uri and discovery need the oidc component built with HTTP (oidc_http_auth.wasm, granted `http`); this one only takes jwks"
                        .into(),
                );
            }
            #[cfg(feature = "remote")]
            (None, uri, discovery) if uri.is_some() != discovery => {
                if let Some(uri) = &uri {
                    portcullis_sdk::http::split_url(uri).map_err(|e| format!("jwks_uri: {e}"))?;
                } else {
                    portcullis_sdk::http::split_url(&remote::Remote::discovery_url(&config.issuer))
                        .map_err(|e| format!("discovery: the issuer is not a URL: {e}"))?;
                }
                let refetch = config
                    .jwks_refetch_secs
                    .unwrap_or(remote::DEFAULT_REFETCH_SECS);
                if refetch == 0 {
                    return Err("jwks_refetch_secs: at least 1".into());
                }
                let refresh = config
                    .jwks_refresh_secs
                    .unwrap_or(remote::DEFAULT_REFRESH_SECS);
                if refresh == 0 {
                    return Err("jwks_refresh_secs: at least 1".into());
                }
                let timeout = config.http_timeout_ms.unwrap_or(remote::DEFAULT_TIMEOUT_MS);
                if !(1..=60_000).contains(&timeout) {
                    return Err("http_timeout_ms: between 1 and 60000".into());
                }
                Keys::Remote(RefCell::new(Remote::new(
                    &config.issuer,
                    uri,
                    refetch,
                    refresh,
                    timeout,
                )))
            }
            _ => return Err("give exactly one of jwks, jwks_uri, discovery = true".into()),
        };
        if matches!(keys, Keys::Static(_))
            && (config.jwks_refetch_secs.is_some()
                || config.jwks_refresh_secs.is_some()
                || config.http_timeout_ms.is_some())
        {
            return Err(
                "jwks_refetch_secs, jwks_refresh_secs and http_timeout_ms apply only to jwks_uri or discovery"
                    .into(),
            );
        }
        if config.rules.is_empty() {
            return Err("rules: at least one rule is required".into());
        }
        let rules = config
            .rules
            .into_iter()
            .enumerate()
            .map(|(i, v)| Rule::parse(v, &format!("rules[{i}]")))
            .collect::<Result<_, _>>()?;
        Ok(Oidc {
            issuer: config.issuer,
            audiences,
            keys,
            algorithms,
            leeway: leeway as i64,
            max_expires_in_secs,
            sources,
            rules,
        })
    }

    fn authenticate(&self, request: &AuthRequest) -> Decision {
        let now = (portcullis_sdk::host::now_unix_ms() / 1000) as i64;
        self.decide(request, now)
    }
}

portcullis_sdk::export!(Oidc);

#[cfg(test)]
mod tests;
