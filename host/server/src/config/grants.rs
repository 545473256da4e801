//! `grants = { http = [...], kv = [...], sql = [...] }` in a `[[plugins]]`
//! entry: the capabilities beyond the host functions an operator gives one
//! plugin. None by default; each kind is checked by its own section.

use super::plugins::ByteSize;
use serde::Deserialize;
use std::path::PathBuf;

#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct Grants {
    /// Origins (and optional path prefixes) the plugin may call over
    /// `wasi:http`, e.g. "https://id.example.com".
    #[serde(default)]
    pub http: Vec<String>,
    /// Largest HTTP response body the plugin may receive (default 1MiB).
    #[serde(default)]
    pub http_max_response: Option<ByteSize>,
    /// HTTP requests the plugin may have in flight at once (default 16).
    #[serde(default)]
    pub http_max_concurrent: Option<usize>,
    /// PEM file of CA certificates trusted for `https://` grants besides
    /// the system roots.
    #[serde(default)]
    pub http_ca_file: Option<PathBuf>,
    /// Body bytes the plugin's cache of GET responses may hold (default
    /// 8MiB; 0 disables the cache).
    #[serde(default)]
    pub http_cache: Option<ByteSize>,
    /// JetStream KV buckets the plugin may read over `wasi:keyvalue`.
    #[serde(default)]
    pub kv: Vec<String>,
    /// `[databases.NAME]` entries whose statements the plugin may run.
    #[serde(default)]
    pub sql: Vec<String>,
}

/// Largest `http_max_response`: a plugin's whole linear memory is capped
/// far lower by default, and a bigger answer is not an identity lookup.
const MAX_HTTP_RESPONSE: u64 = 256 << 20;
/// Largest `http_max_concurrent`.
const MAX_HTTP_CONCURRENT: usize = 1024;

impl Grants {
    /// True when the plugin is granted nothing beyond the host functions.
    pub fn is_empty(&self) -> bool {
        self.http.is_empty() && self.kv.is_empty() && self.sql.is_empty()
    }

    /// Check the `http` entries and settings: `Err((key, message))`.
    pub(super) fn validate_http(&self) -> Result<(), (&'static str, String)> {
        use portcullis_runtime::capabilities::http;
        if self.http.is_empty() {
            for (set, key) in [
                (self.http_max_response.is_some(), "grants.http_max_response"),
                (
                    self.http_max_concurrent.is_some(),
                    "grants.http_max_concurrent",
                ),
                (self.http_ca_file.is_some(), "grants.http_ca_file"),
                (self.http_cache.is_some(), "grants.http_cache"),
            ] {
                if set {
                    return Err((key, "applies only with grants.http entries".into()));
                }
            }
            return Ok(());
        }
        http::parse_entries(&self.http).map_err(|e| ("grants.http", e.to_string()))?;
        if let Some(ByteSize(size)) = self.http_max_response
            && !(1..=MAX_HTTP_RESPONSE).contains(&size)
        {
            return Err((
                "grants.http_max_response",
                "must be between 1 and 256MiB".into(),
            ));
        }
        if let Some(n) = self.http_max_concurrent
            && !(1..=MAX_HTTP_CONCURRENT).contains(&n)
        {
            return Err((
                "grants.http_max_concurrent",
                format!("must be between 1 and {MAX_HTTP_CONCURRENT}"),
            ));
        }
        if let Some(path) = &self.http_ca_file {
            http::read_ca_file(path).map_err(|e| ("grants.http_ca_file", e.to_string()))?;
        }
        Ok(())
    }

    /// The runtime's grant for the `http` entries, `None` without any.
    pub fn http_grant(
        &self,
    ) -> Result<Option<portcullis_runtime::capabilities::http::HttpGrant>, String> {
        use portcullis_runtime::capabilities::http::{HttpGrant, HttpOptions};
        if self.http.is_empty() {
            return Ok(None);
        }
        let defaults = HttpOptions::default();
        let mut cache = defaults.cache;
        if let Some(ByteSize(bytes)) = self.http_cache {
            cache.max_bytes = usize::try_from(bytes).unwrap_or(usize::MAX);
            if bytes == 0 {
                cache.max_entries = 0;
            }
        }
        let options = HttpOptions {
            max_response: self
                .http_max_response
                .map_or(defaults.max_response, |s| s.0),
            max_concurrent: self.http_max_concurrent.unwrap_or(defaults.max_concurrent),
            ca_file: self.http_ca_file.clone(),
            cache,
        };
        HttpGrant::new(&self.http, &options)
            .map(Some)
            .map_err(|e| e.to_string())
    }
}

impl Grants {
    /// Check `kv`: bucket names NATS accepts (`nats kv add`), each once.
    pub fn check_kv(&self) -> Result<(), String> {
        for (i, bucket) in self.kv.iter().enumerate() {
            if !crate::kv::valid_bucket_name(bucket) {
                return Err(format!(
                    "{:?} is not a KV bucket name: use letters, digits, '-' and '_'",
                    portcullis_protocol::logsafe::escape(bucket)
                ));
            }
            if self.kv[..i].contains(bucket) {
                return Err(format!("{bucket:?} is listed twice"));
            }
        }
        Ok(())
    }
}
