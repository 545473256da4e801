//! The Prometheus endpoint: scraped over HTTP from a running host, the
//! series count what happened.

use portcullis_tests::{Deployment, Stack, plugin};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn scrape(addr: std::net::SocketAddr, path: &str) -> anyhow::Result<String> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes())
        .await?;
    let mut response = String::new();
    tokio::time::timeout(portcullis_tests::WAIT, stream.read_to_string(&mut response)).await??;
    Ok(response)
}

/// The value of the sample line that starts with `series`.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn metrics_count_decisions_failures_and_reloads() -> anyhow::Result<()> {
    let deployment = Deployment::new(true)?;
    let plugins = format!(
        "[metrics]\nlisten = \"127.0.0.1:0\"\n\n\
         [[plugins]]\nname = \"hostile\"\nwasm = \"{}\"\naccounts = [\"APP1\"]\ntimeout_ms = 50\n\
         config = {{ attack = \"busy-loop\", user = \"mallory\" }}\n{}",
        plugin("hostile").display(),
        deployment.static_users()
    );
    let stack = Stack::with_plugins(deployment, &plugins).await?;
    let addr = stack.host.metrics_addr.expect("metrics are served");

    stack.login("alice", "alice").await?;
    stack.login("bob", "bob").await?;
    stack
        .login("alice", "wrong")
        .await
        .expect_err("wrong password");
    stack.login("mallory", "x").await.expect_err("busy loop");
    stack.login("", "").await.expect_err("nobody's login");
    let before = stack.host.metrics.reload_counts();
    portcullis_tests::replace_file(&stack.deployment.dir.path().join("users.json"), b"{broken")?;
    stack.host.wait_for_swaps(before, 0, 1).await?;

    let response = scrape(addr, "/metrics").await?;
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    assert!(
        response.contains("application/openmetrics-text"),
        "{response}"
    );
    let expect = [
        (
            r#"portcullis_decisions_total{plugin="users",outcome="allow"}"#,
            2.0,
        ),
        (
            r#"portcullis_decisions_total{plugin="users",outcome="deny"}"#,
            1.0,
        ),
        (
            r#"portcullis_decisions_total{plugin="hostile",outcome="error"}"#,
            1.0,
        ),
        (
            r#"portcullis_decisions_total{plugin="",outcome="deny"}"#,
            1.0,
        ),
        (
            r#"portcullis_plugin_failures_total{plugin="hostile",kind="timeout"}"#,
            1.0,
        ),
        (
            r#"portcullis_decision_duration_seconds_count{plugin="users"}"#,
            3.0,
        ),
        (r#"portcullis_reloads_total{result="rejected"}"#, 1.0),
        ("portcullis_requests_in_flight", 0.0),
        ("portcullis_requests_unverified_total", 0.0),
        ("portcullis_requests_rejected_total", 0.0),
    ];
    for (series, value) in expect {
        assert_eq!(
            sample(&response, series),
            Some(value),
            "{series}\n{response}"
        );
    }

    let response = scrape(addr, "/other").await?;
    assert!(response.starts_with("HTTP/1.1 404"), "{response}");
    Ok(())
}
