//! Per-instance host state: the WASI context (with nothing granted: no
//! directory, no socket), the memory limiter, the call deadline and the
//! call's log budget.

use crate::capabilities::Capabilities;
use crate::capabilities::http::{HttpHooks, HttpState};
use crate::plugin_log::{LogBudget, LogLimits};
use std::sync::Arc;
use std::time::Instant;
use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

/// Instances, tables and memories one plugin instance may create. A Rust
/// component needs a handful; the bounds stop a component that tries to
/// exhaust host resources through sheer count.
const MAX_INSTANCES: usize = 64;
const MAX_TABLES: usize = 64;
const MAX_MEMORIES: usize = 16;
/// Table elements per table: far above what real plugins use.
const MAX_TABLE_ELEMENTS: usize = 100_000;
/// Host handles (pollables, streams, HTTP requests and bodies, KV
/// buckets) one instance may hold at once. They live in host memory, which
/// the linear-memory cap does not see; wasmtime alone stops a store at
/// 100,000 live handles (about 10 MiB held by one instance that never
/// drops them, and as much by every pooled instance). Language runtimes
/// with an HTTP request in flight hold a few dozen.
pub(crate) const MAX_HOST_HANDLES: usize = 10_000;

/// The trap of a call whose wall-clock deadline passed: raised by the
/// epoch callback, or by a host call (bcrypt) that ran out of time.
#[derive(Debug)]
pub(super) struct DeadlineExceeded;

impl std::fmt::Display for DeadlineExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("deadline exceeded")
    }
}

impl std::error::Error for DeadlineExceeded {}

pub struct HostState {
    /// Plugin name, for the plugin's log lines.
    pub plugin: Arc<str>,
    /// WASI with no preopens, no environment, no network, no stdio: the
    /// filesystem and sockets interfaces are linked but reach nothing.
    wasi: WasiCtx,
    table: ResourceTable,
    /// Linear memory cap in bytes, summed over the instance's memories.
    memory_cap: usize,
    memory_used: usize,
    /// Set when the cap refused a growth: the trap that follows is reported
    /// as out-of-memory, not as a generic trap.
    pub memory_exhausted: bool,
    /// When the current call must end; checked on every epoch tick.
    pub deadline: Instant,
    /// What the current call may still write to the host log.
    pub(crate) log: LogBudget,
    /// What the operator granted this plugin beyond the host functions.
    pub(crate) capabilities: Capabilities,
    /// wasi:http's context and our sender, with the plugin's HTTP grant.
    http: HttpState,
}

impl HostState {
    pub fn new(
        plugin: Arc<str>,
        memory_cap: usize,
        log: LogLimits,
        capabilities: Capabilities,
    ) -> Self {
        // wasi:filesystem and wasi:sockets are linked for every plugin
        // (crate::INERT_IMPORTS), so this context is all that stands between
        // a plugin and the host's files and network. wasmtime-wasi 48's
        // builder already starts from no preopens, TCP/UDP/name lookup off
        // and an address check that refuses all; each is set again here so
        // a change of default in a later wasmtime cannot open anything.
        // Every call then fails with `access`/`not-permitted` and no file
        // or address is ever touched.
        let wasi = WasiCtx::builder()
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .socket_addr_check(|_, _| Box::pin(std::future::ready(false)))
            .build();
        let http = HttpState::new(plugin.clone(), capabilities.http.clone());
        let mut table = ResourceTable::new();
        table.set_max_capacity(MAX_HOST_HANDLES);
        HostState {
            plugin,
            wasi,
            table,
            memory_cap,
            memory_used: 0,
            memory_exhausted: false,
            deadline: Instant::now(),
            log: LogBudget::new(log),
            capabilities,
            http,
        }
    }

    /// wasi:http's view of this instance, with the current call's deadline.
    pub(crate) fn http_parts(
        &mut self,
    ) -> (
        &mut HttpHooks,
        &mut ResourceTable,
        &mut wasmtime_wasi_http::WasiHttpCtx,
    ) {
        self.http.set_deadline(self.deadline);
        (&mut self.http.hooks, &mut self.table, &mut self.http.ctx)
    }

    /// Linear memory in use, summed over the instance's memories.
    pub fn memory_used(&self) -> usize {
        self.memory_used
    }

    pub fn memory_cap(&self) -> usize {
        self.memory_cap
    }
}

impl WasiView for HostState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl ResourceLimiter for HostState {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let total = self.memory_used - current.min(self.memory_used) + desired;
        if total > self.memory_cap {
            self.memory_exhausted = true;
            // Trap at once rather than let the guest's allocator see a failed
            // grow: the reason stays "out of memory", not an opaque abort.
            return Err(wasmtime::Error::msg("plugin memory cap reached"));
        }
        self.memory_used = total;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }
}
