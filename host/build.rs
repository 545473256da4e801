//! Link the `portcullis` binary with packed relative relocations (DT_RELR)
//! where the platform has them (glibc 2.36+, binutils 2.38+ or lld).
//!
//! A position-independent Rust binary of this size carries about a megabyte
//! of `R_X86_64_RELATIVE` entries, which the dynamic loader reads at every
//! start: pages the host keeps resident for nothing. Packed, they take a
//! few kilobytes. An older GNU ld warns about the option and ignores it.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let var = |name| std::env::var(name).unwrap_or_default();
    if var("CARGO_CFG_TARGET_OS") == "linux" && var("CARGO_CFG_TARGET_ENV") == "gnu" {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}
