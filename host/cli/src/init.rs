//! `portcullis init DIR`: everything a new deployment needs: fresh keys,
//! a nats-server.conf that delegates logins, a starter portcullis.toml and
//! the nats-by-example users.json. Config mode here; operator mode (the
//! decentralized JWT setup) in [`operator`].

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
}

impl Default for InitOptions {
    fn default() -> Self {
        InitOptions {
            plugin: PathBuf::from("static_users.wasm"),
            port: 4222,
            force: false,
            mode: Mode::Config,
            xkey: true,
        }
    }
}

/// Write a deployment into `dir`; returns the files written.
pub fn init(dir: &Path, options: &InitOptions) -> Result<Vec<PathBuf>, InitError> {
    let files = match options.mode {
        Mode::Config => config_mode_files(options)?,
        Mode::Operator => operator::files(options)?,
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

fn config_mode_files(options: &InitOptions) -> Result<Vec<(String, String)>, InitError> {
    let issuer = KeyPair::new_account();
    let xkey = options.xkey.then(XKey::new);
    let auth_password = random_secret();
    let keys = |e: nkeys::error::Error| InitError::Keys(e.to_string());
    let mut files = vec![(
        "keys/issuer.nk".to_owned(),
        format!("{}\n", issuer.seed().map_err(keys)?),
    )];
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
             # Every client login except the `auth` user is decided by Portcullis.\n\
             listen: 127.0.0.1:{}\n",
            options.port
        ),
        ..ServerConf::new(
            issuer.public_key(),
            AuthUser::Password {
                user: "auth".into(),
                password: auth_password.clone(),
            },
        )
    };
    files.push(("nats-server.conf".into(), server_conf.render()));
    let mut toml = portcullis_common(
        options,
        &format!("user = \"auth\"\npassword = \"{auth_password}\""),
    );
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
