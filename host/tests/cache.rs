//! The compiled-component cache on disk: a second load is a cache hit
//! mapped from the entry, and a corrupted, foreign or unvouched entry is
//! recompiled, never loaded.

use portcullis::runtime::{Runtime, RuntimeOptions};
use std::path::Path;

fn static_users() -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../target/wasm32-wasip2/release/static_users.wasm");
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run scripts/build-plugins)", path.display()))
}

fn runtime(dir: &Path) -> Runtime {
    Runtime::new(&RuntimeOptions {
        cache_dir: Some(dir.to_owned()),
        pool_instances: Some(8),
        max_memory_bytes: 32 << 20,
    })
    .unwrap()
}

fn entries(dir: &Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "cwasm"))
        .collect()
}

/// Replace an entry's bytes the way a stray tool would (entries are
/// read-only, so not in place).
fn overwrite(path: &Path, bytes: &[u8]) {
    std::fs::remove_file(path).unwrap();
    std::fs::write(path, bytes).unwrap();
}

/// Whether this process has `path` mapped, as /proc/self/maps shows it.
fn mapped(path: &Path) -> bool {
    let maps = std::fs::read_to_string("/proc/self/maps").unwrap();
    let path = path.canonicalize().unwrap();
    maps.lines().any(|l| l.ends_with(&*path.to_string_lossy()))
}

#[test]
fn corrupt_or_foreign_cache_entries_are_recompiled_not_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = static_users();
    runtime(dir.path()).prepare(&bytes).unwrap();
    let written = entries(dir.path());
    assert_eq!(written.len(), 1, "one entry per component and engine");
    let entry = &written[0];
    let digest = entry.with_extension("sha256");
    let good = std::fs::read(entry).unwrap();
    assert!(
        std::fs::metadata(entry).unwrap().permissions().readonly(),
        "a mapped entry must not be edited in place"
    );

    // A second runtime (a restart) loads the same entry.
    runtime(dir.path()).prepare(&bytes).unwrap();
    assert_eq!(
        std::fs::read(entry).unwrap(),
        good,
        "a hit does not rewrite the entry"
    );

    // Flip one byte of the artifact: detected, recompiled, rewritten.
    let mut corrupt = good.clone();
    let middle = corrupt.len() / 2;
    corrupt[middle] ^= 0xff;
    overwrite(entry, &corrupt);
    runtime(dir.path()).prepare(&bytes).unwrap();
    assert_eq!(
        std::fs::read(entry).unwrap(),
        good,
        "the corrupt entry was replaced"
    );

    // Somebody else's file under our name: same.
    overwrite(entry, b"\x7fELF not ours");
    runtime(dir.path()).prepare(&bytes).unwrap();
    assert_eq!(std::fs::read(entry).unwrap(), good);

    // A file under our name with no digest beside it is not trusted either.
    overwrite(entry, b"\x7fELF not ours");
    std::fs::remove_file(&digest).unwrap();
    runtime(dir.path()).prepare(&bytes).unwrap();
    assert_eq!(std::fs::read(entry).unwrap(), good);
    assert!(digest.exists());
}

#[test]
fn a_cached_component_is_mapped_from_its_entry_not_copied() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = static_users();
    // Cold: compiled, written, then mapped from what was written.
    let cold = runtime(dir.path()).prepare(&bytes).unwrap();
    let entry = entries(dir.path()).remove(0);
    assert!(
        mapped(&entry),
        "a compiled component is mapped from its new entry"
    );
    drop(cold);
    assert!(!mapped(&entry), "dropping the component unmaps it");
    // Warm: a restart maps the entry it verified.
    let warm = runtime(dir.path()).prepare(&bytes).unwrap();
    assert!(
        mapped(&entry),
        "a cached component is mapped from its entry"
    );
    drop(warm);
}
