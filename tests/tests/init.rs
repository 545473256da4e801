//! What `portcullis init` writes, run as an operator runs it: the command
//! writes a deployment, nats-server starts with its nats-server.conf (on an
//! ephemeral loopback port), `portcullis run` with its portcullis.toml, and
//! clients log in. Each option of `init` is judged by the logins it makes
//! possible: NKey logins (`--auth nkey`), accounts pushed at run time
//! (`--resolver full`, `--any-account`), users the server decides without
//! the callout (`app1.creds`, `app2.creds`).

use anyhow::{Context, Result};
use nkeys::KeyPair;
use portcullis_tests::{
    HostProcess, NatsServer, WAIT, admitted, cache_dir, expect_refused, plugin, portcullis_bin,
    user_info,
};
use serde_json::json;
use std::path::Path;

/// `portcullis init DIR --plugin static_users.wasm ARGS`.
fn init(dir: &Path, args: &[&str]) -> Result<()> {
    let out = std::process::Command::new(portcullis_bin())
        .arg("init")
        .arg(dir)
        .arg("--plugin")
        .arg(plugin("static_users"))
        .args(args)
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "portcullis init {args:?} failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(())
}

/// Edit the portcullis.toml `init` wrote in `dir`.
fn edit_toml(dir: &Path, edit: impl FnOnce(String) -> String) -> Result<()> {
    let path = dir.join("portcullis.toml");
    let text = std::fs::read_to_string(&path)?;
    std::fs::write(&path, edit(text))?;
    Ok(())
}

/// nats-server with the written nats-server.conf, then `portcullis run`
/// with the written portcullis.toml pointed at it (and at the tests'
/// shared compile cache).
fn start(dir: &Path) -> Result<(NatsServer, HostProcess)> {
    let server = NatsServer::start(&std::fs::read_to_string(dir.join("nats-server.conf"))?)?;
    edit_toml(dir, |text| {
        let text = text.replace("nats://127.0.0.1:4222", &server.url());
        format!(
            "{text}\n[runtime]\ncache_dir = {:?}\n",
            cache_dir().display().to_string()
        )
    })?;
    let host = HostProcess::start(&dir.join("portcullis.toml"))?;
    Ok((server, host))
}

/// Connect options with the creds file `name` in `dir`.
async fn creds(dir: &Path, name: &str) -> Result<async_nats::ConnectOptions> {
    Ok(
        async_nats::ConnectOptions::with_credentials_file(dir.join(name))
            .await
            .with_context(|| name.to_owned())?
            .connection_timeout(WAIT),
    )
}

/// The public key `init` gave account `name`.
fn account(dir: &Path, name: &str) -> Result<String> {
    let token = std::fs::read_to_string(dir.join(format!("accounts/{name}.jwt")))?;
    Ok(portcullis_protocol::accounts::decode_account(token.trim())?.sub)
}

/// After a plain `init` the server sends no nonce and every NKey login is
/// denied; with `--auth nkey` Portcullis is the NKey user that makes the
/// server send one, and a client that signs it with its seed gets in
/// (through the nkeys plugin), while password logins still work.
#[tokio::test]
async fn init_auth_nkey_makes_nkey_logins_work() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let dir = dir.path();
    init(dir, &["--auth", "nkey"])?;
    let sensor = KeyPair::new_user();
    std::fs::write(
        dir.join("nkeys.json"),
        json!({ "users": { sensor.public_key(): { "account": "APP2", "name": "sensor" } } })
            .to_string(),
    )?;
    edit_toml(dir, |text| {
        // Password logins to static-users, NKey logins to nkeys.
        text.replace(
            "config_file = \"users.json\"",
            "config_file = \"users.json\"\nmatch = { nkey = false }",
        ) + &format!(
            r#"
[[plugins]]
name = "nkeys"
wasm = {:?}
accounts = ["APP2"]
max_expiry = "1h"
config_file = "nkeys.json"
match = {{ nkey = true }}
"#,
            plugin("nkeys_auth").display().to_string()
        )
    })?;
    let (server, _host) = start(dir)?;

    let client = async_nats::ConnectOptions::with_nkey(sensor.seed()?)
        .connection_timeout(WAIT)
        .connect(server.url())
        .await?;
    let info = user_info(&client).await?;
    assert_eq!(info["account"], "APP2", "{info}");
    assert_eq!(info["user"], "sensor", "{info}");

    let alice = portcullis_tests::login(&server.url(), "alice", "alice").await?;
    assert_eq!(user_info(&alice).await?["account"], "APP1");
    Ok(())
}

/// An account JWT for a new account `name`, signed by the operator's
/// signing key `init` wrote; its signing key's seed goes to
/// keys/NAME-signing.nk. Returns (public key, JWT).
fn new_account(dir: &Path, name: &str) -> Result<(String, String)> {
    let key = KeyPair::new_account();
    let signing = KeyPair::new_account();
    std::fs::write(
        dir.join(format!("keys/{name}-signing.nk")),
        signing.seed()? + "\n",
    )?;
    let operator_signing =
        KeyPair::from_seed(std::fs::read_to_string(dir.join("keys/operator-signing.nk"))?.trim())?;
    let body = portcullis_protocol::accounts::Account {
        signing_keys: vec![portcullis_protocol::accounts::SigningKey::Plain(
            signing.public_key(),
        )],
        ..Default::default()
    };
    let token = portcullis_protocol::accounts::account_jwt(
        name,
        &key.public_key(),
        body,
        &operator_signing,
        portcullis_protocol::time::unix_now(),
    )?;
    Ok((key.public_key(), token))
}

/// `--resolver full`: an account pushed with sys.creds after the server
/// started (as `nsc push` does) is live. With `--any-account` (AUTH's
/// allowed_accounts is "*") Portcullis places carol in it; without, AUTH
/// lists APP1 and APP2 only and the server refuses the placement.
async fn pushed_account(any_account: bool) -> Result<()> {
    let dir = tempfile::tempdir()?;
    let dir = dir.path();
    let mut args = vec!["--mode", "operator", "--resolver", "full"];
    if any_account {
        args.push("--any-account");
    }
    init(dir, &args)?;
    let (app3, token) = new_account(dir, "APP3")?;
    let mut users: serde_json::Value = serde_json::from_str(portcullis::deployment::USERS_JSON)?;
    users["carol"] = json!({ "pass": "carol", "account": "APP3" });
    std::fs::write(dir.join("users.json"), users.to_string())?;
    edit_toml(dir, |text| {
        text.replace(
            "accounts = [\"APP1\", \"APP2\"]",
            "accounts = [\"APP1\", \"APP2\", \"APP3\"]",
        ) + &format!(
            "\n[accounts.APP3]\npublic_key = \"{app3}\"\nsigning_seed = \"keys/APP3-signing.nk\"\n"
        )
    })?;
    let (server, _host) = start(dir)?;

    let sys = creds(dir, "sys.creds").await?.connect(server.url()).await?;
    let reply = tokio::time::timeout(
        WAIT,
        sys.request("$SYS.REQ.CLAIMS.UPDATE", token.clone().into()),
    )
    .await
    .context("no answer to the push")??;
    let reply: serde_json::Value = serde_json::from_slice(&reply.payload)?;
    assert_eq!(reply["data"]["code"], 200, "{reply}");
    assert_eq!(reply["data"]["account"], app3, "{reply}");
    assert_eq!(
        std::fs::read_to_string(dir.join(format!("jwt/{app3}.jwt")))?.trim(),
        token,
        "the resolver directory keeps the pushed JWT"
    );

    let sentinel = || async {
        creds(dir, "sentinel.creds")
            .await
            .map(|o| o.user_and_password("carol".into(), "carol".into()))
    };
    if any_account {
        let carol = sentinel().await?.connect(server.url()).await?;
        assert_eq!(user_info(&carol).await?["account"], app3);
    } else {
        let mark = server.log_mark();
        expect_refused(sentinel().await?.connect(server.url()))
            .await
            .map_err(|e| e.context("APP3 is not in AUTH's allowed_accounts"))?;
        server
            .wait_for_log_since(
                mark,
                "not permitted as valid account option for auth callout",
            )
            .await?;
    }
    // The accounts init wrote are served from the directory as well.
    let alice = creds(dir, "sentinel.creds")
        .await?
        .user_and_password("alice".into(), "alice".into())
        .connect(server.url())
        .await?;
    assert_eq!(user_info(&alice).await?["account"], account(dir, "APP1")?);
    Ok(())
}

#[tokio::test]
async fn resolver_full_with_any_account_places_users_in_a_pushed_account() -> Result<()> {
    pushed_account(true).await
}

#[tokio::test]
async fn resolver_full_without_any_account_refuses_a_pushed_account() -> Result<()> {
    pushed_account(false).await
}

/// app1.creds and app2.creds carry their own JWT, issued by APP1 and APP2:
/// the server admits them by their account's JWT and never calls out.
/// alice and bob (sentinel.creds) still go through Portcullis, and only
/// their two decisions reach the host.
#[tokio::test]
async fn app_creds_log_in_without_the_callout_beside_callout_users() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let dir = dir.path();
    init(dir, &["--mode", "operator"])?;
    let (server, host) = start(dir)?;
    let mark = host.log_mark();

    for (file, name) in [("app1.creds", "APP1"), ("app2.creds", "APP2")] {
        let client = creds(dir, file).await?.connect(server.url()).await?;
        let info = user_info(&client).await?;
        assert_eq!(info["account"], account(dir, name)?, "{file}: {info}");
    }
    let sentinel = |user: &str| {
        let user = user.to_owned();
        async move {
            let options = creds(dir, "sentinel.creds").await?;
            anyhow::Ok(options.user_and_password(user.clone(), user))
        }
    };
    for user in ["alice", "bob"] {
        let options = sentinel(user).await?;
        anyhow::ensure!(admitted(options.connect(server.url())).await?, "{user}");
    }
    host.wait_for_log_since(mark, "user=bob").await?;
    // Started means serving: no decision was logged before `mark`.
    let log = host.log();
    let decisions: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("login allowed") || l.contains("login denied"))
        .collect();
    assert_eq!(decisions.len(), 2, "alice and bob only: {log}");
    assert!(decisions[0].contains("user=alice"), "{log}");
    assert!(decisions[1].contains("user=bob"), "{log}");
    Ok(())
}
