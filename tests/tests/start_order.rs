//! Start order does not matter: `portcullis run` started before nats-server
//! waits for it (probes say alive but not ready meanwhile) and serves the
//! first login once it is up; `[nats] connect_timeout` bounds the wait.

use portcullis_tests::{Deployment, HostProcess, NatsServer, WAIT, free_port, login};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The status code of `GET path` on the metrics listener.
async fn status(addr: &str, path: &str) -> anyhow::Result<u16> {
    let mut stream = tokio::net::TcpStream::connect(addr).await?;
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes())
        .await?;
    let mut response = String::new();
    tokio::time::timeout(WAIT, stream.read_to_string(&mut response)).await??;
    response
        .split(' ')
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("not an HTTP response: {response:?}"))
}

#[tokio::test]
async fn a_host_started_before_nats_serves_the_first_login_once_nats_is_up() -> anyhow::Result<()> {
    let deployment = Deployment::new(true)?;
    let port = free_port()?;
    let metrics = format!("127.0.0.1:{}", free_port()?);
    let text = format!(
        "{}\n[metrics]\nlisten = \"{metrics}\"\n",
        deployment.host_config(
            &format!("nats://127.0.0.1:{port}"),
            &deployment.static_users()
        )
    );
    let config = deployment.dir.path().join("portcullis.toml");
    std::fs::write(&config, text)?;

    let host = HostProcess::spawn(&config)?;
    let retry = host.wait_for_log("cannot connect to NATS yet").await?;
    assert!(
        retry.contains(&format!("127.0.0.1:{port}")) && retry.contains("refused"),
        "each attempt names the server and the cause: {retry}"
    );
    host.wait_for_log("serving /metrics").await?;
    assert_eq!(
        status(&metrics, "/healthz").await?,
        200,
        "alive while waiting"
    );
    assert_eq!(
        status(&metrics, "/readyz").await?,
        503,
        "not ready while waiting"
    );

    // The deliberate delay: the host keeps retrying meanwhile.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let server = NatsServer::start_on(&deployment.server_config(), port)?;
    let started = Instant::now();
    host.wait_for_log("serving authorization requests").await?;
    println!(
        "serving {:?} after nats-server was ready",
        started.elapsed()
    );
    let connected = host.wait_for_log("connected to NATS").await?;
    assert!(connected.contains("attempts"), "{connected}");
    assert_eq!(status(&metrics, "/readyz").await?, 200);

    login(&server.url(), "alice", "alice").await?;
    assert!(
        !host.log().contains("ERROR"),
        "waiting is not an error:\n{}",
        host.log()
    );
    Ok(())
}

#[tokio::test]
async fn without_nats_run_gives_up_after_connect_timeout_and_exits_non_zero() -> anyhow::Result<()>
{
    let deployment = Deployment::new(false)?;
    let port = free_port()?;
    let text = deployment
        .host_config(
            &format!("nats://127.0.0.1:{port}"),
            &deployment.static_users(),
        )
        .replace(
            "password = \"auth\"\n",
            "password = \"auth\"\nconnect_timeout = \"1500ms\"\n",
        );
    let config = deployment.dir.path().join("portcullis.toml");
    std::fs::write(&config, text)?;

    let started = Instant::now();
    let mut host = HostProcess::spawn(&config)?;
    let status = host.wait().await?;
    let took = started.elapsed();
    assert!(!status.success(), "{status}");
    let log = host.log();
    let want = format!(
        "cannot connect to NATS at nats://127.0.0.1:{port} within [nats] connect_timeout = 1s 500ms"
    );
    assert!(log.contains(&want), "{want:?} not in:\n{log}");
    assert!(
        log.contains("Connection refused"),
        "the cause is named:\n{log}"
    );
    // Tried several times (100 ms doubling), then gave up at the timeout,
    // not at the first refusal and not much later.
    assert!(
        log.matches("cannot connect to NATS yet").count() >= 3,
        "{log}"
    );
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(10),
        "exited after {took:?}"
    );
    println!("gave up after {took:?}");
    Ok(())
}

#[tokio::test]
async fn a_refused_login_is_not_retried_and_its_password_never_logged() -> anyhow::Result<()> {
    let deployment = Deployment::new(false)?;
    let server = NatsServer::start(&deployment.server_config())?;
    let text = deployment
        .host_config(&server.url(), &deployment.static_users())
        .replace(
            "password = \"auth\"",
            "password = \"env:WRONG_NATS_PASSWORD\"",
        );
    let config = deployment.dir.path().join("portcullis.toml");
    std::fs::write(&config, text)?;

    let run = tokio::process::Command::new(portcullis_tests::portcullis_bin())
        .args(["run", "-c"])
        .arg(&config)
        .env("WRONG_NATS_PASSWORD", "wr0ng-s3cret")
        .env("PORTCULLIS_LOG", "debug")
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(WAIT, run).await??;
    assert!(!output.status.success());
    let log = String::from_utf8_lossy(&output.stderr);
    assert!(
        log.contains(&format!(
            "cannot connect to NATS at {}: authorization violation",
            server.url()
        )),
        "{log}"
    );
    assert!(!log.contains("cannot connect to NATS yet"), "{log}");
    assert!(!log.contains("wr0ng-s3cret"), "{log}");
    Ok(())
}
