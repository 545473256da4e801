//! `portcullis init DIR`: everything a new config-mode deployment needs:
//! fresh keys, a nats-server.conf with an `auth_callout` block, a starter
//! portcullis.toml and the nats-by-example users.json.

use nkeys::{KeyPair, XKey};
use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("{} already exists (use --force to overwrite)", .0.display())]
    Exists(PathBuf),
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
}

/// The users of the nats-by-example auth-callout examples (without their
/// `sys` user: a starter config should not hand out the system account).
pub const USERS_JSON: &str = r#"{
  "alice": { "pass": "alice", "account": "APP1" },
  "bob": {
    "pass": "bob",
    "account": "APP2",
    "permissions": {
      "pub": { "allow": ["bob.>"] },
      "sub": { "allow": ["bob.>"] },
      "resp": { "max": 1 }
    }
  }
}
"#;

/// Write a config-mode deployment into `dir`; returns the files written.
pub fn init(dir: &Path, options: &InitOptions) -> Result<Vec<PathBuf>, InitError> {
    let issuer = KeyPair::new_account();
    let xkey = XKey::new();
    let auth_password = random_secret();
    let seed = |r: nkeys::error::Error| InitError::Keys(r.to_string());
    let files = [
        (
            "keys/issuer.nk",
            format!("{}\n", issuer.seed().map_err(seed)?),
        ),
        ("keys/xkey.nk", format!("{}\n", xkey.seed().map_err(seed)?)),
        (
            "nats-server.conf",
            nats_server_conf(
                &issuer.public_key(),
                &xkey.public_key(),
                &auth_password,
                options.port,
            ),
        ),
        (
            "portcullis.toml",
            portcullis_toml(&auth_password, options.port, &options.plugin),
        ),
        ("users.json", USERS_JSON.to_owned()),
    ];
    if !options.force {
        for (name, _) in &files {
            let path = dir.join(name);
            if path.exists() {
                return Err(InitError::Exists(path));
            }
        }
    }
    let mut written = Vec::new();
    for (name, content) in files {
        let path = dir.join(name);
        write_file(&path, &content, name.starts_with("keys/"))?;
        written.push(path);
    }
    Ok(written)
}

fn write_file(path: &Path, content: &str, secret: bool) -> Result<(), InitError> {
    let err = |source| InitError::Write {
        path: path.to_owned(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(err)?;
    }
    std::fs::write(path, content).map_err(err)?;
    #[cfg(unix)]
    if secret {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(err)?;
    }
    #[cfg(not(unix))]
    let _ = secret;
    Ok(())
}

/// 32 random bytes, printable: the public half of a fresh NKey is exactly
/// that (an ed25519 key derived from a seed drawn from the OS RNG).
fn random_secret() -> String {
    KeyPair::new_user().public_key()[1..33].to_owned()
}

fn nats_server_conf(issuer: &str, xkey: &str, auth_password: &str, port: u16) -> String {
    format!(
        r#"# nats-server configuration written by `portcullis init`.
# Every client login except the `auth` user is decided by Portcullis.
listen: 127.0.0.1:{port}

accounts {{
  # Portcullis itself connects as `auth` in AUTH.
  AUTH {{
    users: [ {{ user: auth, password: "{auth_password}" }} ]
  }}
  APP1 {{}}
  APP2 {{}}
  SYS {{}}
}}
system_account: SYS

authorization {{
  auth_callout {{
    # Public key of the account that signs responses (keys/issuer.nk).
    issuer: {issuer}
    # Public xkey of Portcullis (keys/xkey.nk): requests are encrypted to it.
    xkey: {xkey}
    account: AUTH
    auth_users: [ auth ]
  }}
}}
"#
    )
}

fn portcullis_toml(auth_password: &str, port: u16, plugin: &Path) -> String {
    format!(
        r#"# Portcullis configuration written by `portcullis init`.
# Relative paths are relative to this file.

[nats]
servers = ["nats://127.0.0.1:{port}"]
user = "auth"
password = "{auth_password}"
queue = "portcullis"

[callout]
mode = "config"
issuer_seed = "keys/issuer.nk"
xkey_seed = "keys/xkey.nk"

[[plugins]]
name = "users"
wasm = "{plugin}"
accounts = ["APP1", "APP2"]
max_expiry = "1h"
timeout_ms = 200
memory_mb = 32
config_file = "users.json"
"#,
        plugin = plugin
            .display()
            .to_string()
            .replace('\\', "\\\\")
            .replace('"', "\\\"")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_a_config_that_loads_and_refuses_to_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let options = InitOptions {
            plugin: PathBuf::from("static_users.wasm"),
            port: 4333,
            force: false,
        };
        let files = init(dir.path(), &options).unwrap();
        assert_eq!(files.len(), 5);
        let config = crate::config::Config::load(&dir.path().join("portcullis.toml")).unwrap();
        assert_eq!(config.nats.servers, ["nats://127.0.0.1:4333"]);
        let issuer = crate::keys::account_key(&config.issuer_seed()).unwrap();
        let conf = std::fs::read_to_string(dir.path().join("nats-server.conf")).unwrap();
        assert!(conf.contains(&format!("issuer: {}", issuer.public_key())));
        assert!(
            !conf.contains(&issuer.seed().unwrap()),
            "the seed stays out of the server config"
        );
        let xkey = crate::keys::xkey(&config.xkey_seed().unwrap()).unwrap();
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
}
