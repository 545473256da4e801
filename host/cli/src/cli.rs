//! The `portcullis` command line. Binary-edge code: errors are reported
//! with `anyhow` context, and each command maps to an exit code.

mod fleet;
mod oci;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand, ValueEnum};
use portcullis::config::{Config, DEFAULT_MEMORY_MB};
use portcullis::registry::load_plugin;
use portcullis_runtime::{Plugin, PluginLimits, Runtime, RuntimeOptions, inspect};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser, Debug)]
#[command(
    name = "portcullis",
    version,
    about = "NATS auth callout decided by sandboxed WebAssembly plugins"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Human)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Human,
    Json,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Serve authorization requests until SIGINT/SIGTERM, then drain.
    Run {
        #[arg(short, long, default_value = "portcullis.toml")]
        config: PathBuf,
        /// Connect to this NATS URL instead of `[nats] servers`.
        #[arg(long)]
        nats_url: Option<String>,
    },
    /// Validate the configuration, load and configure every plugin.
    Check {
        #[arg(short, long, default_value = "portcullis.toml")]
        config: PathBuf,
    },
    /// Work with plugin components, offline or across the fleet.
    #[command(subcommand)]
    Plugin(PluginCommand),
    /// Print every host of the fleet (from `$SRV.STATS.portcullis`): version,
    /// plugins, requests answered and their rate.
    Status {
        #[command(flatten)]
        target: fleet::Target,
        /// Time between the two samples the rate is computed from.
        #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
        interval: Duration,
    },
    /// Write keys, a nats-server.conf and a starter portcullis.toml into DIR.
    Init {
        dir: PathBuf,
        /// The static-users component the starter config loads.
        #[arg(long, default_value = "static_users.wasm")]
        plugin: PathBuf,
        /// Client port for the generated nats-server.conf.
        #[arg(long, default_value_t = 4222)]
        port: u16,
        /// Overwrite existing files.
        #[arg(long)]
        force: bool,
        /// `config`: an auth_callout block in nats-server.conf; `operator`:
        /// decentralized JWT accounts (operator, SYS, AUTH, APP1, APP2).
        #[arg(long, value_enum, default_value_t = InitMode::Config)]
        mode: InitMode,
        /// Do not encrypt requests with xkey.
        #[arg(long)]
        no_xkey: bool,
    },
    /// Hash a password for static-users' `pass`: read from stdin (one line)
    /// or a prompt, never from the command line; prints the hash.
    HashPassword {
        #[arg(long, value_enum, default_value_t = HashAlgorithm::Argon2id)]
        algorithm: HashAlgorithm,
        /// bcrypt cost (4-31).
        #[arg(long, default_value_t = crate::hash_password::DEFAULT_BCRYPT_COST)]
        cost: u32,
        /// argon2id memory in KiB.
        #[arg(long, default_value_t = crate::hash_password::DEFAULT_ARGON2_MEMORY_KIB)]
        memory_kib: u32,
        /// argon2id passes over memory.
        #[arg(long, default_value_t = crate::hash_password::DEFAULT_ARGON2_ITERATIONS)]
        iterations: u32,
        /// argon2id lanes.
        #[arg(long, default_value_t = crate::hash_password::DEFAULT_ARGON2_PARALLELISM)]
        parallelism: u32,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum HashAlgorithm {
    Argon2id,
    Bcrypt,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum InitMode {
    Config,
    Operator,
}

#[derive(Subcommand, Debug)]
pub enum PluginCommand {
    /// Run one decision and print it as JSON, or run a directory of
    /// conformance vectors and print a pass/fail table.
    Test {
        wasm: PathBuf,
        /// The request: the `nats` claims of an authorization request (or
        /// the whole claims object), as JSON. Missing fields are empty.
        #[arg(long, required_unless_present = "vectors", conflicts_with = "vectors")]
        request: Option<PathBuf>,
        /// A directory of conformance vectors (docs/vectors.md): run them
        /// all, print a pass/fail table, exit non-zero on any failure.
        #[arg(long)]
        vectors: Option<PathBuf>,
        /// The plugin's configuration (JSON). With --vectors: for vectors
        /// that carry none, instead of the directory's config.json.
        #[arg(long)]
        config: Option<PathBuf>,
        /// CPU deadline per call, in milliseconds.
        #[arg(long, default_value_t = 1000)]
        timeout_ms: u64,
        /// Compile without the compile cache (~/.cache/portcullis).
        #[arg(long)]
        no_cache: bool,
    },
    /// Print the digest, size, signers, world, WIT version, imports and
    /// exports of a component: a local file or `oci://REGISTRY/REPO:TAG`
    /// (pulled and digest-checked, never run).
    Inspect {
        wasm: String,
        #[command(flatten)]
        insecure: oci::Insecure,
    },
    /// Sign the artifact `oci://REGISTRY/REPO:TAG` resolves to (pushed by
    /// another tool such as `wkg oci push`, or signed by a second key).
    Sign {
        reference: String,
        /// User NKey seed (SU...): a file or env:NAME.
        #[arg(long)]
        signer: String,
        #[command(flatten)]
        insecure: oci::Insecure,
    },
    /// Pull `oci://REGISTRY/REPO:TAG` (or `@sha256:...`) into a file,
    /// checking every digest and the signature, without running it.
    Pull {
        reference: String,
        #[arg(short, long)]
        output: PathBuf,
        #[command(flatten)]
        trust: oci::Trust,
        #[command(flatten)]
        insecure: oci::Insecure,
    },
    /// Sign a component and publish it. NAME is either a plugin name, made
    /// the current release in a JetStream object store bucket (every host
    /// whose config says `wasm = "nats-object://BUCKET/NAME"` swaps to
    /// it), or `oci://REGISTRY/REPO:TAG`, pushed as a Wasm OCI artifact
    /// with the signature stored beside it.
    Push {
        name: String,
        wasm: PathBuf,
        /// Plugin configuration (JSON) to ship with this release; it
        /// replaces the hosts' `config` / `config_file` for this plugin.
        #[arg(long)]
        config_file: Option<PathBuf>,
        /// User NKey seed (SU...) that signs the release: a file or env:NAME.
        /// Hosts accept it only if its public key is in `[trust] trusted_signers`.
        #[arg(long, required_unless_present = "unsigned")]
        signer: Option<String>,
        /// oci:// only: push without a signature.
        #[arg(long, conflicts_with = "signer")]
        unsigned: bool,
        #[command(flatten)]
        insecure: oci::Insecure,
        #[arg(long, default_value = portcullis_sources::fleet::DEFAULT_BUCKET)]
        bucket: String,
        #[command(flatten)]
        target: fleet::Target,
    },
    /// Make the previous release of NAME current again, across the fleet.
    Rollback {
        name: String,
        #[arg(long, default_value = portcullis_sources::fleet::DEFAULT_BUCKET)]
        bucket: String,
        #[command(flatten)]
        target: fleet::Target,
    },
    /// Show, per host, the plugins it runs: name, digest, signer, load time.
    List {
        #[command(flatten)]
        target: fleet::Target,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Create a plugin project NAME that builds into a component and
    /// passes a starter set of conformance vectors.
    New {
        name: String,
        #[arg(long, value_enum, default_value_t = crate::scaffold::Lang::Rust)]
        lang: crate::scaffold::Lang,
        /// Directory to create the project in.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// Rust: path of the portcullis-sdk crate (default: the one this
        /// binary was built from, when it still exists).
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
}

/// Run the command line; the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format);
    // `run` reads its thread count from the config; a config that does
    // not load is reported by the command itself.
    let workers = match &cli.command {
        Command::Run { config, .. } => Config::load(config).ok().and_then(|c| c.runtime.workers),
        _ => None,
    };
    let mut builder = match workers {
        Some(1) => tokio::runtime::Builder::new_current_thread(),
        Some(n) => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(n);
            builder
        }
        None => tokio::runtime::Builder::new_multi_thread(),
    };
    if let Some(n) = workers {
        tracing::info!(
            workers = n,
            "async runtime threads set by [runtime] workers"
        );
    }
    let runtime = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Spawned rather than run by `block_on`: `block_on` polls on this
    // thread, outside the pool, so every request would hop from the
    // connection task on a worker to the serve loop here and back to a
    // worker, each hop a futex wake-up. On a worker, a woken task runs next
    // on the same thread (its LIFO slot): 15% less CPU per login.
    let command = cli.command;
    let joined = runtime.block_on(async { tokio::spawn(dispatch(command)).await });
    match joined.unwrap_or_else(|e| Err(anyhow::anyhow!("the command's task failed: {e}"))) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PORTCULLIS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn dispatch(command: Command) -> Result<ExitCode> {
    match command {
        Command::Run { config, nats_url } => run(&config, nats_url).await,
        Command::Check { config } => check(&config).await,
        Command::Plugin(PluginCommand::Test {
            wasm,
            request,
            vectors,
            config,
            timeout_ms,
            no_cache,
        }) => {
            let options = TestOptions {
                wasm: &wasm,
                config: config.as_deref(),
                timeout_ms,
                no_cache,
            };
            match (request, vectors) {
                (_, Some(dir)) => plugin_test_vectors(&options, &dir).await,
                (Some(request), None) => plugin_test(&options, &request).await,
                (None, None) => bail!("give --request REQUEST.json or --vectors DIR"),
            }
        }
        Command::Plugin(PluginCommand::Inspect { wasm, insecure }) => {
            plugin_inspect(&wasm, insecure.insecure).await
        }
        Command::Plugin(PluginCommand::Sign {
            reference,
            signer,
            insecure,
        }) => oci::sign(&reference, &signer, insecure.insecure).await,
        Command::Plugin(PluginCommand::Pull {
            reference,
            output,
            trust,
            insecure,
        }) => oci::pull(&reference, &output, &trust, insecure.insecure).await,
        Command::Plugin(PluginCommand::Push {
            name,
            wasm,
            config_file,
            signer,
            insecure,
            ..
        }) if name.starts_with(portcullis_sources::oci::OCI_SCHEME) => {
            if config_file.is_some() {
                bail!(
                    "--config-file applies to bucket releases; a registry plugin's configuration stays in portcullis.toml"
                );
            }
            oci::push(&name, &wasm, signer.as_deref(), insecure.insecure).await
        }
        Command::Plugin(PluginCommand::Push {
            name,
            wasm,
            config_file,
            signer,
            bucket,
            target,
            ..
        }) => {
            let Some(signer) = signer else {
                bail!("a bucket release must be signed: give --signer");
            };
            fleet::push(fleet::Push {
                target: &target,
                bucket: &bucket,
                name: &name,
                wasm: &wasm,
                config_file: config_file.as_deref(),
                signer: &signer,
            })
            .await
        }
        Command::Plugin(PluginCommand::Rollback {
            name,
            bucket,
            target,
        }) => fleet::rollback(&target, &bucket, &name).await,
        Command::Plugin(PluginCommand::List { target, json }) => fleet::list(&target, json).await,
        Command::Status { target, interval } => fleet::status(&target, interval).await,
        Command::Plugin(PluginCommand::New {
            name,
            lang,
            dir,
            sdk,
        }) => plugin_new(&name, lang, &dir, sdk),
        Command::HashPassword {
            algorithm,
            cost,
            memory_kib,
            iterations,
            parallelism,
        } => {
            use crate::hash_password::{self, Algorithm, HashOptions};
            let options = HashOptions {
                algorithm: match algorithm {
                    HashAlgorithm::Argon2id => Algorithm::Argon2id,
                    HashAlgorithm::Bcrypt => Algorithm::Bcrypt,
                },
                bcrypt_cost: cost,
                argon2_memory_kib: memory_kib,
                argon2_iterations: iterations,
                argon2_parallelism: parallelism,
            };
            let password = hash_password::read_password()?;
            println!("{}", hash_password::hash(&password, &options)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Init {
            dir,
            plugin,
            port,
            force,
            mode,
            no_xkey,
        } => {
            let mode = match mode {
                InitMode::Config => portcullis::config::Mode::Config,
                InitMode::Operator => portcullis::config::Mode::Operator,
            };
            let options = crate::init::InitOptions {
                plugin,
                port,
                force,
                mode,
                xkey: !no_xkey,
            };
            for f in crate::init::init(&dir, &options)? {
                println!("wrote {}", f.display());
            }
            let client = match mode {
                portcullis::config::Mode::Config => "user/password".to_owned(),
                portcullis::config::Mode::Operator => {
                    format!("{}/sentinel.creds plus user/password", dir.display())
                }
            };
            println!(
                "\nnext:\n  nats-server -c {dir}/nats-server.conf\n  portcullis run -c {dir}/portcullis.toml\n  clients connect with {client}",
                dir = dir.display()
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn run(path: &Path, nats_url: Option<String>) -> Result<ExitCode> {
    let mut config = Config::load(path)?;
    if let Some(url) = nats_url {
        config.nats.servers = vec![url];
    }
    let (reload_tx, reload_rx) = tokio::sync::mpsc::channel(1);
    forward_sighup(reload_tx);
    let hooks = portcullis::host::Hooks {
        reload: Some(reload_rx),
        ..Default::default()
    };
    portcullis::host::run(&config, shutdown_signal(), hooks).await?;
    Ok(ExitCode::SUCCESS)
}

/// Each SIGHUP becomes a reload request (several pending ones fold into one).
fn forward_sighup(reload: tokio::sync::mpsc::Sender<()>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::hangup()) {
            Ok(mut hup) => {
                tokio::spawn(async move {
                    while hup.recv().await.is_some() {
                        tracing::info!("SIGHUP: reloading the configuration");
                        let _ = reload.try_send(());
                    }
                });
            }
            Err(e) => tracing::warn!(error = %e, "cannot watch SIGHUP; reload by restarting"),
        }
    }
    #[cfg(not(unix))]
    let _ = reload;
}

/// Resolves on the first SIGINT or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {},
                    _ = term.recv() => {},
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch SIGTERM; only SIGINT stops the host");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
    tracing::info!("shutdown requested");
}

async fn check(path: &Path) -> Result<ExitCode> {
    let config = Config::load(path)?;
    println!("config {}: ok", path.display());
    let mut failed = false;
    let mut report = |what: String, result: Result<String, String>| match result {
        Ok(detail) => println!("  ok    {what}: {detail}"),
        Err(e) => {
            failed = true;
            println!("  FAIL  {what}: {e}");
        }
    };
    report(
        "issuer seed".into(),
        portcullis_protocol::keys::account_key(config.issuer_seed())
            .map(|kp| kp.public_key())
            .map_err(|e| e.to_string()),
    );
    if let Some(source) = config.xkey_seed() {
        report(
            "xkey seed".into(),
            portcullis_protocol::keys::xkey(source)
                .map(|x| x.public_key())
                .map_err(|e| e.to_string()),
        );
    }
    for (name, account) in &config.accounts {
        report(format!("account {name}"), check_account(&config, account));
    }
    let runtime = Runtime::new(&portcullis::host::runtime_options(&config))?;
    let in_buckets = config
        .plugins
        .iter()
        .any(|p| matches!(p.source, portcullis_sources::PluginSource::Object { .. }));
    let mut sources = portcullis::host::sources(&config);
    if in_buckets {
        sources = sources.with_nats(portcullis::service::connect(&config).await?);
    }
    for plugin in &config.plugins {
        let started = std::time::Instant::now();
        let result = load_plugin(&runtime, &sources, plugin).await.map(|loaded| {
            format!(
                "{} (sha256 {}{}), loaded and configured in {:?}",
                plugin.source,
                &loaded.digest[..16],
                loaded
                    .signer
                    .map(|s| format!(", signed by {s}"))
                    .unwrap_or_default(),
                started.elapsed()
            )
        });
        report(
            format!("plugin {}", plugin.name),
            result.map_err(|e| e.to_string()),
        );
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Operator mode: the signing seed loads, and when the account JWT is
/// configured, the key really is a signing key of that account.
fn check_account(
    config: &Config,
    account: &portcullis::config::AccountConfig,
) -> Result<String, String> {
    let signing = portcullis_protocol::keys::account_key(config.signing_seed(account))
        .map_err(|e| e.to_string())?
        .public_key();
    let Some(path) = &account.jwt else {
        return Ok(format!(
            "signing key {signing} (no account JWT configured to check it against)"
        ));
    };
    let token = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let claims = portcullis_protocol::accounts::decode_account(token.trim())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    portcullis_protocol::accounts::check_signing_key(
        &claims,
        &account.public_key,
        &signing,
        account.scoped,
    )
    .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(format!(
        "signing key {signing} belongs to {}",
        account.public_key
    ))
}

/// What `plugin test` loads, in either mode.
struct TestOptions<'a> {
    wasm: &'a Path,
    config: Option<&'a Path>,
    timeout_ms: u64,
    no_cache: bool,
}

/// Load and configure the component for an offline test.
async fn load_for_test(options: &TestOptions<'_>, config_json: String) -> Result<Plugin> {
    let memory = (DEFAULT_MEMORY_MB as usize) << 20;
    let runtime = Runtime::new(&RuntimeOptions {
        cache_dir: if options.no_cache {
            None
        } else {
            portcullis::config::default_cache_dir()
        },
        pool_instances: Some(4),
        max_memory_bytes: memory,
        cache_max_age: None,
    })?;
    let wasm = options.wasm;
    let bytes = std::fs::read(wasm).with_context(|| format!("cannot read {}", wasm.display()))?;
    let pre = runtime
        .prepare(&bytes)
        .with_context(|| wasm.display().to_string())?;
    let timeout = Duration::from_millis(options.timeout_ms);
    let limits = PluginLimits {
        timeout,
        configure_timeout: timeout.max(Duration::from_secs(1)),
        memory_bytes: memory,
        max_concurrency: 1,
        queue_timeout: timeout,
    };
    Ok(Plugin::new("test", pre, limits, config_json).await?)
}

fn read_config(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

async fn plugin_test(options: &TestOptions<'_>, request: &Path) -> Result<ExitCode> {
    let text = std::fs::read_to_string(request)
        .with_context(|| format!("cannot read {}", request.display()))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not JSON", request.display()))?;
    let nats = portcullis::vectors::parse_request(value)
        .with_context(|| format!("{} is not an authorization request", request.display()))?;
    let config_json = match options.config {
        Some(p) => read_config(p)?,
        None => "{}".into(),
    };
    let plugin = load_for_test(options, config_json).await?;
    let decision = plugin
        .authenticate(&portcullis::request::auth_request(&nats))
        .await?;
    println!(
        "{}",
        serde_json::to_string_pretty(&portcullis::vectors::DecisionJson::from(&decision))?
    );
    Ok(ExitCode::SUCCESS)
}

async fn plugin_test_vectors(options: &TestOptions<'_>, dir: &Path) -> Result<ExitCode> {
    // --config stands in for the directory's config.json; vectors with a
    // config of their own keep it.
    let config = options.config.map(read_config).transpose()?;
    let vectors = portcullis::vectors::load_dir_with_config(dir, config.as_deref())?;
    let dir_config = match config {
        Some(text) => Some(text),
        None => std::fs::read_to_string(dir.join(portcullis::vectors::CONFIG_FILE)).ok(),
    };
    let plugin = load_for_test(options, dir_config.unwrap_or_else(|| "{}".into())).await?;
    let report = portcullis::vectors::run(&plugin, &vectors).await;
    println!("{report}");
    Ok(if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn plugin_new(
    name: &str,
    lang: crate::scaffold::Lang,
    dir: &Path,
    sdk: Option<PathBuf>,
) -> Result<ExitCode> {
    let project = crate::scaffold::create(name, lang, dir, sdk.as_deref())?;
    for f in &project.files {
        println!("wrote {}", f.display());
    }
    println!("\nnext:\n{}", project.next_steps);
    Ok(ExitCode::SUCCESS)
}

async fn plugin_inspect(wasm: &str, insecure: bool) -> Result<ExitCode> {
    let bytes = if wasm.starts_with(portcullis_sources::oci::OCI_SCHEME) {
        oci::fetch_for_inspect(wasm, insecure).await?
    } else {
        let bytes = std::fs::read(wasm).with_context(|| format!("cannot read {wasm}"))?;
        println!("component  {wasm}");
        println!("signers    none (a local file)");
        bytes
    };
    let info = inspect::inspect(&bytes).map_err(anyhow::Error::msg)?;
    let digest = portcullis_protocol::digest::sha256_hex(&bytes);
    println!("sha256     {digest}");
    println!("size       {} bytes", info.size);
    match &info.plugin_version {
        Some(v) => {
            let ok = inspect::compatible(v, portcullis_runtime::bindings::WIT_VERSION);
            println!(
                "world      portcullis:authenticator/authenticator@{v} ({})",
                if ok {
                    "compatible with this host"
                } else {
                    "NOT compatible with this host"
                }
            );
        }
        None => println!(
            "world      not a Portcullis plugin (no {} export)",
            portcullis_runtime::bindings::PLUGIN_INTERFACE
        ),
    }
    println!("exports:");
    for e in &info.exports {
        println!("  {e}");
    }
    // What the component asks for: an operator would have to grant
    // anything outside the baseline, and this host grants nothing more.
    println!("imports:");
    for i in &info.imports {
        if portcullis_runtime::granted(i) {
            println!("  {i}");
        } else {
            println!("  {i}   NOT GRANTED: this host refuses to load the component");
        }
    }
    if info.plugin_version.is_none() {
        bail!("{wasm} is not a Portcullis plugin");
    }
    Ok(ExitCode::SUCCESS)
}
