//! `wasi:keyvalue/store`, read-only, over buckets the operator granted
//! (`grants = { kv = ["users"] }`). A plugin reads the host's in-memory
//! copy of a bucket ([`KvCache`]), so a `get` costs no network round trip;
//! what keeps that copy current (a JetStream KV watch) is the server's
//! business, behind [`KvBackend`], so the runtime stays free of NATS.
//!
//! Fail closed: a copy that is not known to be current is never answered
//! from. A plugin may keep a revocation list in a bucket, and a stale copy
//! would then admit a revoked user. A read on a stale copy waits for the
//! copy to catch up, at most until the login's deadline, and then fails
//! with the reason; a bucket over the copy's bounds fails at once.
//!
//! Writes are never granted: `set` and `delete` always fail with
//! `access-denied`. `atomics` and `batch` are not linked at all, so a
//! component importing them is refused at load.

use crate::bindings::v0_2::wasi::keyvalue::store::{self, Host, HostBucket};
use crate::state::HostState;
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock};
use std::time::Instant;
use wasmtime::component::Resource;
use wasmtime_wasi::WasiView;

pub use store::{Error as KvError, KeyResponse};

/// Largest value the copy keeps. A plugin parses what it reads inside its
/// own memory cap; an entry larger than this is kept as "too large" (a
/// `get` of it fails with the reason) rather than copied into every login.
pub const MAX_VALUE_BYTES: usize = 64 * 1024;
/// Keys one bucket's copy may hold: the copy is all in memory, and a
/// bucket that grows without bound must not grow the host with it.
pub const MAX_KEYS: usize = 100_000;
/// Bytes (keys and values) one bucket's copy may hold.
pub const MAX_BUCKET_BYTES: usize = 64 << 20;
/// Keys one `list-keys` call returns: a page a plugin can hold, and a
/// bound on the host work one call does.
pub const PAGE_KEYS: usize = 256;
/// Buckets one instance may hold open at once: each is an entry in the
/// instance's resource table, which the guest would otherwise grow at will.
pub const MAX_OPEN_BUCKETS: usize = 16;

/// Opens buckets for plugins: the server's JetStream KV watches.
pub trait KvBackend: Send + Sync {
    /// Start watching `bucket` (or share a watch already running) and
    /// resolve with its copy once the copy is current. A bucket that does
    /// not exist is an error: the operator granted a name that is wrong.
    fn open(
        &self,
        bucket: &str,
    ) -> Pin<Box<dyn Future<Output = Result<Arc<KvCache>, KvOpenError>> + Send + 'static>>;
}

/// Why a granted bucket cannot be read at load.
#[derive(Debug, thiserror::Error)]
pub enum KvOpenError {
    #[error("kv bucket {bucket:?} does not exist (create it with `nats kv add {bucket}`)")]
    NoSuchBucket { bucket: String },
    #[error("kv bucket {bucket:?}: {reason}")]
    Unavailable { bucket: String, reason: String },
}

/// Whether a copy may be answered from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KvStatus {
    /// A copy of the bucket as of this revision (the stream sequence of
    /// the last change applied).
    Current(u64),
    /// Not (yet, or no longer) a copy of the bucket: the watch is
    /// starting or resuming. Reads wait, then fail with this reason.
    Stale(Arc<str>),
    /// The bucket does not fit the copy's bounds (or there is no store):
    /// reads fail at once with this reason.
    Refused(Arc<str>),
}

/// One entry of a copy.
#[derive(Clone)]
enum Slot {
    Value(Arc<[u8]>),
    /// An entry over [`MAX_VALUE_BYTES`]: its size, not its bytes.
    TooLarge(usize),
}

/// The entries of one bucket, within the bounds.
#[derive(Default, Clone)]
pub struct KvContents {
    entries: BTreeMap<String, Slot>,
    /// Bytes of keys and kept values.
    bytes: usize,
}

/// A change that does not fit the copy's bounds.
#[derive(Debug, thiserror::Error)]
#[error("more than {MAX_KEYS} keys or {} MiB in the bucket, over the host's copy bounds", MAX_BUCKET_BYTES >> 20)]
pub struct KvOverflow;

impl KvContents {
    /// Apply a put (`Some(value)`) or a delete/purge (`None`) of `key`.
    pub fn apply(&mut self, key: &str, value: Option<&[u8]>) -> Result<(), KvOverflow> {
        if let Some(old) = self.entries.remove(key) {
            self.bytes -= key.len() + slot_bytes(&old);
        }
        let Some(value) = value else {
            return Ok(());
        };
        let slot = if value.len() > MAX_VALUE_BYTES {
            Slot::TooLarge(value.len())
        } else {
            Slot::Value(value.into())
        };
        let bytes = self.bytes + key.len() + slot_bytes(&slot);
        if self.entries.len() >= MAX_KEYS || bytes > MAX_BUCKET_BYTES {
            return Err(KvOverflow);
        }
        self.bytes = bytes;
        self.entries.insert(key.to_owned(), slot);
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

fn slot_bytes(slot: &Slot) -> usize {
    match slot {
        Slot::Value(v) => v.len(),
        Slot::TooLarge(_) => 0,
    }
}

/// The host's copy of one bucket: written by the server's watch, read by
/// every plugin granted the bucket. Dropping the last handle (the last
/// plugin granted it unloads) closes [`KvCache::closed`], which ends the
/// watch.
pub struct KvCache {
    bucket: Arc<str>,
    inner: RwLock<Inner>,
    /// The status, for readers that wait for a stale copy to catch up and
    /// for tests that wait for a revision.
    status: tokio::sync::watch::Sender<KvStatus>,
    /// Dropped with the cache: the watch's signal to stop.
    _alive: tokio::sync::oneshot::Sender<()>,
}

/// Status and entries under one lock, so a reader never sees entries of
/// one state with the status of another.
struct Inner {
    status: KvStatus,
    contents: KvContents,
}

/// The writer's view of a cache: what ends when the last reader is gone.
pub struct KvClosed(tokio::sync::oneshot::Receiver<()>);

impl Future for KvClosed {
    type Output = ();
    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        Pin::new(&mut self.0).poll(cx).map(|_| ())
    }
}

impl KvCache {
    /// An empty, stale copy of `bucket` and the future that resolves when
    /// the copy is dropped.
    pub fn new(bucket: &str) -> (Arc<KvCache>, KvClosed) {
        let (alive, closed) = tokio::sync::oneshot::channel();
        let status = KvStatus::Stale("the watch is starting".into());
        let cache = KvCache {
            bucket: bucket.into(),
            inner: RwLock::new(Inner {
                status: status.clone(),
                contents: KvContents::default(),
            }),
            status: tokio::sync::watch::Sender::new(status),
            _alive: alive,
        };
        (Arc::new(cache), KvClosed(closed))
    }

    /// A copy that refuses every read with `reason`: a grant on a host
    /// with no store (`plugin test`).
    pub fn refusing(bucket: &str, reason: &str) -> Arc<KvCache> {
        let (cache, _) = KvCache::new(bucket);
        cache.set_status(KvStatus::Refused(reason.into()));
        cache
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The current status.
    pub fn status(&self) -> KvStatus {
        self.status.borrow().clone()
    }

    /// Changes of the status (readiness and revisions, for waiting).
    pub fn subscribe(&self) -> tokio::sync::watch::Receiver<KvStatus> {
        self.status.subscribe()
    }

    /// Keys in the copy.
    pub fn len(&self) -> usize {
        self.read().contents.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        // A writer cannot panic while holding the lock (no code that can
        // panic runs under it), but recover the data rather than poison
        // every login if one ever did.
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    fn set_status(&self, status: KvStatus) {
        self.write().status = status.clone();
        self.status.send_replace(status);
    }

    /// The copy may no longer be current (the watch broke): stop
    /// answering from it until [`KvCache::install`].
    pub fn mark_stale(&self, reason: &str) {
        self.set_status(KvStatus::Stale(reason.into()));
    }

    /// The bucket does not fit: drop the entries and refuse reads.
    pub fn refuse(&self, reason: &str) {
        let mut inner = self.write();
        inner.contents = KvContents::default();
        inner.status = KvStatus::Refused(reason.into());
        drop(inner);
        self.status.send_replace(KvStatus::Refused(reason.into()));
    }

    /// Replace the entries with a complete copy as of `revision`, and
    /// answer from it.
    pub fn install(&self, contents: KvContents, revision: u64) {
        let mut inner = self.write();
        inner.contents = contents;
        inner.status = KvStatus::Current(revision);
        drop(inner);
        self.status.send_replace(KvStatus::Current(revision));
    }

    /// Apply one live change to a current copy. An overflow refuses the
    /// bucket (a copy missing entries could answer "no such key" for a
    /// key that exists: a revoked user admitted).
    pub fn apply(&self, key: &str, value: Option<&[u8]>, revision: u64) -> Result<(), KvOverflow> {
        let mut inner = self.write();
        if let Err(overflow) = inner.contents.apply(key, value) {
            inner.contents = KvContents::default();
            let reason: Arc<str> = overflow.to_string().into();
            inner.status = KvStatus::Refused(reason.clone());
            drop(inner);
            self.status.send_replace(KvStatus::Refused(reason));
            return Err(overflow);
        }
        if matches!(inner.status, KvStatus::Current(_)) {
            inner.status = KvStatus::Current(revision);
            drop(inner);
            self.status.send_replace(KvStatus::Current(revision));
        }
        Ok(())
    }

    /// Run `read` on the entries once the copy is current, waiting at most
    /// until `deadline`.
    async fn when_current<T>(
        &self,
        deadline: Instant,
        read: impl Fn(&KvContents) -> Result<T, KvError>,
    ) -> Result<T, KvError> {
        let mut changes = self.status.subscribe();
        loop {
            {
                let inner = self.read();
                match &inner.status {
                    KvStatus::Current(_) => return read(&inner.contents),
                    KvStatus::Refused(reason) => {
                        return Err(KvError::Other(format!(
                            "bucket {:?}: {reason}",
                            self.bucket
                        )));
                    }
                    KvStatus::Stale(_) => {}
                }
            }
            let changed = tokio::time::timeout_at(deadline.into(), changes.changed()).await;
            if !matches!(changed, Ok(Ok(()))) {
                let reason = match &self.read().status {
                    KvStatus::Stale(reason) => reason.clone(),
                    _ => "the copy changed state at the deadline".into(),
                };
                return Err(KvError::Other(format!(
                    "bucket {:?}: the host's copy is not current ({reason}); not answering from it",
                    self.bucket
                )));
            }
        }
    }

    /// The value of `key`, from a current copy.
    pub async fn get(&self, key: &str, deadline: Instant) -> Result<Option<Vec<u8>>, KvError> {
        self.when_current(deadline, |c| match c.entries.get(key) {
            None => Ok(None),
            Some(Slot::Value(v)) => Ok(Some(v.to_vec())),
            Some(Slot::TooLarge(size)) => Err(KvError::Other(format!(
                "bucket {:?}: the value of this key is {size} bytes, over the host's cap of {MAX_VALUE_BYTES}",
                self.bucket
            ))),
        })
        .await
    }

    /// Whether `key` has a value, from a current copy.
    pub async fn exists(&self, key: &str, deadline: Instant) -> Result<bool, KvError> {
        self.when_current(deadline, |c| Ok(c.entries.contains_key(key)))
            .await
    }

    /// Up to [`PAGE_KEYS`] keys in order from position `cursor`, and the
    /// cursor of the next page. Positions shift when keys are added or
    /// removed between pages: a listing during changes may skip or repeat
    /// a key (the interface allows an out-of-date list).
    pub async fn list_keys(
        &self,
        cursor: Option<u64>,
        deadline: Instant,
    ) -> Result<KeyResponse, KvError> {
        let start = usize::try_from(cursor.unwrap_or(0)).unwrap_or(usize::MAX);
        self.when_current(deadline, |c| {
            let keys: Vec<String> = c
                .entries
                .keys()
                .skip(start)
                .take(PAGE_KEYS)
                .cloned()
                .collect();
            let next = start.saturating_add(keys.len());
            let cursor = (next < c.entries.len()).then_some(next as u64);
            Ok(KeyResponse { keys, cursor })
        })
        .await
    }
}

/// The buckets one plugin may read, opened (watched) at load.
#[derive(Clone)]
pub struct KvGrant {
    /// Name -> copy, for the names in `grants = { kv = [...] }`.
    pub buckets: Arc<BTreeMap<String, Arc<KvCache>>>,
    /// Buckets this instance holds open (each instance has its own clone
    /// of the grant, so this counts per instance).
    open: usize,
}

impl KvGrant {
    pub fn new(buckets: impl IntoIterator<Item = Arc<KvCache>>) -> KvGrant {
        KvGrant {
            buckets: Arc::new(
                buckets
                    .into_iter()
                    .map(|c| (c.bucket().to_owned(), c))
                    .collect(),
            ),
            open: 0,
        }
    }

    /// The granted bucket names.
    pub fn names(&self) -> Vec<&str> {
        self.buckets.keys().map(String::as_str).collect()
    }
}

/// An open bucket in an instance's resource table.
pub struct KvBucket {
    cache: Arc<KvCache>,
}

impl Host for HostState {
    async fn open(
        &mut self,
        identifier: String,
    ) -> wasmtime::Result<Result<Resource<KvBucket>, KvError>> {
        let Some(grant) = self.capabilities.kv.as_mut() else {
            return Ok(Err(KvError::AccessDenied));
        };
        let Some(cache) = grant.buckets.get(&identifier).cloned() else {
            return Ok(Err(KvError::AccessDenied));
        };
        if grant.open >= MAX_OPEN_BUCKETS {
            return Ok(Err(KvError::Other(format!(
                "more than {MAX_OPEN_BUCKETS} buckets open at once; drop the ones you no longer use"
            ))));
        }
        grant.open += 1;
        Ok(Ok(self.ctx().table.push(KvBucket { cache })?))
    }
}

impl HostState {
    fn kv_bucket(&mut self, bucket: &Resource<KvBucket>) -> wasmtime::Result<Arc<KvCache>> {
        Ok(self.ctx().table.get(bucket)?.cache.clone())
    }
}

impl HostBucket for HostState {
    async fn get(
        &mut self,
        bucket: Resource<KvBucket>,
        key: String,
    ) -> wasmtime::Result<Result<Option<Vec<u8>>, KvError>> {
        let cache = self.kv_bucket(&bucket)?;
        Ok(cache.get(&key, self.deadline).await)
    }

    async fn set(
        &mut self,
        _bucket: Resource<KvBucket>,
        _key: String,
        _value: Vec<u8>,
    ) -> wasmtime::Result<Result<(), KvError>> {
        Ok(Err(KvError::AccessDenied))
    }

    async fn delete(
        &mut self,
        _bucket: Resource<KvBucket>,
        _key: String,
    ) -> wasmtime::Result<Result<(), KvError>> {
        Ok(Err(KvError::AccessDenied))
    }

    async fn exists(
        &mut self,
        bucket: Resource<KvBucket>,
        key: String,
    ) -> wasmtime::Result<Result<bool, KvError>> {
        let cache = self.kv_bucket(&bucket)?;
        Ok(cache.exists(&key, self.deadline).await)
    }

    async fn list_keys(
        &mut self,
        bucket: Resource<KvBucket>,
        cursor: Option<u64>,
    ) -> wasmtime::Result<Result<KeyResponse, KvError>> {
        let cache = self.kv_bucket(&bucket)?;
        Ok(cache.list_keys(cursor, self.deadline).await)
    }

    async fn drop(&mut self, bucket: Resource<KvBucket>) -> wasmtime::Result<()> {
        self.ctx().table.delete(bucket)?;
        if let Some(grant) = self.capabilities.kv.as_mut() {
            grant.open = grant.open.saturating_sub(1);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn soon() -> Instant {
        Instant::now() + Duration::from_millis(200)
    }

    #[tokio::test]
    async fn a_stale_copy_is_never_answered_from() {
        let (cache, _closed) = KvCache::new("users");
        let mut contents = KvContents::default();
        contents.apply("dave", Some(b"{}")).unwrap();
        cache.install(contents, 7);
        assert_eq!(
            cache.get("dave", soon()).await.unwrap(),
            Some(b"{}".to_vec())
        );
        cache.mark_stale("NATS reconnected; the watch is resuming");
        let err = cache.get("dave", soon()).await.unwrap_err();
        let KvError::Other(reason) = err else {
            panic!("a stale read fails with a reason");
        };
        assert!(reason.contains("not current"), "{reason}");
        assert!(reason.contains("resuming"), "{reason}");
        assert!(cache.exists("dave", soon()).await.is_err());
    }

    #[tokio::test]
    async fn a_read_waits_for_the_copy_to_catch_up_within_the_deadline() {
        let (cache, _closed) = KvCache::new("users");
        let writer = cache.clone();
        let reader = tokio::spawn(async move {
            writer
                .get("dave", Instant::now() + Duration::from_secs(5))
                .await
        });
        let mut contents = KvContents::default();
        contents.apply("dave", Some(b"1")).unwrap();
        cache.install(contents, 3);
        assert_eq!(reader.await.unwrap().unwrap(), Some(b"1".to_vec()));
    }

    #[tokio::test]
    async fn a_value_over_the_cap_is_refused_not_kept() {
        let (cache, _closed) = KvCache::new("users");
        cache.install(KvContents::default(), 1);
        let huge = vec![b'x'; MAX_VALUE_BYTES + 1];
        cache.apply("eve", Some(&huge), 2).unwrap();
        let KvError::Other(reason) = cache.get("eve", soon()).await.unwrap_err() else {
            panic!("an oversized value is an error");
        };
        assert!(reason.contains("over the host's cap"), "{reason}");
        assert_eq!(cache.read().contents.bytes, "eve".len());
        // Replaced by a small value, it reads again.
        cache.apply("eve", Some(b"ok"), 3).unwrap();
        assert_eq!(
            cache.get("eve", soon()).await.unwrap(),
            Some(b"ok".to_vec())
        );
    }

    #[tokio::test]
    async fn a_bucket_over_the_key_bound_refuses_every_read() {
        let mut contents = KvContents::default();
        for i in 0..MAX_KEYS {
            contents.apply(&format!("k{i}"), Some(b"")).unwrap();
        }
        let (cache, _closed) = KvCache::new("revoked");
        cache.install(contents, 1);
        assert!(cache.apply("one-more", Some(b""), 2).is_err());
        // A missing key must not read as "not revoked".
        assert!(cache.exists("k1", soon()).await.is_err());
        assert!(cache.get("absent", soon()).await.is_err());
    }

    #[tokio::test]
    async fn keys_are_listed_in_bounded_pages() {
        let mut contents = KvContents::default();
        for i in 0..(PAGE_KEYS + 10) {
            contents.apply(&format!("k{i:04}"), Some(b"")).unwrap();
        }
        let (cache, _closed) = KvCache::new("users");
        cache.install(contents, 1);
        let first = cache.list_keys(None, soon()).await.unwrap();
        assert_eq!(first.keys.len(), PAGE_KEYS);
        let second = cache.list_keys(first.cursor, soon()).await.unwrap();
        assert_eq!(second.keys.len(), 10);
        assert_eq!(second.cursor, None);
        let past = cache.list_keys(Some(u64::MAX), soon()).await.unwrap();
        assert!(past.keys.is_empty() && past.cursor.is_none());
    }

    #[tokio::test]
    async fn dropping_the_last_handle_ends_the_watch() {
        let (cache, closed) = KvCache::new("users");
        drop(cache);
        tokio::time::timeout(Duration::from_secs(1), closed)
            .await
            .expect("closed resolves once the cache is gone");
    }
}
