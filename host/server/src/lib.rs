//! Portcullis: a NATS auth-callout service whose identity decisions are
//! made by sandboxed WebAssembly components. This crate is the server: it
//! wires the protocol, the runtime and the sources into a running host.
//!
//! # Request path
//!
//! 1. [`service`] receives requests on `$SYS.REQ.USER.AUTH` (queue group),
//!    those already arrived together as one batch.
//! 2. [`callout`] has the protocol crate open the xkey boxes and verify the
//!    server-signed request JWTs, their signatures in one batch; an
//!    unverified request gets no answer.
//! 3. [`registry`] asks the plugin chain ([`request`] turns the claims into
//!    the WIT request); each plugin runs in the runtime crate under a
//!    deadline and a memory cap. First allow/deny wins.
//! 4. [`policy`] checks the grant against what the host allows that plugin.
//! 5. [`callout`] has the protocol crate sign the user JWT and the response
//!    (or a signed error); [`audit`] records the decision.
//!
//! # Crates
//!
//! - `portcullis-protocol`: claims, JWTs, verification, issuing, keys.
//! - `portcullis-runtime`: wasmtime engine, compile cache, pools, bindings.
//! - `portcullis-sources`: files, fleet buckets, OCI registries.
//! - `portcullis` (this crate): configuration and everything that serves.
//! - `portcullis-cli`: the `portcullis` command.
//!
//! Owns: the configuration file, the plugin chain and its reloads, host
//! policy, the NATS service and everything an operator observes of it
//! (metrics, `$SRV`, audit). Must never depend on the command line: tests
//! and benchmarks run this crate in-process exactly as `portcullis run`
//! does.
//!
//! # Layout
//!
//! - [`config`]: the TOML configuration file, validated per section.
//! - [`databases`]: `[databases]` pools, the backend of granted SQL.
//! - [`host`]: wires the above together from a [`config::Config`].
//! - [`callout`]: one request message in, one response message out.
//! - [`request`]: a verified request as the WIT `auth-request`.
//! - [`registry`]: loaded plugins in chain order, swapped atomically.
//! - [`routing`]: per-plugin `match` tables: which logins a plugin is asked.
//! - [`policy`]: host checks on grants; [`ceiling`]: per-plugin subject limits.
//! - [`audit`]: the audit log line and `[audit] subject` events.
//! - [`logline`]: the log's writer, one `write` per poll of a batch.
//! - [`reload`]: hot swap: file watch and reload requests (SIGHUP).
//! - [`resident`]: gives back the code pages start-up touched, once serving.
//! - [`service`]: NATS subscription, back-pressure, drain.
//! - [`throttle`]: failed logins bounded per client address and user name.
//! - [`metrics`]: Prometheus counters; `/metrics`, `/healthz` and `/readyz`.
//! - [`admin`]: the NATS micro service (`$SRV`) hosts register with.
//! - [`vectors`]: conformance vectors, run against a loaded plugin.
//! - [`deployment`]: the files around a host that `portcullis init` writes.

pub mod admin;
pub mod audit;
pub mod callout;
pub mod ceiling;
pub mod config;
pub mod databases;
pub mod deployment;
pub mod host;
pub mod kv;
pub mod logline;
pub mod metrics;
pub mod policy;
pub mod registry;
pub mod reload;
pub mod request;
pub mod resident;
pub mod routing;
pub mod service;
pub mod throttle;
pub mod vectors;
