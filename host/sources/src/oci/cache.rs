//! Components pulled from registries, kept on disk beside the compiled
//! component cache: blobs (manifests and component layers) by digest, and
//! for each reference what it last resolved to (manifest digest, layer
//! digest, signatures). A host whose registry is down starts from this
//! record, and a pinned digest that was pulled once never needs the
//! network again.
//!
//! Nothing read back is taken on the record's word, because the record is
//! a file anyone who can write the cache could edit: the manifest bytes
//! are hashed and must match the recorded (and any pinned) manifest
//! digest, the layer must be the one that manifest names, its bytes must
//! match that digest, and the signatures are judged again over the
//! manifest digest against the current `trusted_signers`. So a record can
//! only ever lead to an artifact a trusted key signed for some reference;
//! which version a *tag* last meant is the one thing it says that nothing
//! signs (pin a digest where that matters).
//!
//! Blob paths are built only from a parsed [`Digest`], whose hex part
//! cannot name another directory: a digest from a registry or from a
//! record on disk never becomes `/etc/passwd` or `../../x` here.
//!
//! [`OciCache::prune`] removes the blobs no record names once they are
//! `cache_max_age` old: the versions a moved tag left behind. Records stay
//! (each is a few hundred bytes and names one version, the one a host
//! needs to start while the registry is down), so what the cache keeps is
//! one version per reference ever pulled.
//!
//! The directories and files follow the compile cache's rule (see
//! [`portcullis_protocol::files`]): created 0700 and 0600, and not used
//! when owned by another user or writable by group or others. An
//! untrusted directory means no registry cache at all (every load asks
//! the registry), an untrusted file is refused like a corrupt one.

use super::signature::Signature;
use portcullis_protocol::digest::Digest;
use portcullis_protocol::files::{
    ABANDONED_TEMPORARY, Pruned, TEMPORARY_SUFFIX, Untrusted, open_trusted, private_dir,
    write_atomic,
};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::io::{self, Read as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

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

/// Why something in the cache is not used.
#[derive(Debug, thiserror::Error)]
pub enum CacheRefusal {
    #[error(transparent)]
    Untrusted(#[from] Untrusted),
    #[error("cannot read {}: {error}", path.display())]
    Read { path: PathBuf, error: io::Error },
    #[error("{} is not a valid record: {error}", path.display())]
    Record {
        path: PathBuf,
        error: serde_json::Error,
    },
    #[error("{} is the record of {recorded}", path.display())]
    OtherReference { path: PathBuf, recorded: String },
    #[error("{} does not match its digest {digest}", path.display())]
    Mismatch { path: PathBuf, digest: Digest },
    #[error("{} is over {max} bytes", path.display())]
    TooLarge { path: PathBuf, max: u64 },
    #[error("its {what} {digest} is not cached")]
    Missing { what: &'static str, digest: Digest },
    #[error("the record names manifest {recorded}, the reference pins {pinned}")]
    NotPinned { recorded: Digest, pinned: Digest },
    #[error("the record names layer {recorded}, its manifest names {named}")]
    OtherLayer { recorded: Digest, named: Digest },
    #[error("its manifest {digest}: {reason}")]
    Manifest { digest: Digest, reason: String },
}

#[derive(Debug, Clone)]
pub struct OciCache {
    dir: PathBuf,
}

impl OciCache {
    /// The cache under `cache_dir` (the compiled-component cache), its
    /// directories created if missing; refused when one of them may not
    /// be trusted (see the module docs).
    pub fn new(cache_dir: &Path) -> Result<OciCache, Untrusted> {
        let cache = OciCache {
            dir: cache_dir.join("oci"),
        };
        for dir in [
            cache_dir,
            &cache.dir,
            &cache.dir.join("blobs"),
            &cache.dir.join("blobs/sha256"),
            &cache.dir.join("refs"),
        ] {
            private_dir(dir)?;
        }
        Ok(cache)
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

    /// The blob with `digest`, if cached; `max` bytes at most are read.
    /// One that does not match its digest is removed and refused.
    pub fn blob(&self, digest: &Digest, max: u64) -> Result<Option<Vec<u8>>, CacheRefusal> {
        let path = self.blob_path(digest);
        let Some(bytes) = read_trusted(&path, max)? else {
            return Ok(None);
        };
        if Digest::of(&bytes) != *digest {
            // Its name is a parsed digest, so this removes a file of the
            // cache and nothing else; the next pull replaces it.
            let _ = std::fs::remove_file(&path);
            return Err(CacheRefusal::Mismatch {
                path,
                digest: digest.clone(),
            });
        }
        Ok(Some(bytes))
    }

    pub fn put_blob(&self, digest: &Digest, bytes: &[u8]) -> io::Result<()> {
        write_atomic(&self.blob_path(digest), bytes)
    }

    /// What `reference` last resolved to, if it was ever pulled.
    pub fn record(&self, reference: &str) -> Result<Option<Resolved>, CacheRefusal> {
        let path = self.record_path(reference);
        let Some(record) = read_record(&path)? else {
            return Ok(None);
        };
        if record.reference != reference {
            return Err(CacheRefusal::OtherReference {
                path,
                recorded: record.reference,
            });
        }
        Ok(Some(record))
    }

    pub fn put_record(&self, record: &Resolved) -> io::Result<()> {
        let text = serde_json::to_vec_pretty(record).map_err(io::Error::other)?;
        write_atomic(&self.record_path(&record.reference), &text)
    }

    /// Remove the blobs no record names that were written more than
    /// `max_age` ago, and temporary files abandoned for an hour. A blob
    /// is written before the record naming it, so the age also keeps a
    /// pull another host is in the middle of. Only files named like a blob
    /// (a digest's 64 hex digits) or its temporary are ever removed.
    /// Best effort: a file that cannot be removed is skipped; only a
    /// directory that cannot be listed is an error.
    pub fn prune(&self, max_age: Duration) -> io::Result<Pruned> {
        let named = self.named_blobs()?;
        let now = SystemTime::now();
        let mut pruned = Pruned::default();
        for entry in std::fs::read_dir(self.dir.join("blobs/sha256"))? {
            let Ok(entry) = entry else { continue };
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            let (hex, temporary) = match name.split_once(TEMPORARY_SUFFIX) {
                Some((hex, _)) => (hex, true),
                None => (name.as_str(), false),
            };
            let Ok(digest) = Digest::parse(&format!("sha256:{hex}")) else {
                continue;
            };
            // A symbolic link is not followed: its age is its own.
            let Ok(meta) = entry.path().symlink_metadata() else {
                continue;
            };
            let age = meta
                .modified()
                .map(|m| now.duration_since(m).unwrap_or_default())
                .unwrap_or_default();
            let stale = if temporary {
                age > ABANDONED_TEMPORARY
            } else {
                age > max_age && !named.contains(&digest)
            };
            if stale {
                pruned.remove(&entry.path());
            }
        }
        Ok(pruned)
    }

    /// The manifests and layers the records name. A record that cannot be
    /// read names nothing: it is refused when used, and the next pull of
    /// its reference writes it and its blobs again.
    fn named_blobs(&self) -> io::Result<HashSet<Digest>> {
        let mut named = HashSet::new();
        for entry in std::fs::read_dir(self.dir.join("refs"))? {
            let Ok(entry) = entry else { continue };
            let path = entry.path();
            if path.extension().is_none_or(|e| e != "json") {
                continue;
            }
            if let Ok(Some(record)) = read_record(&path) {
                named.insert(record.manifest);
                named.insert(record.layer);
            }
        }
        Ok(named)
    }
}

/// A record is a few hundred bytes, a few KiB with many signatures; one
/// far larger is not read whole to find out it is not one.
const MAX_RECORD_SIZE: u64 = 1 << 20;

/// The bytes of the cache file `path`, if it exists and may be trusted;
/// more than `max` bytes are refused without being read.
fn read_trusted(path: &Path, max: u64) -> Result<Option<Vec<u8>>, CacheRefusal> {
    let Some(file) = open_trusted(path)? else {
        return Ok(None);
    };
    let mut bytes = Vec::new();
    if let Err(error) = file.take(max.saturating_add(1)).read_to_end(&mut bytes) {
        return Err(CacheRefusal::Read {
            path: path.to_owned(),
            error,
        });
    }
    if bytes.len() as u64 > max {
        return Err(CacheRefusal::TooLarge {
            path: path.to_owned(),
            max,
        });
    }
    Ok(Some(bytes))
}

/// The record in `path`, if there is one.
fn read_record(path: &Path) -> Result<Option<Resolved>, CacheRefusal> {
    let Some(text) = read_trusted(path, MAX_RECORD_SIZE)? else {
        return Ok(None);
    };
    serde_json::from_slice(&text)
        .map(Some)
        .map_err(|error| CacheRefusal::Record {
            path: path.to_owned(),
            error,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: u64 = 1 << 20;

    #[test]
    fn blobs_are_checked_when_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let cache = OciCache::new(dir.path()).unwrap();
        let bytes = b"component bytes".to_vec();
        let digest = Digest::of(&bytes);
        cache.put_blob(&digest, &bytes).unwrap();
        assert_eq!(cache.blob(&digest, MAX).unwrap().unwrap(), bytes);
        assert!(matches!(
            cache.blob(&digest, 3),
            Err(CacheRefusal::TooLarge { max: 3, .. })
        ));

        let path = cache.blob_path(&digest);
        std::fs::write(&path, b"tampered").unwrap();
        assert!(matches!(
            cache.blob(&digest, MAX),
            Err(CacheRefusal::Mismatch { .. })
        ));
        assert!(!path.exists(), "a corrupt blob is removed");
        assert!(cache.blob(&digest, MAX).unwrap().is_none());

        let record = Resolved {
            reference: "oci://127.0.0.1:5000/a:1".into(),
            manifest: digest.clone(),
            layer: digest,
            size: 15,
            signatures: vec![],
            resolved_at: 1,
        };
        cache.put_record(&record).unwrap();
        assert_eq!(cache.record(&record.reference).unwrap().unwrap().size, 15);
        assert!(cache.record("oci://127.0.0.1:5000/a:2").unwrap().is_none());
    }

    #[test]
    fn a_cache_others_could_write_is_not_used() {
        use std::os::unix::fs::PermissionsExt as _;
        let chmod = |path: &Path, mode: u32| {
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap()
        };
        let dir = tempfile::tempdir().unwrap();
        let cache = OciCache::new(dir.path()).unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir.path().join("oci/blobs/sha256")), 0o700);
        let bytes = b"component bytes";
        let digest = Digest::of(bytes);
        cache.put_blob(&digest, bytes).unwrap();
        assert_eq!(mode(&cache.blob_path(&digest)), 0o600);

        // An intact blob anyone may write: refused, as a writer could have
        // put another one there by the time it is read.
        chmod(&cache.blob_path(&digest), 0o666);
        let refused = cache.blob(&digest, MAX).unwrap_err().to_string();
        assert!(
            refused.contains("writable by its group or others"),
            "{refused}"
        );

        chmod(&dir.path().join("oci/refs"), 0o777);
        let refused = OciCache::new(dir.path()).unwrap_err().to_string();
        assert!(
            refused.contains("oci/refs is writable by its group or others"),
            "{refused}"
        );
    }

    #[test]
    fn prune_removes_old_blobs_no_record_names_and_nothing_else() {
        const DAY: Duration = Duration::from_secs(24 * 3600);
        let dir = tempfile::tempdir().unwrap();
        let cache = OciCache::new(dir.path()).unwrap();
        let blobs = dir.path().join("oci/blobs/sha256");
        let aged = |name: &str, bytes: &[u8], age: Duration| {
            let path = blobs.join(name);
            std::fs::write(&path, bytes).unwrap();
            let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
            file.set_modified(SystemTime::now() - age).unwrap();
            path
        };
        let blob = |bytes: &[u8], age: Duration| {
            let digest = Digest::of(bytes);
            (aged(digest.hex(), bytes, age), digest)
        };
        // What the tag names now, pulled 40 days ago: kept.
        let (manifest, manifest_digest) = blob(b"manifest 2", 40 * DAY);
        let (layer, layer_digest) = blob(b"layer 2", 40 * DAY);
        cache
            .put_record(&Resolved {
                reference: "oci://127.0.0.1:5000/a:1".into(),
                manifest: manifest_digest,
                layer: layer_digest,
                size: 7,
                signatures: vec![],
                resolved_at: 1,
            })
            .unwrap();
        // What the tag named before it moved: removed.
        let (old_manifest, _) = blob(b"manifest 1", 40 * DAY);
        let (old_layer, _) = blob(b"layer 1", 40 * DAY);
        // Named by no record yet, written yesterday (a pull whose record
        // is still to come): kept.
        let (recent, _) = blob(b"layer 3", DAY);
        // Temporaries: abandoned two hours ago (removed), being written (kept).
        let abandoned = aged(
            &format!("{}.tmp123-4", Digest::of(b"t").hex()),
            b"partial",
            2 * 3600 * Duration::from_secs(1),
        );
        let writing = aged(
            &format!("{}.tmp123-5", Digest::of(b"u").hex()),
            b"partial",
            Duration::ZERO,
        );
        // Not named like a blob: never removed, however old.
        let others = [
            aged("notes.txt", b"x", 40 * DAY),
            aged(&"A".repeat(64), b"x", 40 * DAY),
            aged(&format!("{}.json", Digest::of(b"v").hex()), b"x", 40 * DAY),
        ];
        // A record that cannot be read names nothing, and is not removed.
        let broken = dir.path().join("oci/refs/broken.json");
        std::fs::write(&broken, b"{ not a record").unwrap();

        let pruned = cache.prune(30 * DAY).unwrap();

        for gone in [&old_manifest, &old_layer, &abandoned] {
            assert!(!gone.exists(), "{} should be pruned", gone.display());
        }
        for kept in [&manifest, &layer, &recent, &writing, &broken]
            .into_iter()
            .chain(&others)
        {
            assert!(kept.exists(), "{} should be kept", kept.display());
        }
        assert_eq!(
            pruned,
            Pruned {
                files: 3,
                bytes: ("manifest 1".len() + "layer 1".len() + "partial".len()) as u64
            }
        );
        assert_eq!(cache.prune(30 * DAY).unwrap(), Pruned::default());
    }

    #[test]
    fn a_record_whose_digest_could_name_a_path_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let cache = OciCache::new(dir.path()).unwrap();
        let reference = "oci://127.0.0.1:5000/a:1";
        let record = Resolved {
            reference: reference.into(),
            manifest: Digest::of(b"manifest"),
            layer: Digest::of(b"layer"),
            size: 5,
            signatures: vec![],
            resolved_at: 1,
        };
        cache.put_record(&record).unwrap();
        let path = cache.record_path(reference);
        let text = std::fs::read_to_string(&path).unwrap().replace(
            &format!("\"{}\"", record.layer),
            "\"sha256:../../../../etc/passwd\"",
        );
        std::fs::write(&path, text).unwrap();
        let refused = cache.record(reference).unwrap_err().to_string();
        assert!(
            refused.contains("not a valid record") && refused.contains("64 lowercase hex digits"),
            "{refused}"
        );

        // Another reference's record copied under this one's name.
        let other = Resolved {
            reference: "oci://127.0.0.1:5000/a:2".into(),
            ..record
        };
        std::fs::write(&path, serde_json::to_vec(&other).unwrap()).unwrap();
        assert!(matches!(
            cache.record(reference),
            Err(CacheRefusal::OtherReference { .. })
        ));

        // A file far larger than any record is refused, not read whole.
        std::fs::write(&path, vec![b' '; MAX_RECORD_SIZE as usize + 1]).unwrap();
        assert!(matches!(
            cache.record(reference),
            Err(CacheRefusal::TooLarge { .. })
        ));
    }
}
