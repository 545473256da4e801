//! `portcullis check`: everything `run` would refuse at start-up, found
//! without serving: the configuration, the seeds, operator-mode signing
//! keys against their account JWTs, every `[databases]` statement
//! prepared on its database, and every plugin loaded and configured. Each item gets a line; any failure makes the exit code
//! non-zero.

use anyhow::Result;
use portcullis::config::Config;
use portcullis::registry::load_plugin;
use portcullis_runtime::Runtime;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

/// How long connecting to one database and preparing its statements may
/// take.
const DATABASE_CHECK_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(clap::Args, Debug)]
pub struct Args {
    #[arg(short, long, default_value = "portcullis.toml")]
    pub config: PathBuf,
}

pub async fn run(args: Args) -> Result<ExitCode> {
    let path = &args.config;
    let config = Config::load(path)?;
    println!("config {}: ok", path.display());
    let mut failed = false;
    let mut report = |what: String, result: Result<String, String>| match result {
        Ok(detail) => println!("  ok    {what}: {detail}"),
        Err(e) => {
            failed = true;
            // Plugin errors already start with "plugin NAME".
            if e.starts_with(&what) {
                println!("  FAIL  {e}");
            } else {
                println!("  FAIL  {what}: {e}");
            }
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
    if !config.databases.is_empty() {
        let databases = portcullis::databases::Databases::new(&config.databases)?;
        let problems = databases.check(DATABASE_CHECK_TIMEOUT).await;
        for (name, database) in &config.databases {
            let prefix = format!("[databases.{name}]");
            let prefix_queries = format!("[databases.{name}.");
            let mine: Vec<String> = problems
                .iter()
                .map(|e| e.to_string())
                .filter(|e| e.starts_with(&prefix) || e.starts_with(&prefix_queries))
                .collect();
            let result = if mine.is_empty() {
                Ok(format!(
                    "connected, {} statements prepared",
                    database.queries.len()
                ))
            } else {
                Err(mine.join("; "))
            };
            report(format!("database {name}"), result);
        }
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
        let mut unused = Vec::new();
        let mut inert = Vec::new();
        let result = load_plugin(&runtime, &sources, plugin).await.map(|loaded| {
            unused = unused_grants(plugin, loaded.plugin.imports());
            inert = inert_namespaces(loaded.plugin.imports());
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
        for key in unused {
            println!(
                "  warn  plugin {}: grants.{key} is set but the component never imports it \
                 (remove the grant, or check this is the right plugin)",
                plugin.name
            );
        }
        if !inert.is_empty() {
            println!(
                "  warn  plugin {}: the component imports {} (linked with nothing behind them: \
                 no directories, no sockets), so any file or socket access it attempts will fail",
                plugin.name,
                inert.join(" and ")
            );
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// The grant keys `plugin`'s entry sets that its component never imports.
fn unused_grants(
    plugin: &portcullis::config::PluginConfig,
    imports: &[String],
) -> Vec<&'static str> {
    let grants = &plugin.grants;
    let set: Vec<&'static str> = [
        ("http", !grants.http.is_empty()),
        ("kv", !grants.kv.is_empty()),
        ("sql", !grants.sql.is_empty()),
    ]
    .into_iter()
    .filter_map(|(key, set)| set.then_some(key))
    .collect();
    portcullis_runtime::capabilities::unused(&set, imports)
}

/// The WASI packages among `imports` that the host links inert
/// (`wasi:filesystem`, `wasi:sockets`), once each, in import order.
fn inert_namespaces(imports: &[String]) -> Vec<String> {
    let mut found: Vec<String> = Vec::new();
    for import in imports.iter().filter(|i| portcullis_runtime::inert(i)) {
        let package = import.split('/').next().unwrap_or(import);
        if !found.iter().any(|f| f == package) {
            found.push(package.to_owned());
        }
    }
    found
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
