//! `portcullis init DIR`: everything a new deployment needs: fresh keys,
//! a nats-server.conf that delegates logins, a starter portcullis.toml and
//! the nats-by-example users.json. Config mode here; operator mode (the
//! decentralized JWT setup) in [`operator`].
//!
//! How Portcullis logs in to NATS decides more than its own login:
//! nats-server sends clients a nonce to sign only when it knows an NKey
//! user (or trusts an operator), so `--auth nkey` is what makes NKey
//! logins through the callout possible in config mode.

mod operator;

use nkeys::{KeyPair, XKey};
use portcullis::config::Mode;
use portcullis::deployment::{AuthUser, ServerConf, USERS_JSON};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("{} already exists (use --force to overwrite)", .0.display())]
    Exists(PathBuf),
    #[error("{} is a symbolic link; init writes no file through a link", .0.display())]
    Symlink(PathBuf),
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot generate keys: {0}")]
    Keys(String),
    /// Options that do not go together, in words an operator can act on.
    #[error("{0}")]
    Unsupported(&'static str),
}

/// How Portcullis logs in to NATS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NatsAuth {
    /// The `auth` user with a generated password.
    Password,
    /// An NKey user (`keys/auth.nk`): nats-server then sends every client a
    /// nonce, which NKey logins through the callout sign.
    NKey,
}

/// Where an operator-mode nats-server finds account JWTs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Resolver {
    /// `resolver: MEMORY`: the accounts are preloaded from
    /// nats-server.conf; changing one means editing the file.
    #[default]
    Memory,
    /// `resolver { type: full }`: a directory of account JWTs that
    /// `sys.creds` updates at run time (`$SYS.REQ.CLAIMS.UPDATE`, as
    /// `nsc push` does); the preloads only seed it.
    Full,
}

pub struct InitOptions {
    /// Path of the static-users component, as written into portcullis.toml.
    pub plugin: PathBuf,
    /// Client port of the generated nats-server.conf.
    pub port: u16,
    pub force: bool,
    pub mode: Mode,
    /// Encrypt requests and responses with xkey.
    pub xkey: bool,
    /// How Portcullis logs in; `None`: the mode's own (config: password,
    /// operator: auth.creds).
    pub auth: Option<NatsAuth>,
    /// Operator mode: the account resolver of nats-server.conf.
    pub resolver: Resolver,
    /// Operator mode: AUTH's `allowed_accounts` is `"*"` (any account,
    /// those pushed later included) instead of APP1 and APP2.
    pub any_account: bool,
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            plugin: PathBuf::from("static_users.wasm"),
            port: 4222,
            force: false,
            mode: Mode::Config,
            xkey: true,
            auth: None,
            resolver: Resolver::Memory,
            any_account: false,
        }
    }
}

/// Write a deployment into `dir`; returns the files written.
pub fn init(dir: &Path, options: &InitOptions) -> Result<Vec<PathBuf>, InitError> {
    check_options(options)?;
    let files = match options.mode {
        Mode::Config => config_mode_files(options)?,
        Mode::Operator => {
            // nats-server resolves a resolver directory against its own
            // working directory, not its config file's: the absolute path
            // works wherever it is started from.
            let jwt_dir =
                std::path::absolute(dir.join("jwt")).map_err(|source| InitError::Write {
                    path: dir.to_owned(),
                    source,
                })?;
            operator::files(options, &jwt_dir)?
        }
    };
    // Checked for every file before any is written: a refusal leaves the
    // directory as it was.
    for (name, _) in &files {
        let path = dir.join(name);
        match std::fs::symlink_metadata(&path) {
            Ok(meta) if meta.file_type().is_symlink() => return Err(InitError::Symlink(path)),
            Ok(_) if !options.force => return Err(InitError::Exists(path)),
            _ => {}
        }
    }
    let mut written = Vec::new();
    for (name, content) in files {
        let path = dir.join(&name);
        write_private(&path, &content)?;
        written.push(path);
    }
    Ok(written)
}

/// Refuse options that mean nothing in the chosen mode, rather than
/// ignore them: an operator who asked for a full resolver in config mode
/// would otherwise believe accounts can be pushed.
fn check_options(options: &InitOptions) -> Result<(), InitError> {
    match options.mode {
        Mode::Config if options.resolver != Resolver::Memory => Err(InitError::Unsupported(
            "--resolver is for --mode operator: a config-mode server has its accounts in nats-server.conf",
        )),
        Mode::Config if options.any_account => Err(InitError::Unsupported(
            "--any-account is for --mode operator: in config mode, Portcullis may place users in any account of nats-server.conf already",
        )),
        Mode::Operator if options.auth == Some(NatsAuth::Password) => Err(InitError::Unsupported(
            "--auth password is for --mode config: in operator mode Portcullis logs in with auth.creds (a user JWT and its NKey)",
        )),
        _ => Ok(()),
    }
}

/// Where config mode keeps the seed Portcullis logs in with (`--auth nkey`).
const AUTH_NKEY: &str = "keys/auth.nk";

fn config_mode_files(options: &InitOptions) -> Result<Vec<(String, String)>, InitError> {
    let issuer = KeyPair::new_account();
    let xkey = options.xkey.then(XKey::new);
    let keys = |e: nkeys::error::Error| InitError::Keys(e.to_string());
    let mut files = vec![(
        "keys/issuer.nk".to_owned(),
        format!("{}\n", issuer.seed().map_err(keys)?),
    )];
    let (auth_user, who) = match options.auth.unwrap_or(NatsAuth::Password) {
        NatsAuth::Password => (
            AuthUser::Password {
                user: "auth".into(),
                password: random_secret(),
            },
            "the `auth` user",
        ),
        NatsAuth::NKey => {
            let key = KeyPair::new_user();
            files.push((AUTH_NKEY.into(), format!("{}\n", key.seed().map_err(keys)?)));
            (
                AuthUser::NKey(key.public_key()),
                "Portcullis's own NKey user (so the server sends nonces)",
            )
        }
    };
    if let Some(x) = &xkey {
        files.push((
            "keys/xkey.nk".into(),
            format!("{}\n", x.seed().map_err(keys)?),
        ));
    }
    let server_conf = ServerConf {
        xkey: xkey.as_ref().map(XKey::public_key),
        top_level: format!(
            "# nats-server configuration written by `portcullis init`.\n\
             # Every client login except {who} is decided by Portcullis.\n\
             listen: 127.0.0.1:{}\n",
            options.port
        ),
        ..ServerConf::new(issuer.public_key(), auth_user.clone())
    };
    files.push(("nats-server.conf".into(), server_conf.render()));
    let mut login = auth_user.nats_login(AUTH_NKEY);
    if matches!(auth_user, AuthUser::Password { .. }) {
        login.push_str(
            "\n# password also takes \"env:NAME\" or \"file:PATH\", to keep it out of this file.",
        );
    }
    let mut toml = portcullis_common(options, &login);
    toml.push_str(&format!(
        "\n[callout]\nmode = \"config\"\nissuer_seed = \"keys/issuer.nk\"\n{}\n",
        if options.xkey {
            "xkey_seed = \"keys/xkey.nk\""
        } else {
            ""
        }
    ));
    toml.push_str(&plugin_table(options));
    files.push(("portcullis.toml".into(), toml));
    files.push(("users.json".into(), USERS_JSON.to_owned()));
    Ok(files)
}

/// The head of portcullis.toml: the `[nats]` section.
fn portcullis_common(options: &InitOptions, credentials: &str) -> String {
    format!(
        r#"# Portcullis configuration written by `portcullis init`.
# Relative paths are relative to this file.

[nats]
servers = ["nats://127.0.0.1:{port}"]
{credentials}
queue = "portcullis"
# How long `run` waits for NATS at start; by default it keeps trying.
# connect_timeout = "2m"
"#,
        port = options.port
    )
}

/// The static-users `[[plugins]]` table.
fn plugin_table(options: &InitOptions) -> String {
    format!(
        r#"
[[plugins]]
name = "users"
wasm = "{plugin}"
accounts = ["APP1", "APP2"]
max_expiry = "1h"
timeout_ms = 200
memory_mb = 32
config_file = "users.json"
"#,
        plugin = options
            .plugin
            .display()
            .to_string()
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
    )
}

/// Every file init writes holds a secret (seeds, creds, the auth password
/// in portcullis.toml and nats-server.conf, passwords in users.json), so
/// each is created readable by its owner only (directories 0700, files
/// 0600, as the host's atomic writes create them) and replaces what was
/// there by a rename: an existing file, or a link put in its place after
/// the check, is never written into.
fn write_private(path: &Path, content: &str) -> Result<(), InitError> {
    portcullis_protocol::files::write_atomic(path, content.as_bytes()).map_err(|source| {
        InitError::Write {
            path: path.to_owned(),
            source,
        }
    })
}

/// 32 random characters: the public half of a fresh NKey is derived from a
/// seed drawn from the OS RNG.
fn random_secret() -> String {
    KeyPair::new_user().public_key()[1..33].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_config_that_loads_and_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let options = InitOptions {
            port: 4333,
            ..InitOptions::default()
        };
        let files = init(dir.path(), &options).unwrap();
        assert_eq!(files.len(), 5);
        assert_private(&files);
        let config = portcullis::config::Config::load(&dir.path().join("portcullis.toml")).unwrap();
        assert_eq!(config.nats.servers, ["nats://127.0.0.1:4333"]);
        let issuer = portcullis_protocol::keys::account_key(config.issuer_seed()).unwrap();
        let conf = std::fs::read_to_string(dir.path().join("nats-server.conf")).unwrap();
        assert!(conf.contains(&format!("issuer: {}", issuer.public_key())));
        assert!(
            !conf.contains(&issuer.seed().unwrap()),
            "the seed stays out of the server config"
        );
        let xkey = portcullis_protocol::keys::xkey(config.xkey_seed().unwrap()).unwrap();
        assert!(conf.contains(&format!("xkey: {}", xkey.public_key())));
        assert!(config.plugins[0].config_json().unwrap().contains("alice"));

        let err = init(dir.path(), &options).unwrap_err();
        assert!(matches!(err, InitError::Exists(_)), "{err}");
        init(
            dir.path(),
            &InitOptions {
                force: true,
                ..options
            },
        )
        .unwrap();
    }

    #[test]
    fn operator_mode_writes_verifiable_account_jwts() {
        let dir = tempfile::tempdir().unwrap();
        let options = InitOptions {
            mode: Mode::Operator,
            ..InitOptions::default()
        };
        init(dir.path(), &options).unwrap();
        let config = portcullis::config::Config::load(&dir.path().join("portcullis.toml")).unwrap();
        assert_eq!(config.callout.mode, Mode::Operator);
        assert_eq!(config.accounts.len(), 2);
        for (name, account) in &config.accounts {
            let token = std::fs::read_to_string(account.jwt.as_ref().unwrap()).unwrap();
            let claims = portcullis_protocol::accounts::decode_account(token.trim()).unwrap();
            assert_eq!(claims.sub, account.public_key, "{name}");
            let signing =
                portcullis_protocol::keys::account_key(config.signing_seed(account)).unwrap();
            assert!(
                claims
                    .nats
                    .signing_keys
                    .iter()
                    .any(|k| k.key() == signing.public_key()),
                "{name}"
            );
        }
        let auth = std::fs::read_to_string(dir.path().join("accounts/AUTH.jwt")).unwrap();
        let auth = portcullis_protocol::accounts::decode_account(auth.trim()).unwrap();
        let authorization = auth.nats.authorization.unwrap();
        assert_eq!(authorization.allowed_accounts.len(), 2);
        assert!(authorization.xkey.starts_with('X'));
        let creds = std::fs::read_to_string(dir.path().join("sentinel.creds")).unwrap();
        assert!(creds.contains("BEGIN NATS USER JWT") && creds.contains("BEGIN USER NKEY SEED"));
    }

    #[test]
    fn auth_nkey_logs_portcullis_in_with_an_nkey_the_server_knows() {
        let dir = tempfile::tempdir().unwrap();
        let options = InitOptions {
            auth: Some(NatsAuth::NKey),
            ..InitOptions::default()
        };
        let files = init(dir.path(), &options).unwrap();
        assert!(files.iter().any(|f| f.ends_with(AUTH_NKEY)));
        assert_private(&files);
        let config = portcullis::config::Config::load(&dir.path().join("portcullis.toml")).unwrap();
        assert!(config.nats.user.is_none() && config.nats.password.is_none());
        let seed = config.nats.nkey.as_ref().expect("[nats] nkey");
        let key = portcullis_protocol::keys::user_key(seed).unwrap();
        let conf = std::fs::read_to_string(dir.path().join("nats-server.conf")).unwrap();
        assert!(conf.contains(&format!("users: [ {{ nkey: {} }} ]", key.public_key())));
        assert!(conf.contains(&format!("auth_users: [ {} ]", key.public_key())));
        assert!(
            !conf.contains(&key.seed().unwrap()),
            "no seed in the server config"
        );
        assert!(!conf.contains("password"), "{conf}");
    }

    #[test]
    fn options_meaningless_in_the_mode_are_refused_and_nothing_is_written() {
        for (options, says) in [
            (
                InitOptions {
                    resolver: Resolver::Full,
                    ..InitOptions::default()
                },
                "--resolver is for --mode operator",
            ),
            (
                InitOptions {
                    any_account: true,
                    ..InitOptions::default()
                },
                "--any-account is for --mode operator",
            ),
            (
                InitOptions {
                    mode: Mode::Operator,
                    auth: Some(NatsAuth::Password),
                    ..InitOptions::default()
                },
                "--auth password is for --mode config",
            ),
        ] {
            let dir = tempfile::tempdir().unwrap();
            let err = init(dir.path(), &options).unwrap_err();
            assert!(matches!(err, InitError::Unsupported(_)), "{err}");
            assert!(err.to_string().starts_with(says), "{err}");
            assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        }
        // --auth nkey is what operator mode does anyway.
        let dir = tempfile::tempdir().unwrap();
        let options = InitOptions {
            mode: Mode::Operator,
            auth: Some(NatsAuth::NKey),
            ..InitOptions::default()
        };
        init(dir.path(), &options).unwrap();
        assert!(!dir.path().join(AUTH_NKEY).exists());
    }

    /// The payload of the user JWT in a creds file (signature verified).
    fn creds_claims(path: &Path) -> serde_json::Value {
        let creds = std::fs::read_to_string(path).unwrap();
        let token = creds
            .lines()
            .skip_while(|l| !l.contains("BEGIN NATS USER JWT"))
            .nth(1)
            .unwrap();
        portcullis_protocol::jwt::decode_verified(token).unwrap()
    }

    #[test]
    fn operator_mode_writes_users_the_server_decides_alone() {
        let dir = tempfile::tempdir().unwrap();
        let options = InitOptions {
            mode: Mode::Operator,
            ..InitOptions::default()
        };
        let files = init(dir.path(), &options).unwrap();
        assert_private(&files);
        let account = |name: &str| {
            let token = std::fs::read_to_string(dir.path().join(format!("accounts/{name}.jwt")));
            portcullis_protocol::accounts::decode_account(token.unwrap().trim()).unwrap()
        };
        for (creds, name) in [
            ("app1.creds", "APP1"),
            ("app2.creds", "APP2"),
            ("sys.creds", "SYS"),
        ] {
            assert!(files.iter().any(|f| f.ends_with(creds)), "{creds}");
            let claims = creds_claims(&dir.path().join(creds));
            let account = account(name);
            // Issued by the account's signing key, on behalf of the account,
            // with no permission limits (nats-by-example's users).
            assert_eq!(claims["nats"]["issuer_account"], account.sub, "{creds}");
            assert_eq!(claims["iss"], account.nats.signing_keys[0].key(), "{creds}");
            assert!(claims["nats"]["pub"].is_null(), "{creds}: {claims}");
            assert!(claims["nats"]["sub"].is_null(), "{creds}: {claims}");
        }
        let conf = std::fs::read_to_string(dir.path().join("nats-server.conf")).unwrap();
        assert!(conf.contains("resolver: MEMORY"), "{conf}");
    }

    #[test]
    fn resolver_full_and_any_account() {
        let dir = tempfile::tempdir().unwrap();
        let options = InitOptions {
            mode: Mode::Operator,
            resolver: Resolver::Full,
            any_account: true,
            ..InitOptions::default()
        };
        init(dir.path(), &options).unwrap();
        let conf = std::fs::read_to_string(dir.path().join("nats-server.conf")).unwrap();
        let jwt_dir = std::path::absolute(dir.path().join("jwt")).unwrap();
        assert!(conf.contains("type: full"), "{conf}");
        assert!(
            conf.contains(&format!("dir: \"{}\"", jwt_dir.display())),
            "{conf}"
        );
        assert!(
            conf.contains("resolver_preload"),
            "the preloads seed the directory"
        );
        let auth = std::fs::read_to_string(dir.path().join("accounts/AUTH.jwt")).unwrap();
        let auth = portcullis_protocol::accounts::decode_account(auth.trim()).unwrap();
        assert_eq!(
            auth.nats.authorization.unwrap().allowed_accounts,
            [operator::ANY_ACCOUNT]
        );
    }

    /// Every file and the directories init made are their owner's alone.
    fn assert_private(files: &[PathBuf]) {
        use std::os::unix::fs::PermissionsExt;
        for file in files {
            let mode = std::fs::metadata(file).unwrap().permissions().mode();
            assert_eq!(mode & 0o077, 0, "{} is {mode:o}", file.display());
        }
        let keys = files
            .iter()
            .filter_map(|f| f.parent())
            .find(|dir| dir.ends_with("keys"))
            .unwrap();
        let mode = std::fs::metadata(keys).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "{} is {mode:o}", keys.display());
    }

    #[test]
    fn every_file_holding_a_secret_is_private_in_both_modes() {
        for mode in [Mode::Config, Mode::Operator] {
            let dir = tempfile::tempdir().unwrap();
            let options = InitOptions {
                mode,
                ..InitOptions::default()
            };
            let files = init(dir.path(), &options).unwrap();
            assert!(files.iter().any(|f| f.ends_with("portcullis.toml")));
            assert!(files.iter().any(|f| f.ends_with("nats-server.conf")));
            assert!(files.iter().any(|f| f.ends_with("users.json")));
            assert_private(&files);
        }
    }

    #[test]
    fn refuses_to_write_through_a_symlink_even_with_force() {
        let dir = tempfile::tempdir().unwrap();
        let victim = dir.path().join("victim");
        std::fs::write(&victim, "keep me").unwrap();
        std::os::unix::fs::symlink(&victim, dir.path().join("users.json")).unwrap();
        for force in [false, true] {
            let options = InitOptions {
                force,
                ..InitOptions::default()
            };
            let err = init(dir.path(), &options).unwrap_err();
            assert!(matches!(err, InitError::Symlink(_)), "{err}");
            assert_eq!(std::fs::read_to_string(&victim).unwrap(), "keep me");
            assert!(
                !dir.path().join("portcullis.toml").exists(),
                "nothing is written when one file is refused"
            );
        }
    }

    #[test]
    fn force_replaces_files_instead_of_writing_into_them() {
        use std::os::unix::fs::{MetadataExt, PermissionsExt};
        let dir = tempfile::tempdir().unwrap();
        init(dir.path(), &InitOptions::default()).unwrap();
        let toml = dir.path().join("portcullis.toml");
        // A reader that holds the old file (and its wide mode) keeps it.
        std::fs::set_permissions(&toml, std::fs::Permissions::from_mode(0o644)).unwrap();
        let old = std::fs::metadata(&toml).unwrap().ino();
        let files = init(
            dir.path(),
            &InitOptions {
                force: true,
                ..InitOptions::default()
            },
        )
        .unwrap();
        assert_ne!(std::fs::metadata(&toml).unwrap().ino(), old, "a new file");
        assert_private(&files);
    }
}
