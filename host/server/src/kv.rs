//! JetStream KV buckets granted to plugins (`grants = { kv = [...] }`),
//! read over the host's own NATS connection. Each granted bucket has one
//! watch of all its keys, shared by every plugin granted it and started
//! when the first of them loads; it keeps the runtime's in-memory copy
//! ([`KvCache`]) current, so a plugin's `get` costs no network round trip.
//! The watch ends when the last plugin granted the bucket unloads.
//!
//! The copy is answered from only while it is known to be current (fail
//! closed: a revocation list read from a stale copy would admit a revoked
//! user). It turns stale the moment the watch breaks (an error from the
//! consumer, a missed heartbeat) or the connection drops, and is rebuilt
//! from scratch (every key's last value, then live changes) before it
//! answers again; meanwhile reads wait for it until the login's deadline,
//! then fail with the reason. A rebuild, not a resume from the last
//! revision: keys purged while the host was away would otherwise linger.
//!
//! At load, a granted bucket that does not exist fails the plugin's load
//! (the operator named it; a typo must not start a host that denies every
//! login), and so does a bucket whose copy cannot be made current within
//! [`OPEN_TIMEOUT`] or does not fit the copy's bounds. A bucket that
//! disappears later leaves its copy stale (every read fails) while the
//! watch keeps retrying.

use async_nats::jetstream::{self, kv};
use futures::StreamExt as _;
use portcullis_protocol::logsafe;
use portcullis_runtime::capabilities::kv::{
    KvBackend, KvCache, KvClosed, KvContents, KvOpenError, KvStatus,
};
use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

/// How long a load waits for a granted bucket's copy to become current.
pub const OPEN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a (re)started watch may take to deliver every key's last
/// value before it is started again: a bucket emptied between reading its
/// state and creating the watch would otherwise never report caught up.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(10);
/// How often a running watch checks the connection. A disconnected host
/// receives no login requests (they come over the same connection), so
/// this only bounds how stale a copy can be on the first login after a
/// reconnect, and that login waits for the rebuild anyway.
const CONNECTION_CHECK: Duration = Duration::from_millis(100);
/// Backoff between attempts to restart a broken watch.
const RETRY_MIN: Duration = Duration::from_millis(100);
const RETRY_MAX: Duration = Duration::from_secs(5);

/// Bucket names as NATS accepts them (`nats kv add`): letters, digits,
/// `-` and `_`. Checked at config load.
pub fn valid_bucket_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 252
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// The host's KV watches, one per granted bucket. Cheap to clone.
#[derive(Clone)]
pub struct KvStore(Arc<Watches>);

struct Watches {
    client: async_nats::Client,
    js: jetstream::Context,
    /// Running watches by bucket: weak, so an unloaded plugin's copy (and
    /// its watch) goes away with its last reader.
    watched: Mutex<HashMap<String, Weak<KvCache>>>,
}

impl KvStore {
    pub fn new(client: async_nats::Client) -> KvStore {
        KvStore(Arc::new(Watches {
            js: jetstream::new(client.clone()),
            client,
            watched: Mutex::new(HashMap::new()),
        }))
    }
}

impl Watches {
    async fn open_bucket(self: Arc<Self>, bucket: String) -> Result<Arc<KvCache>, KvOpenError> {
        let unavailable = |reason: String| KvOpenError::Unavailable {
            bucket: bucket.clone(),
            reason,
        };
        let running = {
            let watched = self.watched.lock().unwrap_or_else(|e| e.into_inner());
            watched.get(&bucket).and_then(Weak::upgrade)
        };
        let cache = match running {
            Some(cache) => cache,
            None => {
                let store = tokio::time::timeout(OPEN_TIMEOUT, self.bucket(&bucket))
                    .await
                    .map_err(|_| {
                        unavailable(format!("no answer from JetStream within {OPEN_TIMEOUT:?}"))
                    })??;
                let mut watched = self.watched.lock().unwrap_or_else(|e| e.into_inner());
                // Another load may have started it meanwhile: share theirs.
                match watched.get(&bucket).and_then(Weak::upgrade) {
                    Some(cache) => cache,
                    None => {
                        let (cache, closed) = KvCache::new(&bucket);
                        watched.retain(|_, w| w.strong_count() > 0);
                        watched.insert(bucket.clone(), Arc::downgrade(&cache));
                        tokio::spawn(watch(
                            store,
                            self.client.clone(),
                            Arc::downgrade(&cache),
                            closed,
                        ));
                        cache
                    }
                }
            }
        };
        let mut status = cache.subscribe();
        let settled = tokio::time::timeout(
            OPEN_TIMEOUT,
            status.wait_for(|s| !matches!(s, KvStatus::Stale(_))),
        )
        .await
        .ok()
        .and_then(Result::ok)
        .map(|s| s.clone());
        match settled {
            Some(KvStatus::Current(_)) => Ok(cache),
            Some(KvStatus::Refused(reason)) => Err(unavailable(reason.to_string())),
            _ => {
                let reason = match cache.status() {
                    KvStatus::Stale(reason) => reason,
                    other => format!("{other:?}").into(),
                };
                Err(unavailable(format!(
                    "the host's copy did not become current within {OPEN_TIMEOUT:?} ({reason})"
                )))
            }
        }
    }

    /// The bucket's handle; a missing bucket is named as such.
    async fn bucket(&self, bucket: &str) -> Result<kv::Store, KvOpenError> {
        use jetstream::context::GetStreamErrorKind;
        let unavailable = |reason: String| KvOpenError::Unavailable {
            bucket: bucket.to_owned(),
            reason,
        };
        if let Err(e) = self.js.get_stream(format!("KV_{bucket}")).await {
            return Err(match e.kind() {
                GetStreamErrorKind::JetStream(js)
                    if js.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND =>
                {
                    KvOpenError::NoSuchBucket {
                        bucket: bucket.to_owned(),
                    }
                }
                _ => unavailable(format!("cannot read the bucket's stream: {e}")),
            });
        }
        self.js
            .get_key_value(bucket)
            .await
            .map_err(|e| unavailable(format!("not a KV bucket: {e}")))
    }
}

impl KvBackend for KvStore {
    fn open(
        &self,
        bucket: &str,
    ) -> Pin<Box<dyn Future<Output = Result<Arc<KvCache>, KvOpenError>> + Send + 'static>> {
        Box::pin(self.0.clone().open_bucket(bucket.to_owned()))
    }
}

/// Why one run of a watch ended.
enum Ended {
    /// The last reader is gone: stop for good.
    Closed,
    /// The copy can no longer be trusted: rebuild it.
    Broken(String),
}

/// Keep `cache` a current copy of `store` until the cache is dropped.
async fn watch(
    store: kv::Store,
    client: async_nats::Client,
    cache: Weak<KvCache>,
    mut closed: KvClosed,
) {
    let bucket = store.name.clone();
    let mut backoff = RETRY_MIN;
    loop {
        let run = sync(&store, &client, &cache);
        let reason = tokio::select! {
            _ = &mut closed => return,
            ended = run => match ended {
                Ended::Closed => return,
                Ended::Broken(reason) => reason,
            },
        };
        let Some(copy) = cache.upgrade() else { return };
        // A refused copy stays refused (it fails at once); a current one
        // turns stale: reads wait for the rebuild, then fail. A watch that
        // had caught up retries at once; one that keeps failing, slower.
        let was_current = matches!(copy.status(), KvStatus::Current(_));
        if was_current {
            copy.mark_stale(&reason);
            backoff = RETRY_MIN;
        }
        drop(copy);
        tracing::warn!(
            bucket = %logsafe::escape(&bucket),
            reason = %logsafe::escape(&reason),
            retry_in = ?backoff,
            "kv watch broke: the bucket's copy is not answered from until it is rebuilt"
        );
        tokio::select! {
            _ = &mut closed => return,
            _ = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(RETRY_MAX);
    }
}

/// One run of a watch: read every key's last value into a fresh copy,
/// install it, then apply live changes until something breaks.
async fn sync(store: &kv::Store, client: &async_nats::Client, cache: &Weak<KvCache>) -> Ended {
    use async_nats::connection::State;
    let broken = |what: &str, e: &dyn std::fmt::Display| Ended::Broken(format!("{what}: {e}"));
    if client.connection_state() != State::Connected {
        return Ended::Broken("not connected to NATS".into());
    }
    let info = match store.stream.get_info().await {
        Ok(info) => info,
        Err(e) => return broken("cannot read the bucket's state", &e),
    };
    let mut entries = match store.watch_with_history(">").await {
        Ok(w) => w,
        Err(e) => return broken("cannot start the watch", &e),
    };
    let last = info.state.last_sequence;
    let mut contents = KvContents::default();
    let mut current = false;
    if info.state.messages == 0 {
        let Some(copy) = cache.upgrade() else {
            return Ended::Closed;
        };
        copy.install(KvContents::default(), last);
        current = true;
    }
    let started = tokio::time::Instant::now();
    let mut check = tokio::time::interval(CONNECTION_CHECK);
    loop {
        let entry = tokio::select! {
            _ = check.tick() => {
                if client.connection_state() != State::Connected {
                    return Ended::Broken("the NATS connection was lost".into());
                }
                if !current && started.elapsed() > CATCH_UP_TIMEOUT {
                    return Ended::Broken(format!(
                        "the watch did not deliver the bucket within {CATCH_UP_TIMEOUT:?}"
                    ));
                }
                if cache.strong_count() == 0 {
                    return Ended::Closed;
                }
                continue;
            }
            entry = entries.next() => entry,
        };
        let entry = match entry {
            None => return Ended::Broken("the watch ended".into()),
            Some(Err(e)) => return broken("the watch failed", &e),
            Some(Ok(entry)) => entry,
        };
        let value = match entry.operation {
            kv::Operation::Put => Some(&entry.value[..]),
            kv::Operation::Delete | kv::Operation::Purge => None,
        };
        let Some(copy) = cache.upgrade() else {
            return Ended::Closed;
        };
        if current {
            if let Err(overflow) = copy.apply(&entry.key, value, entry.revision) {
                return Ended::Broken(overflow.to_string());
            }
            continue;
        }
        if let Err(overflow) = contents.apply(&entry.key, value) {
            copy.refuse(&overflow.to_string());
            return Ended::Broken(overflow.to_string());
        }
        if entry.seen_current || entry.revision >= last {
            copy.install(std::mem::take(&mut contents), entry.revision);
            current = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names_follow_nats() {
        for good in ["users", "revoked-2", "A_b"] {
            assert!(valid_bucket_name(good), "{good}");
        }
        for bad in ["", "a.b", "a b", "a*", "a>", "ü", &"x".repeat(253)] {
            assert!(!valid_bucket_name(bad), "{bad}");
        }
    }
}
