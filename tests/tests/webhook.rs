//! The webhook plugin against a decision service on 127.0.0.1
//! (tests/http_service.rs), through a real nats-server: the service's
//! allow becomes the user's permissions, its deny reason reaches the
//! server, its abstain passes the login to the next plugin, a service
//! slower than the login's deadline denies, and the password reaches the
//! service only when the operator configured it.

use portcullis_tests::http_service::{HttpService, Received, Reply};
use portcullis_tests::{Deployment, Stack, WAIT, connect_with_events, expect_refused, user_info};
use serde_json::json;
use std::time::{Duration, Instant};

/// How long the slow user's answer takes: well past the plugin's 500 ms.
const SLOW: Duration = Duration::from_secs(3);

/// The decision service: alice allowed under `alice.>`, mallory denied,
/// bob left to the next plugin, slowpoke answered too late.
fn decide(request: &Received) -> Reply {
    match request.json()["user"].as_str() {
        Some("alice") => Reply::json(&json!({
            "decision": "allow", "account": "APP1", "name": "alice (webhook)",
            "permissions": {
                "pub": { "allow": ["alice.>", "$SYS.REQ.USER.INFO"] },
                "sub": { "allow": ["alice.>", "_INBOX.>"] } },
            "expires_in_secs": 600 })),
        Some("mallory") => Reply::json(&json!({ "decision": "deny", "reason": "account locked" })),
        Some("slowpoke") => {
            Reply::json(&json!({ "decision": "allow", "account": "APP1" })).delayed(SLOW)
        }
        Some("broken") => Reply::status(500),
        _ => Reply::json(&json!({ "decision": "abstain" })),
    }
}

/// The webhook first, static-users after it.
async fn stack(service: &HttpService, send_password: bool) -> anyhow::Result<Stack> {
    let deployment = Deployment::new(true)?;
    let plugins = format!(
        r#"
[limits]
failed_logins_per_user = 0

[[plugins]]
name = "webhook"
wasm = "{}"
accounts = ["APP1"]
max_expiry = "1h"
timeout_ms = 500
grants = {{ http = ["{origin}"] }}
config = {{ url = "{origin}/nats/login", fields = ["user", "client.host", "client.name", "server.name"], send_password = {send_password} }}
{}"#,
        portcullis_tests::plugin("webhook_auth").display(),
        deployment.static_users(),
        origin = service.origin(),
    );
    Stack::with_plugins(deployment, &plugins).await
}

fn login(user: &str, pass: &str) -> async_nats::ConnectOptions {
    async_nats::ConnectOptions::with_user_and_password(user.into(), pass.into())
        .name("billing")
        .connection_timeout(WAIT)
}

#[tokio::test]
async fn the_service_decides_allow_deny_and_abstain() -> anyhow::Result<()> {
    let service = HttpService::start(decide).await?;
    let stack = stack(&service, false).await?;

    // allow: the service's permissions are the user's.
    let (alice, mut events) =
        connect_with_events(&stack.server.url(), login("alice", "wonderland")).await?;
    let info = user_info(&alice).await?;
    assert_eq!(info["account"], "APP1", "{info}");
    alice.publish("elsewhere", "nope".into()).await?;
    alice.flush().await?;
    events
        .wait_for("Permissions Violation for Publish to \"elsewhere\"")
        .await?;

    // What the service received: the listed fields, never the password.
    let sent = service.received();
    let first = &sent[0];
    assert_eq!(
        (first.method.as_str(), first.path.as_str()),
        ("POST", "/nats/login")
    );
    let body = first.json();
    assert_eq!(body["user"], "alice");
    assert_eq!(body["client"]["name"], "billing");
    assert_eq!(body["client"]["host"], "127.0.0.1");
    assert!(body["server"]["name"].is_string(), "{body}");
    assert!(body.get("password").is_none(), "{body}");
    assert!(
        !String::from_utf8_lossy(&first.body).contains("wonderland"),
        "the password reached the service"
    );

    // deny: the service's reason reaches the server.
    let mark = stack.server.log_mark();
    expect_refused(login("mallory", "x").connect(stack.server.url())).await?;
    stack
        .server
        .wait_for_log_since(
            mark,
            "denied by plugin webhook: denied by the webhook: account locked",
        )
        .await?;

    // abstain: static-users decides bob (APP2, his users.json entry).
    let bob = login("bob", "bob").connect(stack.server.url()).await?;
    assert_eq!(user_info(&bob).await?["account"], "APP2");

    // A non-2xx answer denies with its status.
    let mark = stack.server.log_mark();
    expect_refused(login("broken", "x").connect(stack.server.url())).await?;
    stack
        .server
        .wait_for_log_since(mark, "webhook answered HTTP status 500")
        .await?;
    Ok(())
}

#[tokio::test]
async fn a_service_slower_than_the_deadline_denies() -> anyhow::Result<()> {
    let service = HttpService::start(decide).await?;
    let stack = stack(&service, false).await?;
    let started = Instant::now();
    expect_refused(login("slowpoke", "x").connect(stack.server.url())).await?;
    let took = started.elapsed();
    assert!(
        took < SLOW,
        "denied after {took:?}, not at the 500 ms deadline"
    );
    // The next login is decided normally.
    let alice = login("alice", "wonderland")
        .connect(stack.server.url())
        .await?;
    assert_eq!(user_info(&alice).await?["account"], "APP1");
    Ok(())
}

#[tokio::test]
async fn the_password_is_sent_only_when_configured() -> anyhow::Result<()> {
    let service = HttpService::start(decide).await?;
    let stack = stack(&service, true).await?;
    let alice = login("alice", "wonderland")
        .connect(stack.server.url())
        .await?;
    assert_eq!(user_info(&alice).await?["account"], "APP1");
    assert_eq!(service.received()[0].json()["password"], "wonderland");
    Ok(())
}
