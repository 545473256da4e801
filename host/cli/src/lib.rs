//! The `portcullis` command line: one module per command, each mapping its
//! outcome to an exit code. Binary-edge code: errors carry `anyhow`
//! context here and nowhere below.
//!
//! Owns: argument parsing, what each command prints, and the files `init`
//! and `plugin new` write (so tests and benchmarks build deployments with
//! the very code `init` uses). Nothing in the library crates may depend on
//! this one.

pub mod cli;
pub mod hash_password;
pub mod init;
pub mod scaffold;

pub use cli::main;
