//! Compiled components on disk, so a restart (or a JS/Python plugin, whose
//! compile takes seconds) loads in milliseconds.
//!
//! Key: SHA-256 of the component bytes, the wasmtime version and the
//! engine's compatibility hash. Each entry carries the SHA-256 of its own
//! artifact, checked before wasmtime deserialises it: deserialising is only
//! safe for bytes this host wrote, so a truncated, corrupt or foreign entry
//! is discarded and recompiled, never loaded.

use super::RuntimeError;
use sha2::{Digest, Sha256};
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use wasmtime::Engine;
use wasmtime::component::Component;

const MAGIC: &[u8; 8] = b"PCULLIS1";
const DIGEST_LEN: usize = 32;

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

    fn entry_path(&self, component: &[u8]) -> PathBuf {
        let digest = sha256_hex(component);
        self.dir.join(format!("{digest}-{}.cwasm", self.engine_key))
    }

    /// The cached component for `bytes`, or `compile` it (to an artifact
    /// for `engine`) and cache the result.
    pub fn load_or_compile(
        &self,
        engine: &Engine,
        bytes: &[u8],
        compile: impl FnOnce() -> Result<Vec<u8>, RuntimeError>,
    ) -> Result<Component, RuntimeError> {
        let path = self.entry_path(bytes);
        if let Some(artifact) = read_entry(&path) {
            // SAFETY: the artifact's digest matches the one this host wrote
            // next to it, so these are bytes `precompile_component` produced
            // for an engine with the same compatibility hash.
            match unsafe { Component::deserialize(engine, &artifact) } {
                Ok(component) => return Ok(component),
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "discarding unusable cache entry")
                }
            }
        } else if path.exists() {
            tracing::warn!(path = %path.display(), "discarding corrupt cache entry");
        }
        let artifact = compile()?;
        if let Err(e) = write_entry(&path, &artifact) {
            // A cache that cannot be written only costs compile time.
            tracing::warn!(path = %path.display(), error = %e, "cannot write compile cache entry");
        }
        // SAFETY: produced a moment ago by `compile`, for this engine's settings.
        unsafe { Component::deserialize(engine, &artifact) }
            .map_err(|e| RuntimeError::Compile(format!("{e:#}")))
    }
}

fn read_entry(path: &Path) -> Option<Vec<u8>> {
    let data = std::fs::read(path).ok()?;
    let rest = data.strip_prefix(MAGIC)?;
    if rest.len() < DIGEST_LEN {
        return None;
    }
    let (digest, artifact) = rest.split_at(DIGEST_LEN);
    (Sha256::digest(artifact).as_slice() == digest).then(|| artifact.to_vec())
}

fn write_entry(path: &Path, artifact: &[u8]) -> std::io::Result<()> {
    let mut data = Vec::with_capacity(MAGIC.len() + DIGEST_LEN + artifact.len());
    data.extend_from_slice(MAGIC);
    data.extend_from_slice(&Sha256::digest(artifact));
    data.extend_from_slice(artifact);
    write_atomic(path, &data)
}

/// Write to a temporary file beside `path` and rename it into place, so
/// concurrent hosts never read half a file.
pub(crate) fn write_atomic(path: &Path, data: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, data)?;
    std::fs::rename(&tmp, path)
}

fn wasmtime_version() -> &'static str {
    // Part of the key so an upgraded host never even looks at old entries.
    "wasmtime48"
}

/// SHA-256 of `bytes`, lower-case hex: the digest that names a component
/// in logs, the cache and `plugin inspect`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corrupt_entries_are_not_returned() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.cwasm");
        write_entry(&path, b"artifact bytes").unwrap();
        assert_eq!(read_entry(&path).unwrap(), b"artifact bytes");

        let mut data = std::fs::read(&path).unwrap();
        *data.last_mut().unwrap() ^= 0xff;
        std::fs::write(&path, &data).unwrap();
        assert!(read_entry(&path).is_none(), "flipped byte must be detected");

        std::fs::write(&path, b"PCULLIS1short").unwrap();
        assert!(
            read_entry(&path).is_none(),
            "truncated entry must be detected"
        );
        std::fs::write(&path, b"somebody else's file").unwrap();
        assert!(read_entry(&path).is_none(), "foreign file must be detected");
    }
}
