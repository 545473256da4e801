//! What an operator granted one plugin beyond the host functions: the
//! databases it may query, and (through standard WASI interfaces) the
//! hosts it may call and the buckets it may read. Nothing is granted by
//! default.
//!
//! Grants are checked twice. At load, a component that imports a
//! capability its plugin was not granted is refused by name, so an
//! operator learns of it from `check`, not from a login. At every call,
//! the host implementation checks the argument (the database, the URL, the
//! bucket) against the grant, because one component may be configured
//! under several plugin entries with different grants.

pub mod http;
pub mod kv;
pub mod sql;

use std::fmt;
use std::time::{Duration, Instant};

/// The end of a capability's share of a login's deadline: a little before
/// the login's own. The host's call timer is set to the login's deadline
/// too, and if it fired first the login would be denied as a plugin
/// timeout with the cause (no free connection, a silent upstream) lost. A
/// tenth of what is left, at most 50 ms, leaves the plugin time to turn
/// the capability's error into its deny reason.
pub fn share_of(deadline: Instant) -> Instant {
    let left = deadline.saturating_duration_since(Instant::now());
    deadline - (left / 10).min(Duration::from_millis(50))
}

/// Import namespaces that only a grant links: `(prefix, grant key)`.
/// Of `wasi:keyvalue` only `store` is grantable: `atomics` and `batch`
/// write, and writes are never granted, so they are refused by name.
const GRANTABLE: [(&str, &str); 3] = [
    ("portcullis:authenticator/sql", "sql"),
    ("wasi:http/", "http"),
    ("wasi:keyvalue/store@", "kv"),
];

/// What one plugin may reach. Cheap to clone: every instance of the plugin
/// holds a copy.
#[derive(Clone, Default)]
pub struct Capabilities {
    /// Operator-written statements on the named databases.
    pub sql: Option<sql::SqlGrant>,
    /// Origins it may call over `wasi:http`, with their bounds and cache.
    pub http: Option<http::HttpGrant>,
    /// JetStream KV buckets it may read (the host's watched copies).
    pub kv: Option<kv::KvGrant>,
}

impl fmt::Debug for Capabilities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Capabilities")
            .field("sql", &self.sql.as_ref().map(|g| &g.databases))
            .field("http", &self.http)
            .field("kv", &self.kv.as_ref().map(kv::KvGrant::names))
            .finish()
    }
}

impl Capabilities {
    /// Whether `import` (an interface name a component imports) is one a
    /// grant can allow, granted or not.
    pub fn grantable(import: &str) -> bool {
        grant_key(import).is_some()
    }

    /// The first import of `imports` that needs a grant this plugin lacks,
    /// with the grant key that would allow it.
    pub fn ungranted<'a>(&self, imports: &'a [String]) -> Option<(&'a str, &'static str)> {
        imports.iter().find_map(|import| {
            let key = grant_key(import)?;
            let granted = match key {
                "sql" => self.sql.is_some(),
                "http" => self.http.is_some(),
                "kv" => self.kv.is_some(),
                _ => false,
            };
            (!granted).then_some((import.as_str(), key))
        })
    }
}

/// Which of the grant keys `granted` (those an entry sets) no import of
/// `imports` needs: a grant the component never uses, which `check`
/// reports (an operator granting more than a plugin asks for is probably
/// configuring the wrong plugin, and at best widens what a later version
/// could reach unnoticed).
pub fn unused<'a>(granted: &[&'a str], imports: &[String]) -> Vec<&'a str> {
    granted
        .iter()
        .filter(|key| !imports.iter().any(|i| grant_key(i) == Some(**key)))
        .copied()
        .collect()
}

/// The grant key (`sql`, ...) that allows `import`, if one does.
pub fn grant_key(import: &str) -> Option<&'static str> {
    GRANTABLE
        .iter()
        .find(|(prefix, _)| import.starts_with(prefix))
        .map(|(_, key)| *key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_ungranted_capability_is_named_with_its_grant() {
        let imports = vec![
            "portcullis:authenticator/host@0.2.0".to_owned(),
            "portcullis:authenticator/sql@0.2.0".to_owned(),
        ];
        assert_eq!(
            Capabilities::default().ungranted(&imports),
            Some(("portcullis:authenticator/sql@0.2.0", "sql"))
        );
        assert!(Capabilities::grantable(
            "portcullis:authenticator/sql@0.2.0"
        ));
        assert!(!Capabilities::grantable("wasi:filesystem/types@0.2.0"));
        let imports = vec!["wasi:http/outgoing-handler@0.2.12".to_owned()];
        assert_eq!(
            Capabilities::default().ungranted(&imports),
            Some(("wasi:http/outgoing-handler@0.2.12", "http"))
        );
        let kv = vec!["wasi:keyvalue/store@0.2.0-draft".to_owned()];
        assert_eq!(
            Capabilities::default().ungranted(&kv),
            Some(("wasi:keyvalue/store@0.2.0-draft", "kv"))
        );
        // Writes are never granted: not even a kv grant allows these.
        assert!(!Capabilities::grantable(
            "wasi:keyvalue/atomics@0.2.0-draft"
        ));
        assert!(!Capabilities::grantable("wasi:keyvalue/batch@0.2.0-draft"));
    }
}
