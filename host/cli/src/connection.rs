//! Where a command connects to NATS, decided as the nats CLI decides it,
//! so an operator's laptop set up for `nats` works for `portcullis` too:
//! `-s/--server`, `--creds`, `--user/--password` and `--context NAME` on
//! the command line; `NATS_URL`, `NATS_CREDS`, `NATS_USER`,
//! `NATS_PASSWORD`, `NATS_NKEY` and `NATS_CONTEXT` in the environment;
//! nats CLI contexts (`$XDG_CONFIG_HOME/nats/context/NAME.json`, the
//! selected one named in `nats/context.txt`); and a portcullis.toml's
//! `[nats]`.
//!
//! Precedence, field by field (servers, authentication, TLS): flags, then
//! the environment, then a context named by `--context` or `NATS_CONTEXT`,
//! then portcullis.toml. The context `nats context select` chose is ambient
//! state, not a choice made for this command: it is used only where no
//! portcullis.toml is, and never by `run`. With none of these, the client
//! commands connect to `nats://127.0.0.1:4222` as `nats` does.
//!
//! Authentication is one field: the first source that names any method
//! (user and password, token, creds, nkey) decides it, so a flag's
//! `--creds` never combines with a config file's password.
//!
//! Resolution takes the environment and the nats config directory as
//! values ([`Env`], [`nats_dir`]), so tests never touch the process
//! environment. No password or token reaches an error, a log line or a
//! `Debug` output: they are [`Secret`]s.

use portcullis::config::{NatsConfig, NatsTls};
use portcullis_protocol::keys::{self, SeedSource};
use serde::Deserialize;
use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

/// Where `nats` connects when nothing says otherwise.
pub const DEFAULT_URL: &str = "nats://127.0.0.1:4222";

/// How long a client command waits for its connection: it is answering a
/// person, so a server that is down is reported, not waited for.
pub const CONNECT_WAIT: Duration = Duration::from_secs(5);

/// A context file is a few hundred bytes; anything far larger is not one.
const MAX_CONTEXT_BYTES: u64 = 64 * 1024;

/// A password or token: shown nowhere.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Secret, Self::Err> {
        Ok(Secret(s.to_owned()))
    }
}

/// The connection flags every command that talks to NATS takes.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct NatsFlags {
    /// NATS server URL(s), comma-separated [env: NATS_URL].
    #[arg(short = 's', long = "server", alias = "nats-url", value_name = "URL")]
    pub server: Option<String>,
    /// Credentials file (user JWT and seed) [env: NATS_CREDS].
    #[arg(long, value_name = "FILE", conflicts_with_all = ["user", "password"])]
    pub creds: Option<PathBuf>,
    /// User name; the password comes from --password or NATS_PASSWORD
    /// [env: NATS_USER].
    #[arg(long)]
    pub user: Option<String>,
    /// Password for --user (visible to other local users in the process
    /// list: prefer NATS_PASSWORD) [env: NATS_PASSWORD].
    #[arg(long, requires = "user")]
    pub password: Option<Secret>,
    /// A nats CLI context (`nats context add`): its server, credentials
    /// and TLS files [env: NATS_CONTEXT].
    #[arg(long, value_name = "NAME")]
    pub context: Option<String>,
}

/// The environment variables the nats CLI reads, captured once.
#[derive(Debug, Clone, Default)]
pub struct Env {
    pub url: Option<String>,
    pub creds: Option<PathBuf>,
    pub user: Option<String>,
    pub password: Option<Secret>,
    pub nkey: Option<PathBuf>,
    pub context: Option<String>,
    /// `XDG_CONFIG_HOME` and `HOME`, for [`nats_dir`].
    pub xdg_config_home: Option<OsString>,
    pub home: Option<OsString>,
}

impl Env {
    /// This process's environment (empty values count as unset, as in
    /// the nats CLI).
    pub fn from_process() -> Env {
        let text = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let os = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty());
        Env {
            url: text("NATS_URL"),
            creds: os("NATS_CREDS").map(PathBuf::from),
            user: text("NATS_USER"),
            password: text("NATS_PASSWORD").map(Secret),
            nkey: os("NATS_NKEY").map(PathBuf::from),
            context: text("NATS_CONTEXT"),
            xdg_config_home: os("XDG_CONFIG_HOME"),
            home: os("HOME"),
        }
    }
}

/// The nats CLI's configuration directory: `$XDG_CONFIG_HOME/nats`
/// (an absolute `XDG_CONFIG_HOME` only, as the XDG spec says), else
/// `$HOME/.config/nats`.
pub fn nats_dir(env: &Env) -> Option<PathBuf> {
    let xdg = env
        .xdg_config_home
        .as_ref()
        .map(PathBuf::from)
        .filter(|p| p.is_absolute());
    let base = xdg.or_else(|| env.home.as_ref().map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("nats"))
}

/// How a command authenticates.
#[derive(Debug, Clone, PartialEq)]
pub enum Auth {
    UserPassword { user: String, password: Secret },
    Token(Secret),
    Creds(PathBuf),
    NKey(SeedSource),
}

/// TLS files; each one independently overridable.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Tls {
    pub ca: Option<PathBuf>,
    /// Client certificate and its key: they go together.
    pub client: Option<(PathBuf, PathBuf)>,
}

/// Where a setting came from, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    Flags,
    Env,
    Context(String),
    Config,
    Default,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Flags => f.write_str("the command line"),
            Origin::Env => f.write_str("the environment"),
            Origin::Context(name) => write!(f, "nats context {name}"),
            Origin::Config => f.write_str("portcullis.toml [nats]"),
            Origin::Default => f.write_str("the default"),
        }
    }
}

/// What one source says; `None` = this source is silent on it.
#[derive(Debug, Clone, Default)]
struct Layer {
    servers: Option<Vec<String>>,
    auth: Option<Auth>,
    tls: Tls,
}

/// The settings a connection is made with, and where the server list
/// came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Resolved {
    pub servers: Vec<String>,
    pub auth: Option<Auth>,
    pub tls: Tls,
    pub servers_from: Origin,
    /// The context used, and its description, if any.
    pub context: Option<ContextInfo>,
}

#[derive(Debug, thiserror::Error)]
pub enum TargetError {
    #[error(
        "{0} needs a password: give --password or set NATS_PASSWORD (a token goes in a nats context's `token`)"
    )]
    UserWithoutPassword(&'static str),
    #[error("{0}: choose one of creds, nkey, user/password or token")]
    SeveralMethods(String),
    #[error("nats context name {0:?} is not valid (no path separators or \"..\")")]
    ContextName(String),
    #[error(
        "nats context {0}: neither XDG_CONFIG_HOME nor HOME is set, so there is no context directory"
    )]
    NoContextDir(String),
    #[error("nats context {name}: cannot read {path}: {reason}")]
    ContextRead {
        name: String,
        path: PathBuf,
        reason: String,
    },
    #[error("nats context {name} ({path}) is not a nats context file: {reason}")]
    ContextParse {
        name: String,
        path: PathBuf,
        reason: String,
    },
    #[error("nats context {name}: `{field}` is not supported by portcullis; {hint}")]
    Unsupported {
        name: String,
        field: &'static str,
        hint: &'static str,
    },
    #[error("nats context {name}: `{field}` needs `{other}` too")]
    Incomplete {
        name: String,
        field: &'static str,
        other: &'static str,
    },
    #[error("cannot read NATS credentials: {0}")]
    Credentials(String),
    #[error("cannot connect to NATS at {servers} (from {from}): {message}")]
    Connect {
        servers: String,
        from: Origin,
        message: String,
    },
}

/// The fields of a nats CLI context file (ADR-21). None is `omitempty`
/// there, so an unset field is an empty string; fields this version does
/// not know are ignored, as `nats` does.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ContextFile {
    description: String,
    url: String,
    token: Option<Secret>,
    user: String,
    password: Option<Secret>,
    creds: String,
    nkey: String,
    cert: String,
    key: String,
    ca: String,
    nsc: String,
    user_jwt: String,
    socks_proxy: String,
    jetstream_domain: String,
    jetstream_api_prefix: String,
    jetstream_event_prefix: String,
    inbox_prefix: String,
    tls_first: bool,
    windows_cert_store: String,
    windows_cert_match_by: String,
    windows_cert_match: String,
    /// `null` when unset: Go writes a nil slice so.
    windows_ca_certs_match: Option<Vec<String>>,
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Secret, D::Error> {
        String::deserialize(d).map(Secret)
    }
}

/// A context: its name, description and what it says.
struct Context {
    name: String,
    description: String,
    layer: Layer,
}

/// Read context `name` from `dir` (the nats config directory).
fn load_context(
    dir: Option<&Path>,
    name: &str,
    home: Option<&Path>,
) -> Result<Context, TargetError> {
    if name.is_empty() || name.contains(['/', '\\']) || name.contains("..") {
        return Err(TargetError::ContextName(name.to_owned()));
    }
    let dir = dir.ok_or_else(|| TargetError::NoContextDir(name.to_owned()))?;
    let path = dir.join("context").join(format!("{name}.json"));
    let read_error = |reason: String| TargetError::ContextRead {
        name: name.to_owned(),
        path: path.clone(),
        reason,
    };
    let file = std::fs::File::open(&path).map_err(|e| read_error(io_reason(&e)))?;
    let mut text = String::new();
    use std::io::Read;
    file.take(MAX_CONTEXT_BYTES)
        .read_to_string(&mut text)
        .map_err(|e| read_error(io_reason(&e)))?;
    let parsed: ContextFile =
        serde_json::from_str(&text).map_err(|e| TargetError::ContextParse {
            name: name.to_owned(),
            path: path.clone(),
            reason: e.to_string(),
        })?;
    let description = parsed.description.clone();
    let layer = context_layer(name, parsed, home)?;
    Ok(Context {
        name: name.to_owned(),
        description,
        layer,
    })
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file (see `nats context ls`)".into(),
        _ => e.to_string(),
    }
}

/// What a context file says, in our terms; a clear error for each field
/// that would change how `nats` connects but that we cannot honour.
fn context_layer(name: &str, c: ContextFile, home: Option<&Path>) -> Result<Layer, TargetError> {
    let unsupported = |field, hint| TargetError::Unsupported {
        name: name.to_owned(),
        field,
        hint,
    };
    let checks: [(&'static str, bool, &'static str); 10] = [
        (
            "nsc",
            !c.nsc.is_empty(),
            "run `nsc generate profile` and set `creds` and `url` instead",
        ),
        (
            "user_jwt",
            !c.user_jwt.is_empty(),
            "use a creds file (JWT and seed) instead",
        ),
        (
            "socks_proxy",
            !c.socks_proxy.is_empty(),
            "connect without a proxy",
        ),
        (
            "jetstream_domain",
            !c.jetstream_domain.is_empty(),
            "fleet commands use the JetStream of the account they log in to",
        ),
        (
            "jetstream_api_prefix",
            !c.jetstream_api_prefix.is_empty(),
            "fleet commands use the default JetStream API prefix",
        ),
        (
            "jetstream_event_prefix",
            !c.jetstream_event_prefix.is_empty(),
            "fleet commands use the default JetStream event prefix",
        ),
        (
            "inbox_prefix",
            !c.inbox_prefix.is_empty(),
            "fleet queries use the default _INBOX prefix",
        ),
        (
            "tls_first",
            c.tls_first,
            "use a server that sends INFO before the TLS handshake",
        ),
        (
            "windows_cert_store",
            !c.windows_cert_store.is_empty(),
            "give `cert`, `key` and `ca` files instead",
        ),
        (
            "windows_ca_certs_match",
            c.windows_ca_certs_match
                .as_ref()
                .is_some_and(|m| !m.is_empty()),
            "give a `ca` file instead",
        ),
    ];
    if let Some((field, _, hint)) = checks.into_iter().find(|(_, set, _)| *set) {
        return Err(unsupported(field, hint));
    }
    let path = |p: &str| (!p.is_empty()).then(|| expand_home(p, home));
    let token = c.token.filter(|t| !t.0.is_empty());
    let password = c.password.filter(|p| !p.0.is_empty());
    let mut methods = Vec::new();
    if let Some(creds) = path(&c.creds) {
        methods.push(Auth::Creds(creds));
    }
    if let Some(nkey) = path(&c.nkey) {
        methods.push(Auth::NKey(SeedSource::File(nkey)));
    }
    match (c.user.is_empty(), password) {
        (false, Some(password)) => methods.push(Auth::UserPassword {
            user: c.user,
            password,
        }),
        // As `nats` reads a context: a user without a password is a token.
        (false, None) => methods.push(Auth::Token(Secret(c.user))),
        (true, Some(_)) => {
            return Err(TargetError::Incomplete {
                name: name.to_owned(),
                field: "password",
                other: "user",
            });
        }
        (true, None) => {}
    }
    if let Some(token) = token {
        methods.push(Auth::Token(token));
    }
    if methods.len() > 1 {
        return Err(TargetError::SeveralMethods(format!("nats context {name}")));
    }
    let client = match (path(&c.cert), path(&c.key)) {
        (Some(cert), Some(key)) => Some((cert, key)),
        (None, None) => None,
        (Some(_), None) => {
            return Err(TargetError::Incomplete {
                name: name.to_owned(),
                field: "cert",
                other: "key",
            });
        }
        (None, Some(_)) => {
            return Err(TargetError::Incomplete {
                name: name.to_owned(),
                field: "key",
                other: "cert",
            });
        }
    };
    Ok(Layer {
        servers: split_servers(&c.url),
        auth: methods.pop(),
        tls: Tls {
            ca: path(&c.ca),
            client,
        },
    })
}

/// `~/x` as the nats CLI expands it in context paths.
fn expand_home(path: &str, home: Option<&Path>) -> PathBuf {
    match (path.strip_prefix("~/"), home) {
        (Some(rest), Some(home)) => home.join(rest),
        _ => PathBuf::from(path),
    }
}

/// `a,b , c` -> three URLs; nothing -> None.
fn split_servers(urls: &str) -> Option<Vec<String>> {
    let servers: Vec<String> = urls
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    (!servers.is_empty()).then_some(servers)
}

fn flags_layer(flags: &NatsFlags, env: &Env) -> Result<Layer, TargetError> {
    let auth = match (&flags.creds, &flags.user) {
        (Some(creds), _) => Some(Auth::Creds(creds.clone())),
        (None, Some(user)) => {
            let password = flags
                .password
                .clone()
                .or_else(|| env.password.clone())
                .ok_or(TargetError::UserWithoutPassword("--user"))?;
            Some(Auth::UserPassword {
                user: user.clone(),
                password,
            })
        }
        (None, None) => None,
    };
    Ok(Layer {
        servers: flags.server.as_deref().and_then(split_servers),
        auth,
        tls: Tls::default(),
    })
}

fn env_layer(env: &Env) -> Result<Layer, TargetError> {
    let mut methods = Vec::new();
    if let Some(creds) = &env.creds {
        methods.push(Auth::Creds(creds.clone()));
    }
    if let Some(nkey) = &env.nkey {
        methods.push(Auth::NKey(SeedSource::File(nkey.clone())));
    }
    if let Some(user) = &env.user {
        let password = env
            .password
            .clone()
            .ok_or(TargetError::UserWithoutPassword("NATS_USER"))?;
        methods.push(Auth::UserPassword {
            user: user.clone(),
            password,
        });
    }
    if methods.len() > 1 {
        return Err(TargetError::SeveralMethods(
            "NATS_CREDS, NATS_NKEY and NATS_USER".into(),
        ));
    }
    Ok(Layer {
        servers: env.url.as_deref().and_then(split_servers),
        auth: methods.pop(),
        tls: Tls::default(),
    })
}

/// What a portcullis.toml `[nats]` says (paths already resolved by
/// `Config::load`). An `env:NAME` nkey seed is read here, as the host
/// would read it.
fn config_layer(nats: &NatsConfig) -> Layer {
    let auth = if let Some(creds) = &nats.creds {
        Some(Auth::Creds(creds.clone()))
    } else if let Some(nkey) = &nats.nkey {
        Some(Auth::NKey(nkey.clone()))
    } else if let (Some(user), Some(password)) = (&nats.user, &nats.password) {
        Some(Auth::UserPassword {
            user: user.clone(),
            password: Secret(password.expose().to_owned()),
        })
    } else {
        nats.token
            .as_ref()
            .map(|t| Auth::Token(Secret(t.expose().to_owned())))
    };
    let tls = nats
        .tls
        .as_ref()
        .map(|t| Tls {
            ca: t.ca_file.clone(),
            client: t.cert_file.clone().zip(t.key_file.clone()),
        })
        .unwrap_or_default();
    Layer {
        servers: Some(nats.servers.clone()),
        auth,
        tls,
    }
}

/// Sources in precedence order, each with what it says.
type Layers = Vec<(Origin, Layer)>;

/// A context's name and description.
pub type ContextInfo = (String, String);

/// The command line and the environment, and the context they (or, where
/// `ambient` allows, `nats context select`) name, in precedence order.
fn override_layers(
    flags: &NatsFlags,
    env: &Env,
    ambient: bool,
) -> Result<(Layers, Option<ContextInfo>), TargetError> {
    let mut layers = vec![
        (Origin::Flags, flags_layer(flags, env)?),
        (Origin::Env, env_layer(env)?),
    ];
    let dir = nats_dir(env);
    let home = env.home.as_ref().map(PathBuf::from);
    let named = flags.context.clone().or_else(|| env.context.clone());
    let name = match named {
        Some(name) => Some(name),
        None if ambient => dir.as_deref().and_then(selected_context),
        None => None,
    };
    let mut info = None;
    if let Some(name) = name {
        let context = load_context(dir.as_deref(), &name, home.as_deref())?;
        info = Some((context.name.clone(), context.description));
        layers.push((Origin::Context(context.name), context.layer));
    }
    Ok((layers, info))
}

/// The context `nats context select` chose, if any.
fn selected_context(dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(dir.join("context.txt")).ok()?;
    let name = text.trim();
    (!name.is_empty()).then(|| name.to_owned())
}

/// Settings for a client command: `config` is the `[nats]` of the
/// portcullis.toml in use, if any.
pub fn resolve(
    flags: &NatsFlags,
    env: &Env,
    config: Option<&NatsConfig>,
) -> Result<Resolved, TargetError> {
    let (mut layers, context) = override_layers(flags, env, config.is_none())?;
    if let Some(nats) = config {
        layers.push((Origin::Config, config_layer(nats)));
    }
    let (servers, servers_from) = layers
        .iter()
        .find_map(|(origin, l)| l.servers.clone().map(|s| (s, origin.clone())))
        .unwrap_or_else(|| (vec![DEFAULT_URL.to_owned()], Origin::Default));
    let auth = layers.iter().find_map(|(_, l)| l.auth.clone());
    let tls = Tls {
        ca: layers.iter().find_map(|(_, l)| l.tls.ca.clone()),
        client: layers.iter().find_map(|(_, l)| l.tls.client.clone()),
    };
    Ok(Resolved {
        servers,
        auth,
        tls,
        servers_from,
        context,
    })
}

/// For `run`: lay the command line, the environment and an explicitly
/// named context over `[nats]`. What changed, for the log.
pub fn apply_overrides(
    flags: &NatsFlags,
    env: &Env,
    nats: &mut NatsConfig,
) -> Result<Vec<String>, TargetError> {
    let (layers, _) = override_layers(flags, env, false)?;
    let mut changed = Vec::new();
    if let Some((origin, servers)) = layers
        .iter()
        .find_map(|(o, l)| l.servers.clone().map(|s| (o, s)))
    {
        changed.push(format!("servers from {origin}"));
        nats.servers = servers;
    }
    if let Some((origin, auth)) = layers
        .iter()
        .find_map(|(o, l)| l.auth.clone().map(|a| (o, a)))
    {
        changed.push(format!("credentials from {origin}"));
        nats.user = None;
        nats.password = None;
        nats.token = None;
        nats.creds = None;
        nats.nkey = None;
        match auth {
            Auth::UserPassword { user, password } => {
                nats.user = Some(user);
                nats.password = Some(portcullis::config::Secret::inline(password.0));
            }
            Auth::Token(token) => nats.token = Some(portcullis::config::Secret::inline(token.0)),
            Auth::Creds(path) => nats.creds = Some(path),
            Auth::NKey(source) => nats.nkey = Some(source),
        }
    }
    let ca = layers
        .iter()
        .find_map(|(o, l)| l.tls.ca.clone().map(|c| (o, c)));
    let client = layers
        .iter()
        .find_map(|(o, l)| l.tls.client.clone().map(|c| (o, c)));
    if ca.is_some() || client.is_some() {
        let tls = nats.tls.get_or_insert_with(NatsTls::default);
        if let Some((origin, ca)) = ca {
            changed.push(format!("TLS CA from {origin}"));
            tls.ca_file = Some(ca);
        }
        if let Some((origin, (cert, key))) = client {
            changed.push(format!("TLS client certificate from {origin}"));
            tls.cert_file = Some(cert);
            tls.key_file = Some(key);
        }
    }
    Ok(changed)
}

/// Connect a client command, bounded by [`CONNECT_WAIT`]: unlike the
/// host, which waits for NATS, a command reports a server that is down.
pub async fn connect(resolved: &Resolved, name: &str) -> Result<async_nats::Client, TargetError> {
    let credentials = |e: String| TargetError::Credentials(e);
    let mut options = match &resolved.auth {
        Some(Auth::Creds(path)) => async_nats::ConnectOptions::with_credentials_file(path)
            .await
            .map_err(|e| credentials(format!("{}: {e}", path.display())))?,
        Some(Auth::NKey(source)) => {
            let kp = keys::user_key(source).map_err(|e| credentials(e.to_string()))?;
            let seed = kp.seed().map_err(|e| credentials(e.to_string()))?;
            async_nats::ConnectOptions::with_nkey(seed)
        }
        Some(Auth::UserPassword { user, password }) => {
            async_nats::ConnectOptions::new().user_and_password(user.clone(), password.0.clone())
        }
        Some(Auth::Token(token)) => async_nats::ConnectOptions::new().token(token.0.clone()),
        None => async_nats::ConnectOptions::new(),
    };
    if let Some(ca) = &resolved.tls.ca {
        options = options.require_tls(true).add_root_certificates(ca.clone());
    }
    if let Some((cert, key)) = &resolved.tls.client {
        options = options
            .require_tls(true)
            .add_client_certificate(cert.clone(), key.clone());
    }
    let servers = resolved
        .servers
        .iter()
        .map(|s| portcullis::service::redact_url(s))
        .collect::<Vec<_>>()
        .join(",");
    let connect_error = |message: String| TargetError::Connect {
        servers: servers.clone(),
        from: resolved.servers_from.clone(),
        message,
    };
    let connecting = options
        .name(name)
        .connection_timeout(CONNECT_WAIT)
        .connect(resolved.servers.as_slice());
    match tokio::time::timeout(CONNECT_WAIT * 2, connecting).await {
        Ok(Ok(client)) => Ok(client),
        Ok(Err(e)) => Err(connect_error(e.to_string())),
        Err(_) => Err(connect_error(format!(
            "no answer within {}s",
            (CONNECT_WAIT * 2).as_secs()
        ))),
    }
}

#[cfg(test)]
mod tests;
