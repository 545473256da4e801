//! `portcullis plugin test`: a component run offline, without NATS: one
//! request whose decision is printed as JSON, or a directory of
//! conformance vectors (docs/vectors.md) reported as a pass/fail table,
//! with a non-zero exit code on any failure.
//!
//! It decides as `portcullis run` would: the same deadline, memory and
//! log budget by default, and with `-c portcullis.toml` that plugin
//! entry's limits and the host policy on its grants (accounts, expiry,
//! subjects, ceiling). A vector that ran out of the deadline is tried
//! again with a longer one, to tell a slow plugin from a broken one.

use anyhow::{Context, Result, bail};
use portcullis::config::{Config, PluginConfig};
use portcullis::policy::PluginPolicy;
use portcullis::vectors::{Report, Vector};
use portcullis_runtime::bindings::Decision;
use portcullis_runtime::{Capabilities, Plugin, Runtime, RuntimeOptions};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// How much longer the retry of a timed-out vector may take.
const RETRY_FACTOR: u64 = 10;
/// The longest retry, whatever the production deadline.
const RETRY_MAX: Duration = Duration::from_secs(30);

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
    /// A portcullis.toml: take the plugin entry's limits and apply the
    /// host policy to its grants, as `portcullis run` does.
    #[arg(short = 'c', long = "host-config", value_name = "portcullis.toml")]
    pub host_config: Option<PathBuf>,
    /// The `[[plugins]]` entry of --host-config (needed when it has
    /// several).
    #[arg(long, requires = "host_config")]
    pub plugin: Option<String>,
    /// Wall-clock deadline per call, in milliseconds (default: the
    /// entry's `timeout_ms`, else `run`'s default).
    #[arg(long)]
    pub timeout_ms: Option<u64>,
    /// Compile without the compile cache (~/.cache/portcullis).
    #[arg(long)]
    pub no_cache: bool,
}

/// What the component runs under: a plugin entry's limits and, from a
/// portcullis.toml, its policy.
struct Setup {
    entry: PluginConfig,
    policy: Option<PluginPolicy>,
}

impl Setup {
    fn from_args(args: &Args) -> Result<Setup> {
        let mut setup = match &args.host_config {
            None => Setup {
                entry: PluginConfig::with_defaults("test"),
                policy: None,
            },
            Some(path) => {
                let config = Config::load(path)?;
                let entry = pick(config.plugins, args.plugin.as_deref(), path)?;
                let policy = Some(entry.policy());
                Setup { entry, policy }
            }
        };
        if let Some(ms) = args.timeout_ms {
            setup.entry.timeout_ms = ms;
        }
        Ok(setup)
    }

    /// The entry's own configuration, when the deployment gives one.
    fn entry_config(&self, args: &Args) -> Result<Option<String>> {
        if args.host_config.is_none() {
            return Ok(None);
        }
        Ok(Some(self.entry.config_json()?))
    }
}

/// The entry named `wanted`, or the only one.
fn pick(plugins: Vec<PluginConfig>, wanted: Option<&str>, path: &Path) -> Result<PluginConfig> {
    let names: Vec<String> = plugins.iter().map(|p| p.name.clone()).collect();
    let found = match wanted {
        Some(name) => plugins.into_iter().find(|p| p.name == name),
        None if plugins.len() == 1 => plugins.into_iter().next(),
        None => bail!(
            "{} has {} plugins ({}): choose one with --plugin NAME",
            path.display(),
            names.len(),
            names.join(", ")
        ),
    };
    found.with_context(|| {
        format!(
            "{} has no plugin {:?} (it has: {})",
            path.display(),
            wanted.unwrap_or_default(),
            names.join(", ")
        )
    })
}

pub async fn run(args: Args) -> Result<ExitCode> {
    let setup = Setup::from_args(&args)?;
    match (&args.request, &args.vectors) {
        (_, Some(dir)) => run_vectors(&args, &setup, dir).await,
        (Some(request), None) => decide(&args, &setup, request).await,
        (None, None) => bail!("give --request REQUEST.json or --vectors DIR"),
    }
}

/// Load and configure the component under `entry`'s limits.
/// `sql` names the databases the plugin may query: the entry's grant, or
/// for vectors that supply rows, the databases they name.
async fn load(
    args: &Args,
    entry: &PluginConfig,
    config_json: String,
    sql: &[String],
) -> Result<Plugin> {
    let limits = portcullis::registry::limits(entry);
    let runtime = Runtime::new(&RuntimeOptions {
        cache_dir: if args.no_cache {
            None
        } else {
            portcullis::config::default_cache_dir()
        },
        pool_instances: Some(4),
        max_memory_bytes: limits.memory_bytes,
        cache_max_age: None,
    })?;
    let wasm = &args.wasm;
    let bytes = std::fs::read(wasm).with_context(|| format!("cannot read {}", wasm.display()))?;
    let pre = runtime
        .prepare(&bytes)
        .with_context(|| wasm.display().to_string())?;
    let http = entry.grants.http_grant().map_err(anyhow::Error::msg)?;
    // No NATS here: granted buckets refuse every read, with that reason.
    let kv = runtime.open_kv(&entry.grants.kv).await?;
    let capabilities = Capabilities {
        sql: runtime.sql_grant(sql),
        http,
        kv,
    };
    Ok(Plugin::granted(&entry.name, pre, limits, config_json, None, capabilities).await?)
}

fn read_config(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

async fn decide(args: &Args, setup: &Setup, request: &Path) -> Result<ExitCode> {
    let text = std::fs::read_to_string(request)
        .with_context(|| format!("cannot read {}", request.display()))?;
    let value: serde_json::Value = serde_json::from_str(&text)
        .with_context(|| format!("{} is not JSON", request.display()))?;
    let nats = portcullis::vectors::parse_request(value)
        .with_context(|| format!("{} is not an authorization request", request.display()))?;
    let config_json = match &args.config {
        Some(p) => read_config(p)?,
        None => setup.entry_config(args)?.unwrap_or_else(|| "{}".into()),
    };
    let plugin = load(args, &setup.entry, config_json, &setup.entry.grants.sql).await?;
    let decision = plugin
        .authenticate(&portcullis::request::auth_request(&nats))
        .await?;
    println!(
        "{}",
        serde_json::to_string_pretty(&portcullis::vectors::DecisionJson::from(&decision))?
    );
    if let (Some(policy), Decision::Allow(grant)) = (&setup.policy, &decision) {
        let now = portcullis_protocol::time::unix_now();
        if let Err(violation) = portcullis::policy::check(grant, policy, &nats, now) {
            println!("{}", portcullis::policy::refused(violation));
            return Ok(ExitCode::FAILURE);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The databases the plugin under test may query: its entry's grant, else
/// the ones the vectors supply rows for (answered from the vectors).
fn sql_grant(setup: &Setup, vectors: &[Vector]) -> Vec<String> {
    if setup.entry.grants.sql.is_empty() {
        portcullis::vectors::sql_databases(vectors)
    } else {
        setup.entry.grants.sql.clone()
    }
}

async fn run_vectors(args: &Args, setup: &Setup, dir: &Path) -> Result<ExitCode> {
    // --config stands in for the directory's config.json; vectors with a
    // config of their own keep it. Without either, the deployment's.
    let config = args.config.as_deref().map(read_config).transpose()?;
    let vectors = portcullis::vectors::load_dir_with_config(dir, config.as_deref())?;
    let dir_config = match config {
        Some(text) => Some(text),
        None => std::fs::read_to_string(dir.join(portcullis::vectors::CONFIG_FILE)).ok(),
    };
    let config_json = match dir_config {
        Some(text) => text,
        None => setup.entry_config(args)?.unwrap_or_else(|| "{}".into()),
    };
    let plugin = load(
        args,
        &setup.entry,
        config_json.clone(),
        &sql_grant(setup, &vectors),
    )
    .await?;
    let policy = setup.policy.as_ref();
    let report = portcullis::vectors::run(&plugin, &vectors, policy).await;
    println!("{report}");
    if setup.policy.is_none() {
        println!(
            "(host policy not applied: pass -c portcullis.toml to check grants as `run` does)"
        );
    }
    for line in slow_vectors(args, setup, config_json, &vectors, &report).await? {
        println!("{line}");
    }
    Ok(if report.ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Vectors that ran out of the deadline, run again with a longer one: a
/// line for each that then passes, since it would time out in production.
async fn slow_vectors(
    args: &Args,
    setup: &Setup,
    config_json: String,
    vectors: &[Vector],
    report: &Report,
) -> Result<Vec<String>> {
    let timed_out: Vec<Vector> = report
        .results
        .iter()
        .zip(vectors)
        .filter(|(result, _)| result.timed_out)
        .map(|(_, vector)| vector.clone())
        .collect();
    if timed_out.is_empty() {
        return Ok(Vec::new());
    }
    let production = Duration::from_millis(setup.entry.timeout_ms);
    let longer = (production * RETRY_FACTOR as u32).min(RETRY_MAX);
    let mut entry = setup.entry.clone();
    entry.timeout_ms = longer.as_millis() as u64;
    let plugin = load(args, &entry, config_json, &sql_grant(setup, vectors)).await?;
    let retry = portcullis::vectors::run(&plugin, &timed_out, setup.policy.as_ref()).await;
    Ok(retry
        .results
        .iter()
        .filter(|r| r.outcome == portcullis::vectors::Outcome::Pass)
        .map(|r| {
            format!(
                "{}: passes only with a longer deadline: took {:.0?}, but timeout_ms is {} ms; \
                 it would time out under `portcullis run`",
                r.id,
                r.elapsed,
                production.as_millis()
            )
        })
        .collect())
}
