//! The compiled-component cache on disk: a second load is a cache hit, and
//! a corrupted or foreign entry is recompiled, never loaded.

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

#[test]
fn corrupt_or_foreign_cache_entries_are_recompiled_not_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = static_users();
    runtime(dir.path()).prepare(&bytes).unwrap();
    let written = entries(dir.path());
    assert_eq!(written.len(), 1, "one entry per component and engine");
    let entry = &written[0];
    let good = std::fs::read(entry).unwrap();

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
    std::fs::write(entry, &corrupt).unwrap();
    runtime(dir.path()).prepare(&bytes).unwrap();
    assert_eq!(
        std::fs::read(entry).unwrap(),
        good,
        "the corrupt entry was replaced"
    );

    // Somebody else's file under our name: same.
    std::fs::write(entry, b"\x7fELF not ours").unwrap();
    runtime(dir.path()).prepare(&bytes).unwrap();
    assert_eq!(std::fs::read(entry).unwrap(), good);
}
