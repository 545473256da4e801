//! Read JetStream KV buckets the operator granted (`grants = { kv =
//! ["users"] }` in the plugin's `[[plugins]]` entry), through
//! `wasi:keyvalue/store`. Reads come from the host's in-memory copy of the
//! bucket: no network round trip per login. Writes are never granted.
//!
//! A plugin that never calls [`open`] does not import `wasi:keyvalue` and
//! needs no grant. Natively (unit tests) there is no host: [`testing`]
//! fills an in-memory stand-in that [`open`] reads.

#[cfg(target_arch = "wasm32")]
use crate::bindings::wasi::keyvalue::store;

/// Why a read failed. Every error is the login's to deny, with the
/// message as the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// The host has no such bucket.
    NoSuchStore,
    /// The plugin was not granted this bucket.
    AccessDenied,
    /// Anything else; the host's reason (the copy is not current, the
    /// value is over the host's cap, ...).
    Other(String),
}

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Error::NoSuchStore => f.write_str("no such bucket"),
            Error::AccessDenied => f.write_str("bucket not granted to this plugin"),
            Error::Other(reason) => f.write_str(reason),
        }
    }
}

impl std::error::Error for Error {}

#[cfg(target_arch = "wasm32")]
impl From<store::Error> for Error {
    fn from(e: store::Error) -> Self {
        match e {
            store::Error::NoSuchStore => Error::NoSuchStore,
            store::Error::AccessDenied => Error::AccessDenied,
            store::Error::Other(reason) => Error::Other(reason),
        }
    }
}

/// An open bucket. Open it once (in `configure` or on first use) and keep
/// it: opening is cheap, but each open handle is a host resource.
pub struct Bucket {
    #[cfg(target_arch = "wasm32")]
    inner: store::Bucket,
    #[cfg(not(target_arch = "wasm32"))]
    name: String,
}

/// Open the granted bucket `name`.
pub fn open(name: &str) -> Result<Bucket, Error> {
    #[cfg(target_arch = "wasm32")]
    return Ok(Bucket {
        inner: store::open(name)?,
    });
    #[cfg(not(target_arch = "wasm32"))]
    return testing::STORE.with(|s| {
        if s.borrow().contains_key(name) {
            Ok(Bucket { name: name.into() })
        } else {
            Err(Error::AccessDenied)
        }
    });
}

impl Bucket {
    /// The value of `key`, `None` when it has none.
    pub fn get(&self, key: &str) -> Result<Option<Vec<u8>>, Error> {
        #[cfg(target_arch = "wasm32")]
        return Ok(self.inner.get(key)?);
        #[cfg(not(target_arch = "wasm32"))]
        return testing::STORE
            .with(|s| Ok(s.borrow().get(&self.name).and_then(|b| b.get(key)).cloned()));
    }

    /// Whether `key` has a value.
    pub fn exists(&self, key: &str) -> Result<bool, Error> {
        #[cfg(target_arch = "wasm32")]
        return Ok(self.inner.exists(key)?);
        #[cfg(not(target_arch = "wasm32"))]
        return self.get(key).map(|v| v.is_some());
    }

    /// One page of keys from `cursor` (`None`: the first), and the cursor
    /// of the next page (`None`: that was the last). The host bounds the
    /// page size.
    pub fn list_keys(&self, cursor: Option<u64>) -> Result<(Vec<String>, Option<u64>), Error> {
        #[cfg(target_arch = "wasm32")]
        {
            let page = self.inner.list_keys(cursor)?;
            Ok((page.keys, page.cursor))
        }
        #[cfg(not(target_arch = "wasm32"))]
        return testing::STORE.with(|s| {
            let store = s.borrow();
            let keys: Vec<String> = store
                .get(&self.name)
                .map(|b| {
                    b.keys()
                        .skip(cursor.unwrap_or(0) as usize)
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            Ok((keys, None))
        });
    }
}

/// The native stand-in for the host's buckets, for plugin unit tests.
#[cfg(not(target_arch = "wasm32"))]
pub mod testing {
    use std::cell::RefCell;
    use std::collections::BTreeMap;

    thread_local! {
        pub(super) static STORE: RefCell<BTreeMap<String, BTreeMap<String, Vec<u8>>>> =
            const { RefCell::new(BTreeMap::new()) };
    }

    /// Grant (create) an empty bucket on this thread.
    pub fn grant(bucket: &str) {
        STORE.with(|s| {
            s.borrow_mut().entry(bucket.into()).or_default();
        });
    }

    /// Put `value` under `key` (the bucket is granted if it was not).
    pub fn put(bucket: &str, key: &str, value: &[u8]) {
        STORE.with(|s| {
            s.borrow_mut()
                .entry(bucket.into())
                .or_default()
                .insert(key.into(), value.into());
        });
    }

    /// Remove `key`.
    pub fn delete(bucket: &str, key: &str) {
        STORE.with(|s| {
            if let Some(b) = s.borrow_mut().get_mut(bucket) {
                b.remove(key);
            }
        });
    }
}
