//! The command tree and what every command runs inside: the async
//! runtime, logging on stderr, and an error turned into a message and an
//! exit code. What each command does lives in its own file under
//! `commands/`.

use crate::commands::{check, hash_password, init, plugin, run, status};
use anyhow::Result;
use clap::{Parser, Subcommand, ValueEnum};
use portcullis::config::Config;
use std::process::ExitCode;

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
    Run(run::Args),
    /// Validate the configuration, load and configure every plugin.
    Check(check::Args),
    /// Work with plugin components, offline or across the fleet.
    #[command(subcommand)]
    Plugin(plugin::Command),
    /// Print every host of the fleet (from `$SRV.STATS.portcullis`): version,
    /// plugins, requests answered and their rate.
    Status(status::Args),
    /// Write keys, a nats-server.conf and a starter portcullis.toml into DIR.
    Init(init::Args),
    /// Hash a password for static-users' `pass`: read from stdin (one line)
    /// or a prompt, never from the command line; prints the hash.
    HashPassword(hash_password::Args),
    /// Compile the component on stdin, write the artifact on stdout: the
    /// child process the other commands compile in.
    #[command(name = portcullis_runtime::compiler::WORKER_COMMAND, hide = true)]
    CompileWorker,
}

/// Run the command line; the process exit code.
pub fn main() -> ExitCode {
    // Before any thread starts: most commands compile components.
    portcullis_runtime::heap::keep_initial_thresholds();
    let cli = Cli::parse();
    if let Command::CompileWorker = cli.command {
        return portcullis_runtime::serve_compile_worker();
    }
    // This very executable, even after a newer one replaced its file: the
    // same wasmtime, so its artifacts load here.
    let program = if cfg!(target_os = "linux") {
        Ok(std::path::PathBuf::from("/proc/self/exe"))
    } else {
        std::env::current_exe()
    };
    if let Ok(program) = program {
        portcullis_runtime::compiler::compile_in_child_processes(program);
    }
    init_logging(cli.log_format);
    // `run` reads its thread count from the config; a config that does
    // not load is reported by the command itself.
    let workers = match &cli.command {
        Command::Run(args) => Config::load(&args.config)
            .ok()
            .and_then(|c| c.runtime.workers),
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
            eprintln!("error: {}", portcullis_protocol::errors::Chain(e.as_ref()));
            ExitCode::FAILURE
        }
    }
}

/// The registry client logs token responses (registry bearer tokens) at
/// debug level: it stays at info whatever `PORTCULLIS_LOG` asks, so no
/// credential reaches the log.
const QUIET_DEPENDENCIES: &str = "oci_client=info";

fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("PORTCULLIS_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"))
        .add_directive(QUIET_DEPENDENCIES.parse().expect("a valid directive"));
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(portcullis::logline::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

async fn dispatch(command: Command) -> Result<ExitCode> {
    match command {
        Command::Run(args) => run::run(args).await,
        Command::Check(args) => check::run(args).await,
        Command::Plugin(command) => plugin::run(command).await,
        Command::Status(args) => status::run(args).await,
        Command::Init(args) => init::run(args),
        Command::HashPassword(args) => hash_password::run(args),
        Command::CompileWorker => Ok(portcullis_runtime::serve_compile_worker()),
    }
}
