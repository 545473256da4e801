//! Components pulled from registries, kept on disk beside the compiled
//! component cache: blobs by digest, and for each reference what it last
//! resolved to (manifest digest, layer digest, signatures). A host whose
//! registry is down starts from this record, and a pinned digest that was
//! pulled once never needs the network again. Everything read back is
//! checked again: the blob against its digest, the signatures against the
//! current `trusted_signers`.
//!
//! Blob paths are built only from a parsed [`Digest`], whose hex part
//! cannot name another directory: a digest from a registry or from a
//! record on disk never becomes `/etc/passwd` or `../../x` here.

use super::signature::Signature;
use portcullis_protocol::digest::Digest;
use portcullis_protocol::files::write_atomic;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// What a reference resolved to when it was last pulled.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Resolved {
    pub reference: String,
    /// The manifest's digest.
    pub manifest: Digest,
    /// The component layer's digest.
    pub layer: Digest,
    pub size: u64,
    pub signatures: Vec<Signature>,
    /// Seconds since the Unix epoch.
    pub resolved_at: u64,
}

#[derive(Debug, Clone)]
pub struct OciCache {
    dir: PathBuf,
}

impl OciCache {
    /// The cache under `cache_dir` (the compiled-component cache).
    pub fn new(cache_dir: &Path) -> OciCache {
        OciCache {
            dir: cache_dir.join("oci"),
        }
    }

    fn blob_path(&self, digest: &Digest) -> PathBuf {
        self.dir.join("blobs/sha256").join(digest.hex())
    }

    fn record_path(&self, reference: &str) -> PathBuf {
        self.dir.join("refs").join(format!(
            "{}.json",
            portcullis_protocol::digest::sha256_hex(reference.as_bytes())
        ))
    }

    /// The blob with `digest`, if cached and still intact.
    pub fn blob(&self, digest: &Digest) -> Option<Vec<u8>> {
        let path = self.blob_path(digest);
        let bytes = std::fs::read(&path).ok()?;
        if Digest::of(&bytes) == *digest {
            return Some(bytes);
        }
        tracing::warn!(path = %path.display(), "cached component does not match its digest; ignoring it");
        let _ = std::fs::remove_file(path);
        None
    }

    pub fn put_blob(&self, digest: &Digest, bytes: &[u8]) -> std::io::Result<()> {
        write_atomic(&self.blob_path(digest), bytes)
    }

    pub fn record(&self, reference: &str) -> Option<Resolved> {
        let text = std::fs::read(self.record_path(reference)).ok()?;
        serde_json::from_slice::<Resolved>(&text)
            .ok()
            .filter(|r| r.reference == reference)
    }

    pub fn put_record(&self, record: &Resolved) -> std::io::Result<()> {
        let text = serde_json::to_vec_pretty(record).map_err(std::io::Error::other)?;
        write_atomic(&self.record_path(&record.reference), &text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_are_checked_when_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let cache = OciCache::new(dir.path());
        let bytes = b"component bytes".to_vec();
        let digest = Digest::of(&bytes);
        cache.put_blob(&digest, &bytes).unwrap();
        assert_eq!(cache.blob(&digest).unwrap(), bytes);

        let path = cache.blob_path(&digest);
        std::fs::write(&path, b"tampered").unwrap();
        assert!(cache.blob(&digest).is_none());
        assert!(!path.exists(), "a corrupt blob is removed");

        let record = Resolved {
            reference: "oci://127.0.0.1:5000/a:1".into(),
            manifest: digest.clone(),
            layer: digest,
            size: 15,
            signatures: vec![],
            resolved_at: 1,
        };
        cache.put_record(&record).unwrap();
        assert_eq!(cache.record(&record.reference).unwrap().size, 15);
        assert!(cache.record("oci://127.0.0.1:5000/a:2").is_none());
    }
}
