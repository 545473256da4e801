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
//! A verified entry is mapped, not copied: wasmtime maps the file's code
//! and initial memory images, so only the pages a plugin actually runs
//! count against the host's memory. For an interpreter compiled to Wasm
//! (the JS and Python plugins, 35 MB of machine code) that is most of the
//! host's resident memory. A mapped file must not change under the host,
//! so entries are written beside their name and renamed into place, never
//! rewritten, and are read-only.

use super::RuntimeError;
use sha2::{Digest, Sha256};
use std::fs::File;
use std::hash::{Hash, Hasher};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use wasmtime::Engine;
use wasmtime::component::Component;

#[derive(Clone, Debug)]
pub struct CompileCache {
    dir: PathBuf,
    /// Identifies engine settings and wasmtime version in entry names.
    engine_key: String,
}

impl CompileCache {
    pub fn new(dir: PathBuf, engine: &Engine) -> Result<Self, RuntimeError> {
        std::fs::create_dir_all(&dir)
            .map_err(|e| RuntimeError::Cache(format!("cannot create {}: {e}", dir.display())))?;
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        let engine_key = format!("{}-{:016x}", wasmtime_version(), hasher.finish());
        Ok(CompileCache { dir, engine_key })
    }

    fn entry_path(&self, component_sha256: &str) -> PathBuf {
        self.dir
            .join(format!("{component_sha256}-{}.cwasm", self.engine_key))
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
            Ok(Some(component)) => return Ok(component),
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
}

fn digest_path(entry: &Path) -> PathBuf {
    entry.with_extension("sha256")
}

/// The component in the entry at `path`: `Ok(None)` when there is none,
/// `Err` (why) when there is one that must not be loaded.
fn load_entry(engine: &Engine, path: &Path) -> Result<Option<Component>, String> {
    let expected = match std::fs::read_to_string(digest_path(path)) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read its digest: {e}")),
    };
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot open it: {e}")),
    };
    let mut hasher = Sha256::new();
    io::copy(&mut file, &mut hasher).map_err(|e| format!("cannot read it: {e}"))?;
    if hex(&hasher.finalize()) != expected.trim() {
        return Err("its digest does not match: corrupt, truncated or not ours".into());
    }
    // SAFETY: the file holds the bytes whose digest this host wrote beside
    // them, so they are an artifact `precompile_component` produced for an
    // engine with the same compatibility hash; entries are never modified
    // in place (see the module docs), and `same_file` names the very file
    // just hashed, not whatever `path` names by now.
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
/// that sees the artifact also sees its digest. Read-only, because a mapped
/// file edited in place would change code a host is running.
fn write_entry(path: &Path, artifact: &[u8]) -> io::Result<()> {
    write_atomic(
        &digest_path(path),
        hex(&Sha256::digest(artifact)).as_bytes(),
    )?;
    write_atomic_with(path, artifact, |tmp| {
        let mut permissions = std::fs::metadata(tmp)?.permissions();
        permissions.set_readonly(true);
        std::fs::set_permissions(tmp, permissions)
    })
}

/// Write to a temporary file beside `path` and rename it into place, so
/// concurrent hosts never read half a file.
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    write_atomic_with(path, data, |_| Ok(()))
}

fn write_atomic_with(
    path: &Path,
    data: &[u8],
    before_rename: impl FnOnce(&Path) -> io::Result<()>,
) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // Unique per process and call: two loads of one component must not
    // share a temporary file.
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(format!(
        ".tmp{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let tmp = path.with_file_name(name);
    std::fs::write(&tmp, data)?;
    before_rename(&tmp)?;
    std::fs::rename(&tmp, path)
}

fn wasmtime_version() -> &'static str {
    // Part of the key so an upgraded host never even looks at old entries.
    // "-m": entries that are mapped (artifact and digest apart), unlike the
    // single-file entries of earlier hosts.
    "wasmtime48-m"
}

/// SHA-256 of `bytes`, lower-case hex: the digest that names a component
/// in logs, the cache and `plugin inspect`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(digest: &[u8]) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

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
