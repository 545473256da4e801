//! The CI smoke run of the load generator: one client for one second
//! against a real nats-server whose logins the real host (in-process, Rust
//! static-users plugin, xkey on) answers. It checks that the tool works end
//! to end: one JSON line with the figures, progress on stderr, and no failed
//! login. It asserts no timing: speed is measured by `bench/run`, not tested.

use portcullis_tests::{Stack, WAIT};
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_client_for_one_second_reports_a_json_line_and_no_failed_login() -> anyhow::Result<()> {
    let stack = Stack::static_users(true).await?;
    let users = stack.deployment.dir.path().join("users.json");
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_portcullis-bench"))
        .arg("load")
        .args(["--url", &stack.server.url()])
        .arg("--users-file")
        .arg(&users)
        .args(["--clients", "1", "--duration", "1", "--warmup", "0.2"])
        .args(["--timeout-ms", "10000"])
        .kill_on_drop(true)
        .output();
    // The generator bounds itself (1.2 s plus one login's timeout); this
    // bound only keeps a hung child from hanging the suite.
    let output = tokio::time::timeout(WAIT + Duration::from_secs(15), run).await??;
    let stdout = String::from_utf8(output.stdout)?;
    let stderr = String::from_utf8(output.stderr)?;
    assert!(output.status.success(), "exit {}: {stderr}", output.status);

    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "exactly one line on stdout: {stdout}");
    let report: serde_json::Value = serde_json::from_str(lines[0])?;
    assert_eq!(report["bench"], "portcullis-connect-rate", "{report}");
    assert_eq!(report["clients"], 1, "{report}");
    assert_eq!(
        report["users"], 2,
        "alice and bob from users.json: {report}"
    );
    assert_eq!(report["failed"], 0, "no login failed: {report}");
    assert_eq!(report["warmup_failed"], 0, "{report}");
    assert!(
        report["failures"].as_object().is_some_and(|f| f.is_empty()),
        "{report}"
    );
    assert!(
        report["ok"].as_u64().is_some_and(|n| n > 0),
        "logins were made: {report}"
    );
    assert!(
        report["conn_per_s"].as_f64().is_some_and(|r| r > 0.0),
        "{report}"
    );
    for p in ["p50", "p90", "p99", "p999", "max"] {
        assert!(
            report["connect_us"][p].as_u64().is_some_and(|us| us > 0),
            "connect latency {p}: {report}"
        );
    }
    assert!(
        stderr.contains("[load] measuring") && stderr.contains("[load] measured window over"),
        "window markers on stderr: {stderr}"
    );
    assert!(stderr.contains("conn/s"), "progress line: {stderr}");

    // The host answered each of those logins (plus none refused).
    let answered = stack
        .host
        .metrics
        .service
        .answered
        .load(std::sync::atomic::Ordering::Relaxed);
    let total = report["ok"].as_u64().unwrap_or(0) + report["warmup_ok"].as_u64().unwrap_or(0);
    assert!(
        answered >= total,
        "host answered {answered} requests for {total} logins"
    );
    stack.host.stop().await?;
    Ok(())
}

#[test]
fn refuses_servers_outside_loopback() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_portcullis-bench"))
        .args(["load", "--url", "nats://192.0.2.1:4222", "--user", "a:b"])
        .args(["--duration", "1", "--warmup", "0"])
        .output()
        .expect("runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not a loopback address"), "{stderr}");
    assert!(output.stdout.is_empty());
}

/// The storm command end to end: 100 clients at once against a real
/// nats-server and host, every one connected, each attempt accounted for,
/// the connections held until the storm ends (the host answered one login
/// per client). No timing is asserted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_small_storm_connects_every_client_and_accounts_for_every_attempt() -> anyhow::Result<()>
{
    let stack = Stack::static_users(true).await?;
    let users = stack.deployment.dir.path().join("users.json");
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_portcullis-bench"))
        .arg("storm")
        .args(["--url", &stack.server.url()])
        .arg("--users-file")
        .arg(&users)
        .args(["--clients", "100", "--deadline", "60"])
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(WAIT + Duration::from_secs(70), run).await??;
    let stdout = String::from_utf8(output.stdout)?;
    let stderr = String::from_utf8(output.stderr)?;
    assert!(output.status.success(), "exit {}: {stderr}", output.status);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 1, "exactly one line on stdout: {stdout}");
    let report: serde_json::Value = serde_json::from_str(lines[0])?;
    assert_eq!(report["bench"], "portcullis-reconnect-storm", "{report}");
    assert_eq!(report["clients"], 100, "{report}");
    assert_eq!(report["connected"], 100, "{report}");
    assert_eq!(report["gave_up"], 0, "{report}");
    assert!(
        report["all_connected_s"].as_f64().is_some(),
        "the time until all were in: {report}"
    );
    let failed: u64 = ["refused_fast", "auth_timeouts", "client_timeouts"]
        .iter()
        .map(|k| report[k].as_u64().unwrap_or(0))
        .sum::<u64>()
        + report["other_failures"]
            .as_object()
            .map_or(0, |o| o.values().filter_map(|v| v.as_u64()).sum());
    assert_eq!(
        report["attempts"].as_u64(),
        Some(100 + failed),
        "one successful attempt per client plus every failed one: {report}"
    );
    assert!(
        report["nofile"].as_u64() >= report["nofile_before"].as_u64(),
        "{report}"
    );
    let answered = stack
        .host
        .metrics
        .service
        .answered
        .load(std::sync::atomic::Ordering::Relaxed);
    assert!(answered >= 100, "host answered {answered} of 100 logins");
    stack.host.stop().await?;
    Ok(())
}
