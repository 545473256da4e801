//! Keys fetched from the identity provider (`jwks_uri`, or `discovery`
//! through the issuer's `/.well-known/openid-configuration`) under the
//! plugin's `http` grant, so key rotation needs no configuration change
//! and no reload.
//!
//! The keys live in the instance and are fetched on the first login that
//! needs them (within that login's deadline), again when older than
//! `jwks_refresh_secs`, and once more when a token names a key id the set
//! does not hold: that is how a rotated key arrives. Anyone can send a
//! token with a made-up key id, so that refetch happens at most once per
//! `jwks_refetch_secs`; between two, such a token is denied without any
//! request. A refetch asks past caches (`Cache-Control: no-cache`): the
//! host's GET cache would otherwise answer with the set that lacked the
//! key.

use super::jws::{self, Key};
use portcullis_sdk::host::{Level, log};
use portcullis_sdk::http::{self, Request};
use serde_json::Value;

/// Largest discovery document or JWKS read. Real ones are a few KiB; a
/// larger answer is not worth the parsing a login would pay for it.
pub const MAX_DOCUMENT: usize = 256 * 1024;
/// Default least interval between two refetches for unknown key ids.
pub const DEFAULT_REFETCH_SECS: u64 = 30;
/// Default age after which the keys are fetched again on the next login
/// (a key the provider withdrew stops verifying by then).
pub const DEFAULT_REFRESH_SECS: u64 = 300;
/// Default time allowed for one fetch; the login's deadline applies anyway.
pub const DEFAULT_TIMEOUT_MS: u64 = 2_000;

pub struct Remote {
    issuer: String,
    /// `jwks_uri`, once known: configured, or found by discovery (`None`
    /// until then).
    jwks_uri: Option<String>,
    refetch_secs: i64,
    refresh_secs: i64,
    timeout_ms: u64,
    keys: Vec<Key>,
    /// When `keys` were last fetched, `None` before the first success.
    fetched_at: Option<i64>,
    /// When the last fetch was tried, successful or not.
    tried_at: Option<i64>,
    /// When an unknown key id last caused a refetch.
    refetched_at: Option<i64>,
    /// Why the last fetch failed, for the logins it leaves without keys.
    last_error: Option<String>,
}

impl Remote {
    /// Keys of `issuer` from `jwks_uri`, or by discovery when `None`.
    pub fn new(
        issuer: &str,
        jwks_uri: Option<String>,
        refetch_secs: u64,
        refresh_secs: u64,
        timeout_ms: u64,
    ) -> Remote {
        Remote {
            issuer: issuer.to_owned(),
            jwks_uri,
            refetch_secs: refetch_secs as i64,
            refresh_secs: refresh_secs as i64,
            timeout_ms,
            keys: Vec::new(),
            fetched_at: None,
            tried_at: None,
            refetched_at: None,
            last_error: None,
        }
    }

    /// The discovery document's URL for `issuer`.
    pub fn discovery_url(issuer: &str) -> String {
        format!(
            "{}/.well-known/openid-configuration",
            issuer.trim_end_matches('/')
        )
    }

    /// The keys to check a token against as of `now`: fetched first when
    /// there are none yet or they are stale. A failed refresh keeps the
    /// keys it would have replaced; a failed first fetch is retried no
    /// sooner than `jwks_refetch_secs` later, so an unreachable provider
    /// costs one request per interval, not one per login.
    pub fn keys(&mut self, now: i64) -> Result<&[Key], String> {
        let stale = self
            .fetched_at
            .is_none_or(|at| now - at >= self.refresh_secs);
        let retry = self.refetch_secs.min(self.refresh_secs);
        let may_try = self.tried_at.is_none_or(|at| now - at >= retry);
        if stale && may_try {
            self.fetch(now, false);
        }
        if self.fetched_at.is_none() {
            return Err(format!(
                "no keys from the identity provider yet: {}",
                self.last_error.as_deref().unwrap_or("not fetched")
            ));
        }
        Ok(&self.keys)
    }

    /// A token named a key id the set lacks: fetch again, unless an
    /// unknown key id already did less than `jwks_refetch_secs` ago.
    pub fn refetch_for_unknown_kid(&mut self, now: i64) -> Result<(), String> {
        if let Some(at) = self.refetched_at
            && now - at < self.refetch_secs
        {
            return Err(format!(
                "keys were fetched again {}s ago; next refetch in {}s",
                now - at,
                self.refetch_secs - (now - at)
            ));
        }
        self.refetched_at = Some(now);
        if self.fetch(now, true) {
            Ok(())
        } else {
            Err(self.last_error.clone().unwrap_or_default())
        }
    }

    /// Fetch the set (after discovery, when needed); true on success.
    fn fetch(&mut self, now: i64, bypass_cache: bool) -> bool {
        self.tried_at = Some(now);
        match self.try_fetch(bypass_cache) {
            Ok(keys) => {
                self.keys = keys;
                self.fetched_at = Some(now);
                self.last_error = None;
                true
            }
            Err(why) => {
                log(Level::Warn, &why);
                self.last_error = Some(why);
                false
            }
        }
    }

    fn try_fetch(&mut self, bypass_cache: bool) -> Result<Vec<Key>, String> {
        let jwks_uri = match &self.jwks_uri {
            Some(uri) => uri.clone(),
            None => {
                let uri = self.discover()?;
                self.jwks_uri = Some(uri.clone());
                uri
            }
        };
        let jwks = self.get_json(&jwks_uri, "JWKS", bypass_cache)?;
        jws::parse_jwks(&jwks).map_err(|e| format!("JWKS from {jwks_uri}: {e}"))
    }

    /// The `jwks_uri` of the issuer's discovery document, whose `issuer`
    /// must be the configured one (OpenID Connect Discovery 1.0, 4.3): a
    /// document that names another issuer is not this provider's.
    fn discover(&self) -> Result<String, String> {
        let url = Remote::discovery_url(&self.issuer);
        let document = self.get_json(&url, "discovery document", false)?;
        let issuer = document.get("issuer").and_then(Value::as_str);
        if issuer != Some(self.issuer.as_str()) {
            return Err(format!(
                "discovery document {url} is for issuer {:?}, not {:?}",
                issuer.unwrap_or("(none)"),
                self.issuer
            ));
        }
        document
            .get("jwks_uri")
            .and_then(Value::as_str)
            .filter(|u| http::split_url(u).is_ok())
            .map(str::to_owned)
            .ok_or_else(|| format!("discovery document {url} has no http(s) jwks_uri"))
    }

    fn get_json(&self, url: &str, what: &str, bypass_cache: bool) -> Result<Value, String> {
        let mut request = Request::get(url).header("accept", "application/json");
        if bypass_cache {
            request = request.header("cache-control", "no-cache");
        }
        request.timeout_ms = Some(self.timeout_ms);
        request.max_response_bytes = MAX_DOCUMENT;
        let response = http::send(&request).map_err(|e| format!("{what} {url}: {e}"))?;
        if !response.is_success() {
            return Err(format!("{what} {url}: HTTP status {}", response.status));
        }
        serde_json::from_slice(&response.body).map_err(|e| format!("{what} {url}: not JSON ({e})"))
    }
}
