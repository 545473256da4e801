//! Test harness: a real `nats-server` on an ephemeral loopback port, real
//! keys, the real host in-process, real plugin components from `plugins/`.
//!
//! Nothing here is mocked. Every wait is bounded in time; every process and
//! temp dir is cleaned up on drop.
//!
//! One module per concern; everything is re-exported here, so tests name
//! `portcullis_tests::Stack` without knowing where it lives.

pub mod http_service;
pub mod idp;
pub mod registry;

mod client;
mod deployment;
mod host;
mod load;
mod nats_server;
mod postgres;
mod process;
mod stack;
mod tls;
mod workspace;

pub use client::{
    Events, REFUSED_WITHIN, admitted, connect_with_events, expect_refused, login, user_info,
};
pub use deployment::{Deployment, replace_file, users_json};
pub use host::Host;
pub use load::LoginLoad;
pub use nats_server::{LogMark, NatsServer, free_port, nats_server_bin};
pub use postgres::{PG_USER, Postgres};
pub use process::{HostProcess, portcullis_bin};
pub use stack::{OperatorStack, Stack, rewrite_account};
pub use tls::Tls;
pub use workspace::{cache_dir, plugin, workspace};

use std::time::Duration;

/// Upper bound for anything a test waits for: a server starting, a host
/// becoming ready, a log line appearing.
pub const WAIT: Duration = Duration::from_secs(20);
