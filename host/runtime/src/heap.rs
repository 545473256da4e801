//! What a compile leaves in the C heap.
//!
//! Compiling a JavaScript or Python component allocates a few hundred MiB
//! on the compiler's threads and frees it all. glibc raises its mmap and
//! trim thresholds each time a large mmapped block is freed (up to 32 and
//! 64 MiB), so from the first compile on, big blocks come from the heap
//! and a thread arena keeps up to 64 MiB of freed memory at its top, where
//! `malloc_trim` does not reach (it trims only the main arena's top). A
//! host that compiled a plugin, at start or in a hot swap, stayed 25-60
//! MiB larger than the same host loading it from the compile cache, for
//! as long as it ran.
//!
//! The `portcullis` binary compiles in a child process
//! ([`crate::compiler`]), whose memory goes with it; this is for compiles
//! in the process itself: the fallback where no child can be started, and
//! library users.
//!
//! [`keep_initial_thresholds`] pins both thresholds at glibc's initial
//! 128 KiB, which turns the raising off: large blocks stay mmapped and are
//! unmapped when freed, and freed tops are trimmed. Serving allocates
//! small blocks only, so its cost is unchanged (measured: CPU and system
//! calls per login within the noise).

/// glibc's initial `M_MMAP_THRESHOLD` and `M_TRIM_THRESHOLD`.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
const INITIAL_THRESHOLD: libc::c_int = 128 * 1024;

/// Pin glibc's mmap and trim thresholds at their initial values for this
/// process, unless the operator tuned them (`GLIBC_TUNABLES`). For a
/// binary that compiles components; call it before the first compile.
pub fn keep_initial_thresholds() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let tuned = std::env::var("GLIBC_TUNABLES").is_ok_and(|t| {
            t.contains("glibc.malloc.mmap_threshold") || t.contains("glibc.malloc.trim_threshold")
        });
        if tuned {
            return;
        }
        // SAFETY: mallopt only changes allocator parameters; it has no
        // preconditions and touches no live allocation.
        unsafe {
            libc::mallopt(libc::M_MMAP_THRESHOLD, INITIAL_THRESHOLD);
            libc::mallopt(libc::M_TRIM_THRESHOLD, INITIAL_THRESHOLD);
        }
    }
}

/// Cranelift frees what it allocated while compiling, but glibc keeps the
/// freed pages mapped, spread over the arenas of the compiler threads.
/// Hand back what `malloc_trim` can reach.
pub(crate) fn release_compiler_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only returns free heap memory to the kernel; it
    // has no preconditions and touches no live allocation.
    unsafe {
        libc::malloc_trim(0);
    }
}
