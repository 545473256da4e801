//! A private cache of GET responses per plugin entry, so a JWKS or a
//! directory document is fetched once per `max-age`, not once per login.
//!
//! Private to one plugin entry (one grant): a plugin never sees what
//! another plugin fetched, and one plugin cannot evict another's entries.
//! Keyed by the full URL plus the request headers the response `Vary`s on.
//! Requests that carry `Authorization` or `Cookie` are never cached: their
//! answers are per user. Freshness comes from `Cache-Control: max-age` only
//! (minus `Age`; no heuristic freshness, `Expires` is ignored): a response
//! without `max-age` but with an `ETag` is stored and revalidated with
//! `If-None-Match` on every use; `no-cache` likewise; `no-store` is never
//! stored. A request's own `Cache-Control: no-cache` (or `max-age=0`)
//! forces revalidation, `no-store` bypasses the cache: how a plugin
//! refetches keys after an unknown `kid`. `Set-Cookie` is not stored.

use hyper::HeaderMap;
use hyper::body::Bytes;
use hyper::header::{self, HeaderName, HeaderValue};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Bounds of one plugin entry's cache.
#[derive(Debug, Clone, Copy)]
pub struct CacheLimits {
    /// Body bytes held in total; a larger body is not stored.
    pub max_bytes: usize,
    /// Responses held.
    pub max_entries: usize,
}

impl Default for CacheLimits {
    fn default() -> Self {
        CacheLimits {
            max_bytes: 8 << 20,
            max_entries: 256,
        }
    }
}

/// A stored response (status 200).
#[derive(Debug)]
pub(crate) struct Entry {
    pub headers: HeaderMap,
    pub body: Bytes,
    pub etag: Option<HeaderValue>,
    fresh_until: Instant,
    /// The request headers the response varies on, with the values the
    /// request that stored it had.
    vary: Vec<(HeaderName, Option<HeaderValue>)>,
}

pub(crate) enum Lookup {
    /// Serve without asking the server.
    Fresh(Arc<Entry>),
    /// Ask the server with `If-None-Match`; a 304 serves this body.
    Revalidate(Arc<Entry>),
    Miss,
}

struct Slot {
    entry: Arc<Entry>,
    last_used: u64,
}

#[derive(Default)]
struct Inner {
    slots: HashMap<String, Slot>,
    bytes: usize,
    clock: u64,
}

pub(crate) struct Cache {
    limits: CacheLimits,
    inner: Mutex<Inner>,
}

/// How the request itself wants the cache used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RequestMode {
    /// Not cacheable (credentials, conditional or ranged request, no-store).
    Bypass,
    /// Cached entries must be revalidated (request `no-cache`, `max-age=0`).
    Revalidate,
    Normal,
}

pub(crate) fn request_mode(headers: &HeaderMap) -> RequestMode {
    let bypass = [
        header::AUTHORIZATION,
        header::COOKIE,
        header::IF_NONE_MATCH,
        header::IF_MODIFIED_SINCE,
        header::RANGE,
    ];
    if bypass.iter().any(|h| headers.contains_key(h)) {
        return RequestMode::Bypass;
    }
    let directives = directives(headers);
    if directives.iter().any(|(d, _)| d == "no-store") {
        RequestMode::Bypass
    } else if directives
        .iter()
        .any(|(d, v)| d == "no-cache" || (d == "max-age" && v.as_deref() == Some("0")))
    {
        RequestMode::Revalidate
    } else {
        RequestMode::Normal
    }
}

/// `Cache-Control` directives, lower-case names with their values.
fn directives(headers: &HeaderMap) -> Vec<(String, Option<String>)> {
    headers
        .get_all(header::CACHE_CONTROL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|d| match d.split_once('=') {
            Some((name, value)) => (
                name.trim().to_ascii_lowercase(),
                Some(value.trim().trim_matches('"').to_owned()),
            ),
            None => (d.trim().to_ascii_lowercase(), None),
        })
        .collect()
}

/// How long a 200 response with `headers` may be served without asking
/// the server; `None` when it must not be stored at all.
pub(crate) fn freshness(headers: &HeaderMap) -> Option<Duration> {
    let directives = directives(headers);
    let has = |name: &str| directives.iter().any(|(d, _)| d == name);
    if has("no-store") {
        return None;
    }
    if headers
        .get_all(header::VARY)
        .iter()
        .any(|v| v.to_str().is_ok_and(|v| v.contains('*')))
    {
        return None;
    }
    let max_age = directives
        .iter()
        .find(|(d, _)| d == "max-age")
        .and_then(|(_, v)| v.as_deref()?.parse::<u64>().ok());
    let etag = headers.contains_key(header::ETAG);
    match max_age {
        _ if has("no-cache") => etag.then_some(Duration::ZERO),
        Some(secs) => {
            let age = headers
                .get(header::AGE)
                .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
                .unwrap_or(0);
            Some(Duration::from_secs(secs.saturating_sub(age)))
        }
        None => etag.then_some(Duration::ZERO),
    }
}

fn vary_names(headers: &HeaderMap) -> Vec<HeaderName> {
    headers
        .get_all(header::VARY)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect()
}

impl Cache {
    pub fn new(limits: CacheLimits) -> Cache {
        Cache {
            limits,
            inner: Mutex::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves a consistent map (every
        // update is a single insert or remove): keep using it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn lookup(&self, url: &str, request: &HeaderMap, mode: RequestMode) -> Lookup {
        if mode == RequestMode::Bypass {
            return Lookup::Miss;
        }
        let mut inner = self.lock();
        inner.clock += 1;
        let now = inner.clock;
        let Some(slot) = inner.slots.get_mut(url) else {
            return Lookup::Miss;
        };
        if slot
            .entry
            .vary
            .iter()
            .any(|(name, value)| request.get(name) != value.as_ref())
        {
            return Lookup::Miss;
        }
        slot.last_used = now;
        let entry = slot.entry.clone();
        if mode == RequestMode::Normal && Instant::now() < entry.fresh_until {
            Lookup::Fresh(entry)
        } else if entry.etag.is_some() {
            Lookup::Revalidate(entry)
        } else {
            Lookup::Miss
        }
    }

    /// Store a complete 200 response to a GET of `url`.
    pub fn store(
        &self,
        url: &str,
        request: &HeaderMap,
        mut headers: HeaderMap,
        body: Bytes,
        fresh_for: Duration,
    ) {
        if body.len() > self.limits.max_bytes || self.limits.max_entries == 0 {
            return;
        }
        // A cookie set for one exchange is not replayed to later ones.
        headers.remove(header::SET_COOKIE);
        let vary = vary_names(&headers)
            .into_iter()
            .map(|name| {
                let value = request.get(&name).cloned();
                (name, value)
            })
            .collect();
        let entry = Entry {
            etag: headers.get(header::ETAG).cloned(),
            headers,
            body,
            fresh_until: Instant::now() + fresh_for,
            vary,
        };
        self.insert(url, entry);
    }

    /// A 304 answered the revalidation of `entry`: serve it for the
    /// freshness the 304 gives (its `Cache-Control`, else the stored one's).
    pub fn refreshed(&self, url: &str, entry: &Entry, not_modified: &HeaderMap) -> Arc<Entry> {
        let mut headers = entry.headers.clone();
        for name in [
            header::CACHE_CONTROL,
            header::ETAG,
            header::EXPIRES,
            header::AGE,
        ] {
            if let Some(value) = not_modified.get(&name) {
                headers.insert(name, value.clone());
            }
        }
        let fresh_for = freshness(&headers).unwrap_or(Duration::ZERO);
        let renewed = Entry {
            etag: headers.get(header::ETAG).cloned(),
            headers,
            body: entry.body.clone(),
            fresh_until: Instant::now() + fresh_for,
            vary: entry.vary.clone(),
        };
        self.insert(url, renewed)
    }

    fn insert(&self, url: &str, entry: Entry) -> Arc<Entry> {
        let entry = Arc::new(entry);
        let mut inner = self.lock();
        inner.clock += 1;
        let last_used = inner.clock;
        if let Some(old) = inner.slots.remove(url) {
            inner.bytes -= old.entry.body.len();
        }
        while !inner.slots.is_empty()
            && (inner.slots.len() >= self.limits.max_entries
                || inner.bytes + entry.body.len() > self.limits.max_bytes)
        {
            let oldest = inner
                .slots
                .iter()
                .min_by_key(|(_, slot)| slot.last_used)
                .map(|(url, _)| url.clone());
            if let Some(url) = oldest
                && let Some(slot) = inner.slots.remove(&url)
            {
                inner.bytes -= slot.entry.body.len();
            }
        }
        inner.bytes += entry.body.len();
        inner.slots.insert(
            url.to_owned(),
            Slot {
                entry: entry.clone(),
                last_used,
            },
        );
        entry
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            map.append(*k, HeaderValue::from_static(v));
        }
        map
    }

    #[test]
    fn freshness_follows_cache_control_and_etag() {
        let max_age = |pairs| freshness(&headers(pairs));
        assert_eq!(
            max_age(&[("cache-control", "public, max-age=60")]),
            Some(Duration::from_secs(60))
        );
        assert_eq!(
            max_age(&[("cache-control", "max-age=60"), ("age", "50")]),
            Some(Duration::from_secs(10))
        );
        assert_eq!(max_age(&[("cache-control", "no-store, max-age=60")]), None);
        assert_eq!(
            max_age(&[("cache-control", "no-cache"), ("etag", "\"a\"")]),
            Some(Duration::ZERO)
        );
        assert_eq!(max_age(&[("cache-control", "no-cache")]), None);
        assert_eq!(max_age(&[("etag", "\"a\"")]), Some(Duration::ZERO));
        assert_eq!(max_age(&[]), None);
        assert_eq!(
            max_age(&[("cache-control", "max-age=60"), ("vary", "*")]),
            None
        );
    }

    #[test]
    fn credentials_bypass_and_no_cache_revalidates() {
        assert_eq!(
            request_mode(&headers(&[("authorization", "Bearer x")])),
            RequestMode::Bypass
        );
        assert_eq!(
            request_mode(&headers(&[("cache-control", "no-store")])),
            RequestMode::Bypass
        );
        assert_eq!(
            request_mode(&headers(&[("cache-control", "no-cache")])),
            RequestMode::Revalidate
        );
        assert_eq!(request_mode(&headers(&[])), RequestMode::Normal);
    }

    #[test]
    fn bounded_by_entries_and_bytes_evicting_least_recently_used() {
        let cache = Cache::new(CacheLimits {
            max_bytes: 10,
            max_entries: 2,
        });
        let none = HeaderMap::new();
        let fresh = Duration::from_secs(60);
        cache.store(
            "a",
            &none,
            HeaderMap::new(),
            Bytes::from_static(b"aaaa"),
            fresh,
        );
        cache.store(
            "b",
            &none,
            HeaderMap::new(),
            Bytes::from_static(b"bbbb"),
            fresh,
        );
        assert!(matches!(
            cache.lookup("a", &none, RequestMode::Normal),
            Lookup::Fresh(_)
        ));
        cache.store(
            "c",
            &none,
            HeaderMap::new(),
            Bytes::from_static(b"cccc"),
            fresh,
        );
        assert!(matches!(
            cache.lookup("b", &none, RequestMode::Normal),
            Lookup::Miss
        ));
        assert!(matches!(
            cache.lookup("a", &none, RequestMode::Normal),
            Lookup::Fresh(_)
        ));
        cache.store(
            "d",
            &none,
            HeaderMap::new(),
            Bytes::from_static(b"dddddddd"),
            fresh,
        );
        assert_eq!(cache.lock().bytes, 8);
        cache.store(
            "e",
            &none,
            HeaderMap::new(),
            Bytes::from_static(b"eleven bytes"),
            fresh,
        );
        assert!(matches!(
            cache.lookup("e", &none, RequestMode::Normal),
            Lookup::Miss
        ));
    }

    #[test]
    fn a_stored_response_drops_its_cookies() {
        let cache = Cache::new(CacheLimits::default());
        let none = HeaderMap::new();
        let response = headers(&[("set-cookie", "session=1"), ("etag", "\"a\"")]);
        cache.store(
            "u",
            &none,
            response,
            Bytes::from_static(b"x"),
            Duration::from_secs(60),
        );
        let Lookup::Fresh(entry) = cache.lookup("u", &none, RequestMode::Normal) else {
            panic!("not stored");
        };
        assert!(!entry.headers.contains_key(header::SET_COOKIE));
        assert!(entry.headers.contains_key(header::ETAG));
    }

    #[test]
    fn a_varied_header_keys_the_entry() {
        let cache = Cache::new(CacheLimits::default());
        let en = headers(&[("accept-language", "en")]);
        let de = headers(&[("accept-language", "de")]);
        let response = headers(&[("vary", "Accept-Language")]);
        cache.store(
            "u",
            &en,
            response,
            Bytes::from_static(b"hello"),
            Duration::from_secs(60),
        );
        assert!(matches!(
            cache.lookup("u", &en, RequestMode::Normal),
            Lookup::Fresh(_)
        ));
        assert!(matches!(
            cache.lookup("u", &de, RequestMode::Normal),
            Lookup::Miss
        ));
    }
}
