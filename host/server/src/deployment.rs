//! What a deployment of Portcullis looks like around the host: the pieces
//! `portcullis init` writes, which the tests and benchmarks build their
//! deployments from too, so what they exercise is what operators start
//! with.

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

/// The user Portcullis itself logs in as: the only user of the AUTH
/// account, and the only login the server decides without asking.
#[derive(Debug, Clone)]
pub enum AuthUser {
    Password {
        user: String,
        password: String,
    },
    /// An NKey user, by public key (`U...`).
    NKey(String),
}

impl AuthUser {
    /// The credential lines of portcullis.toml's `[nats]` section that log
    /// in as this user: its counterpart in nats-server.conf is the entry
    /// [`ServerConf::render`] writes. An NKey user logs in with the seed in
    /// `nkey_seed` (a path relative to portcullis.toml, or `env:NAME`).
    pub fn nats_login(&self, nkey_seed: &str) -> String {
        match self {
            AuthUser::Password { user, password } => format!(
                "user = {}\npassword = {}",
                toml_string(user),
                toml_string(password)
            ),
            AuthUser::NKey(_) => format!("nkey = {}", toml_string(nkey_seed)),
        }
    }
}

/// The nats-server.conf of a config-mode deployment: the AUTH account
/// Portcullis connects to, the APP1 and APP2 accounts users land in, SYS,
/// and the `auth_callout` block that hands every other login to Portcullis.
///
/// The accounts are those of [`USERS_JSON`] and of the starter
/// portcullis.toml; a deployment that needs others writes its own.
#[derive(Debug, Clone)]
pub struct ServerConf {
    /// Public key of the account that signs responses (`A...`).
    pub issuer: String,
    /// Public xkey requests are encrypted to (`X...`); none: requests
    /// travel in the clear.
    pub xkey: Option<String>,
    pub auth_user: AuthUser,
    /// How long the server waits for a login to be decided
    /// (`authorization.timeout`); nats-server's default when none.
    pub timeout_secs: Option<u32>,
    /// JetStream for the AUTH account: fleet plugin releases live in its
    /// object store. Needs a top-level `jetstream` block as well.
    pub auth_jetstream: bool,
    /// Written before the accounts: comments, `listen`, `tls`, `jetstream`.
    pub top_level: String,
}

impl ServerConf {
    pub fn new(issuer: impl Into<String>, auth_user: AuthUser) -> ServerConf {
        ServerConf {
            issuer: issuer.into(),
            xkey: None,
            auth_user,
            timeout_secs: None,
            auth_jetstream: false,
            top_level: String::new(),
        }
    }

    pub fn render(&self) -> String {
        let (entry, name, who) = match &self.auth_user {
            AuthUser::Password { user, password } => (
                format!("{{ user: {user}, password: {} }}", quoted(password)),
                user.clone(),
                format!("`{user}`"),
            ),
            AuthUser::NKey(key) => (
                format!("{{ nkey: {key} }}"),
                key.clone(),
                "the NKey user".to_owned(),
            ),
        };
        let top_level = match self.top_level.trim_end() {
            "" => String::new(),
            text => format!("{text}\n\n"),
        };
        let jetstream = if self.auth_jetstream {
            "    jetstream: enabled\n"
        } else {
            ""
        };
        let timeout = self
            .timeout_secs
            .map(|secs| format!("  timeout: {secs}\n"))
            .unwrap_or_default();
        let xkey = self
            .xkey
            .as_ref()
            .map(|xkey| {
                format!(
                    "    # Public xkey of Portcullis (portcullis.toml's xkey_seed): requests are encrypted to it.\n    xkey: {xkey}\n"
                )
            })
            .unwrap_or_default();
        format!(
            r#"{top_level}accounts {{
  # Portcullis itself connects as {who} in AUTH.
  AUTH {{
    users: [ {entry} ]
{jetstream}  }}
  APP1 {{}}
  APP2 {{}}
  SYS {{}}
}}
system_account: SYS

authorization {{
{timeout}  auth_callout {{
    # Public key of the account that signs responses (portcullis.toml's issuer_seed).
    issuer: {issuer}
{xkey}    account: AUTH
    auth_users: [ {name} ]
  }}
}}
"#,
            issuer = self.issuer,
        )
    }
}

/// A nats-server config string: passwords and paths may hold any
/// character.
pub fn quoted(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A TOML basic string.
fn toml_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_nats_login_matches_the_server_entry() {
        let password = AuthUser::Password {
            user: "auth".into(),
            password: "p\"w\\".into(),
        };
        assert_eq!(
            password.nats_login("unused"),
            "user = \"auth\"\npassword = \"p\\\"w\\\\\""
        );
        let nkey = AuthUser::NKey("UABC".into());
        assert_eq!(nkey.nats_login("keys/auth.nk"), "nkey = \"keys/auth.nk\"");
        assert!(
            ServerConf::new("AISSUER", nkey)
                .render()
                .contains("users: [ { nkey: UABC } ]")
        );
    }
}
