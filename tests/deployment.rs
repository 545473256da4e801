//! Config-mode deployments: keys and files in a temp dir, and the
//! nats-server and Portcullis configurations that go with them. The server
//! configuration and the users come from `portcullis::deployment`, as
//! `portcullis init`'s do, so the tests run what operators start with.

use crate::{Tls, cache_dir, plugin};
use anyhow::Result;
use nkeys::{KeyPair, XKey};
use portcullis::deployment::{AuthUser, ServerConf, USERS_JSON};
use std::path::Path;

/// The users of the tests: the ones `portcullis init` writes, where bob may
/// also ask the server who he is (`$SYS.REQ.USER.INFO`, and the inbox its
/// reply comes to).
pub fn users_json() -> String {
    let mut users: serde_json::Value = serde_json::from_str(USERS_JSON).expect("USERS_JSON");
    let bob = &mut users["bob"]["permissions"];
    for (list, subject) in [("pub", "$SYS.REQ.USER.INFO"), ("sub", "_INBOX.>")] {
        bob[list]["allow"]
            .as_array_mut()
            .expect("bob's allow lists")
            .push(subject.into());
    }
    serde_json::to_string_pretty(&users).expect("JSON")
}

/// Keys and files of one config-mode deployment.
pub struct Deployment {
    pub dir: tempfile::TempDir,
    pub issuer: KeyPair,
    pub xkey: Option<XKey>,
    /// When set, Portcullis logs in with this NKey instead of auth/auth
    /// (see [`Deployment::with_auth_nkey`]).
    pub auth_nkey: Option<KeyPair>,
    /// When set, the server requires TLS client certificates from every
    /// client (see [`Deployment::with_mutual_tls`]).
    pub tls: Option<Tls>,
    /// The server also listens for WebSocket clients (see
    /// [`Deployment::with_websocket`]).
    pub websocket: bool,
}

impl Deployment {
    pub fn new(with_xkey: bool) -> Result<Deployment> {
        let dir = tempfile::tempdir()?;
        let issuer = KeyPair::new_account();
        std::fs::write(dir.path().join("issuer.nk"), issuer.seed()?)?;
        let xkey = with_xkey.then(XKey::new);
        if let Some(x) = &xkey {
            std::fs::write(dir.path().join("xkey.nk"), x.seed()?)?;
        }
        std::fs::write(dir.path().join("users.json"), users_json())?;
        Ok(Deployment {
            dir,
            issuer,
            xkey,
            auth_nkey: None,
            tls: None,
            websocket: false,
        })
    }

    /// Portcullis logs in with an NKey (`auth_users: [U...]`). nats-server
    /// sends clients a nonce only when it knows an NKey user, so NKey
    /// challenge logins through the callout need this (or operator mode).
    pub fn with_auth_nkey(mut self) -> Result<Deployment> {
        let key = KeyPair::new_user();
        std::fs::write(self.dir.path().join("auth.nk"), key.seed()?)?;
        self.auth_nkey = Some(key);
        Ok(self)
    }

    /// The server requires TLS with client certificates from the test CA
    /// (`tls { verify: true }`); Portcullis presents its own.
    pub fn with_mutual_tls(mut self) -> Result<Deployment> {
        self.tls = Some(Tls::new(self.dir.path())?);
        Ok(self)
    }

    /// The server also listens for WebSocket clients on an ephemeral
    /// loopback port ([`NatsServer::websocket_url`](crate::NatsServer::websocket_url)):
    /// plain `ws://`, or with [`Deployment::with_mutual_tls`] `wss://` with
    /// the same client certificate verification as the NATS port.
    pub fn with_websocket(mut self) -> Deployment {
        self.websocket = true;
        self
    }

    /// A nats-server config that calls out for every user but `auth`.
    pub fn server_config(&self) -> String {
        self.server_conf().render()
    }

    /// [`Deployment::server_config`] with JetStream on, for the callout
    /// account too (plugin releases live in its object store).
    pub fn server_config_with_jetstream(&self) -> String {
        let mut conf = self.server_conf();
        conf.auth_jetstream = true;
        conf.top_level.push_str(&format!(
            "jetstream {{ store_dir: \"{}\", max_memory_store: 64MB, max_file_store: 256MB }}\n",
            self.dir.path().join("jetstream").display()
        ));
        conf.render()
    }

    /// The user Portcullis logs in as, in nats-server.conf and in
    /// portcullis.toml alike.
    fn auth_user(&self) -> AuthUser {
        match &self.auth_nkey {
            Some(k) => AuthUser::NKey(k.public_key()),
            None => AuthUser::Password {
                user: "auth".into(),
                password: "auth".into(),
            },
        }
    }

    fn server_conf(&self) -> ServerConf {
        let auth_user = self.auth_user();
        let tls = self
            .tls
            .as_ref()
            .map(|t| {
                format!(
                    "tls {{\n  cert_file: \"{}\"\n  key_file: \"{}\"\n  ca_file: \"{}\"\n  verify: true\n  timeout: 5\n}}\n",
                    t.server_cert.display(),
                    t.server_key.display(),
                    t.ca_file.display()
                )
            })
            .unwrap_or_default();
        let websocket = match (&self.tls, self.websocket) {
            (_, false) => String::new(),
            (None, true) => {
                "websocket {\n  listen: \"127.0.0.1:-1\"\n  no_tls: true\n}\n".to_owned()
            }
            (Some(t), true) => format!(
                "websocket {{\n  listen: \"127.0.0.1:-1\"\n  tls {{\n    cert_file: \"{}\"\n    key_file: \"{}\"\n    ca_file: \"{}\"\n    verify: true\n    timeout: 5\n  }}\n}}\n",
                t.server_cert.display(),
                t.server_key.display(),
                t.ca_file.display()
            ),
        };
        ServerConf {
            xkey: self.xkey.as_ref().map(XKey::public_key),
            // A slow first login on a loaded machine still makes it, and a
            // refusal well under this was a signed error, not a timeout.
            timeout_secs: Some(10),
            top_level: tls + &websocket,
            ..ServerConf::new(self.issuer.public_key(), auth_user)
        }
    }

    /// A portcullis.toml for `url` with the given `[[plugins]]` tables.
    pub fn host_config(&self, url: &str, plugins: &str) -> String {
        let xkey = if self.xkey.is_some() {
            "xkey_seed = \"xkey.nk\""
        } else {
            ""
        };
        let login = self.auth_user().nats_login("auth.nk");
        let tls = self
            .tls
            .as_ref()
            .map(|t| {
                format!(
                    "tls = {{ ca_file = \"{}\", cert_file = \"{}\", key_file = \"{}\" }}",
                    t.ca_file.display(),
                    t.portcullis_cert.display(),
                    t.portcullis_key.display()
                )
            })
            .unwrap_or_default();
        format!(
            r#"
[nats]
servers = ["{url}"]
{login}
{tls}

[callout]
issuer_seed = "issuer.nk"
{xkey}

[runtime]
cache_dir = "{cache}"

{plugins}
"#,
            cache = cache_dir().display()
        )
    }

    /// The static-users plugin table, as docs/configuration.md shows it.
    pub fn static_users(&self) -> String {
        format!(
            r#"
[[plugins]]
name = "users"
wasm = "{}"
accounts = ["APP1", "APP2"]
max_expiry = "1h"
config_file = "users.json"
"#,
            plugin("static_users").display()
        )
    }

    pub fn write_host_config(&self, text: &str) -> Result<portcullis::config::Config> {
        let path = self.dir.path().join("portcullis.toml");
        std::fs::write(&path, text)?;
        Ok(portcullis::config::Config::load(&path)?)
    }
}

/// Replace `path` the way deploy tools do: write a temp file, then rename.
pub fn replace_file(path: &Path, content: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    std::fs::write(&tmp, content)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}
