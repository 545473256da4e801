//! `portcullis plugin test`: a component run offline, without NATS or a
//! host config: one request whose decision is printed as JSON, or a
//! directory of conformance vectors (docs/vectors.md) reported as a
//! pass/fail table, with a non-zero exit code on any failure.

use anyhow::{Context, Result, bail};
use portcullis::config::DEFAULT_MEMORY_MB;
use portcullis_runtime::{LogLimits, Plugin, PluginLimits, Runtime, RuntimeOptions};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

#[derive(clap::Args, Debug)]
pub struct Args {
    pub wasm: PathBuf,
    /// The request: the `nats` claims of an authorization request (or
    /// the whole claims object), as JSON. Missing fields are empty.
    #[arg(long, required_unless_present = "vectors", conflicts_with = "vectors")]
    pub request: Option<PathBuf>,
    /// A directory of conformance vectors (docs/vectors.md): run them
    /// all, print a pass/fail table, exit non-zero on any failure.
    #[arg(long)]
    pub vectors: Option<PathBuf>,
    /// The plugin's configuration (JSON). With --vectors: for vectors
    /// that carry none, instead of the directory's config.json.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Wall-clock deadline per call, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub timeout_ms: u64,
    /// Compile without the compile cache (~/.cache/portcullis).
    #[arg(long)]
    pub no_cache: bool,
}

pub async fn run(args: Args) -> Result<ExitCode> {
    match (&args.request, &args.vectors) {
        (_, Some(dir)) => run_vectors(&args, dir).await,
        (Some(request), None) => decide(&args, request).await,
        (None, None) => bail!("give --request REQUEST.json or --vectors DIR"),
    }
}

/// Load and configure the component for an offline test.
async fn load(args: &Args, config_json: String) -> Result<Plugin> {
    let memory = (DEFAULT_MEMORY_MB as usize) << 20;
    let runtime = Runtime::new(&RuntimeOptions {
        cache_dir: if args.no_cache {
            None
        } else {
            portcullis::config::default_cache_dir()
        },
        pool_instances: Some(4),
        max_memory_bytes: memory,
        cache_max_age: None,
    })?;
    let wasm = &args.wasm;
    let bytes = std::fs::read(wasm).with_context(|| format!("cannot read {}", wasm.display()))?;
    let pre = runtime
        .prepare(&bytes)
        .with_context(|| wasm.display().to_string())?;
    let timeout = Duration::from_millis(args.timeout_ms);
    let limits = PluginLimits {
        timeout,
        configure_timeout: timeout.max(Duration::from_secs(1)),
        memory_bytes: memory,
        max_concurrency: 1,
        queue_timeout: timeout,
        // What the plugin would be allowed under `portcullis run`.
        log: LogLimits::default(),
    };
    Ok(Plugin::new("test", pre, limits, config_json, None).await?)
}

fn read_config(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

async fn decide(args: &Args, request: &Path) -> Result<ExitCode> {
    let text = std::fs::read_to_string(request)
        .with_context(|| format!("cannot read {}", request.display()))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not JSON", request.display()))?;
    let nats = portcullis::vectors::parse_request(value)
        .with_context(|| format!("{} is not an authorization request", request.display()))?;
    let config_json = match &args.config {
        Some(p) => read_config(p)?,
        None => "{}".into(),
    };
    let plugin = load(args, config_json).await?;
    let decision = plugin
        .authenticate(&portcullis::request::auth_request(&nats))
        .await?;
    println!(
        "{}",
        serde_json::to_string_pretty(&portcullis::vectors::DecisionJson::from(&decision))?
    );
    Ok(ExitCode::SUCCESS)
}

async fn run_vectors(args: &Args, dir: &Path) -> Result<ExitCode> {
    // --config stands in for the directory's config.json; vectors with a
    // config of their own keep it.
    let config = args.config.as_deref().map(read_config).transpose()?;
    let vectors = portcullis::vectors::load_dir_with_config(dir, config.as_deref())?;
    let dir_config = match config {
        Some(text) => Some(text),
        None => std::fs::read_to_string(dir.join(portcullis::vectors::CONFIG_FILE)).ok(),
    };
    let plugin = load(args, dir_config.unwrap_or_else(|| "{}".into())).await?;
    let report = portcullis::vectors::run(&plugin, &vectors).await;
    println!("{report}");
    Ok(if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
