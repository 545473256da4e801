//! One host, four plugins, routed by `match` tables: passwords of the
//! nats-by-example users to static-users, a service user to its own
//! static-users entry (an `always_allow`-like rule by config alone, with an
//! argon2 hash from `portcullis hash-password`), NKey logins to nkeys,
//! bearer tokens to oidc. Each kind of client lands where its plugin puts
//! it; a login no plugin claims is refused.

use nkeys::KeyPair;
use portcullis_cli::hash_password::{self, HashOptions};
use portcullis_tests::idp::{AUDIENCE, ISSUER, Idp};
use portcullis_tests::{Deployment, Stack, WAIT, expect_refused, user_info};
use serde_json::json;

struct Chain {
    stack: Stack,
    sensor: KeyPair,
    idp: Idp,
}

async fn chain() -> anyhow::Result<Chain> {
    let deployment = Deployment::new(true)?.with_auth_nkey()?;
    let dir = deployment.dir.path();
    let sensor = KeyPair::new_user();
    let idp = Idp::new()?;
    std::fs::write(
        dir.join("nkeys.json"),
        json!({ "users": { sensor.public_key(): { "account": "APP2", "name": "sensor" } } })
            .to_string(),
    )?;
    std::fs::write(
        dir.join("oidc.json"),
        json!({
            "issuer": ISSUER, "audience": AUDIENCE, "jwks": idp.jwks(),
            "rules": [ { "account": "APP1", "name": "oidc {sub}" } ]
        })
        .to_string(),
    )?;
    // The hash exactly as `portcullis hash-password` makes it, with the
    // default (OWASP) argon2id parameters: 19 MiB, 2 passes, checked within
    // the default 32 MiB memory cap and 200 ms deadline.
    let hash = hash_password::hash("metrics-secret", &HashOptions::default())?;
    std::fs::write(
        dir.join("service.json"),
        json!({ "svc-metrics": { "pass": hash, "account": "APP2" } }).to_string(),
    )?;
    let wasm = |name| portcullis_tests::plugin(name).display().to_string();
    let plugins = format!(
        r#"
[[plugins]]
name = "users"
wasm = "{users}"
accounts = ["APP1", "APP2"]
config_file = "users.json"
match = {{ user = ["alice", "bob"] }}

[[plugins]]
name = "service"
wasm = "{users}"
accounts = ["APP2"]
config_file = "service.json"
match = {{ user = "svc-metrics", token = false, nkey = false }}

[[plugins]]
name = "nkeys"
wasm = "{nkeys}"
accounts = ["APP2"]
config_file = "nkeys.json"
match = {{ nkey = true }}

[[plugins]]
name = "oidc"
wasm = "{oidc}"
accounts = ["APP1"]
max_expiry = "1h"
config_file = "oidc.json"
match = {{ token = true }}
"#,
        users = wasm("static_users"),
        nkeys = wasm("nkeys_auth"),
        oidc = wasm("oidc_auth"),
    );
    let stack = Stack::with_plugins(deployment, &plugins).await?;
    Ok(Chain { stack, sensor, idp })
}

/// `portcullis_decisions_total` for `plugin` and `outcome`.
fn decisions(stack: &Stack, plugin: &str, outcome: &str) -> u64 {
    let needle =
        format!("portcullis_decisions_total{{plugin=\"{plugin}\",outcome=\"{outcome}\"}} ");
    stack
        .host
        .metrics
        .encode()
        .lines()
        .find_map(|l| l.strip_prefix(&needle).and_then(|v| v.trim().parse().ok()))
        .unwrap_or(0)
}

#[tokio::test]
async fn each_kind_of_client_is_routed_to_its_plugin() -> anyhow::Result<()> {
    let Chain { stack, sensor, idp } = chain().await?;
    let url = stack.server.url();

    let alice = stack.login("alice", "alice").await?;
    assert_eq!(user_info(&alice).await?["account"], "APP1");

    let service = stack.login("svc-metrics", "metrics-secret").await?;
    let info = user_info(&service).await?;
    assert_eq!(info["account"], "APP2", "{info}");
    assert_eq!(info["user"], "svc-metrics", "{info}");

    let nkey = async_nats::ConnectOptions::with_nkey(sensor.seed()?)
        .connection_timeout(WAIT)
        .connect(&url)
        .await?;
    let info = user_info(&nkey).await?;
    assert_eq!(
        (info["account"].as_str(), info["user"].as_str()),
        (Some("APP2"), Some("sensor")),
        "{info}"
    );

    let token = async_nats::ConnectOptions::with_token(idp.rs256(&Idp::claims("dana", 300)))
        .connection_timeout(WAIT)
        .connect(&url)
        .await?;
    let info = user_info(&token).await?;
    assert_eq!(
        (info["account"].as_str(), info["user"].as_str()),
        (Some("APP1"), Some("oidc dana")),
        "{info}"
    );

    for plugin in ["users", "service", "nkeys", "oidc"] {
        assert_eq!(decisions(&stack, plugin, "allow"), 1, "{plugin}");
    }
    Ok(())
}

#[tokio::test]
async fn a_login_no_plugin_claims_is_refused() -> anyhow::Result<()> {
    let Chain { stack, idp, .. } = chain().await?;
    let mark = stack.server.log_mark();
    // mallory matches no `user` glob: static-users is never asked (it would
    // deny "unknown user"), nobody else takes passwords.
    expect_refused(stack.login("mallory", "x"))
        .await
        .map_err(|e| e.context("mallory"))?;
    // A JWT passed as a password: oidc only takes `token` logins here.
    expect_refused(stack.login("dana", &idp.rs256(&Idp::claims("dana", 300))))
        .await
        .map_err(|e| e.context("token as password"))?;
    // A token that is not a JWT: oidc is asked and abstains.
    expect_refused(
        async_nats::ConnectOptions::with_token("opaque".into())
            .connection_timeout(WAIT)
            .connect(stack.server.url()),
    )
    .await
    .map_err(|e| e.context("opaque token"))?;
    // The service user with a token as well: its match wants none.
    expect_refused(
        async_nats::ConnectOptions::with_user_and_password(
            "svc-metrics".into(),
            "metrics-secret".into(),
        )
        .token("t".into())
        .connection_timeout(WAIT)
        .connect(stack.server.url()),
    )
    .await
    .map_err(|e| e.context("service user with a token"))?;

    stack
        .server
        .wait_for_log_since(mark, "no plugin accepted this login")
        .await?;
    assert_eq!(
        decisions(&stack, "", "deny"),
        4,
        "all four were refused because every plugin was skipped or abstained"
    );
    for plugin in ["users", "service", "nkeys", "oidc"] {
        assert_eq!(
            decisions(&stack, plugin, "deny"),
            0,
            "{plugin} denied nothing"
        );
    }

    // A wrong password for a routed user is its plugin's deny, not silence.
    let mark = stack.server.log_mark();
    expect_refused(stack.login("svc-metrics", "guess"))
        .await
        .map_err(|e| e.context("wrong password"))?;
    stack
        .server
        .wait_for_log_since(
            mark,
            "denied by plugin service: wrong password for user \"svc-metrics\"",
        )
        .await?;
    Ok(())
}
