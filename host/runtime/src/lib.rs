//! The WebAssembly runtime: one wasmtime `Engine` for the process (epoch
//! interruption, pooling allocator), one `Linker` with the host imports and
//! a WASI that grants nothing, a compiled-component cache on disk, and a
//! pool of configured instances per plugin.
//!
//! Owns: how a plugin runs and what it may touch (deadlines, memory caps,
//! imports), the WIT bindings (WIT <-> Rust types only), `plugin inspect`
//! and the password checks the host offers plugins. Must never depend on
//! async-nats or on the protocol's claims: the runtime knows WIT requests,
//! not NATS ones, so it can run plugins for the conformance vectors and
//! benchmarks exactly as for logins. From the protocol crate it takes only
//! the shared utilities (digest, clock, atomic file write).

pub mod bindings;
mod cache;
pub mod capabilities;
pub mod compiler;
mod epoch;
pub mod heap;
pub mod inspect;
pub mod password;
mod plugin;
pub mod plugin_log;
mod state;
pub mod tls_roots;

pub use cache::CompileCache;
pub use capabilities::Capabilities;
pub use plugin::{CallError, Plugin, PluginLimits};
pub use plugin_log::{LogDropHook, LogDropped, LogLimits};
use portcullis_protocol::digest::sha256_hex;

use bindings::{v0_1, v0_2};
use epoch::EpochTicker;
use state::HostState;
use std::path::PathBuf;
use std::time::Duration;
use wasmtime::component::{Component, Linker};
use wasmtime::{Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig};

/// How often the epoch advances. A call that exceeds its deadline is
/// stopped at the next tick, so a busy loop overruns by at most this much.
pub const EPOCH_TICK: Duration = Duration::from_millis(5);

/// Instance slots the pooling allocator reserves when the caller does not
/// say. Each slot reserves address space, not memory.
const DEFAULT_POOL_INSTANCES: u32 = 256;

/// Core instances one component may contain (pooling allocator). Sized for
/// componentize-py's CPython, the largest runtime plugins are built with.
const MAX_CORE_INSTANCES_PER_COMPONENT: u32 = 64;
/// Tables one component may contain (pooling allocator).
const MAX_TABLES_PER_COMPONENT: u32 = 64;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("cannot create the WebAssembly engine: {0}")]
    Engine(String),
    #[error("{0}")]
    NotAComponent(String),
    #[error("plugin targets {found}, this host serves {PLUGIN_INTERFACE}@{versions}; rebuild it against a compatible portcullis-sdk", PLUGIN_INTERFACE = bindings::PLUGIN_INTERFACE, versions = bindings::WIT_VERSIONS.join(" and @"))]
    IncompatibleWit { found: String },
    #[error(
        "component does not export {}; is it a Portcullis plugin?",
        bindings::PLUGIN_INTERFACE
    )]
    NotAPlugin,
    #[error("cannot compile component: {0}")]
    Compile(String),
    #[error("component imports something this host does not provide: {0}")]
    Link(String),
    #[error("compile cache: {0}")]
    Cache(String),
    #[error(
        "component imports {0}, which Portcullis does not grant to plugins (only its host interface, the WASI a language runtime needs, and what a plugin entry's grants allow); `portcullis plugin inspect` lists what it imports"
    )]
    NotGranted(String),
}

/// Import namespaces every plugin may link against: the host interface and
/// the parts of WASI that language runtimes need to start (environment,
/// arguments and stdio, all empty here; clocks; randomness; streams), plus
/// the [`INERT_IMPORTS`]. Anything else (HTTP without a grant, an
/// interface this host does not know, ...) is refused at load.
const BASELINE_IMPORTS: [&str; 5] = [
    "portcullis:authenticator/",
    "wasi:cli/",
    "wasi:clocks/",
    "wasi:io/",
    "wasi:random/",
];

/// Baseline imports linked with nothing behind them: no preopened
/// directory, no socket or name lookup allowed (see `HostState::new`).
/// CPython (componentize-py without `--stub-wasi`, which a Python plugin
/// needs to use `wasi:http`) imports both for its `open` and `socket`
/// modules, so refusing them would refuse every such plugin; linked this
/// way, like `wasmtime serve` or Spin with deny-all policies, every call
/// fails with an error and nothing outside the sandbox is reachable.
const INERT_IMPORTS: [&str; 2] = ["wasi:filesystem/", "wasi:sockets/"];

/// Whether `import` is one of the [`INERT_IMPORTS`]: linked, but nothing
/// it could reach exists (`plugin inspect` and `check` say so).
pub fn inert(import: &str) -> bool {
    INERT_IMPORTS.iter().any(|p| import.starts_with(p))
}

/// The host interfaces of every WIT version served. One linker serves all
/// plugins: capabilities are linked here for everyone, and a plugin whose
/// grants lack one is refused before it instantiates ([`Plugin::granted`]),
/// while the host functions check the grant again on every call.
fn add_plugin_interfaces(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    use wasmtime::component::HasSelf;
    v0_1::Authenticator::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    // Version 0.2.0 shares 0.1.0's `types` records (bindgen `with`), so its
    // own add_to_linker would define the 0.1.0 `types` instance twice:
    // link its functions interface by interface instead.
    v0_2::portcullis::authenticator::host::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    v0_2::portcullis::authenticator::sql::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    // Only `store`: `atomics` and `batch` write, and are never linked.
    v0_2::wasi::keyvalue::store::add_to_linker::<_, HasSelf<_>>(linker, |s| s)?;
    // A type-only instance, still an import a component must find.
    linker.instance("portcullis:authenticator/types@0.2.0")?;
    Ok(())
}

/// Link the WASI interfaces of [`BASELINE_IMPORTS`] and [`INERT_IMPORTS`]
/// interface by interface, never through `add_to_linker_async`, so that
/// nothing a later wasmtime adds to WASI is linked unnoticed; `wasi:http`
/// is linked for the plugins whose grants allow it. A component importing
/// anything else is refused by name before it gets here
/// ([`ungranted_import`]), and would not link if it were not.
fn add_granted_wasi(linker: &mut Linker<HostState>) -> wasmtime::Result<()> {
    use wasmtime_wasi::WasiView;
    use wasmtime_wasi::cli::{WasiCli, WasiCliView};
    use wasmtime_wasi::clocks::{WasiClocks, WasiClocksView};
    use wasmtime_wasi::filesystem::{WasiFilesystem, WasiFilesystemView};
    use wasmtime_wasi::p2::bindings::{cli, clocks, filesystem, random, sockets};
    use wasmtime_wasi::random::{WasiRandom, WasiRandomView};
    use wasmtime_wasi::sockets::{WasiSockets, WasiSocketsView};
    use wasmtime_wasi_io::bindings::wasi::io;

    /// Streams and pollables live in the instance's resource table.
    struct Io;
    impl wasmtime::component::HasData for Io {
        type Data<'a> = &'a mut wasmtime::component::ResourceTable;
    }

    let l = linker;
    let clocks_of = <HostState as WasiClocksView>::clocks;
    let cli_of = <HostState as WasiCliView>::cli;
    let random_of = <HostState as WasiRandomView>::random;
    io::error::add_to_linker::<_, Io>(l, |s| s.ctx().table)?;
    io::poll::add_to_linker::<_, Io>(l, |s| s.ctx().table)?;
    io::streams::add_to_linker::<_, Io>(l, |s| s.ctx().table)?;
    clocks::wall_clock::add_to_linker::<_, WasiClocks>(l, clocks_of)?;
    clocks::monotonic_clock::add_to_linker::<_, WasiClocks>(l, clocks_of)?;
    random::random::add_to_linker::<_, WasiRandom>(l, random_of)?;
    random::insecure::add_to_linker::<_, WasiRandom>(l, random_of)?;
    random::insecure_seed::add_to_linker::<_, WasiRandom>(l, random_of)?;
    cli::exit::add_to_linker::<_, WasiCli>(l, cli_of)?;
    cli::environment::add_to_linker::<_, WasiCli>(l, cli_of)?;
    cli::stdin::add_to_linker::<_, WasiCli>(l, cli_of)?;
    cli::stdout::add_to_linker::<_, WasiCli>(l, cli_of)?;
    cli::stderr::add_to_linker::<_, WasiCli>(l, cli_of)?;
    cli::terminal_input::add_to_linker::<_, WasiCli>(l, cli_of)?;
    cli::terminal_output::add_to_linker::<_, WasiCli>(l, cli_of)?;
    cli::terminal_stdin::add_to_linker::<_, WasiCli>(l, cli_of)?;
    cli::terminal_stdout::add_to_linker::<_, WasiCli>(l, cli_of)?;
    cli::terminal_stderr::add_to_linker::<_, WasiCli>(l, cli_of)?;
    // The inert imports: HostState's WasiCtx preopens no directory and
    // allows no socket, so each of these answers with an error.
    let fs_of = <HostState as WasiFilesystemView>::filesystem;
    let sockets_of = <HostState as WasiSocketsView>::sockets;
    filesystem::types::add_to_linker::<_, WasiFilesystem>(l, fs_of)?;
    filesystem::preopens::add_to_linker::<_, WasiFilesystem>(l, fs_of)?;
    sockets::network::add_to_linker::<_, WasiSockets>(l, &Default::default(), sockets_of)?;
    sockets::instance_network::add_to_linker::<_, WasiSockets>(l, sockets_of)?;
    sockets::tcp::add_to_linker::<_, WasiSockets>(l, sockets_of)?;
    sockets::tcp_create_socket::add_to_linker::<_, WasiSockets>(l, sockets_of)?;
    sockets::udp::add_to_linker::<_, WasiSockets>(l, sockets_of)?;
    sockets::udp_create_socket::add_to_linker::<_, WasiSockets>(l, sockets_of)?;
    sockets::ip_name_lookup::add_to_linker::<_, WasiSockets>(l, sockets_of)?;
    // Linked for every plugin, reachable only by one whose entry grants
    // `http` (Plugin::granted refuses the others), and every request is
    // checked against that grant by our sender (capabilities::http).
    wasmtime_wasi_http::p2::add_only_http_to_linker_async(l)?;
    Ok(())
}

/// Whether a plugin may import `import` (an interface name): the baseline
/// always, a capability when a grant allows it (checked per plugin by
/// [`Plugin::granted`]).
pub fn granted(import: &str) -> bool {
    BASELINE_IMPORTS.iter().any(|p| import.starts_with(p))
        || inert(import)
        || Capabilities::grantable(import)
}

/// The first import of `imports` that no grant can allow, if any.
pub fn ungranted_import(imports: &[String]) -> Option<&String> {
    imports.iter().find(|import| !granted(import))
}

/// A compiled, linked component ready to instantiate, for the WIT version
/// it was built for. Cheap to clone.
#[derive(Clone)]
pub struct Prepared {
    pre: Pre,
    /// The engine's ticker: a call keeps it ticking while it runs.
    ticker: std::sync::Arc<EpochTicker>,
    /// The component's top-level imports, checked against each plugin
    /// entry's grants.
    imports: std::sync::Arc<[String]>,
}

#[derive(Clone)]
enum Pre {
    V0_1(v0_1::AuthenticatorPre<HostState>),
    V0_2(v0_2::WithGrantsPre<HostState>),
}

impl Prepared {
    fn engine(&self) -> &Engine {
        match &self.pre {
            Pre::V0_1(pre) => pre.engine(),
            Pre::V0_2(pre) => pre.engine(),
        }
    }

    /// Keep the epoch advancing (deadlines, yields) while the guard lives:
    /// hold it around every call into the component.
    fn ticking(&self) -> epoch::Ticking<'_> {
        self.ticker.ticking()
    }

    /// The WIT version the component was built for.
    pub fn wit_version(&self) -> &'static str {
        match self.pre {
            Pre::V0_1(_) => "0.1.0",
            Pre::V0_2(_) => "0.2.0",
        }
    }

    /// The component's top-level imports.
    pub fn imports(&self) -> &[String] {
        &self.imports
    }
}

/// Engine settings chosen from the host configuration.
#[derive(Debug, Clone, Default)]
pub struct RuntimeOptions {
    /// Where compiled components are cached; `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
    /// Instance slots for the pooling allocator; `None` = default.
    pub pool_instances: Option<u32>,
    /// Largest linear memory any plugin may use, in bytes.
    pub max_memory_bytes: usize,
    /// Compile-cache entries no host loaded for this long are removed by
    /// [`Runtime::prune_cache`]; `None` keeps them.
    pub cache_max_age: Option<std::time::Duration>,
}

/// The engine, linker and cache shared by every plugin of a host.
#[derive(Clone)]
pub struct Runtime {
    engine: Engine,
    /// Advances `engine`'s epoch while plugin calls run.
    ticker: std::sync::Arc<EpochTicker>,
    /// The settings `engine` was built with, for throwaway compile engines.
    config: std::sync::Arc<Config>,
    linker: std::sync::Arc<Linker<HostState>>,
    cache: Option<CompileCache>,
    cache_max_age: Option<std::time::Duration>,
    /// True when the pooling allocator could not reserve its slots and the
    /// engine allocates on demand instead.
    pub on_demand: bool,
    /// Told about plugin log lines dropped over budget (the server counts
    /// them); plugins get it through [`Runtime::log_drop_hook`].
    log_drops: Option<LogDropHook>,
    /// What runs granted SQL statements (the server's pools), when the
    /// host has databases.
    sql: Option<std::sync::Arc<dyn capabilities::sql::SqlBackend>>,
    /// What watches granted KV buckets (the server's JetStream watches),
    /// when the host has a NATS connection.
    kv: Option<std::sync::Arc<dyn capabilities::kv::KvBackend>>,
}

impl Runtime {
    pub fn new(options: &RuntimeOptions) -> Result<Runtime, RuntimeError> {
        let pooled = engine_config(Some(options));
        let (engine, config, on_demand) = match Engine::new(&pooled) {
            Ok(engine) => (engine, pooled, false),
            // The pool reserves address space up front; where that is
            // limited (ulimit -v, small containers) fall back to allocating
            // per instance, which is slower to instantiate but works anywhere.
            Err(e) => {
                tracing::warn!(error = %e, "pooling allocator unavailable, allocating instances on demand");
                let config = engine_config(None);
                let engine =
                    Engine::new(&config).map_err(|e| RuntimeError::Engine(e.to_string()))?;
                (engine, config, true)
            }
        };
        let ticker = EpochTicker::start(&engine, EPOCH_TICK, epoch::LINGER)
            .map_err(|e| RuntimeError::Engine(format!("cannot start the epoch thread: {e}")))?;
        let mut linker = Linker::new(&engine);
        add_granted_wasi(&mut linker).map_err(|e| RuntimeError::Engine(e.to_string()))?;
        add_plugin_interfaces(&mut linker).map_err(|e| RuntimeError::Engine(e.to_string()))?;
        let cache = match &options.cache_dir {
            Some(dir) => CompileCache::new(dir.clone(), &engine)?,
            None => None,
        };
        Ok(Runtime {
            engine,
            ticker,
            config: std::sync::Arc::new(config),
            linker: std::sync::Arc::new(linker),
            cache,
            cache_max_age: options.cache_max_age,
            on_demand,
            log_drops: None,
            sql: None,
            kv: None,
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Tell `hook` about every plugin call that dropped log lines, for the
    /// plugins loaded with this runtime's [`Runtime::log_drop_hook`].
    pub fn count_log_drops(&mut self, hook: LogDropHook) {
        self.log_drops = Some(hook);
    }

    /// Run the statements of plugins granted `sql` through `backend`.
    pub fn serve_sql(&mut self, backend: std::sync::Arc<dyn capabilities::sql::SqlBackend>) {
        self.sql = Some(backend);
    }

    /// Read granted KV buckets from the copies `backend` keeps.
    pub fn serve_kv(&mut self, backend: std::sync::Arc<dyn capabilities::kv::KvBackend>) {
        self.kv = Some(backend);
    }

    /// Open (start watching) the KV buckets a plugin entry is granted and
    /// wait until each copy is current: `None` when it is granted none. A
    /// host with no store ([`Runtime::serve_kv`] never called: `plugin
    /// test`) grants copies that refuse every read, with that reason.
    pub async fn open_kv(
        &self,
        buckets: &[String],
    ) -> Result<Option<capabilities::kv::KvGrant>, capabilities::kv::KvOpenError> {
        use capabilities::kv::{KvCache, KvGrant};
        if buckets.is_empty() {
            return Ok(None);
        }
        let mut caches = Vec::with_capacity(buckets.len());
        for bucket in buckets {
            caches.push(match &self.kv {
                Some(backend) => backend.open(bucket).await?,
                None => {
                    KvCache::refusing(bucket, "this host has no NATS connection to read KV from")
                }
            });
        }
        Ok(Some(KvGrant::new(caches)))
    }

    /// The `sql` part of a plugin entry's grants: the databases it may
    /// query, through [`Runtime::serve_sql`]'s backend (with none, every
    /// query answers `not-granted`). `None` when it names none.
    pub fn sql_grant(&self, databases: &[String]) -> Option<capabilities::sql::SqlGrant> {
        (!databases.is_empty()).then(|| capabilities::sql::SqlGrant {
            databases: databases.into(),
            backend: self
                .sql
                .clone()
                .unwrap_or_else(|| std::sync::Arc::new(capabilities::sql::NoDatabases)),
        })
    }

    /// What [`Runtime::count_log_drops`] set, for [`Plugin::new`].
    pub fn log_drop_hook(&self) -> Option<LogDropHook> {
        self.log_drops.clone()
    }

    /// How long an unused cache entry is kept; `None`: for ever.
    pub fn cache_max_age(&self) -> Option<std::time::Duration> {
        self.cache_max_age
    }

    /// Remove compile-cache entries unused for longer than the configured
    /// age, keeping (and marking used) those of the components `in_use`
    /// (SHA-256s), and log what went. Blocking (it lists and stats the
    /// directory); nothing depends on it succeeding.
    pub fn prune_cache(&self, in_use: &[String]) {
        let (Some(cache), Some(max_age)) = (&self.cache, self.cache_max_age) else {
            return;
        };
        portcullis_protocol::files::Pruned::log(
            cache.prune(max_age, in_use),
            "compile cache",
            max_age,
        );
    }

    /// Compile (or load from the cache) a component, check it is a plugin
    /// for a WIT version this host serves, and link it.
    pub fn prepare(&self, bytes: &[u8]) -> Result<Prepared, RuntimeError> {
        self.prepare_digested(bytes, &sha256_hex(bytes))
    }

    /// [`Runtime::prepare`] for bytes whose SHA-256 the caller has already
    /// computed or verified (every plugin source does): the digest names
    /// the compile-cache entry, and hashing a 12-18 MB JS or Python
    /// component again would be a good part of its load time.
    pub fn prepare_digested(&self, bytes: &[u8], sha256: &str) -> Result<Prepared, RuntimeError> {
        self.prepare_noting(bytes, sha256, |_| {})
    }

    /// [`Runtime::prepare_digested`] that calls `compiling` just before it
    /// compiles rather than loads from the compile cache, so a caller can
    /// tell a person why this load takes seconds (the argument says whether
    /// the artifact will be cached for the next load).
    pub fn prepare_noting(
        &self,
        bytes: &[u8],
        sha256: &str,
        compiling: impl FnOnce(Compiling),
    ) -> Result<Prepared, RuntimeError> {
        debug_assert_eq!(sha256, sha256_hex(bytes), "digest of other bytes");
        let info = inspect::inspect(bytes).map_err(RuntimeError::NotAComponent)?;
        let version = match &info.plugin_version {
            None => return Err(RuntimeError::NotAPlugin),
            Some(v) => inspect::served(v).ok_or_else(|| RuntimeError::IncompatibleWit {
                found: format!("{}@{v}", bindings::PLUGIN_INTERFACE),
            })?,
        };
        if let Some(import) = ungranted_import(&info.imports) {
            return Err(RuntimeError::NotGranted(import.clone()));
        }
        let component = match &self.cache {
            Some(cache) => cache.load_or_compile(&self.engine, sha256, || {
                compiling(Compiling::Cached);
                self.compile(bytes)
            })?,
            None => {
                compiling(Compiling::Uncached);
                let artifact = self.compile(bytes)?;
                // SAFETY: produced a moment ago by `compile` (in this
                // process, or by this executable as a child over a pipe),
                // for this engine's settings.
                unsafe { Component::deserialize(&self.engine, &artifact) }
                    .map_err(|e| RuntimeError::Compile(format!("{e:#}")))?
            }
        };
        let pre = self
            .linker
            .instantiate_pre(&component)
            .map_err(|e| RuntimeError::Link(format!("{e:#}")))?;
        let link = |e: wasmtime::Error| RuntimeError::Link(format!("{e:#}"));
        let pre = match version {
            "0.1.0" => Pre::V0_1(v0_1::AuthenticatorPre::new(pre).map_err(link)?),
            _ => Pre::V0_2(v0_2::WithGrantsPre::new(pre).map_err(link)?),
        };
        Ok(Prepared {
            pre,
            ticker: self.ticker.clone(),
            imports: info.imports.into(),
        })
    }
}

/// What [`Runtime::prepare_noting`] reports as it starts compiling.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compiling {
    /// First load: the artifact goes to the compile cache.
    Cached,
    /// No compile cache: every load compiles.
    Uncached,
}

impl Runtime {
    /// Compile a component to an artifact for `self.engine`, on a
    /// throwaway engine with the same settings: an engine keeps its
    /// compiler's working memory for as long as it lives, and the serving
    /// engine lives as long as the host (a cold compile left a host ~10 MiB
    /// larger, 28 MiB resident instead of 14). Identical settings make
    /// identical, compatible artifacts. Where a second engine cannot be
    /// made (address space for the pool), the serving engine compiles.
    ///
    /// In a process that turned on [`compiler::compile_in_child_processes`],
    /// a child process compiles instead (see [`compiler`]), with the
    /// settings of [`engine_config`] without the pool, which compiles
    /// identically; where the child cannot be started, this process does.
    fn compile(&self, bytes: &[u8]) -> Result<Vec<u8>, RuntimeError> {
        if let Some(program) = compiler::program() {
            match compiler::compile(program, bytes, compiler::COMPILE_TIMEOUT) {
                Err(e @ compiler::ChildError::Spawn { .. }) => {
                    tracing::warn!(error = %e, "compiling in the host process instead");
                }
                compiled => return Ok(compiled?),
            }
        }
        let compiled = match Engine::new(&self.config) {
            Ok(scratch) => scratch.precompile_component(bytes),
            Err(_) => self.engine.precompile_component(bytes),
        };
        heap::release_compiler_memory();
        compiled.map_err(|e| RuntimeError::Compile(format!("{e:#}")))
    }
}

/// What `portcullis compile-worker` runs: see [`compiler`].
pub fn serve_compile_worker() -> std::process::ExitCode {
    compiler::serve_worker(&engine_config(None))
}

fn engine_config(pooling: Option<&RuntimeOptions>) -> Config {
    let mut config = Config::new();
    config.epoch_interruption(true);
    // Guest stack overflow must trap long before the host fiber stack runs out.
    config.max_wasm_stack(512 * 1024);
    if let Some(options) = pooling {
        let slots = options.pool_instances.unwrap_or(DEFAULT_POOL_INSTANCES);
        let mut pool = PoolingAllocationConfig::default();
        // Per-component counts fit the language runtimes plugins are
        // written in: a Rust component has a handful of core instances,
        // componentize-py's CPython (libc, libpython and its extension
        // modules as separate instances) about 40.
        pool.total_component_instances(slots)
            .total_core_instances(slots * MAX_CORE_INSTANCES_PER_COMPONENT)
            .total_memories(slots * 2)
            .total_tables(slots * 8)
            .total_stacks(slots)
            .max_core_instances_per_component(MAX_CORE_INSTANCES_PER_COMPONENT)
            .max_memories_per_component(4)
            .max_tables_per_component(MAX_TABLES_PER_COMPONENT)
            .max_memory_size(options.max_memory_bytes.max(1 << 20));
        config.allocation_strategy(InstanceAllocationStrategy::Pooling(pool));
    }
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The compile worker builds its engine without the pool: its
    /// artifacts load into the pooled serving engine only while the two
    /// hash alike (the hash is also the compile cache's key).
    #[test]
    fn the_compile_workers_engine_settings_compile_for_the_serving_engine() {
        use std::hash::{Hash, Hasher};
        let options = RuntimeOptions {
            cache_dir: None,
            pool_instances: Some(4),
            max_memory_bytes: 32 << 20,
            cache_max_age: None,
        };
        let hash = |config: &Config| {
            let engine = Engine::new(config).expect("engine");
            let mut hasher = std::collections::hash_map::DefaultHasher::new();
            engine.precompile_compatibility_hash().hash(&mut hasher);
            hasher.finish()
        };
        assert_eq!(
            hash(&engine_config(Some(&options))),
            hash(&engine_config(None))
        );
    }

    #[test]
    fn the_filesystem_and_sockets_are_inert_and_anything_unknown_is_refused() {
        for import in [
            "wasi:filesystem/types@0.2.0",
            "wasi:filesystem/preopens@0.2.0",
            "wasi:sockets/tcp@0.2.0",
            "wasi:sockets/ip-name-lookup@0.2.0",
        ] {
            assert!(granted(import) && inert(import), "{import}");
        }
        assert!(!inert("wasi:cli/environment@0.2.0"));
        assert!(!inert("wasi:http/outgoing-handler@0.2.0"));
        let imports = vec![
            "wasi:filesystem/types@0.2.0".to_owned(),
            "wasi:nn/inference@0.2.0-rc".to_owned(),
            "example:unknown/thing".to_owned(),
        ];
        assert_eq!(
            ungranted_import(&imports).map(String::as_str),
            Some("wasi:nn/inference@0.2.0-rc")
        );
        // A prefix of an inert namespace that is not it is not inert.
        assert!(!granted("wasi:filesystemx/types@0.2.0"));
        assert!(!granted("wasi:socketsx/tcp@0.2.0"));
    }

    /// A component that exports a (function-less) 0.1.0 plugin interface
    /// and imports `import` as an empty instance.
    fn component_importing(import: &str) -> Vec<u8> {
        use wasm_encoder::{
            Component, ComponentExportKind, ComponentExportSection, ComponentImportSection,
            ComponentTypeRef, ComponentTypeSection, InstanceType,
        };
        let mut component = Component::new();
        let mut types = ComponentTypeSection::new();
        types.instance(&InstanceType::new());
        component.section(&types);
        let mut imports = ComponentImportSection::new();
        imports.import(import, ComponentTypeRef::Instance(0));
        component.section(&imports);
        let mut exports = ComponentExportSection::new();
        exports.export(
            "portcullis:authenticator/plugin@0.1.0",
            ComponentExportKind::Instance,
            0,
            None,
        );
        component.section(&exports);
        component.finish()
    }

    #[test]
    fn a_component_importing_an_unknown_interface_is_refused_at_load_by_name() {
        let runtime = Runtime::new(&RuntimeOptions {
            max_memory_bytes: 16 << 20,
            pool_instances: Some(4),
            ..RuntimeOptions::default()
        })
        .unwrap();
        let err = runtime
            .prepare(&component_importing("wasi:nn/inference@0.2.0-rc"))
            .err()
            .expect("an unknown import must not load");
        assert!(
            matches!(&err, RuntimeError::NotGranted(i) if i == "wasi:nn/inference@0.2.0-rc"),
            "{err}"
        );
        // The same component importing an inert interface passes that check
        // (and fails later only because its plugin export is empty).
        let err = runtime
            .prepare(&component_importing("wasi:filesystem/types@0.2.6"))
            .err()
            .expect("an empty plugin export cannot link");
        assert!(!matches!(err, RuntimeError::NotGranted(_)), "{err}");
    }
}
