//! Host policy: what the host checks in a plugin's grant before it signs
//! anything. The plugin decides who a connection is; the host decides what
//! any plugin may hand out.
//!
//! nats-server does not enforce source networks or connection types for
//! users created by a callout, so the host checks them here against the
//! request itself.

use crate::ceiling::Ceiling;
use portcullis_protocol::Approved;
use portcullis_protocol::claims::{self, AuthorizationRequest};
use portcullis_runtime::bindings::Grant;
use std::net::IpAddr;
use std::time::Duration;

/// Subjects in all allow/deny lists of one grant together. Defends the
/// server and the JWT size against a plugin that returns huge lists.
pub const MAX_SUBJECTS: usize = 1024;
/// Bytes in one subject.
pub const MAX_SUBJECT_LEN: usize = 512;
/// Tags, source CIDRs or connection types in one grant, each.
pub const MAX_LIST: usize = 64;
/// Bytes in one tag or the display name.
pub const MAX_TEXT: usize = 256;

/// Connection types a NATS user JWT can name.
const CONNECTION_TYPES: [&str; 7] = [
    "STANDARD",
    "WEBSOCKET",
    "LEAFNODE",
    "LEAFNODE_WS",
    "MQTT",
    "MQTT_WS",
    "IN_PROCESS",
];

/// The longest user JWT one plugin may grant (`max_expiry`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxExpiry {
    /// A grant may ask for at most this; one that asks for nothing gets
    /// exactly this.
    Limited(Duration),
    /// `max_expiry = "unlimited"`, an explicit opt-in (warned about at
    /// start): a grant that asks for no expiry gets a user JWT without
    /// `exp`, as the nats-by-example setup issues them; one that asks for
    /// an expiry keeps it.
    Unlimited,
}

/// What one plugin may grant.
#[derive(Debug, Clone)]
pub struct PluginPolicy {
    pub accounts: Vec<String>,
    pub max_expiry: MaxExpiry,
    /// Subjects its grants' allow lists must stay within.
    pub ceiling: Ceiling,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum Violation {
    #[error("account {0:?} is not one this plugin may place users in")]
    AccountNotAllowed(String),
    #[error("expiry of {requested}s exceeds the plugin's maximum of {max}s")]
    ExpiryTooLong { requested: u64, max: u64 },
    #[error("expiry must be at least one second")]
    ExpiryZero,
    #[error("invalid subject {subject:?}: {reason}")]
    Subject {
        subject: String,
        reason: &'static str,
    },
    #[error("{what}: {count} entries, at most {max} allowed")]
    TooMany {
        what: &'static str,
        count: usize,
        max: usize,
    },
    #[error("{what} is longer than {MAX_TEXT} bytes or has control characters")]
    Text { what: &'static str },
    #[error("invalid source network {0:?}")]
    Cidr(String),
    #[error("client address {0:?} is not in the granted source networks")]
    SourceNotAllowed(String),
    #[error("unknown connection type {0:?}")]
    UnknownConnectionType(String),
    #[error("connection type {0} is not among the granted ones")]
    ConnectionTypeNotAllowed(String),
    #[error(
        "the request cannot tell {0} apart and the grant allows only some of them: allow all of them or none"
    )]
    ConnectionTypeAmbiguous(String),
    #[error("a {0:?} connection has no connection type a grant can allow")]
    ConnectionTypeUnknown(String),
    #[error("{direction} subject {subject:?} is outside the plugin's ceiling")]
    OutsideCeiling {
        direction: &'static str,
        subject: String,
    },
    #[error("{what} limit must be -1 (unlimited) or more, got {value}")]
    Limit { what: &'static str, value: i64 },
}

/// The reason a login refused by host policy is given (after the plugin's
/// name, in the service's answer).
pub fn refused(why: impl std::fmt::Display) -> String {
    format!("grant refused by host policy: {why}")
}

/// Check `grant` against `policy` and the request it answers.
pub fn check(
    grant: &Grant,
    policy: &PluginPolicy,
    request: &AuthorizationRequest,
    now: i64,
) -> Result<Approved, Violation> {
    if !policy.accounts.contains(&grant.account) {
        return Err(Violation::AccountNotAllowed(
            portcullis_runtime::bindings::clean_text(&grant.account),
        ));
    }
    let lifetime = match (grant.expires_in_secs, policy.max_expiry) {
        (Some(0), _) => return Err(Violation::ExpiryZero),
        (Some(s), MaxExpiry::Limited(max)) if s > max.as_secs() => {
            return Err(Violation::ExpiryTooLong {
                requested: s,
                max: max.as_secs(),
            });
        }
        (Some(s), _) => Some(s),
        (None, MaxExpiry::Limited(max)) => Some(max.as_secs()),
        (None, MaxExpiry::Unlimited) => None,
    };

    let lists = [
        &grant.publish.allow,
        &grant.publish.deny,
        &grant.subscribe.allow,
        &grant.subscribe.deny,
    ];
    let count: usize = lists.iter().map(|l| l.len()).sum();
    if count > MAX_SUBJECTS {
        return Err(Violation::TooMany {
            what: "subjects",
            count,
            max: MAX_SUBJECTS,
        });
    }
    for subject in lists.iter().flat_map(|l| l.iter()) {
        check_subject(subject)?;
    }
    policy
        .ceiling
        .admits(&grant.publish.allow, &grant.subscribe.allow)
        .map_err(|outside| Violation::OutsideCeiling {
            direction: outside.direction,
            subject: portcullis_runtime::bindings::clean_text(&outside.subject),
        })?;

    bounded("tags", &grant.tags)?;
    bounded("source networks", &grant.source_cidrs)?;
    bounded("connection types", &grant.connection_types)?;
    for tag in &grant.tags {
        check_text("tag", tag)?;
    }
    let name = grant.display_name.clone().unwrap_or_default();
    check_text("display name", &name)?;

    check_source(&grant.source_cidrs, &request.client_info.host)?;
    check_connection_type(&grant.connection_types, request)?;

    let limit = |what: &'static str, value: Option<i64>| match value {
        None => Ok(-1),
        Some(v) if v >= -1 => Ok(v),
        Some(v) => Err(Violation::Limit { what, value: v }),
    };
    let user = claims::User {
        publish: claims::Permission {
            allow: grant.publish.allow.clone(),
            deny: grant.publish.deny.clone(),
        },
        subscribe: claims::Permission {
            allow: grant.subscribe.allow.clone(),
            deny: grant.subscribe.deny.clone(),
        },
        response: grant.response.as_ref().map(|r| claims::ResponsePermission {
            max: r.max,
            ttl: r.ttl_ms.saturating_mul(1_000_000),
        }),
        src: grant.source_cidrs.clone(),
        subs: limit("subs", grant.limits.subs)?,
        data: limit("data", grant.limits.data)?,
        payload: limit("payload", grant.limits.payload)?,
        allowed_connection_types: grant.connection_types.clone(),
        tags: grant.tags.iter().map(|t| t.to_lowercase()).collect(),
        ..claims::User::default()
    };
    Ok(Approved {
        account: grant.account.clone(),
        name,
        expires_at: lifetime.map(|s| now.saturating_add(i64::try_from(s).unwrap_or(i64::MAX))),
        user,
    })
}

fn bounded(what: &'static str, list: &[String]) -> Result<(), Violation> {
    if list.len() > MAX_LIST {
        return Err(Violation::TooMany {
            what,
            count: list.len(),
            max: MAX_LIST,
        });
    }
    Ok(())
}

fn check_text(what: &'static str, text: &str) -> Result<(), Violation> {
    if text.len() > MAX_TEXT || text.chars().any(char::is_control) {
        return Err(Violation::Text { what });
    }
    Ok(())
}

/// A NATS subject as permissions use it: dot-separated non-empty tokens,
/// no whitespace, `>` only as the last token, wildcards only as whole tokens.
pub fn check_subject(subject: &str) -> Result<(), Violation> {
    let bad = |reason| {
        Err(Violation::Subject {
            subject: portcullis_runtime::bindings::clean_text(subject),
            reason,
        })
    };
    if subject.is_empty() {
        return bad("empty");
    }
    if subject.len() > MAX_SUBJECT_LEN {
        return bad("too long");
    }
    if subject.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("contains whitespace or control characters");
    }
    let tokens: Vec<&str> = subject.split('.').collect();
    for (i, token) in tokens.iter().enumerate() {
        if token.is_empty() {
            return bad("empty token");
        }
        if *token == ">" && i + 1 != tokens.len() {
            return bad("'>' must be the last token");
        }
        if token.len() > 1 && (token.contains('>') || token.contains('*')) {
            return bad("wildcards must be whole tokens");
        }
    }
    Ok(())
}

fn check_source(cidrs: &[String], client_host: &str) -> Result<(), Violation> {
    if cidrs.is_empty() {
        return Ok(());
    }
    let nets = cidrs
        .iter()
        .map(|c| parse_cidr(c))
        .collect::<Result<Vec<_>, _>>()?;
    let addr: IpAddr = client_host
        .parse()
        .map_err(|_| Violation::SourceNotAllowed(client_host.to_owned()))?;
    if nets.iter().any(|(net, bits)| contains(*net, *bits, addr)) {
        Ok(())
    } else {
        Err(Violation::SourceNotAllowed(client_host.to_owned()))
    }
}

fn parse_cidr(text: &str) -> Result<(IpAddr, u32), Violation> {
    let err = || Violation::Cidr(portcullis_runtime::bindings::clean_text(text));
    let (addr, bits) = match text.split_once('/') {
        Some((a, b)) => (a, Some(b)),
        None => (text, None),
    };
    let addr: IpAddr = addr.trim().parse().map_err(|_| err())?;
    let max = if addr.is_ipv4() { 32 } else { 128 };
    let bits = match bits {
        Some(b) => b.trim().parse::<u32>().map_err(|_| err())?,
        None => max,
    };
    if bits > max {
        return Err(err());
    }
    Ok((addr, bits))
}

fn contains(net: IpAddr, bits: u32, addr: IpAddr) -> bool {
    // An IPv4 client may be reported in IPv6-mapped form.
    let addr = match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(addr),
        v4 => v4,
    };
    match (net, addr) {
        (IpAddr::V4(n), IpAddr::V4(a)) => {
            let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
            u32::from(n) & mask == u32::from(a) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(a)) => {
            let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
            u128::from(n) & mask == u128::from(a) & mask
        }
        _ => false,
    }
}

/// The user-JWT connection types the connection that asks may be, as far
/// as the request tells. nats-server classifies a connection for
/// `allowed_connection_types` by its kind, its protocol and two flags the
/// request does not carry (WebSocket transport, in process), so:
/// - a plain NATS client with no remote address is in process (nats-server
///   gives an in-process pipe no host), with one it is `STANDARD`;
/// - an MQTT client may be `MQTT` or `MQTT_WS`, a leafnode `LEAFNODE` or
///   `LEAFNODE_WS`: the request says the same for both;
/// - internal kinds (JetStream, account) are none of them.
///
/// Empty `kind` is a plain client, as servers that leave it out only send
/// requests for clients.
pub fn connection_types(request: &AuthorizationRequest) -> &'static [&'static str] {
    let info = &request.client_info;
    let kind = info.kind.to_ascii_lowercase();
    if kind == "leafnode" {
        return &["LEAFNODE", "LEAFNODE_WS"];
    }
    if !(kind.is_empty() || kind == "client") {
        return &[];
    }
    match info.client_type.to_ascii_lowercase().as_str() {
        "websocket" => &["WEBSOCKET"],
        "mqtt" => &["MQTT", "MQTT_WS"],
        "nats" | "" if info.host.is_empty() => &["IN_PROCESS"],
        "nats" | "" => &["STANDARD"],
        _ => &[],
    }
}

/// A grant's `allowed_connection_types` admit the connection only when they
/// admit every type it may be: what the request cannot tell apart is never
/// guessed in the client's favour.
fn check_connection_type(
    allowed: &[String],
    request: &AuthorizationRequest,
) -> Result<(), Violation> {
    for t in allowed {
        if !CONNECTION_TYPES.contains(&t.as_str()) {
            return Err(Violation::UnknownConnectionType(
                portcullis_runtime::bindings::clean_text(t),
            ));
        }
    }
    if allowed.is_empty() {
        return Ok(());
    }
    let candidates = connection_types(request);
    let is_allowed = |t: &&str| allowed.iter().any(|a| a == t);
    if candidates.is_empty() {
        return Err(Violation::ConnectionTypeUnknown(
            portcullis_runtime::bindings::clean_text(&request.client_info.kind),
        ));
    }
    if candidates.iter().all(is_allowed) {
        Ok(())
    } else if candidates.iter().any(is_allowed) {
        Err(Violation::ConnectionTypeAmbiguous(candidates.join(" and ")))
    } else {
        Err(Violation::ConnectionTypeNotAllowed(candidates.join(" or ")))
    }
}

#[cfg(test)]
mod tests;
