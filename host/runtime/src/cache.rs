//! Compiled components on disk, so a restart (or a JS/Python plugin, whose
//! compile takes seconds) loads in milliseconds.
//!
//! Key: SHA-256 of the component bytes, the wasmtime version and the
//! engine's compatibility hash. Each entry is wasmtime's artifact as it is,
//! with the SHA-256 of the artifact in a `.sha256` file beside it, checked
//! before wasmtime loads the artifact: loading is only safe for bytes this
//! host wrote, so a truncated, corrupt or foreign entry is discarded and
//! recompiled, never loaded.
//!
//! The digest only vouches for what was written by someone the host
//! trusts: whoever can write the directory can write an artifact and its
//! digest, and an artifact is native code the host maps and runs. So the
//! directory is trusted the way ssh trusts `~/.ssh`: it is created 0700,
//! entries 0600 (artifacts 0400), and a directory or entry that is owned
//! by another user (root aside) or writable by its group or others is not
//! used ([`portcullis_protocol::files`] has the rule). An untrusted
//! directory costs compile time, never a load: components are compiled in
//! memory, with one warning naming the directory and why, and nothing is
//! read from or written to it; an untrusted entry is discarded and
//! rewritten like a corrupt one. The directory is judged when the host
//! starts, each entry when it is opened (the open file itself, so it
//! cannot be swapped between the check and the load).
//!
//! Trust model of a shared cache: hosts may share a `cache_dir` only when
//! they run as the same user, which is then the one trust boundary: each
//! of them can put native code into the others. Hosts under different
//! users, or a directory others may write (group-shared, `/tmp`), get no
//! sharing: the directory or the other users' entries are refused. A
//! shared read-only cache owned by root (0755, entries not writable by
//! others) is trusted, as root can change the host's binary anyway.
//!
//! A verified entry is mapped, not copied: wasmtime maps the file's code
//! and initial memory images, so only the pages a plugin actually runs
//! count against the host's memory. For an interpreter compiled to Wasm
//! (the JS and Python plugins, 35 MB of machine code) that is most of the
//! host's resident memory. A mapped file must not change under the host,
//! so entries are written beside their name and renamed into place, never
//! rewritten, and are read-only.
//!
//! Every plugin version a host ever loaded leaves an entry (a JS or Python
//! one is 35 MB), so [`CompileCache::prune`] removes entries nobody has
//! used for a while. Loading an entry, and every prune while a host still
//! runs it, touches its digest file: that is how "last used" is known
//! across the hosts sharing a directory. Only
//! files named like entries are ever removed, so a `cache_dir` pointed at a
//! directory with other files in it loses none of them. Removing an entry
//! another host still maps is safe: the mapping keeps the file's pages;
//! that host recompiles if it ever loads the component again.

use super::RuntimeError;
use portcullis_protocol::digest::hex;
use portcullis_protocol::files::{
    ABANDONED_TEMPORARY, Pruned, TEMPORARY_SUFFIX, Untrusted, Why, open_trusted, private_dir,
    write_atomic, write_atomic_with,
};
use sha2::{Digest, Sha256};
use std::fs::File;
use std::hash::{Hash, Hasher};
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};
use wasmtime::Engine;
use wasmtime::component::Component;

#[derive(Clone, Debug)]
pub struct CompileCache {
    dir: PathBuf,
    /// Identifies engine settings and wasmtime version in entry names.
    engine_key: String,
}

/// The names of an entry's files: `<component sha256>-<engine key>.cwasm`
/// and the artifact's digest beside it, each written as a temporary with
/// a `.tmp<pid>-<n>` suffix first. [`file_kind`] reads these names back,
/// so pruning recognises exactly what this module writes.
const ARTIFACT_EXTENSION: &str = "cwasm";
const DIGEST_EXTENSION: &str = "sha256";

impl CompileCache {
    /// The cache in `dir`, created if missing; `None` (compile in memory,
    /// logged once) when `dir` may not be trusted, see the module docs.
    pub fn new(dir: PathBuf, engine: &Engine) -> Result<Option<Self>, RuntimeError> {
        match private_dir(&dir) {
            Ok(()) => {}
            Err(Untrusted {
                why: Why::Io(error),
                ..
            }) => {
                return Err(RuntimeError::Cache(format!(
                    "cannot create {}: {error}",
                    dir.display()
                )));
            }
            Err(why) => {
                tracing::warn!(reason = %why, "compile cache not used, components are compiled in memory");
                return Ok(None);
            }
        }
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_key = format!("{}-{:016x}", wasmtime_version(), hasher.finish());
        Ok(Some(CompileCache { dir, engine_key }))
    }

    fn entry_path(&self, component_sha256: &str) -> PathBuf {
        self.dir.join(format!(
            "{component_sha256}-{}.{ARTIFACT_EXTENSION}",
            self.engine_key
        ))
    }

    /// The cached component whose bytes have the SHA-256 `component_sha256`
    /// (lower-case hex), or `compile` it (to an artifact for `engine`) and
    /// cache the result.
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        component_sha256: &str,
        compile: impl FnOnce() -> Result<Vec<u8>, RuntimeError>,
    ) -> Result<Component, RuntimeError> {
        let path = self.entry_path(component_sha256);
        match load_entry(engine, &path) {
            Ok(Some(component)) => {
                touch(&digest_path(&path));
                return Ok(component);
            }
            Ok(None) => {}
            Err(reason) => {
                tracing::warn!(path = %path.display(), %reason, "discarding unusable cache entry")
            }
        }
        let artifact = compile()?;
        match write_entry(&path, &artifact) {
            // Map what was just written, so a cold start uses as little
            // memory as a warm one.
            Ok(()) => match load_entry(engine, &path) {
                Ok(Some(component)) => return Ok(component),
                Ok(None) => {}
                Err(reason) => {
                    tracing::warn!(path = %path.display(), %reason, "cannot load the entry just written")
                }
            },
            // A cache that cannot be written only costs compile time.
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot write compile cache entry")
            }
        }
        // SAFETY: produced a moment ago by `compile`, for this engine's settings.
        unsafe { Component::deserialize(engine, &artifact) }
            .map_err(|e| RuntimeError::Compile(format!("{e:#}")))
    }

    /// Remove entries no host has used for `max_age`, digests whose
    /// artifact is gone, and temporary files a host abandoned. The entries
    /// of `in_use` (component SHA-256s) are kept and marked used now.
    /// Best effort: a file that cannot be removed is skipped; only a
    /// directory that cannot be listed is an error.
    pub fn prune(&self, max_age: Duration, in_use: &[String]) -> io::Result<Pruned> {
        let in_use: Vec<PathBuf> = in_use.iter().map(|d| self.entry_path(d)).collect();
        for entry in &in_use {
            touch(&digest_path(entry));
        }
        let now = SystemTime::now();
        let age = |path: &Path| {
            let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok()?;
            Some(now.duration_since(modified).unwrap_or_default())
        };
        // Counts entries (artifact and digest), leftover digests and
        // abandoned temporary files.
        let mut pruned = Pruned::default();
        for dir_entry in std::fs::read_dir(&self.dir)? {
            let Ok(dir_entry) = dir_entry else { continue };
            let path = dir_entry.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            match file_kind(name) {
                Some(FileKind::Artifact) if !in_use.contains(&path) => {
                    let digest = digest_path(&path);
                    // Last use is the newer of the digest (touched on every
                    // load) and the artifact (a digest may be missing).
                    let unused = match (age(&digest), age(&path)) {
                        (Some(d), Some(a)) => d.min(a),
                        (d, a) => d.or(a).unwrap_or_default(),
                    };
                    if unused > max_age {
                        pruned.remove(&path);
                        pruned.remove(&digest);
                    }
                }
                Some(FileKind::Digest) => {
                    let artifact = path.with_extension(ARTIFACT_EXTENSION);
                    if !artifact.exists() && age(&path).is_some_and(|a| a > max_age) {
                        pruned.remove(&path);
                    }
                }
                Some(FileKind::Temporary) => {
                    if age(&path).is_some_and(|a| a > ABANDONED_TEMPORARY) {
                        pruned.remove(&path);
                    }
                }
                Some(FileKind::Artifact) | None => {}
            }
        }
        Ok(pruned)
    }
}

enum FileKind {
    Artifact,
    Digest,
    Temporary,
}

/// What a file of the cache directory is, judged by its name alone:
/// `<64 hex>-<engine key>.cwasm`, the same with `.sha256`, or either with
/// a `.tmp<pid>-<n>` suffix. `None` for anything else, which is never
/// removed.
fn file_kind(name: &str) -> Option<FileKind> {
    let (name, temporary) = match name.split_once(TEMPORARY_SUFFIX) {
        Some((entry, suffix)) => {
            let (pid, n) = suffix.split_once('-')?;
            let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
            if !(digits(pid) && digits(n)) {
                return None;
            }
            (entry, true)
        }
        None => (name, false),
    };
    let (hash, rest) = name.split_at_checked(64)?;
    if !hash.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) || !rest.starts_with('-') {
        return None;
    }
    let kind = match rest.rsplit_once('.') {
        Some((_, ARTIFACT_EXTENSION)) => FileKind::Artifact,
        Some((_, DIGEST_EXTENSION)) => FileKind::Digest,
        _ => return None,
    };
    Some(if temporary { FileKind::Temporary } else { kind })
}

/// Set `path`'s modification time to now, if it can be written.
fn touch(path: &Path) {
    let touched = std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .and_then(|f| f.set_modified(SystemTime::now()));
    if let Err(e) = touched {
        tracing::debug!(path = %path.display(), error = %e, "cannot mark cache entry as used");
    }
}

fn digest_path(entry: &Path) -> PathBuf {
    entry.with_extension(DIGEST_EXTENSION)
}

/// The component in the entry at `path`: `Ok(None)` when there is none,
/// `Err` (why) when there is one that must not be loaded.
fn load_entry(engine: &Engine, path: &Path) -> Result<Option<Component>, String> {
    let digest = open_trusted(&digest_path(path)).map_err(|e| format!("its digest {}", e.why))?;
    let Some(mut digest) = digest else {
        return Ok(None);
    };
    let mut expected = String::new();
    io::Read::read_to_string(&mut digest, &mut expected)
        .map_err(|e| format!("cannot read its digest: {e}"))?;
    let Some(mut file) = open_trusted(path).map_err(|e| format!("it {}", e.why))? else {
        return Ok(None);
    };
    let mut hasher = Sha256::new();
    io::copy(&mut file, &mut hasher).map_err(|e| format!("cannot read it: {e}"))?;
    if hex(&hasher.finalize()) != expected.trim() {
        return Err("its digest does not match: corrupt, truncated or not ours".into());
    }
    // SAFETY: the file holds the bytes whose digest this host wrote beside
    // them (both files are ours and nobody else may write them, see the
    // module docs), so they are an artifact `precompile_component` produced
    // for an engine with the same compatibility hash; entries are never
    // modified in place, and `same_file` names the very file just hashed,
    // not whatever `path` names by now.
    unsafe { Component::deserialize_file(engine, same_file(&file, path)) }
        .map(Some)
        .map_err(|e| format!("{e:#}"))
}

/// A name for the open `file` itself, where the platform has one.
fn same_file(file: &File, path: &Path) -> PathBuf {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let by_fd = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
        if by_fd.exists() {
            return by_fd;
        }
    }
    let _ = file;
    path.to_owned()
}

/// Write the digest, then the artifact, each through a rename: a reader
/// that sees the artifact also sees its digest. Owner-read-only, because a
/// mapped file edited in place would change code a host is running.
fn write_entry(path: &Path, artifact: &[u8]) -> io::Result<()> {
    write_atomic(
        &digest_path(path),
        hex(&Sha256::digest(artifact)).as_bytes(),
    )?;
    write_atomic_with(path, artifact, |tmp| {
        #[cfg(unix)]
        let permissions = std::os::unix::fs::PermissionsExt::from_mode(0o400);
        #[cfg(not(unix))]
        let permissions = {
            let mut permissions = std::fs::metadata(tmp)?.permissions();
            permissions.set_readonly(true);
            permissions
        };
        std::fs::set_permissions(tmp, permissions)
    })
}

fn wasmtime_version() -> &'static str {
    // Part of the key so a host never even looks at entries of another
    // layout or wasmtime: "-m" names the mapped layout (artifact and its
    // digest in separate files).
    "wasmtime48-m"
}

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_protocol::digest::sha256_hex;

    const DAY: Duration = Duration::from_secs(24 * 3600);

    /// A file at `dir/name` last modified `age` ago.
    fn file(dir: &Path, name: &str, age: Duration) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, b"x").unwrap();
        let file = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
        file.set_modified(SystemTime::now() - age).unwrap();
        path
    }

    fn entry(hash: char) -> String {
        format!(
            "{}-wasmtime48-m-0123456789abcdef",
            hash.to_string().repeat(64)
        )
    }

    #[test]
    fn prune_removes_what_no_host_used_for_max_age_and_nothing_else() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let cache = CompileCache {
            dir: d.to_owned(),
            engine_key: "wasmtime48-m-0123456789abcdef".into(),
        };
        let old = 40 * DAY;
        let recent = DAY;
        // Unused for 40 days: removed, artifact and digest.
        let stale = file(d, &format!("{}.cwasm", entry('a')), old);
        let stale_digest = file(d, &format!("{}.sha256", entry('a')), old);
        // Loaded by some host yesterday (digest touched): kept.
        let used = file(d, &format!("{}.cwasm", entry('b')), old);
        let used_digest = file(d, &format!("{}.sha256", entry('b')), recent);
        // Written by an older host (another engine key), long unused: removed.
        let foreign = file(d, &format!("{}-wasmtime40-0000.cwasm", "c".repeat(64)), old);
        // A digest whose artifact is gone: removed once old.
        let orphan = file(d, &format!("{}.sha256", entry('d')), old);
        // Loaded by this host 40 days ago and still in use: kept, touched.
        let ours = file(d, &format!("{}.cwasm", entry('e')), old);
        let ours_digest = file(d, &format!("{}.sha256", entry('e')), old);
        let in_use = ["e".repeat(64)];
        // Temporaries: abandoned two hours ago (removed), being written (kept).
        let abandoned = file(
            d,
            &format!("{}.cwasm.tmp123-4", entry('f')),
            2 * 3600 * Duration::from_secs(1),
        );
        let writing = file(
            d,
            &format!("{}.sha256.tmp123-5", entry('f')),
            Duration::ZERO,
        );
        // Not named like an entry: never removed, however old.
        let others = [
            file(d, "notes.txt", old),
            file(d, "abc-def.cwasm", old),
            file(d, &format!("{}.cwasm", "A".repeat(64) + "-k"), old),
            file(d, &format!("{}.cwasm.tmpx-1", entry('g')), old),
        ];
        std::fs::create_dir(d.join("oci")).unwrap();

        let pruned = cache.prune(30 * DAY, &in_use).unwrap();

        for gone in [&stale, &stale_digest, &foreign, &orphan, &abandoned] {
            assert!(!gone.exists(), "{} should be pruned", gone.display());
        }
        for kept in [&used, &used_digest, &ours, &ours_digest, &writing]
            .into_iter()
            .chain(&others)
        {
            assert!(kept.exists(), "{} should be kept", kept.display());
        }
        assert!(d.join("oci").is_dir());
        assert_eq!(pruned, Pruned { files: 5, bytes: 5 });
        let touched = std::fs::metadata(&ours_digest).unwrap().modified().unwrap();
        assert!(
            touched.elapsed().unwrap_or_default() < DAY,
            "an entry in use is marked used for the other hosts"
        );
        // Nothing more to do a second time.
        assert_eq!(cache.prune(30 * DAY, &in_use).unwrap(), Pruned::default());
    }

    #[test]
    fn prune_of_a_missing_directory_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let cache = CompileCache {
            dir: dir.path().join("gone"),
            engine_key: "k".into(),
        };
        assert!(cache.prune(DAY, &[]).is_err());
    }

    #[test]
    fn an_entry_is_its_artifact_read_only_with_its_digest_beside_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.cwasm");
        write_entry(&path, b"artifact bytes").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"artifact bytes");
        assert!(std::fs::metadata(&path).unwrap().permissions().readonly());
        assert_eq!(
            std::fs::read_to_string(dir.path().join("e.sha256")).unwrap(),
            sha256_hex(b"artifact bytes")
        );
        // A later write replaces the read-only entry by renaming over it.
        write_entry(&path, b"other bytes").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"other bytes");
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "no temporary files left: {names:?}");
    }
}
