//! Files of the host's caches: written atomically and private to the user
//! the host runs as, and read back only when nobody else could have
//! written them.
//!
//! Files that other processes read while we write them (compile-cache
//! entries, OCI cache records) are written beside their name and renamed
//! into place, so no reader ever sees half a file.
//!
//! A cache holds what the host maps as native code (compiled components)
//! or loads as a plugin (registry pulls), so whoever can write it can run
//! code in the host. New directories are created 0700 and new files 0600,
//! and, as ssh does with `~/.ssh`, a directory or file that is owned by
//! another user (root aside) or writable by its group or others is not
//! used: [`check_dir`] and [`open_trusted`] say why.

use std::fs::{File, Metadata};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// What follows a file's name in the name of its temporary copy: cache
/// pruners recognise (and skip or remove) temporaries by it.
pub const TEMPORARY_SUFFIX: &str = ".tmp";

/// A temporary file untouched this long was left by a host that died
/// while writing it (writing even a 35 MB compiled component or a 64 MB
/// pull takes seconds), and pruners remove it.
pub const ABANDONED_TEMPORARY: Duration = Duration::from_secs(3600);

/// What one prune of a cache removed.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Pruned {
    pub files: usize,
    pub bytes: u64,
}

impl Pruned {
    /// Remove the cache file `path` and count it. Best effort: a file
    /// that is already gone is not counted, one that cannot be removed is
    /// logged (at debug) and left for the next prune. A symbolic link is
    /// removed, never followed.
    pub fn remove(&mut self, path: &Path) {
        let bytes = std::fs::symlink_metadata(path).map_or(0, |m| m.len());
        match std::fs::remove_file(path) {
            Ok(()) => {
                self.files += 1;
                self.bytes += bytes;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => tracing::debug!(path = %path.display(), error = %e, "cannot prune"),
        }
    }

    /// Log what a prune of `cache` (e.g. "compile cache") removed, once
    /// it removed anything, or why it could not run.
    pub fn log(result: io::Result<Pruned>, cache: &str, max_age: Duration) {
        match result {
            Ok(p) if p.files > 0 => tracing::info!(
                files = p.files,
                mib = p.bytes >> 20,
                max_age = %humantime::format_duration(max_age),
                "{cache} pruned"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot prune the {cache}"),
        }
    }
}

/// Write `data` to a temporary file beside `path` and rename it into place.
pub fn write_atomic(path: &Path, data: &[u8]) -> io::Result<()> {
    write_atomic_with(path, data, |_| Ok(()))
}

/// [`write_atomic`], calling `before_rename` on the temporary file (to set
/// permissions, say) before it takes `path`'s place. Missing directories
/// are created 0700 and the file 0600 (see the module docs).
pub fn write_atomic_with(
    path: &Path,
    data: &[u8],
    before_rename: impl FnOnce(&Path) -> io::Result<()>,
) -> io::Result<()> {
    if let Some(dir) = path.parent() {
        create_private_dirs(dir)?;
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
    let written = create_private_file(&tmp).and_then(|mut file| {
        io::Write::write_all(&mut file, data)?;
        drop(file);
        before_rename(&tmp)?;
        std::fs::rename(&tmp, path)
    });
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// A new file at `path`, readable and writable by its owner only from
/// the start (not chmod-ed after: nobody gets to open it in between).
fn create_private_file(path: &Path) -> io::Result<File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options.open(path)
}

/// `dir` and any missing parent, each new one 0700.
fn create_private_dirs(dir: &Path) -> io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// A cache directory or file that is not used, and why.
#[derive(Debug, thiserror::Error)]
#[error("{} {why}", path.display())]
pub struct Untrusted {
    pub path: PathBuf,
    pub why: Why,
}

/// Why a cache directory or file is not used (the sentence's predicate:
/// "PATH is writable by ...").
#[derive(Debug, thiserror::Error)]
pub enum Why {
    #[error("cannot be used: {0}")]
    Io(io::Error),
    #[error("is owned by uid {owner}, neither this user (uid {user}) nor root")]
    Owner { owner: u32, user: u32 },
    #[error("is writable by its group or others (mode {mode:03o})")]
    Writable { mode: u32 },
    #[error("is not a {0}")]
    Kind(&'static str),
}

fn untrusted(path: &Path, why: Why) -> Untrusted {
    Untrusted {
        path: path.to_owned(),
        why,
    }
}

/// Whether a file or directory with this owner and mode may be trusted by
/// a process running as `user`: owned by that user or root, and writable
/// by nobody else (ssh's rule for `~/.ssh`). Readable by others is fine:
/// a cache holds nothing secret.
pub fn check_owner_and_mode(
    path: &Path,
    owner: u32,
    mode: u32,
    user: u32,
) -> Result<(), Untrusted> {
    if owner != user && owner != 0 {
        return Err(untrusted(path, Why::Owner { owner, user }));
    }
    if mode & 0o022 != 0 {
        let mode = mode & 0o7777;
        return Err(untrusted(path, Why::Writable { mode }));
    }
    Ok(())
}

/// [`check_owner_and_mode`] for `metadata`, against the effective user.
fn check_metadata(path: &Path, metadata: &Metadata) -> Result<(), Untrusted> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt as _;
        check_owner_and_mode(path, metadata.uid(), metadata.mode(), effective_uid())
    }
    #[cfg(not(unix))]
    {
        let _ = (path, metadata);
        Ok(())
    }
}

#[cfg(unix)]
fn effective_uid() -> u32 {
    // SAFETY: geteuid has no preconditions, cannot fail and touches no memory.
    unsafe { libc::geteuid() }
}

/// Create `dir` (and missing parents) 0700 if it does not exist, then
/// check it may be trusted. An existing directory keeps its mode: a
/// shared 0755 one is fine, a group-writable one is refused, not fixed.
pub fn private_dir(dir: &Path) -> Result<(), Untrusted> {
    create_private_dirs(dir).map_err(|e| untrusted(dir, Why::Io(e)))?;
    check_dir(dir)
}

/// Whether the existing directory `dir` may be trusted.
pub fn check_dir(dir: &Path) -> Result<(), Untrusted> {
    let metadata = std::fs::metadata(dir).map_err(|e| untrusted(dir, Why::Io(e)))?;
    if !metadata.is_dir() {
        return Err(untrusted(dir, Why::Kind("directory")));
    }
    check_metadata(dir, &metadata)
}

/// `path` opened for reading if it may be trusted; `None` if there is no
/// such file. The check is of the file opened, not of the name, so the
/// name cannot be swapped between check and read.
pub fn open_trusted(path: &Path) -> Result<Option<File>, Untrusted> {
    let io_error = |e| untrusted(path, Why::Io(e));
    let file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error(e)),
    };
    let metadata = file.metadata().map_err(io_error)?;
    if !metadata.is_file() {
        return Err(untrusted(path, Why::Kind("regular file")));
    }
    check_metadata(path, &metadata)?;
    Ok(Some(file))
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt as _;

    const ME: u32 = 1000;

    #[test]
    fn only_what_this_user_or_root_owns_and_nobody_else_may_write_is_trusted() {
        let path = Path::new("/cache/entry");
        for (owner, mode) in [
            (ME, 0o700),
            (ME, 0o755),
            (ME, 0o400),
            (0, 0o755),
            (ME, 0o1700),
        ] {
            assert!(
                check_owner_and_mode(path, owner, mode, ME).is_ok(),
                "{owner} {mode:o}"
            );
        }
        let refused = check_owner_and_mode(path, 1001, 0o700, ME).unwrap_err();
        assert!(matches!(refused.why, Why::Owner { owner: 1001, .. }));
        assert_eq!(
            refused.to_string(),
            "/cache/entry is owned by uid 1001, neither this user (uid 1000) nor root"
        );
        for mode in [0o770, 0o720, 0o702, 0o666, 0o40775] {
            let refused = check_owner_and_mode(path, ME, mode, ME).unwrap_err();
            assert!(matches!(refused.why, Why::Writable { .. }), "{mode:o}");
        }
        assert!(
            check_owner_and_mode(path, 0, 0o777, ME).is_err(),
            "root's, but anyone may write it"
        );
    }

    #[test]
    fn cache_files_and_directories_are_created_private() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a/b/entry");
        write_atomic(&file, b"bytes").unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir.path().join("a")), 0o700);
        assert_eq!(mode(&dir.path().join("a/b")), 0o700);
        assert_eq!(mode(&file), 0o600);
        assert!(open_trusted(&file).unwrap().is_some());
        assert!(
            open_trusted(&dir.path().join("a/b/none"))
                .unwrap()
                .is_none()
        );
        private_dir(&dir.path().join("a")).unwrap();

        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o666)).unwrap();
        assert!(matches!(
            open_trusted(&file).map_err(|e| e.why),
            Err(Why::Writable { mode: 0o666 })
        ));
        std::fs::set_permissions(dir.path().join("a"), std::fs::Permissions::from_mode(0o775))
            .unwrap();
        assert!(matches!(
            private_dir(&dir.path().join("a")).map_err(|e| e.why),
            Err(Why::Writable { mode: 0o775 })
        ));
        assert!(matches!(
            open_trusted(&dir.path().join("a")).map_err(|e| e.why),
            Err(Why::Kind("regular file"))
        ));
    }
}
