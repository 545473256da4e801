//! The `portcullis` command line: one file per command under `commands/`,
//! each mapping its outcome to an exit code; `cli` holds the command tree
//! and what every command runs inside. Binary-edge code: errors carry
//! `anyhow` context here and nowhere below.
//!
//! Owns: argument parsing, what each command prints, and the files `init`
//! and `plugin new` write (so tests and benchmarks build deployments with
//! the very code `init` uses). Nothing in the library crates may depend on
//! this one.

pub mod cli;
pub mod commands;
pub mod connection;
pub mod init;

pub use cli::main;
pub use commands::hash_password;
