//! `grants = { http = [...], kv = [...], sql = [...] }` in a `[[plugins]]`
//! entry: the capabilities beyond the host functions an operator gives one
//! plugin. None by default; each kind is checked by its own section.

use serde::Deserialize;

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Grants {
    /// Origins (and optional path prefixes) the plugin may call over
    /// `wasi:http`, e.g. "https://id.example.com".
    #[serde(default)]
    pub http: Vec<String>,
    /// JetStream KV buckets the plugin may read over `wasi:keyvalue`.
    #[serde(default)]
    pub kv: Vec<String>,
    /// `[databases.NAME]` entries whose statements the plugin may run.
    #[serde(default)]
    pub sql: Vec<String>,
}

impl Grants {
    /// True when the plugin is granted nothing beyond the host functions.
    pub fn is_empty(&self) -> bool {
        self.http.is_empty() && self.kv.is_empty() && self.sql.is_empty()
    }
}
