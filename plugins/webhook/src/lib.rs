//! The webhook plugin: for teams whose login decisions already live in a
//! service. Each login becomes one JSON POST to the operator's endpoint,
//! carrying only the fields the operator listed, and the service's JSON
//! answer becomes the decision:
//!
//! ```json
//! { "decision": "allow", "account": "APP1", "name": "alice",
//!   "permissions": { "pub": { "allow": ["app.>"] }, "sub": { "allow": ["app.>", "_INBOX.>"] } },
//!   "expires_in_secs": 3600 }
//! { "decision": "deny", "reason": "account locked" }
//! { "decision": "abstain" }
//! ```
//!
//! Configuration (docs/authenticators.md has every key):
//!
//! ```json
//! { "url": "https://authz.example.com/nats/login",
//!   "fields": ["user", "client.host", "client.name", "server.name"],
//!   "send_password": false, "timeout_ms": 1000 }
//! ```
//!
//! The password and the token go to the service only when the operator
//! says so (`send_password`, `send_token`): a service that only looks at
//! names and addresses should never hold credentials. Everything that is
//! not a well-formed answer (a timeout, a refused request, a status other
//! than 2xx, a body that is not the JSON above) denies, with the reason.
//! The endpoint must be granted: `grants = { http = ["https://authz.example.com"] }`.

use plugin_support::{Permissions, Response as RespPermission};
use portcullis_sdk::http::{self, Request};
use portcullis_sdk::{AuthRequest, Authenticator, Decision, Grant, Permission};
use serde::Deserialize;
use serde_json::{Map, Value};

/// Default time allowed for the service's answer; the login's deadline
/// (`timeout_ms` of the plugin in portcullis.toml) bounds it anyway.
const DEFAULT_TIMEOUT_MS: u64 = 1_000;
/// Largest answer read: a decision is a few hundred bytes.
const MAX_ANSWER: usize = 64 * 1024;
/// Longest deny reason passed on from the service.
const MAX_REASON: usize = 200;
/// Fields sent when the configuration lists none.
const DEFAULT_FIELDS: [&str; 1] = ["user"];

/// Request fields an operator may list, each a dotted path into the JSON
/// body sent. Credentials are not among them (`send_password`,
/// `send_token`).
const FIELDS: [&str; 22] = [
    "user",
    "user_nkey",
    "client.host",
    "client.id",
    "client.user",
    "client.name",
    "client.tags",
    "client.name_tag",
    "client.kind",
    "client.type",
    "client.mqtt_id",
    "server.name",
    "server.host",
    "server.id",
    "server.version",
    "server.cluster",
    "server.tags",
    "connect.name",
    "connect.lang",
    "connect.version",
    "tls.version",
    "tls.cipher",
];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    url: String,
    #[serde(default)]
    fields: Option<Vec<String>>,
    #[serde(default)]
    send_password: bool,
    #[serde(default)]
    send_token: bool,
    #[serde(default)]
    timeout_ms: Option<u64>,
}

/// The service's answer.
#[derive(Deserialize)]
#[serde(tag = "decision", rename_all = "lowercase")]
enum Answer {
    Allow(Allowed),
    Deny {
        #[serde(default)]
        reason: Option<String>,
    },
    Abstain {},
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Allowed {
    account: String,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    permissions: Option<Permissions>,
    #[serde(default)]
    expires_in_secs: Option<u64>,
    #[serde(default)]
    tags: Vec<String>,
}

pub struct Webhook {
    url: String,
    fields: Vec<String>,
    send_password: bool,
    send_token: bool,
    timeout_ms: u64,
}

impl Webhook {
    /// The JSON body for `request`: the listed fields, nested by their
    /// dots; absent values are `null`.
    pub fn body(&self, request: &AuthRequest) -> Value {
        let mut body = Map::new();
        for field in &self.fields {
            let value = field_value(request, field);
            match field.split_once('.') {
                Some((group, name)) => {
                    let group = body
                        .entry(group)
                        .or_insert_with(|| Value::Object(Map::new()));
                    if let Value::Object(map) = group {
                        map.insert(name.to_owned(), value);
                    }
                }
                None => {
                    body.insert(field.clone(), value);
                }
            }
        }
        if self.send_password {
            body.insert("password".into(), opt(&request.connect.pass));
        }
        if self.send_token {
            body.insert("token".into(), opt(&request.connect.token));
        }
        Value::Object(body)
    }

    /// Map the service's answer (status and body) to a decision.
    pub fn decide(&self, status: u16, body: &[u8]) -> Decision {
        if !(200..300).contains(&status) {
            return Decision::Deny(format!("webhook answered HTTP status {status}"));
        }
        let answer: Answer = match serde_json::from_slice(body) {
            Ok(answer) => answer,
            Err(e) => return Decision::Deny(format!("webhook answer is not a decision: {e}")),
        };
        match answer {
            Answer::Abstain {} => Decision::Abstain,
            Answer::Deny { reason } => {
                let reason = reason.unwrap_or_default();
                let reason: String = reason.chars().take(MAX_REASON).collect();
                Decision::Deny(if reason.is_empty() {
                    "denied by the webhook".into()
                } else {
                    format!("denied by the webhook: {reason}")
                })
            }
            Answer::Allow(allowed) => grant(allowed),
        }
    }
}

/// The grant the service asked for, subjects as given: the host checks
/// every one (and the account, and the expiry) against its policy.
fn grant(allowed: Allowed) -> Decision {
    if allowed.account.is_empty() {
        return Decision::Deny("webhook allowed without an account".into());
    }
    if allowed.expires_in_secs == Some(0) {
        return Decision::Deny("webhook asked for expires_in_secs 0".into());
    }
    let mut grant = Grant::new(allowed.account);
    grant.display_name = allowed.name;
    if let Some(p) = allowed.permissions {
        grant.publish = Permission::from(p.publish);
        grant.subscribe = Permission::from(p.subscribe);
        grant.response = p.response.as_ref().map(|r: &RespPermission| r.into());
    }
    grant.expires_in_secs = allowed.expires_in_secs;
    grant.tags = allowed.tags;
    Decision::Allow(grant)
}

fn opt(value: &Option<String>) -> Value {
    value.clone().map(Value::String).unwrap_or(Value::Null)
}

fn text(value: &str) -> Value {
    Value::String(value.to_owned())
}

fn list(values: &[String]) -> Value {
    Value::Array(values.iter().map(|v| text(v)).collect())
}

/// The value of one of [`FIELDS`].
fn field_value(r: &AuthRequest, field: &str) -> Value {
    let tls = r.tls.as_ref();
    match field {
        "user" => opt(&r.connect.user),
        "user_nkey" => text(&r.user_nkey),
        "client.host" => text(&r.client.host),
        "client.id" => Value::from(r.client.id),
        "client.user" => text(&r.client.user),
        "client.name" => text(&r.client.name),
        "client.tags" => list(&r.client.tags),
        "client.name_tag" => text(&r.client.name_tag),
        "client.kind" => text(&r.client.kind),
        "client.type" => text(&r.client.connection_type),
        "client.mqtt_id" => text(&r.client.mqtt_id),
        "server.name" => text(&r.server.name),
        "server.host" => text(&r.server.host),
        "server.id" => text(&r.server.id),
        "server.version" => text(&r.server.version),
        "server.cluster" => text(&r.server.cluster),
        "server.tags" => list(&r.server.tags),
        "connect.name" => opt(&r.connect.name),
        "connect.lang" => opt(&r.connect.lang),
        "connect.version" => opt(&r.connect.version),
        "tls.version" => tls.map(|t| text(&t.version)).unwrap_or(Value::Null),
        "tls.cipher" => tls.map(|t| text(&t.cipher)).unwrap_or(Value::Null),
        _ => Value::Null,
    }
}

impl Authenticator for Webhook {
    fn configure(config: &str) -> Result<Self, String> {
        let config: Config = portcullis_sdk::parse_config(config)?;
        http::split_url(&config.url).map_err(|e| format!("url: {e}"))?;
        let fields = config
            .fields
            .unwrap_or_else(|| DEFAULT_FIELDS.map(String::from).to_vec());
        for field in &fields {
            if matches!(
                field.as_str(),
                "password" | "pass" | "token" | "connect.pass" | "connect.token"
            ) {
                return Err(format!(
                    "fields: {field:?} is a credential; set send_password or send_token instead"
                ));
            }
            if !FIELDS.contains(&field.as_str()) {
                return Err(format!(
                    "fields: unknown field {field:?}; known: {}",
                    FIELDS.join(", ")
                ));
            }
        }
        let timeout_ms = config.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS);
        if !(1..=60_000).contains(&timeout_ms) {
            return Err("timeout_ms: between 1 and 60000".into());
        }
        Ok(Webhook {
            url: config.url,
            fields,
            send_password: config.send_password,
            send_token: config.send_token,
            timeout_ms,
        })
    }

    fn authenticate(&self, request: &AuthRequest) -> Decision {
        let body = self.body(request).to_string().into_bytes();
        let mut post =
            Request::post(&self.url, "application/json", body).header("accept", "application/json");
        post.timeout_ms = Some(self.timeout_ms);
        post.max_response_bytes = MAX_ANSWER;
        match http::send(&post) {
            Ok(response) => self.decide(response.status, &response.body),
            Err(e) => Decision::Deny(format!("webhook {}: {e}", self.url)),
        }
    }
}

portcullis_sdk::export!(Webhook);

#[cfg(test)]
mod tests;
