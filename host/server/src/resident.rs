//! Let go of the code pages start-up touched, once serving has begun.
//!
//! The `portcullis` binary carries about 20 MiB of code. Start-up runs a
//! little of it from all over the file (argument parsing, the TOML config,
//! wasmtime's engine and cranelift's ISA probing, component loading and
//! compiling, the regex async-nats' service API builds), and the kernel
//! maps file pages in 64 KiB fault-around windows: about 10 MiB of code
//! stayed mapped, counted in the host's resident set for its whole life,
//! while serving a login runs a fraction of it.
//!
//! [`release_startup_code`] unmaps (`MADV_DONTNEED`) the binary's clean
//! read-only mappings. Nothing is lost: they are private file mappings
//! that were never written, so the next access reads the same bytes back
//! from the page cache, and what serving runs is mapped again within its
//! first logins. A mapping holding any private (written) page, such as the
//! relocated RELRO data or code a debugger patched, is left alone:
//! dropping it would revert those pages to the file's bytes.

/// What [`release_startup_code`] did.
#[derive(Debug, Default)]
struct Released {
    /// Mappings unmapped.
    mappings: usize,
    /// Bytes that were resident in them.
    resident_bytes: u64,
}

#[derive(Debug, thiserror::Error)]
enum ReleaseError {
    #[error("cannot read {0}: {1}")]
    Proc(&'static str, #[source] std::io::Error),
    #[error("madvise of {start:#x}-{end:#x}: {error}")]
    Madvise {
        start: usize,
        end: usize,
        #[source]
        error: std::io::Error,
    },
    #[cfg(not(target_os = "linux"))]
    #[error("not implemented on this OS")]
    Unsupported,
}

/// Unmap the clean read-only mappings of this process's own executable,
/// and log what came of it: best effort, nothing depends on it.
pub fn release_startup_code(after: &'static str) {
    match release() {
        Ok(r) => tracing::debug!(
            after,
            mappings = r.mappings,
            resident_kib = r.resident_bytes / 1024,
            "released code pages"
        ),
        Err(e) => tracing::debug!(after, error = %e, "code pages not released"),
    }
}

#[cfg(not(target_os = "linux"))]
fn release() -> Result<Released, ReleaseError> {
    Err(ReleaseError::Unsupported)
}

/// [`release_startup_code`] without the log line.
#[cfg(target_os = "linux")]
fn release() -> Result<Released, ReleaseError> {
    use std::os::unix::fs::MetadataExt as _;
    let exe = std::fs::metadata("/proc/self/exe")
        .map_err(|e| ReleaseError::Proc("/proc/self/exe", e))?
        .ino();
    let smaps = std::fs::read_to_string("/proc/self/smaps")
        .map_err(|e| ReleaseError::Proc("/proc/self/smaps", e))?;
    let mut released = Released::default();
    for m in parse(&smaps).iter().filter(|m| m.droppable(exe)) {
        // SAFETY: the range is a whole mapping of our executable that is
        // not writable and holds no private page (`droppable`), so every
        // page reads back from the file exactly as it was.
        let rc = unsafe {
            libc::madvise(
                m.start as *mut libc::c_void,
                m.end - m.start,
                libc::MADV_DONTNEED,
            )
        };
        if rc != 0 {
            return Err(ReleaseError::Madvise {
                start: m.start,
                end: m.end,
                error: std::io::Error::last_os_error(),
            });
        }
        released.mappings += 1;
        released.resident_bytes += m.rss_kb * 1024;
    }
    Ok(released)
}

/// One mapping of `/proc/self/smaps`, the fields we need.
#[derive(Debug, Default)]
struct Mapping {
    start: usize,
    end: usize,
    perms: String,
    inode: u64,
    rss_kb: u64,
    /// `None` when smaps did not say: treated as written.
    anonymous_kb: Option<u64>,
}

impl Mapping {
    /// Of the executable, not writable, and nothing in it written: code
    /// and constants read straight from the file. The inode alone names
    /// the executable (another file system's file could share it); a
    /// clean read-only file mapping is safe to drop whatever its file.
    fn droppable(&self, exe_inode: u64) -> bool {
        self.inode == exe_inode && self.perms.starts_with("r-") && self.anonymous_kb == Some(0)
    }
}

fn parse(smaps: &str) -> Vec<Mapping> {
    let mut mappings: Vec<Mapping> = Vec::new();
    for line in smaps.lines() {
        let mut fields = line.split_whitespace();
        let Some(first) = fields.next() else { continue };
        if let Some((start, end)) = first.split_once('-')
            && let (Ok(start), Ok(end)) = (
                usize::from_str_radix(start, 16),
                usize::from_str_radix(end, 16),
            )
        {
            // start-end perms offset dev inode [path]
            mappings.push(Mapping {
                start,
                end,
                perms: fields.next().unwrap_or_default().to_owned(),
                inode: fields.nth(2).and_then(|i| i.parse().ok()).unwrap_or(0),
                ..Mapping::default()
            });
            continue;
        }
        let (Some(m), Some(value)) = (mappings.last_mut(), fields.next()) else {
            continue;
        };
        match first {
            "Rss:" => m.rss_kb = value.parse().unwrap_or(0),
            "Anonymous:" => m.anonymous_kb = value.parse().ok(),
            _ => {}
        }
    }
    mappings
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMAPS: &str = "\
5600aa000000-5600aa200000 r--p 00000000 fd:01 4242 /usr/bin/portcullis
Size:               2048 kB
Rss:                1200 kB
Anonymous:             0 kB
5600aa200000-5600ab600000 r-xp 00200000 fd:01 4242 /usr/bin/portcullis
Size:              20480 kB
Rss:               10000 kB
Anonymous:             0 kB
5600ab600000-5600ab700000 r--p 01600000 fd:01 4242 /usr/bin/portcullis
Rss:                 800 kB
Anonymous:           780 kB
5600ab700000-5600ab710000 rw-p 01700000 fd:01 4242 /usr/bin/portcullis
Rss:                  64 kB
Anonymous:             0 kB
5600ab800000-5600ab900000 r-xp 00000000 fd:01 4242 /usr/bin/portcullis
Rss:                  64 kB
7f0000000000-7f0000200000 r-xp 00000000 fd:01 77 /usr/lib/libc.so.6
Rss:                1000 kB
Anonymous:             0 kB
7f0000300000-7f0000400000 rw-p 00000000 00:00 0
Rss:                 900 kB
Anonymous:           900 kB
";

    #[test]
    fn only_clean_read_only_mappings_of_the_executable_are_dropped() {
        let mappings = parse(SMAPS);
        assert_eq!(mappings.len(), 7);
        let dropped: Vec<(usize, u64)> = mappings
            .iter()
            .filter(|m| m.droppable(4242))
            .map(|m| (m.start, m.rss_kb))
            .collect();
        // .rodata and .text; not RELRO (written), not .data (writable),
        // not a mapping whose smaps entry lacks `Anonymous:`, not libc,
        // not the heap.
        assert_eq!(dropped, [(0x5600aa000000, 1200), (0x5600aa200000, 10000)]);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn released_code_runs_again_and_is_no_longer_all_resident() {
        let resident = || {
            use std::os::unix::fs::MetadataExt as _;
            let exe = std::fs::metadata("/proc/self/exe").unwrap().ino();
            let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
            parse(&smaps)
                .iter()
                .filter(|m| m.droppable(exe))
                .map(|m| m.rss_kb)
                .sum::<u64>()
        };
        let before = resident();
        assert!(before > 0, "the test binary's code is mapped");
        let released = release().unwrap();
        assert!(released.mappings >= 2, "{released:?}");
        assert!(released.resident_bytes >= before * 1024 / 2, "{released:?}");
        // Code and constants are read back from the file as they are used.
        assert_eq!(parse(SMAPS)[1].rss_kb, 10000);
        assert!(resident() < before, "{} KiB -> {} KiB", before, resident());
    }
}
