//! The compiled-component cache on disk: a second load is a cache hit
//! mapped from the entry, and a corrupted, foreign or unvouched entry is
//! recompiled, never loaded.

use portcullis_runtime::{Runtime, RuntimeOptions};
use std::path::Path;

fn static_users() -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/wasm32-wasip2/release/static_users.wasm");
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run scripts/build-plugins)", path.display()))
}

fn runtime(dir: &Path) -> Runtime {
    Runtime::new(&RuntimeOptions {
        cache_dir: Some(dir.to_owned()),
        pool_instances: Some(8),
        max_memory_bytes: 32 << 20,
        cache_max_age: None,
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

#[test]
fn loading_marks_an_entry_used_and_pruning_keeps_it() {
    let dir = tempfile::tempdir().unwrap();
    let month = std::time::Duration::from_secs(30 * 24 * 3600);
    let host = Runtime::new(&RuntimeOptions {
        cache_dir: Some(dir.path().to_owned()),
        pool_instances: Some(8),
        max_memory_bytes: 32 << 20,
        cache_max_age: Some(month),
    })
    .unwrap();
    let bytes = static_users();
    host.prepare(&bytes).unwrap();
    let entry = entries(dir.path()).pop().expect("an entry");
    let digest = entry.with_extension("sha256");
    let long_ago = std::time::SystemTime::now() - 2 * month;
    let age = |path: &Path| {
        let modified = std::fs::metadata(path).unwrap().modified().unwrap();
        modified.elapsed().unwrap_or_default()
    };
    let set_age = |path: &Path| {
        let file = std::fs::OpenOptions::new().write(true).open(path).unwrap();
        file.set_modified(long_ago).unwrap();
    };

    // Another host loading the entry (a cache hit) marks it used.
    set_age(&digest);
    runtime(dir.path()).prepare(&bytes).unwrap();
    assert!(age(&digest) < month, "a cache hit touches the digest");

    // An entry of a component nobody used for two months goes; the one
    // this host runs stays, even when its files look old.
    let stale = dir
        .path()
        .join(format!("{}-wasmtime40-0.cwasm", "0".repeat(64)));
    std::fs::write(&stale, b"old artifact").unwrap();
    set_age(&stale);
    set_age(&digest);
    host.prune_cache(&[portcullis_protocol::digest::sha256_hex(&bytes)]);
    assert!(!stale.exists(), "unused entry pruned");
    assert!(entry.exists() && digest.exists(), "entry in use kept");
    assert!(
        age(&digest) < month,
        "pruning marks the entry in use as used"
    );
    // And it still loads from the cache.
    host.prepare(&bytes).unwrap();
    assert_eq!(entries(dir.path()), vec![entry]);
}
