//! Link the `portcullis` binary with packed relative relocations (DT_RELR)
//! where the C library it links against can load them (glibc 2.36+).
//!
//! A position-independent Rust binary of this size carries about a megabyte
//! of `R_X86_64_RELATIVE` entries, which the dynamic loader reads at every
//! start: pages the host keeps resident for nothing. Packed, they take a
//! few kilobytes. A binary with DT_RELR requires the glibc version tag
//! `GLIBC_ABI_DT_RELR` at run time, so the option is only passed when the
//! libc.so.6 the linker would use defines it (not on, e.g., Ubuntu 22.04).

use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=RUSTC_LINKER");
    let var = |name| std::env::var(name).unwrap_or_default();
    if var("CARGO_CFG_TARGET_OS") == "linux"
        && var("CARGO_CFG_TARGET_ENV") == "gnu"
        && glibc_loads_dt_relr()
    {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}

/// Whether the libc.so.6 the C compiler (Rust's linker driver) finds
/// defines `GLIBC_ABI_DT_RELR`.
fn glibc_loads_dt_relr() -> bool {
    let cc = std::env::var("RUSTC_LINKER").unwrap_or_else(|_| "cc".into());
    let Ok(out) = Command::new(cc).arg("-print-file-name=libc.so.6").output() else {
        return false;
    };
    let path = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    std::fs::read(path).is_ok_and(|libc| {
        libc.windows(b"GLIBC_ABI_DT_RELR".len())
            .any(|w| w == b"GLIBC_ABI_DT_RELR")
    })
}
