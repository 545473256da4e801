//! Portcullis: a NATS auth-callout service whose identity decisions are
//! made by sandboxed WebAssembly components.
//!
//! # Request path
//!
//! 1. [`service`] receives a request on `$SYS.REQ.USER.AUTH` (queue group).
//! 2. [`callout::verify`] opens the xkey box ([`keys`]) and verifies the
//!    server-signed request JWT; an unverified request gets no answer.
//! 3. [`registry`] asks the plugin chain; each plugin runs in [`runtime`]
//!    under a CPU deadline and a memory cap. First allow/deny wins.
//! 4. [`policy`] checks the grant against what the host allows that plugin.
//! 5. [`callout`] signs the user JWT and the response (or a signed error).
//!
//! # Layout
//!
//! - [`config`]: the TOML configuration file.
//! - [`keys`]: seed loading and the xkey box; no seed ever reaches a log.
//! - [`callout`]: claims, JWT codec, request verification, response signing.
//! - [`runtime`]: wasmtime engine, compile cache, instance pools, WIT bindings.
//! - [`source`]: where components come from (files, [`fleet`] buckets).
//! - [`registry`]: loaded plugins in chain order, swapped atomically.
//! - [`routing`]: per-plugin `match` tables: which logins a plugin is asked.
//! - [`reload`]: hot swap: file watch and reload requests (SIGHUP).
//! - [`resident`]: gives back the code pages start-up touched, once serving.
//! - [`policy`]: host checks on grants.
//! - [`service`]: NATS subscription, back-pressure, drain.
//! - [`metrics`]: Prometheus counters and the `/metrics` endpoint.
//! - [`admin`]: the NATS micro service (`$SRV`) hosts register with.
//! - [`host`]: wires the above together from a [`config::Config`].
//! - [`vectors`]: conformance vectors, run against a loaded plugin.
//! - [`cli`], [`init`], [`hash_password`]: the `portcullis` command line.
//! - [`scaffold`]: `portcullis plugin new`, plugin projects per language.

pub mod accounts;
pub mod admin;
pub mod callout;
pub mod cli;
pub mod config;
pub mod fleet;
pub mod hash_password;
pub mod host;
pub mod init;
pub mod keys;
pub mod metrics;
pub mod oci;
pub mod policy;
pub mod registry;
pub mod reload;
pub mod resident;
pub mod routing;
pub mod runtime;
pub mod scaffold;
pub mod service;
pub mod source;
pub mod vectors;
