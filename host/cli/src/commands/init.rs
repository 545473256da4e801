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
    /// How Portcullis logs in to NATS (config mode): `password` (the
    /// default) or `nkey`. With an NKey user in nats-server.conf the server
    /// sends every client a nonce, so NKey logins through the callout (the
    /// nkeys plugin) work. Operator mode always logs in with auth.creds, a
    /// JWT and its NKey, and its server always sends nonces.
    #[arg(long, value_enum)]
    pub auth: Option<InitAuth>,
    /// Operator mode: `memory` (accounts preloaded from nats-server.conf)
    /// or `full` (a resolver directory; push accounts later with
    /// sys.creds, as `nsc push` does).
    #[arg(long, value_enum, default_value_t = InitResolver::Memory)]
    pub resolver: InitResolver,
    /// Operator mode: AUTH's allowed_accounts is "*", so Portcullis may
    /// place users in accounts pushed later without re-signing AUTH (host
    /// policy and [accounts] still decide which it does).
    #[arg(long)]
    pub any_account: bool,
}

/// The `--auth` values.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum InitAuth {
    Password,
    Nkey,
}

/// The `--resolver` values.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum InitResolver {
    Memory,
    Full,
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
        auth,
        resolver,
        any_account,
    } = args;
    use crate::init::{NatsAuth, Resolver};
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
        auth: auth.map(|a| match a {
            InitAuth::Password => NatsAuth::Password,
            InitAuth::Nkey => NatsAuth::NKey,
        }),
        resolver: match resolver {
            InitResolver::Memory => Resolver::Memory,
            InitResolver::Full => Resolver::Full,
        },
        any_account,
    };
    for f in crate::init::init(&dir, &options)? {
        println!("wrote {}", f.display());
    }
    if mode == Mode::Operator && options.auth == Some(NatsAuth::NKey) {
        println!(
            "\nnote: --auth nkey changes nothing in operator mode: Portcullis logs in with \
             auth.creds (a user JWT and its NKey), and a server that trusts an operator \
             sends every client a nonce"
        );
    }
    let dir = dir.display();
    let client = match mode {
        Mode::Config => "user/password".to_owned(),
        Mode::Operator => format!(
            "{dir}/sentinel.creds plus user/password;\n  \
             {dir}/app1.creds and app2.creds log in with their own JWT, without Portcullis"
        ),
    };
    println!(
        "\nnext:\n  nats-server -c {dir}/nats-server.conf\n  portcullis run -c {dir}/portcullis.toml\n  clients connect with {client}"
    );
    if options.resolver == Resolver::Full {
        println!(
            "  push accounts with {dir}/sys.creds: nats --creds {dir}/sys.creds req '$SYS.REQ.CLAIMS.UPDATE' \"$(cat ACCOUNT.jwt)\""
        );
    }
    Ok(ExitCode::SUCCESS)
}
