//! The Prometheus endpoint: scraped over HTTP from a running host, the
//! series count what happened. The same listener answers orchestrators'
//! probes (`/healthz`, `/readyz`) and must survive a connection flood.

use portcullis_tests::{
    Deployment, NatsServer, Stack, WAIT, expect_refused, free_port, login, plugin,
};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
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
    expect_refused(stack.login("alice", "wrong"))
        .await
        .map_err(|e| e.context("wrong password"))?;
    expect_refused(stack.login("mallory", "x"))
        .await
        .map_err(|e| e.context("busy loop"))?;
    expect_refused(stack.login("", ""))
        .await
        .map_err(|e| e.context("nobody's login"))?;
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

/// The status code of `GET path`.
async fn status(addr: std::net::SocketAddr, path: &str) -> anyhow::Result<u16> {
    let response = scrape(addr, path).await?;
    response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("not an HTTP response: {response:?}"))
}

/// Bounded wait until `check` holds, polling every 5 ms.
async fn until(what: &str, mut check: impl AsyncFnMut() -> bool) -> anyhow::Result<()> {
    let deadline = Instant::now() + WAIT;
    while !check().await {
        anyhow::ensure!(Instant::now() < deadline, "{what}: not within {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

#[tokio::test]
async fn readyz_is_503_until_the_host_serves_and_while_it_drains_healthz_is_200_throughout()
-> anyhow::Result<()> {
    let deployment = Deployment::new(true)?;
    let server = NatsServer::start(&deployment.server_config())?;
    // The host reaches NATS through a gate the test opens: until then it
    // is alive but cannot subscribe.
    let gate = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let gated_url = format!("nats://{}", gate.local_addr()?);
    let metrics = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()?));
    let plugins = format!(
        "[metrics]\nlisten = \"{metrics}\"\n\n\
         [[plugins]]\nname = \"slow\"\nwasm = \"{}\"\naccounts = [\"APP1\"]\ntimeout_ms = 5000\n\
         config = {{ attack = \"slow\", user = \"mallory\", delay_ms = 1500 }}\n{}",
        plugin("hostile").display(),
        deployment.static_users()
    );
    let config = deployment.write_host_config(&deployment.host_config(&gated_url, &plugins))?;
    let (shutdown_tx, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
    let (ready_tx, mut ready_rx) = tokio::sync::oneshot::channel();
    let host = tokio::spawn(async move {
        let hooks = portcullis::host::Hooks {
            ready: Some(ready_tx),
            reload: None,
        };
        let shutdown = async {
            let _ = shutdown_rx.await;
        };
        portcullis::host::run(&config, shutdown, hooks).await
    });

    // Alive, not ready: the probes answer before NATS does.
    until("the probe listener answers", async || {
        status(metrics, "/healthz").await.is_ok()
    })
    .await?;
    assert_eq!(status(metrics, "/healthz").await?, 200);
    assert_eq!(status(metrics, "/readyz").await?, 503);
    assert!(
        matches!(
            ready_rx.try_recv(),
            Err(tokio::sync::oneshot::error::TryRecvError::Empty)
        ),
        "the host reported ready without NATS"
    );

    let server_addr = format!("127.0.0.1:{}", server.port);
    let proxy = tokio::spawn(async move {
        while let Ok((mut inbound, _)) = gate.accept().await {
            let Ok(mut outbound) = tokio::net::TcpStream::connect(&server_addr).await else {
                return;
            };
            tokio::spawn(async move {
                let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
            });
        }
    });
    let running = tokio::time::timeout(WAIT, ready_rx).await??;
    assert_eq!(status(metrics, "/readyz").await?, 200);
    assert_eq!(status(metrics, "/healthz").await?, 200);

    // Draining: a login is still being decided, the host no longer takes
    // new ones, and says so.
    let url = server.url();
    let slow = tokio::spawn(async move { login(&url, "mallory", "x").await.map(|_| ()) });
    until("mallory's request is in flight", async || {
        running.metrics.service.in_flight.load(Ordering::Relaxed) >= 1
    })
    .await?;
    let _ = shutdown_tx.send(());
    until("readyz turns 503 on shutdown", async || {
        matches!(status(metrics, "/readyz").await, Ok(503))
    })
    .await?;
    assert!(
        !slow.is_finished(),
        "readyz turned 503 only after the drain"
    );
    assert_eq!(status(metrics, "/healthz").await?, 200);
    slow.await?
        .expect("the login in flight is answered while draining");
    tokio::time::timeout(WAIT, host).await???;
    proxy.abort();
    Ok(())
}

#[tokio::test]
async fn readyz_is_503_while_the_nats_connection_is_down_and_200_once_it_is_back()
-> anyhow::Result<()> {
    let deployment = Deployment::new(true)?;
    let plugins = format!(
        "[metrics]\nlisten = \"127.0.0.1:0\"\n\n{}",
        deployment.static_users()
    );
    let mut stack = Stack::with_plugins(deployment, &plugins).await?;
    let metrics = stack.host.metrics_addr.expect("metrics are served");
    assert_eq!(status(metrics, "/readyz").await?, 200);

    // Requests cannot reach a host whose connection is down: not ready,
    // though alive and reconnecting.
    stack.server.stop();
    until("readyz turns 503 with the server gone", async || {
        matches!(status(metrics, "/readyz").await, Ok(503))
    })
    .await?;
    let body = scrape(metrics, "/readyz").await?;
    assert!(body.contains("the NATS connection is down"), "{body}");
    assert_eq!(status(metrics, "/healthz").await?, 200);

    stack.server.start_again()?;
    until("readyz is 200 again once reconnected", async || {
        matches!(status(metrics, "/readyz").await, Ok(200))
    })
    .await?;
    stack.login("alice", "alice").await?;
    stack.host.stop().await
}

#[tokio::test]
async fn a_connection_flood_is_cut_at_the_limit_and_a_scrape_succeeds_afterwards()
-> anyhow::Result<()> {
    use portcullis::metrics::{MAX_CONNECTIONS, SCRAPE_TIMEOUT};
    let deployment = Deployment::new(true)?;
    let plugins = format!(
        "[metrics]\nlisten = \"127.0.0.1:0\"\n{}",
        deployment.static_users()
    );
    let stack = Stack::with_plugins(deployment, &plugins).await?;
    let addr = stack.host.metrics_addr.expect("metrics are served");

    // Connections that never send a byte: the host holds each one only so
    // long, and no more of them than the limit.
    let extra = 8;
    let mut flood = Vec::new();
    for _ in 0..MAX_CONNECTIONS + extra {
        flood.push(tokio::net::TcpStream::connect(addr).await?);
    }
    let started = Instant::now();
    let closed_after: Vec<Option<Duration>> =
        futures::future::join_all(flood.iter_mut().map(async |stream| {
            let mut byte = [0u8; 1];
            // Closed (EOF or reset) counts; the bound is the limit's promise.
            match tokio::time::timeout(
                SCRAPE_TIMEOUT + Duration::from_secs(5),
                stream.read(&mut byte),
            )
            .await
            {
                Ok(Ok(0) | Err(_)) => Some(started.elapsed()),
                Ok(Ok(_)) => panic!("the host sent something unasked"),
                Err(_) => None,
            }
        }))
        .await;
    assert!(
        closed_after.iter().all(Option::is_some),
        "a connection outlived {SCRAPE_TIMEOUT:?}: {closed_after:?}"
    );
    let at_once = closed_after
        .iter()
        .flatten()
        .filter(|after| **after < SCRAPE_TIMEOUT / 2)
        .count();
    assert_eq!(
        at_once, extra,
        "connections beyond {MAX_CONNECTIONS} are closed at once, the others held until the timeout: {closed_after:?}"
    );

    let response = scrape(addr, "/metrics").await?;
    assert!(response.starts_with("HTTP/1.1 200 OK"), "{response}");
    Ok(())
}
