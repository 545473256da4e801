//! WebSocket clients: a nats-server `websocket {}` listener on loopback,
//! and a login over it for every shipped authenticator (static-users
//! passwords, nkeys, oidc bearer tokens, x509 client certificates over
//! `wss://`). The server calls out for them like for any client and says
//! the connection is a WebSocket one, which `allowed_connection_types`
//! in a grant admits or refuses.

use nkeys::KeyPair;
use portcullis_tests::idp::{AUDIENCE, ISSUER, Idp};
use portcullis_tests::{Deployment, Stack, WAIT, expect_refused, user_info};
use rcgen::{DnType, SanType};
use serde_json::json;

/// `stack`'s plain WebSocket URL.
fn ws(stack: &Stack) -> String {
    stack
        .server
        .websocket_url(false)
        .expect("the server listens for WebSocket clients")
}

/// The table of plugin `name` (component `wasm`) with `config` in NAME.json.
fn plugin_table(
    deployment: &Deployment,
    name: &str,
    wasm: &str,
    config: &serde_json::Value,
) -> String {
    std::fs::write(
        deployment.dir.path().join(format!("{name}.json")),
        config.to_string(),
    )
    .expect("plugin config");
    format!(
        "[[plugins]]\nname = \"{name}\"\nwasm = \"{}\"\naccounts = [\"APP1\", \"APP2\"]\nmax_expiry = \"1h\"\nconfig_file = \"{name}.json\"\n",
        portcullis_tests::plugin(wasm).display()
    )
}

/// A login that must be refused, with `reason` in the server's log.
async fn refused(
    stack: &Stack,
    options: async_nats::ConnectOptions,
    url: &str,
    reason: &str,
) -> anyhow::Result<()> {
    let mark = stack.server.log_mark();
    expect_refused(options.connection_timeout(WAIT).connect(url))
        .await
        .map_err(|e| e.context("login must be refused"))?;
    stack.server.wait_for_log_since(mark, reason).await?;
    Ok(())
}

#[tokio::test]
async fn a_static_users_password_login_over_websocket() -> anyhow::Result<()> {
    let deployment = Deployment::new(true)?.with_websocket();
    let plugins = deployment.static_users();
    let stack = Stack::with_plugins(deployment, &plugins).await?;
    let bob = async_nats::ConnectOptions::with_user_and_password("bob".into(), "bob".into())
        .connection_timeout(WAIT)
        .connect(ws(&stack))
        .await?;
    let info = user_info(&bob).await?;
    assert_eq!(info["account"], "APP2", "{info}");
    assert_eq!(info["user"], "bob", "{info}");
    let options = async_nats::ConnectOptions::with_user_and_password("bob".into(), "alice".into());
    refused(
        &stack,
        options,
        &ws(&stack),
        "wrong password for user \"bob\"",
    )
    .await
}

#[tokio::test]
async fn nkeys_over_websocket_and_connection_types_decide() -> anyhow::Result<()> {
    // Portcullis logs in with an NKey, so the server sends nonces (on the
    // WebSocket port too).
    let deployment = Deployment::new(true)?.with_auth_nkey()?.with_websocket();
    let browser = KeyPair::new_user();
    let device = KeyPair::new_user();
    let plugins = plugin_table(
        &deployment,
        "nkeys",
        "nkeys_auth",
        &json!({ "users": {
            browser.public_key(): {
                "account": "APP1", "name": "browser",
                "allowed_connection_types": ["WEBSOCKET"],
                "permissions": { "pub": { "allow": ["$SYS.REQ.USER.INFO"] },
                                 "sub": { "allow": ["_INBOX.>"] } }
            },
            device.public_key(): {
                "account": "APP2", "name": "device",
                "allowed_connection_types": ["STANDARD"]
            }
        }}),
    );
    let stack = Stack::with_plugins(deployment, &plugins).await?;

    // Only WEBSOCKET is granted: the request said WEBSOCKET.
    let client = async_nats::ConnectOptions::with_nkey(browser.seed()?)
        .connection_timeout(WAIT)
        .connect(ws(&stack))
        .await?;
    let info = user_info(&client).await?;
    assert_eq!(info["account"], "APP1", "{info}");
    assert_eq!(info["user"], "browser", "{info}");
    // The same key on the NATS port is a STANDARD connection.
    refused(
        &stack,
        async_nats::ConnectOptions::with_nkey(browser.seed()?),
        &stack.server.url(),
        "connection type STANDARD is not among the granted ones",
    )
    .await?;
    // A key granted STANDARD only is refused over WebSocket.
    refused(
        &stack,
        async_nats::ConnectOptions::with_nkey(device.seed()?),
        &ws(&stack),
        "connection type WEBSOCKET is not among the granted ones",
    )
    .await?;
    async_nats::ConnectOptions::with_nkey(device.seed()?)
        .connection_timeout(WAIT)
        .connect(stack.server.url())
        .await?;
    Ok(())
}

#[tokio::test]
async fn an_oidc_bearer_token_over_websocket() -> anyhow::Result<()> {
    let idp = Idp::new()?;
    let deployment = Deployment::new(true)?.with_websocket();
    let plugins = plugin_table(
        &deployment,
        "oidc",
        "oidc_auth",
        &json!({
            "issuer": ISSUER,
            "audience": AUDIENCE,
            "jwks": idp.jwks(),
            "rules": [{
                "account": "APP1",
                "allowed_connection_types": ["WEBSOCKET"],
                "permissions": {
                    "pub": { "allow": ["user.{sub}.>", "$SYS.REQ.USER.INFO"] },
                    "sub": { "allow": ["user.{sub}.>", "_INBOX.>"] } }
            }]
        }),
    );
    let stack = Stack::with_plugins(deployment, &plugins).await?;
    let client = async_nats::ConnectOptions::with_token(idp.es256(&Idp::claims("alice", 120)))
        .connection_timeout(WAIT)
        .connect(ws(&stack))
        .await?;
    let info = user_info(&client).await?;
    assert_eq!(info["account"], "APP1", "{info}");
    assert_eq!(info["user"], "alice", "{info}");
    refused(
        &stack,
        async_nats::ConnectOptions::with_token(idp.es256(&Idp::claims("bob", 120))),
        &stack.server.url(),
        "connection type STANDARD is not among the granted ones",
    )
    .await
}

#[tokio::test]
async fn an_x509_client_certificate_over_secure_websocket() -> anyhow::Result<()> {
    // The WebSocket listener has the NATS port's TLS: the test CA, client
    // certificates required and verified.
    let deployment = Deployment::new(true)?.with_mutual_tls()?.with_websocket();
    let plugins = plugin_table(
        &deployment,
        "x509",
        "x509_auth",
        &json!({ "rules": [{
            "when": { "ou": "devices" },
            "account": "APP1", "name": "{cn}",
            "allowed_connection_types": ["WEBSOCKET"],
            "permissions": {
                "pub": { "allow": ["devices.{cn}.>", "$SYS.REQ.USER.INFO"] },
                "sub": { "allow": ["devices.{cn}.>", "_INBOX.>"] } }
        }]}),
    );
    let stack = Stack::with_plugins(deployment, &plugins).await?;
    let tls = stack.deployment.tls.as_ref().expect("mutual TLS");
    let cert = tls.issue("dev1", |p| {
        p.distinguished_name
            .push(DnType::OrganizationalUnitName, "devices");
        p.subject_alt_names = vec![SanType::DnsName(
            "dev1.devices.example.test".try_into().expect("DNS name"),
        )];
    })?;
    let wss = stack
        .server
        .websocket_url(true)
        .expect("the server listens for WebSocket clients");
    let client = tls.client(Some(&cert)).connect(&wss).await?;
    let info = user_info(&client).await?;
    assert_eq!(info["account"], "APP1", "{info}");
    assert_eq!(info["user"], "dev1", "{info}");
    // The same certificate on the NATS port is a STANDARD connection.
    refused(
        &stack,
        tls.client(Some(&cert)),
        &stack.server.url(),
        "connection type STANDARD is not among the granted ones",
    )
    .await
}
