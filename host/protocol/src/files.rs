//! Files that other processes read while we write them (compile-cache
//! entries, OCI cache records) are written beside their name and renamed
//! into place, so no reader ever sees half a file.

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// What follows a file's name in the name of its temporary copy: cache
/// pruners recognise (and skip or remove) temporaries by it.
pub const TEMPORARY_SUFFIX: &str = ".tmp";

/// Write `data` to a temporary file beside `path` and rename it into place.
pub fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    write_atomic_with(path, data, |_| Ok(()))
}

/// [`write_atomic`], calling `before_rename` on the temporary file (to set
/// permissions, say) before it takes `path`'s place.
pub fn write_atomic_with(
    path: &Path,
    data: &[u8],
    before_rename: impl FnOnce(&Path) -> io::Result<()>,
) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    // Unique per process and call: two concurrent writers of one path
    // must not share a temporary file.
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let mut name = path.file_name().unwrap_or_default().to_owned();
    name.push(format!(
        "{TEMPORARY_SUFFIX}{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    let tmp = path.with_file_name(name);
    std::fs::write(&tmp, data)?;
    before_rename(&tmp)?;
    std::fs::rename(&tmp, path)
}
