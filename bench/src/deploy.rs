//! What each benchmark target runs: the nats-server configuration, the
//! keys, the users and the portcullis.toml, generated fresh per measurement
//! in a temporary directory.

use anyhow::Result;
use portcullis::deployment::{AuthUser, ServerConf, USERS_JSON};
use std::path::{Path, PathBuf};

/// The job every target does: the users `portcullis init` writes (alice
/// -> APP1, bob -> APP2 limited to `bob.>`, as in `../shared/peers`), where
/// bob may also subscribe to `_INBOX.>`, as the ceiling target's config
/// lets him.
pub fn users() -> Result<serde_json::Map<String, serde_json::Value>> {
    let mut users: serde_json::Value = serde_json::from_str(USERS_JSON)?;
    users["bob"]["permissions"]["sub"]["allow"]
        .as_array_mut()
        .ok_or_else(|| anyhow::anyhow!("USERS_JSON: bob has no sub allow list"))?
        .push("_INBOX.>".into());
    match users {
        serde_json::Value::Object(map) => Ok(map),
        _ => anyhow::bail!("USERS_JSON is not an object"),
    }
}

fn users_json() -> Result<String> {
    Ok(serde_json::to_string_pretty(&users()?)?)
}

pub const AUTH_USER: &str = "auth";
pub const AUTH_PASS: &str = "auth";

/// The user Portcullis logs in as, in nats-server.conf and portcullis.toml.
fn auth_user() -> AuthUser {
    AuthUser::Password {
        user: AUTH_USER.into(),
        password: AUTH_PASS.into(),
    }
}

/// Where a plugin's configuration comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PluginConfig {
    /// `config_file = "users.json"`.
    UsersJson,
    /// An inline TOML table.
    Inline(&'static str),
    /// `config_file = "oidc.json"`, written per run from [`OidcSetup`]:
    /// the identity provider's keys (or its URL) exist only once the run
    /// has made them.
    Oidc,
}

/// One plugin of a target's chain.
#[derive(Debug, Clone)]
pub struct PluginSpec {
    pub name: &'static str,
    pub wasm: PathBuf,
    pub config: PluginConfig,
    /// An inline `grants` table, if the plugin needs one.
    pub grants: Option<&'static str>,
    pub memory_mb: u32,
}

/// Where the deciding plugin reads alice and bob from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Store {
    /// users.json, loaded once.
    File,
    /// A row per user in a real PostgreSQL, read per login (`sql` grant).
    Sql,
    /// A key per user in a JetStream KV bucket, read per login from the
    /// host's watched copy (`kv` grant).
    Kv,
    /// No password anywhere: clients present an ID token whose `sub` the
    /// oidc plugin's rules map to alice's and bob's accounts and
    /// permissions; the provider's public keys are in the configuration.
    Jwks,
    /// As [`Store::Jwks`], the keys fetched from a local identity provider
    /// over HTTP (`http` grant), kept by the host's cache.
    JwksUri,
}

impl Store {
    /// Whether the clients log in with an ID token instead of a password.
    pub fn tokens(self) -> bool {
        matches!(self, Store::Jwks | Store::JwksUri)
    }
}

/// The `[databases.NAME]` the `sql` target's plugin is granted.
pub const SQL_DATABASE: &str = "users";
/// The KV bucket the `kv` target's plugin is granted.
pub const KV_BUCKET: &str = "users";

/// The users table of the `sql` target, filled from [`users`] by the runner.
pub const SQL_SCHEMA: &str = "CREATE TABLE nats_users (name text PRIMARY KEY, pass text NOT NULL, \
     account text NOT NULL, permissions jsonb)";
/// The one statement the `sql` target's plugin may run.
const SQL_QUERY: &str = "SELECT pass, account, permissions FROM nats_users WHERE name = $1";

/// What a target puts behind nats-server.
#[derive(Debug, Clone)]
pub enum Kind {
    /// alice and bob as static users in the server's own config: no callout.
    Ceiling,
    Portcullis {
        plugins: Vec<PluginSpec>,
        xkey: bool,
        store: Store,
    },
}

#[derive(Debug, Clone)]
pub struct Target {
    /// Short name used on the command line, in JSON and in the plot.
    pub id: &'static str,
    pub label: &'static str,
    pub kind: Kind,
}

/// Where the plugin components are and which of them exist.
pub struct Plugins {
    pub dir: PathBuf,
    pub js: Option<PathBuf>,
    pub py: Option<PathBuf>,
}

impl Plugins {
    /// Look for the components in `dir`; JS and Python ones may be named
    /// `static_users_js.wasm` or `static-users-js.wasm` (and `_py`), or be
    /// given explicitly.
    pub fn find(dir: &Path, js: Option<PathBuf>, py: Option<PathBuf>) -> Plugins {
        let first = |names: &[&str]| names.iter().map(|n| dir.join(n)).find(|p| p.exists());
        Plugins {
            dir: dir.to_owned(),
            js: js.or_else(|| first(&["static_users_js.wasm", "static-users-js.wasm"])),
            py: py.or_else(|| first(&["static_users_py.wasm", "static-users-py.wasm"])),
        }
    }

    fn rust(&self) -> PluginSpec {
        PluginSpec {
            name: "users",
            wasm: self.dir.join("static_users.wasm"),
            config: PluginConfig::UsersJson,
            grants: None,
            memory_mb: 32,
        }
    }
}

/// Every target the runner knows, in table order, and a note for each one
/// that cannot run here.
pub fn targets(plugins: &Plugins) -> (Vec<Target>, Vec<String>) {
    let rust = plugins.rust();
    let mut out = vec![
        Target {
            id: "ceiling",
            label: "nats-server static users (no callout: the ceiling)",
            kind: Kind::Ceiling,
        },
        Target {
            id: "rust",
            label: "Portcullis, Rust static-users, xkey on",
            kind: Kind::Portcullis {
                plugins: vec![rust.clone()],
                xkey: true,
                store: Store::File,
            },
        },
        Target {
            id: "rust-noxkey",
            label: "Portcullis, Rust static-users, xkey off",
            kind: Kind::Portcullis {
                plugins: vec![rust.clone()],
                xkey: false,
                store: Store::File,
            },
        },
    ];
    let mut notes = Vec::new();
    for (id, label, wasm, memory_mb) in [
        (
            "js",
            "Portcullis, JavaScript static-users, xkey on",
            &plugins.js,
            128,
        ),
        (
            "py",
            "Portcullis, Python static-users, xkey on",
            &plugins.py,
            256,
        ),
    ] {
        match wasm {
            Some(wasm) => out.push(Target {
                id,
                label,
                kind: Kind::Portcullis {
                    plugins: vec![PluginSpec {
                        name: "users",
                        wasm: wasm.clone(),
                        config: PluginConfig::UsersJson,
                        grants: None,
                        memory_mb,
                    }],
                    xkey: true,
                    store: Store::File,
                },
            }),
            None => notes.push(format!(
                "`{id}` skipped: no {} static-users component in {} (build it, or pass --{id}-wasm)",
                if id == "js" { "JavaScript" } else { "Python" },
                plugins.dir.display()
            )),
        }
    }
    // Two plugins that abstain for everyone but a user who never logs in
    // (the hostile test fixture, idle), then the one that decides.
    let abstain = |name| PluginSpec {
        name,
        wasm: plugins.dir.join("hostile.wasm"),
        config: PluginConfig::Inline(r#"{ attack = "trap", user = "mallory" }"#),
        grants: None,
        memory_mb: 32,
    };
    out.push(Target {
        id: "chain3",
        label: "Portcullis, chain of 3: two abstain, Rust static-users decides, xkey on",
        kind: Kind::Portcullis {
            plugins: vec![abstain("first"), abstain("second"), rust],
            xkey: true,
            store: Store::File,
        },
    });
    // The same decision as `rust`, its users read per login from a store
    // the plugin is granted instead of from the file loaded at start.
    out.push(Target {
        id: "sql",
        label: "Portcullis, Rust sql-users on PostgreSQL (a row per login), xkey on",
        kind: Kind::Portcullis {
            plugins: vec![PluginSpec {
                name: "users",
                wasm: plugins.dir.join("sql_users.wasm"),
                config: PluginConfig::Inline(r#"{ database = "users", query = "user" }"#),
                grants: Some(r#"{ sql = ["users"] }"#),
                memory_mb: 32,
            }],
            xkey: true,
            store: Store::Sql,
        },
    });
    out.push(Target {
        id: "kv",
        label: "Portcullis, Rust static-users-kv on a JetStream KV bucket, xkey on",
        kind: Kind::Portcullis {
            plugins: vec![PluginSpec {
                name: "users",
                wasm: plugins.dir.join("static_users_kv.wasm"),
                config: PluginConfig::Inline(r#"{ kv_bucket = "users" }"#),
                grants: Some(r#"{ kv = ["users"] }"#),
                memory_mb: 32,
            }],
            xkey: true,
            store: Store::Kv,
        },
    });
    // The same job for clients that bring an ID token, verified against
    // keys in the configuration or fetched from the provider: the cost of
    // `jwks_uri` once the host's cache is warm.
    for (id, label, wasm, store) in [
        (
            "oidc",
            "Portcullis, Rust oidc, RS256 ID tokens, static jwks, xkey on",
            "oidc_auth.wasm",
            Store::Jwks,
        ),
        (
            "oidc-uri",
            "Portcullis, Rust oidc, RS256 ID tokens, jwks_uri on a local IdP (warm cache), xkey on",
            "oidc_http_auth.wasm",
            Store::JwksUri,
        ),
    ] {
        out.push(Target {
            id,
            label,
            kind: Kind::Portcullis {
                plugins: vec![PluginSpec {
                    name: "oidc",
                    wasm: plugins.dir.join(wasm),
                    config: PluginConfig::Oidc,
                    // The `http` grant names the provider's origin, known
                    // per run: written from [`OidcSetup`].
                    grants: None,
                    memory_mb: 32,
                }],
                xkey: true,
                store,
            },
        });
    }
    (out, notes)
}

/// The `oidc` targets' plugin configuration, as the run's provider
/// published it.
pub struct OidcSetup {
    /// oidc.json: issuer, audience, the keys (`jwks`) or where to fetch
    /// them (`jwks_uri`), and the rules of [`oidc_config`].
    pub config: serde_json::Value,
    /// The provider's origin, granted to the plugin (`jwks_uri` only).
    pub origin: Option<String>,
}

/// The oidc plugin's configuration for `issuer`'s tokens with `keys`
/// (`{"jwks": ...}` or `{"jwks_uri": ...}`): one rule per user of
/// [`users`], matched on `sub`, granting that user's account and
/// permissions; any other subject matches no rule and is refused.
pub fn oidc_config(
    issuer: &str,
    audience: &str,
    keys: serde_json::Value,
) -> Result<serde_json::Value> {
    let mut rules = Vec::new();
    for (name, mut entry) in users()? {
        let entry = entry
            .as_object_mut()
            .ok_or_else(|| anyhow::anyhow!("users: {name} is not an object"))?;
        entry.remove("pass");
        entry.insert("when".into(), serde_json::json!({ "sub": name }));
        rules.push(serde_json::Value::Object(std::mem::take(entry)));
    }
    let mut config = serde_json::json!({ "issuer": issuer, "audience": audience, "rules": rules });
    let (Some(config_map), serde_json::Value::Object(keys)) = (config.as_object_mut(), keys) else {
        anyhow::bail!("oidc keys must be an object");
    };
    config_map.extend(keys);
    Ok(config)
}

impl Kind {
    pub fn store(&self) -> Option<Store> {
        match self {
            Kind::Ceiling => None,
            Kind::Portcullis { store, .. } => Some(*store),
        }
    }
}

impl Target {
    /// Components this target needs that are missing.
    pub fn missing(&self) -> Vec<PathBuf> {
        match &self.kind {
            Kind::Ceiling => vec![],
            Kind::Portcullis { plugins, .. } => plugins
                .iter()
                .filter(|p| !p.wasm.exists())
                .map(|p| p.wasm.clone())
                .collect(),
        }
    }
}

/// Keys of one callout deployment.
pub struct Keys {
    pub issuer: nkeys::KeyPair,
    pub xkey: Option<nkeys::XKey>,
}

impl Keys {
    pub fn new(xkey: bool) -> Keys {
        Keys {
            issuer: nkeys::KeyPair::new_account(),
            xkey: xkey.then(nkeys::XKey::new),
        }
    }
}

/// nats-server's config; `dir` holds JetStream's store for the `kv` target.
pub fn server_config(kind: &Kind, keys: &Keys, dir: &Path) -> String {
    match kind {
        Kind::Ceiling => r#"
accounts {
  APP1 { users: [ { user: alice, password: alice } ] }
  APP2 { users: [ { user: bob, password: bob, permissions: {
      publish: { allow: ["bob.>"] }, subscribe: { allow: ["bob.>", "_INBOX.>"] }, allow_responses: { max: 1 } } } ] }
  SYS {}
}
system_account: SYS
"#
        .to_owned(),
        Kind::Portcullis { store, .. } => {
            let kv = *store == Store::Kv;
            ServerConf {
                xkey: keys.xkey.as_ref().map(nkeys::XKey::public_key),
                timeout_secs: Some(10),
                // The bucket lives in the callout account, where the host
                // watches it.
                auth_jetstream: kv,
                top_level: if kv {
                    format!(
                        "jetstream {{ store_dir: {:?}, max_memory_store: 64MB, max_file_store: 256MB }}\n",
                        dir.join("jetstream").display().to_string()
                    )
                } else {
                    String::new()
                },
                ..ServerConf::new(keys.issuer.public_key(), auth_user())
            }
            .render()
        }
    }
}

/// The `sql` target's database: its URL (no password) and the file
/// holding its password.
pub struct Database {
    pub url: String,
    pub password_file: PathBuf,
}

/// Write keys, users.json and (for Portcullis) portcullis.toml into `dir`;
/// the path of portcullis.toml. `database` is the `sql` target's, `oidc`
/// the `oidc` targets'.
pub fn write_service_files(
    dir: &Path,
    kind: &Kind,
    keys: &Keys,
    url: &str,
    cache_dir: &Path,
    database: Option<&Database>,
    oidc: Option<&OidcSetup>,
) -> Result<Option<PathBuf>> {
    std::fs::write(dir.join("users.json"), users_json()?)?;
    let Kind::Portcullis { plugins, .. } = kind else {
        return Ok(None);
    };
    std::fs::write(dir.join("issuer.nk"), keys.issuer.seed()?)?;
    let mut toml = format!(
        r#"[nats]
servers = [{url:?}]
{login}

[callout]
issuer_seed = "issuer.nk"
"#,
        // Password login: no seed file to name.
        login = auth_user().nats_login("")
    );
    if let Some(x) = &keys.xkey {
        std::fs::write(dir.join("xkey.nk"), x.seed()?)?;
        toml.push_str("xkey_seed = \"xkey.nk\"\n");
    }
    toml.push_str(&format!(
        "\n[runtime]\ncache_dir = {:?}\n",
        cache_dir.display().to_string()
    ));
    for p in plugins {
        toml.push_str(&format!(
            "\n[[plugins]]\nname = {:?}\nwasm = {:?}\naccounts = [\"APP1\", \"APP2\"]\nmax_expiry = \"1h\"\nmemory_mb = {}\n",
            p.name,
            p.wasm.display().to_string(),
            p.memory_mb
        ));
        match p.config {
            PluginConfig::Inline(table) => toml.push_str(&format!("config = {table}\n")),
            PluginConfig::UsersJson => toml.push_str("config_file = \"users.json\"\n"),
            PluginConfig::Oidc => {
                let setup = oidc.ok_or_else(|| {
                    anyhow::anyhow!("plugin {}: no identity provider for oidc.json", p.name)
                })?;
                std::fs::write(dir.join("oidc.json"), setup.config.to_string())?;
                toml.push_str("config_file = \"oidc.json\"\n");
                if let Some(origin) = &setup.origin {
                    toml.push_str(&format!("grants = {{ http = [{origin:?}] }}\n"));
                }
            }
        }
        if let Some(grants) = p.grants {
            toml.push_str(&format!("grants = {grants}\n"));
        }
    }
    if let Some(db) = database {
        toml.push_str(&format!(
            "\n[databases.{SQL_DATABASE}]\nurl = {:?}\npassword = {:?}\nmax_rows = 1\n\n[databases.{SQL_DATABASE}.queries]\nuser = {SQL_QUERY:?}\n",
            db.url,
            format!("file:{}", db.password_file.display()),
        ));
    }
    let path = dir.join("portcullis.toml");
    std::fs::write(&path, toml)?;
    Ok(Some(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every target's generated portcullis.toml is one the host accepts,
    /// with the chain the target describes.
    #[test]
    fn generated_configs_load_in_the_host() {
        let plugins = Plugins::find(
            Path::new("/nonexistent"),
            Some("/x/js.wasm".into()),
            Some("/x/py.wasm".into()),
        );
        let (targets, notes) = targets(&plugins);
        assert!(notes.is_empty(), "{notes:?}");
        let ids: Vec<&str> = targets.iter().map(|t| t.id).collect();
        assert_eq!(
            ids,
            [
                "ceiling",
                "rust",
                "rust-noxkey",
                "js",
                "py",
                "chain3",
                "sql",
                "kv",
                "oidc",
                "oidc-uri"
            ]
        );
        for target in &targets {
            let dir = tempfile::tempdir().unwrap();
            let keys = Keys::new(matches!(target.kind, Kind::Portcullis { xkey: true, .. }));
            let server = server_config(&target.kind, &keys, dir.path());
            let database = Database {
                url: "postgres://portcullis@127.0.0.1:5432/postgres".into(),
                password_file: dir.path().join("pg.pass"),
            };
            // The loader reads `file:` passwords.
            std::fs::write(&database.password_file, "pw").unwrap();
            let store = target.kind.store();
            let origin = "http://127.0.0.1:8080";
            let oidc = OidcSetup {
                config: oidc_config(
                    "https://id.example.test/realms/nats",
                    "nats",
                    if store == Some(Store::JwksUri) {
                        serde_json::json!({ "jwks_uri": format!("{origin}/certs") })
                    } else {
                        serde_json::json!({ "jwks": { "keys": [] } })
                    },
                )
                .unwrap(),
                origin: (store == Some(Store::JwksUri)).then(|| origin.to_owned()),
            };
            let path = write_service_files(
                dir.path(),
                &target.kind,
                &keys,
                "nats://127.0.0.1:4222",
                &dir.path().join("cache"),
                (store == Some(Store::Sql)).then_some(&database),
                store.is_some_and(Store::tokens).then_some(&oidc),
            )
            .unwrap();
            assert_eq!(
                server.contains("jetstream"),
                store == Some(Store::Kv),
                "{}: {server}",
                target.id
            );
            match &target.kind {
                Kind::Ceiling => {
                    assert!(path.is_none());
                    assert!(!server.contains("auth_callout"), "{server}");
                }
                Kind::Portcullis { plugins, xkey, .. } => {
                    assert!(server.contains(&keys.issuer.public_key()), "{server}");
                    assert_eq!(server.contains("xkey: X"), *xkey, "{server}");
                    let config = portcullis::config::Config::load(&path.unwrap())
                        .unwrap_or_else(|e| panic!("{}: {e}", target.id));
                    assert_eq!(config.plugins.len(), plugins.len(), "{}", target.id);
                    assert_eq!(config.xkey_seed().is_some(), *xkey, "{}", target.id);
                    assert_eq!(
                        config.databases.contains_key(SQL_DATABASE),
                        store == Some(Store::Sql),
                        "{}",
                        target.id
                    );
                    let grants = &config.plugins.last().unwrap().grants;
                    assert_eq!(grants.sql.is_empty(), store != Some(Store::Sql));
                    assert_eq!(grants.kv.is_empty(), store != Some(Store::Kv));
                    let http: &[String] = if store == Some(Store::JwksUri) {
                        &[origin.to_owned()]
                    } else {
                        &[]
                    };
                    assert_eq!(grants.http, http, "{}", target.id);
                    assert_eq!(
                        dir.path().join("oidc.json").exists(),
                        store.is_some_and(Store::tokens),
                        "{}",
                        target.id
                    );
                }
            }
        }
    }

    /// The oidc targets do the job of users.json: alice in APP1, bob in
    /// APP2 with his permissions, both matched on `sub` only, and no
    /// password carried into the plugin's configuration.
    #[test]
    fn oidc_rules_grant_what_users_json_grants() {
        let config = oidc_config(
            "https://id.example.test/realms/nats",
            "nats",
            serde_json::json!({ "jwks_uri": "http://127.0.0.1:1/certs" }),
        )
        .unwrap();
        assert_eq!(config["issuer"], "https://id.example.test/realms/nats");
        assert_eq!(config["audience"], "nats");
        assert_eq!(config["jwks_uri"], "http://127.0.0.1:1/certs");
        let rules = config["rules"].as_array().unwrap();
        let users = users().unwrap();
        assert_eq!(rules.len(), users.len());
        for (rule, (name, entry)) in rules.iter().zip(&users) {
            assert_eq!(rule["when"], serde_json::json!({ "sub": name }));
            assert_eq!(rule["account"], entry["account"]);
            assert_eq!(rule.get("permissions"), entry.get("permissions"));
            assert!(rule.get("pass").is_none(), "{rule}");
        }
        assert!(!config.to_string().contains("\"pass\""), "{config}");
        assert!(oidc_config("i", "a", serde_json::json!(["not an object"])).is_err());
    }

    #[test]
    fn missing_js_and_python_components_are_skipped_with_a_note() {
        let (targets, notes) = targets(&Plugins::find(Path::new("/nonexistent"), None, None));
        assert!(targets.iter().all(|t| t.id != "js" && t.id != "py"));
        assert_eq!(notes.len(), 2, "{notes:?}");
        assert!(notes[0].contains("`js` skipped"), "{notes:?}");
    }
}
