//! The JavaScript and Python examples that call HTTP under a grant
//! (plugins/http-allow-js with `fetch`, plugins/http-allow-py with
//! `wasi:http/outgoing-handler`) ask an allow-list service on 127.0.0.1
//! about each login, through a real nats-server: the same answers from
//! both, and a denied login for every way the service can fail.

use portcullis_runtime::{Runtime, RuntimeOptions};
use portcullis_tests::http_service::{HttpService, Received, Reply};
use portcullis_tests::{Deployment, Stack, WAIT, cache_dir, expect_refused, plugin, user_info};
use serde_json::json;
use std::time::{Duration, Instant};

/// How soon after the plugin's deadline a login it overran must be
/// refused: a correctness bound, not a benchmark.
const REFUSED_AFTER_DEADLINE: Duration = Duration::from_millis(1500);

/// Compile `name` into the shared cache first: a JS or Python component
/// takes longer to compile than a host is given to become ready.
fn warm_cache(name: &str) -> anyhow::Result<()> {
    let runtime = Runtime::new(&RuntimeOptions {
        cache_dir: Some(cache_dir()),
        pool_instances: Some(16),
        max_memory_bytes: 32 << 20,
        cache_max_age: None,
    })?;
    runtime.prepare(&std::fs::read(plugin(name))?)?;
    Ok(())
}

/// The plugin's deadline in these tests.
const TIMEOUT: Duration = Duration::from_millis(2000);

/// alice is on the list; everybody else is not, except for the users the
/// service fails for: `broken` (HTTP 503), `garbled` (an answer that is
/// not the JSON asked for) and `slow` (an answer after the deadline).
fn allow_list(request: &Received) -> Reply {
    if !request.path.starts_with("/check?") {
        return Reply::status(404);
    }
    match request.path.as_str() {
        "/check?user=alice" => Reply::json(&json!({ "allowed": true })),
        "/check?user=broken" => Reply::status(503),
        "/check?user=garbled" => Reply::json(&json!(["allowed", true])),
        "/check?user=slow" => Reply::json(&json!({ "allowed": true })).delayed(TIMEOUT * 5),
        _ => Reply::json(&json!({ "allowed": false, "reason": "not listed" })),
    }
}

/// The `allow-list` plugin entry: `component` asking `url`, with an
/// `http` grant for `granted` only.
fn allow_list_entry(component: &str, granted: &str, url: &str) -> String {
    format!(
        r#"
[limits]
failed_logins_per_user = 0

[[plugins]]
name = "allow-list"
wasm = "{}"
accounts = ["APP1"]
timeout_ms = {timeout_ms}
grants = {{ http = ["{granted}"] }}
config = {{ url = "{url}", account = "APP1" }}
"#,
        plugin(component).display(),
        timeout_ms = TIMEOUT.as_millis(),
    )
}

async fn allow_list_through(component: &str) -> anyhow::Result<()> {
    warm_cache(component)?;
    let service = HttpService::start(allow_list).await?;
    let deployment = Deployment::new(true)?;
    let origin = service.origin();
    let plugins = allow_list_entry(component, &origin, &format!("{origin}/check"));
    let stack = Stack::with_plugins(deployment, &plugins).await?;
    let login = |user: &str| {
        async_nats::ConnectOptions::with_user_and_password(user.into(), "any".into())
            .connection_timeout(WAIT)
    };

    let alice = login("alice").connect(stack.server.url()).await?;
    let info = user_info(&alice).await?;
    assert_eq!(
        (&info["account"], &info["user"]),
        (&json!("APP1"), &json!("alice"))
    );

    let mark = stack.server.log_mark();
    expect_refused(login("mallory").connect(stack.server.url())).await?;
    stack
        .server
        .wait_for_log_since(
            mark,
            "denied by plugin allow-list: not on the allow list: not listed",
        )
        .await?;
    for (user, reason) in [
        ("broken", "allow-list service answered HTTP status 503"),
        (
            "garbled",
            r#"allow-list service answer is not {"allowed": true|false}"#,
        ),
    ] {
        let mark = stack.server.log_mark();
        expect_refused(login(user).connect(stack.server.url())).await?;
        let reason = format!("denied by plugin allow-list: {reason}");
        stack.server.wait_for_log_since(mark, &reason).await?;
    }

    // A service that answers after the deadline: the request's share of
    // the login's time ends a little before the deadline, so the plugin
    // sees the timeout and denies with it as its reason, by the deadline,
    // not when the service answers.
    let mark = stack.server.log_mark();
    let started = Instant::now();
    expect_refused(login("slow").connect(stack.server.url())).await?;
    let took = started.elapsed();
    assert!(
        took < TIMEOUT + REFUSED_AFTER_DEADLINE,
        "refused after {took:?}"
    );
    stack
        .server
        .wait_for_log_since(
            mark,
            "denied by plugin allow-list: allow-list service unreachable:",
        )
        .await?;

    let asked: Vec<String> = service.received().iter().map(|r| r.path.clone()).collect();
    assert_eq!(
        asked,
        [
            "/check?user=alice",
            "/check?user=mallory",
            "/check?user=broken",
            "/check?user=garbled",
            "/check?user=slow"
        ]
    );
    Ok(())
}

#[tokio::test]
async fn a_javascript_plugin_asks_an_http_service_under_its_grant() -> anyhow::Result<()> {
    allow_list_through("http_allow_js").await
}

#[tokio::test]
async fn a_python_plugin_asks_an_http_service_under_its_grant() -> anyhow::Result<()> {
    allow_list_through("http_allow_py").await
}

/// The Python plugin configured with a URL outside its grant: the host
/// refuses the request before it is sent, the login is denied at once
/// with that reason, and the other service never hears of it.
#[tokio::test]
async fn a_python_plugin_calling_outside_its_grant_is_denied_fast() -> anyhow::Result<()> {
    warm_cache("http_allow_py")?;
    let granted = HttpService::start(allow_list).await?;
    let elsewhere = HttpService::start(allow_list).await?;
    let deployment = Deployment::new(true)?;
    let plugins = allow_list_entry(
        "http_allow_py",
        &granted.origin(),
        &format!("{}/check", elsewhere.origin()),
    );
    let stack = Stack::with_plugins(deployment, &plugins).await?;
    let mark = stack.server.log_mark();
    let started = Instant::now();
    expect_refused(
        async_nats::ConnectOptions::with_user_and_password("alice".into(), "any".into())
            .connection_timeout(WAIT)
            .connect(stack.server.url()),
    )
    .await?;
    let took = started.elapsed();
    stack
        .server
        .wait_for_log_since(
            mark,
            "denied by plugin allow-list: allow-list service unreachable: HttpRequestDenied",
        )
        .await?;
    assert!(took < TIMEOUT / 2, "refused after {took:?}");
    assert!(elsewhere.received().is_empty());
    assert!(granted.received().is_empty());
    Ok(())
}
