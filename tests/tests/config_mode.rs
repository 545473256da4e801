//! Config mode end to end: a real nats-server with an `auth_callout` block
//! delegates every login to the host, which asks the static-users plugin.

use futures::StreamExt;
use portcullis_tests::{
    Deployment, HostProcess, NatsServer, Stack, WAIT, connect_with_events, expect_refused, login,
    user_info, users_json,
};
use std::time::Instant;

async fn alice_and_bob(with_xkey: bool) -> anyhow::Result<()> {
    let stack = Stack::static_users(with_xkey).await?;

    let alice = stack.login("alice", "alice").await?;
    let info = user_info(&alice).await?;
    assert_eq!(info["account"], "APP1", "{info}");
    assert_eq!(info["user"], "alice", "display name from the grant: {info}");

    let bob = stack.login("bob", "bob").await?;
    let info = user_info(&bob).await?;
    assert_eq!(info["account"], "APP2", "{info}");
    let perms = &info["permissions"];
    assert_eq!(
        sorted(&perms["publish"]["allow"]),
        ["$SYS.REQ.USER.INFO", "bob.>"],
        "{info}"
    );
    assert_eq!(
        sorted(&perms["subscribe"]["allow"]),
        ["_INBOX.>", "bob.>"],
        "{info}"
    );
    assert_eq!(perms["responses"]["max"], 1, "{info}");

    // bob can publish and subscribe inside bob.>.
    let mut sub = bob.subscribe("bob.inbox").await?;
    bob.publish("bob.inbox", "hi".into()).await?;
    let msg = tokio::time::timeout(WAIT, sub.next())
        .await?
        .expect("message");
    assert_eq!(&msg.payload[..], b"hi");
    Ok(())
}

/// The server reports permission lists in no particular order.
fn sorted(list: &serde_json::Value) -> Vec<String> {
    let mut items: Vec<String> = list
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    items.sort();
    items
}

#[tokio::test]
async fn alice_and_bob_log_in_with_xkey() -> anyhow::Result<()> {
    alice_and_bob(true).await
}

#[tokio::test]
async fn alice_and_bob_log_in_without_xkey() -> anyhow::Result<()> {
    alice_and_bob(false).await
}

#[tokio::test]
async fn bob_gets_a_permissions_violation_outside_bob() -> anyhow::Result<()> {
    let stack = Stack::static_users(true).await?;
    let options = async_nats::ConnectOptions::with_user_and_password("bob".into(), "bob".into());
    let (bob, mut events) = connect_with_events(&stack.server.url(), options).await?;
    bob.publish("foo", "nope".into()).await?;
    bob.flush().await?;
    events
        .wait_for("Permissions Violation for Publish to \"foo\"")
        .await?;
    Ok(())
}

async fn assert_refused(
    stack: &Stack,
    user: &str,
    pass: &str,
    server_log: &str,
) -> anyhow::Result<()> {
    // Refused by an answer well before the server's auth timeout: a signed
    // error response, not the server giving up.
    let mark = stack.server.log_mark();
    expect_refused(stack.login(user, pass))
        .await
        .map_err(|e| e.context("login must be refused"))?;
    // The server logs the reason the host signed into its error response.
    stack.server.wait_for_log_since(mark, server_log).await?;
    Ok(())
}

#[tokio::test]
async fn wrong_password_unknown_user_and_no_credentials_are_refused_at_once() -> anyhow::Result<()>
{
    for xkey in [true, false] {
        let stack = Stack::static_users(xkey).await?;
        assert_refused(
            &stack,
            "alice",
            "bob",
            "denied by plugin users: wrong password for user \"alice\"",
        )
        .await?;
        assert_refused(
            &stack,
            "mallory",
            "x",
            "denied by plugin users: unknown user \"mallory\"",
        )
        .await?;

        let mark = stack.server.log_mark();
        expect_refused(async_nats::ConnectOptions::new().connect(stack.server.url()))
            .await
            .map_err(|e| e.context("anonymous login must be refused"))?;
        stack
            .server
            .wait_for_log_since(mark, "no plugin accepted this login")
            .await?;

        // And the host still serves.
        stack.login("alice", "alice").await?;
    }
    Ok(())
}

#[tokio::test]
async fn a_stopped_host_no_longer_answers() -> anyhow::Result<()> {
    let stack = Stack::static_users(true).await?;
    stack.login("alice", "alice").await?;
    let Stack { server, host, .. } = stack;
    host.stop().await?;
    // Nobody is subscribed any more, so the server times the login out
    // (after `authorization.timeout`) and refuses it. async-nats may report
    // the connection as open before that, so the server's word is the proof.
    let _maybe_connected = portcullis_tests::login(&server.url(), "alice", "alice").await;
    server
        .wait_for_log("authentication error - User \"alice\"")
        .await?;
    Ok(())
}

#[tokio::test]
async fn shutdown_answers_logins_already_in_flight() -> anyhow::Result<()> {
    // A plugin that works 700 ms per login, so shutdown starts mid-decision.
    let deployment = portcullis_tests::Deployment::new(true)?;
    let plugins = format!(
        "[[plugins]]\nname = \"slow\"\nwasm = \"{}\"\naccounts = [\"APP1\"]\ntimeout_ms = 5000\n\
         config = {{ attack = \"slow\", user = \"alice\", delay_ms = 700 }}\n",
        portcullis_tests::plugin("hostile").display()
    );
    let Stack { server, host, .. } = Stack::with_plugins(deployment, &plugins).await?;
    let url = server.url();
    let pending =
        tokio::spawn(async move { portcullis_tests::login(&url, "alice", "alice").await });

    let deadline = Instant::now() + WAIT;
    let in_flight = &host.metrics.service.in_flight;
    while in_flight.load(std::sync::atomic::Ordering::Relaxed) == 0 {
        anyhow::ensure!(
            Instant::now() < deadline,
            "the login never reached the host"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let metrics = host.metrics.clone();
    host.stop().await?;
    // Drained: the decision finished and its answer went out before exit.
    assert_eq!(
        metrics
            .service
            .answered
            .load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    assert_eq!(
        metrics
            .service
            .in_flight
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    let alice = pending
        .await?
        .expect("the in-flight login was answered, not dropped");
    assert_eq!(user_info(&alice).await?["account"], "APP1");
    Ok(())
}

#[tokio::test]
async fn unlimited_max_expiry_issues_users_without_exp_and_warns_at_start() -> anyhow::Result<()> {
    let deployment = Deployment::new(true)?;
    let server = NatsServer::start(&deployment.server_config())?;
    let plugins = deployment
        .static_users()
        .replace("max_expiry = \"1h\"", "max_expiry = \"unlimited\"");
    deployment.write_host_config(&deployment.host_config(&server.url(), &plugins))?;
    let host = HostProcess::start(&deployment.dir.path().join("portcullis.toml"))?;
    // Plugins load before the host serves: the warning is already there,
    // once, naming the plugin.
    let log = host.log();
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("WARN") && l.contains("max_expiry = \"unlimited\""))
        .collect();
    assert_eq!(warnings.len(), 1, "{log}");
    assert!(warnings[0].contains("users"), "{log}");

    // bob's grant asks for no expiry: his user JWT has no exp, which
    // USER.INFO shows as no `expires` at all.
    let bob = login(&server.url(), "bob", "bob").await?;
    let info = user_info(&bob).await?;
    assert_eq!(info["account"], "APP2", "{info}");
    assert!(
        info.get("expires").is_none_or(|e| e == 0),
        "no expiry: {info}"
    );
    Ok(())
}

#[tokio::test]
async fn the_default_max_expiry_still_expires_users() -> anyhow::Result<()> {
    let stack = Stack::static_users(true).await?;
    let info = user_info(&stack.login("bob", "bob").await?).await?;
    let left = std::time::Duration::from_nanos(info["expires"].as_u64().unwrap_or(0));
    assert!(
        left > std::time::Duration::ZERO && left <= std::time::Duration::from_secs(3600),
        "the plugin's max_expiry of 1h: {info}"
    );
    Ok(())
}

#[tokio::test]
async fn a_shared_token_lands_in_its_account_and_a_wrong_one_is_refused() -> anyhow::Result<()> {
    use portcullis_cli::hash_password::{self, Algorithm, HashOptions};
    // A high-entropy random token, as shared tokens should be.
    let token = nkeys::KeyPair::new_user().public_key();
    let hash = hash_password::hash(
        &token,
        &HashOptions {
            algorithm: Algorithm::Sha256Token,
            ..HashOptions::default()
        },
    )?;
    let deployment = Deployment::new(true)?;
    let mut users: serde_json::Value = serde_json::from_str(&users_json())?;
    users["tokens"] = serde_json::json!({ hash: {
        "account": "APP2",
        "name": "fleet",
        "permissions": {
            "pub": { "allow": ["fleet.>", "$SYS.REQ.USER.INFO"] },
            "sub": { "allow": ["fleet.>", "_INBOX.>"] }
        }
    }});
    std::fs::write(deployment.dir.path().join("users.json"), users.to_string())?;
    let plugins = deployment.static_users();
    let stack = Stack::with_plugins(deployment, &plugins).await?;

    let client = async_nats::ConnectOptions::with_token(token.clone())
        .connection_timeout(WAIT)
        .connect(stack.server.url())
        .await?;
    let info = user_info(&client).await?;
    assert_eq!(info["account"], "APP2", "{info}");
    assert_eq!(info["user"], "fleet", "{info}");
    assert_eq!(
        sorted(&info["permissions"]["publish"]["allow"]),
        ["$SYS.REQ.USER.INFO", "fleet.>"],
        "{info}"
    );

    let wrong = format!("{}x", &token[..token.len() - 1]);
    let mark = stack.server.log_mark();
    expect_refused(
        async_nats::ConnectOptions::with_token(wrong.clone())
            .connection_timeout(WAIT)
            .connect(stack.server.url()),
    )
    .await
    .map_err(|e| e.context("a wrong token must be refused"))?;
    let line = stack
        .server
        .wait_for_log_since(mark, "denied by plugin users: unknown token")
        .await?;
    assert!(
        !line.contains(&wrong),
        "the reason never carries the token: {line}"
    );

    // Users still log in by name beside the tokens.
    stack.login("alice", "alice").await?;
    Ok(())
}
