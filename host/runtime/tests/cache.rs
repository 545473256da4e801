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

fn users_v2() -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target/wasm32-wasip2/release/users_v2.wasm");
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run scripts/build-plugins)", path.display()))
}

/// What `f` logged at warning level and above, on this thread.
fn warnings<T>(f: impl FnOnce() -> T) -> (T, String) {
    let sink = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
    struct Writer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl std::io::Write for Writer {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    let writer = sink.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || Writer(writer.clone()))
        .with_ansi(false)
        .with_max_level(tracing::Level::WARN)
        .finish();
    let out = tracing::subscriber::with_default(subscriber, f);
    let text = String::from_utf8_lossy(&sink.lock().unwrap()).into_owned();
    (out, text)
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// The entry of static-users in `dir`, replaced by what a writer of the
/// cache would put there: a valid artifact of another component (native
/// code of their choosing, as far as the host can tell) and its digest.
/// The entry's path and the forged artifact.
fn forge_entry(dir: &Path) -> (std::path::PathBuf, Vec<u8>) {
    let other = tempfile::tempdir().unwrap();
    runtime(other.path()).prepare(&users_v2()).unwrap();
    let forged_entry = entries(other.path()).remove(0);
    let forged = std::fs::read(&forged_entry).unwrap();
    let forged_digest = std::fs::read(forged_entry.with_extension("sha256")).unwrap();

    runtime(dir).prepare(&static_users()).unwrap();
    let entry = entries(dir).remove(0);
    overwrite(&entry, &forged);
    overwrite(&entry.with_extension("sha256"), &forged_digest);
    (entry, forged)
}

#[test]
fn a_new_cache_is_private_to_its_owner() {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("new/cache");
    runtime(&cache).prepare(&static_users()).unwrap();
    assert_eq!(mode(&cache), 0o700, "the cache directory");
    let entry = entries(&cache).remove(0);
    assert_eq!(mode(&entry), 0o400, "the artifact");
    assert_eq!(mode(&entry.with_extension("sha256")), 0o600, "its digest");
}

#[test]
fn a_group_writable_cache_dir_is_not_trusted_and_plugins_compile_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let (entry, forged) = forge_entry(dir.path());
    set_mode(dir.path(), 0o770);

    let (prepared, warned) = warnings(|| runtime(dir.path()).prepare(&static_users()));
    eprintln!("{warned}");
    let prepared = prepared.expect("a bad cache never fails a load");
    assert!(!mapped(&entry), "the forged entry was loaded");
    assert_eq!(
        std::fs::read(&entry).unwrap(),
        forged,
        "nothing is written to a cache that is not trusted"
    );
    let dir_name = dir.path().display().to_string();
    assert!(
        warned.contains(&dir_name) && warned.contains("writable by its group or others"),
        "{warned}"
    );
    assert_eq!(
        warned.matches(&dir_name).count(),
        1,
        "one warning: {warned}"
    );
    drop(prepared);
}

#[test]
fn a_cache_entry_writable_by_others_is_not_loaded() {
    let dir = tempfile::tempdir().unwrap();
    let (entry, forged) = forge_entry(dir.path());
    set_mode(&entry, 0o666);

    let (prepared, warned) = warnings(|| runtime(dir.path()).prepare(&static_users()));
    eprintln!("{warned}");
    prepared.expect("a bad entry never fails a load");
    assert!(
        std::fs::read(&entry).unwrap() != forged,
        "the forged entry was loaded, not replaced"
    );
    assert_eq!(mode(&entry), 0o400, "the replacement is the host's own");
    assert!(
        warned.contains(&entry.display().to_string())
            && warned.contains("writable by its group or others"),
        "{warned}"
    );
}
