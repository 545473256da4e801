//! The JavaScript example that calls HTTP under a grant
//! (plugins/http-allow-js, with `fetch`) asks an allow-list service on
//! 127.0.0.1 about each login, through a real nats-server.

use portcullis_runtime::{Runtime, RuntimeOptions};
use portcullis_tests::http_service::{HttpService, Received, Reply};
use portcullis_tests::{Deployment, Stack, WAIT, cache_dir, expect_refused, plugin, user_info};
use serde_json::json;

/// Compile `name` into the shared cache first: a JS component takes
/// longer to compile than a host is given to become ready.
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

/// alice is on the list; everybody else is not.
fn allow_list(request: &Received) -> Reply {
    if !request.path.starts_with("/check?") {
        return Reply::status(404);
    }
    if request.path == "/check?user=alice" {
        Reply::json(&json!({ "allowed": true }))
    } else {
        Reply::json(&json!({ "allowed": false, "reason": "not listed" }))
    }
}

async fn allow_list_through(component: &str) -> anyhow::Result<()> {
    warm_cache(component)?;
    let service = HttpService::start(allow_list).await?;
    let deployment = Deployment::new(true)?;
    let plugins = format!(
        r#"
[limits]
failed_logins_per_user = 0

[[plugins]]
name = "allow-list"
wasm = "{}"
accounts = ["APP1"]
timeout_ms = 2000
grants = {{ http = ["{origin}"] }}
config = {{ url = "{origin}/check", account = "APP1" }}
"#,
        plugin(component).display(),
        origin = service.origin(),
    );
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
    let asked: Vec<String> = service.received().iter().map(|r| r.path.clone()).collect();
    assert_eq!(asked, ["/check?user=alice", "/check?user=mallory"]);
    Ok(())
}

#[tokio::test]
async fn a_javascript_plugin_asks_an_http_service_under_its_grant() -> anyhow::Result<()> {
    allow_list_through("http_allow_js").await
}
