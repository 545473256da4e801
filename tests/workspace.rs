//! Where the things the tests run come from: the workspace, the plugin
//! components scripts/build-plugins built, and the compile cache they share.

use std::path::{Path, PathBuf};

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_owned()
}

/// A compiled plugin component from `plugins/` (built by scripts/build-plugins).
pub fn plugin(name: &str) -> PathBuf {
    let dir = std::env::var_os("PORTCULLIS_PLUGIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/wasm32-wasip2/release"));
    let path = dir.join(format!("{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: build the plugins first with `scripts/build-plugins` (scripts/test does)",
        path.display()
    );
    path
}

/// Compiled components shared by all tests of a run.
pub fn cache_dir() -> PathBuf {
    workspace().join("target/portcullis-test-cache")
}
