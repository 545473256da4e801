//! `portcullis init`: the command line of `init`. The files it writes
//! (keys, nats-server.conf, portcullis.toml) come from `crate::init`, a
//! library module so that tests and benchmarks build deployments with the
//! very code this command runs.

use anyhow::Result;
use clap::ValueEnum;
use portcullis::config::Mode;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Args {
    pub dir: PathBuf,
    /// The static-users component the starter config loads.
    #[arg(long, default_value = "static_users.wasm")]
    pub plugin: PathBuf,
    /// Client port for the generated nats-server.conf.
    #[arg(long, default_value_t = 4222)]
    pub port: u16,
    /// Overwrite existing files.
    #[arg(long)]
    pub force: bool,
    /// `config`: an auth_callout block in nats-server.conf; `operator`:
    /// decentralized JWT accounts (operator, SYS, AUTH, APP1, APP2).
    #[arg(long, value_enum, default_value_t = InitMode::Config)]
    pub mode: InitMode,
    /// Do not encrypt requests with xkey.
    #[arg(long)]
    pub no_xkey: bool,
}

/// The `--mode` values: `Mode` lives in the library, which takes no clap
/// dependency.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum InitMode {
    Config,
    Operator,
}

pub fn run(args: Args) -> Result<ExitCode> {
    let Args {
        dir,
        plugin,
        port,
        force,
        mode,
        no_xkey,
    } = args;
    let mode = match mode {
        InitMode::Config => Mode::Config,
        InitMode::Operator => Mode::Operator,
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
        Mode::Config => "user/password".to_owned(),
        Mode::Operator => {
            format!("{}/sentinel.creds plus user/password", dir.display())
        }
    };
    println!(
        "\nnext:\n  nats-server -c {dir}/nats-server.conf\n  portcullis run -c {dir}/portcullis.toml\n  clients connect with {client}",
        dir = dir.display()
    );
    Ok(ExitCode::SUCCESS)
}
