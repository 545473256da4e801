//! The log is an audit trail: one line per decision that says who asked,
//! which plugin decided and why, and never a password, token or key.
//! (Its own test binary: it installs the process-wide log subscriber.)

use portcullis_tests::{Stack, expect_refused};
use std::io::Write;
use std::sync::{Arc, Mutex};

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test]
async fn one_json_line_per_decision_and_no_secrets() -> anyhow::Result<()> {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing_subscriber::fmt()
        .json()
        .with_env_filter("debug")
        .with_writer(move || writer.clone())
        .init();

    let stack = Stack::static_users(true).await?;
    stack.login("bob", "bob").await?;
    expect_refused(stack.login("alice", "hunter2-wrong"))
        .await
        .map_err(|e| e.context("wrong password"))?;
    expect_refused(stack.login("mallory", "tok3n-like-secret"))
        .await
        .map_err(|e| e.context("unknown user"))?;

    let text = String::from_utf8(captured.0.lock().unwrap().clone())?;
    let decisions: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| {
            v["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("login "))
        })
        .collect();
    assert_eq!(decisions.len(), 3, "{text}");
    let bob = &decisions[0]["fields"];
    assert_eq!(bob["message"], "login allowed");
    assert_eq!(bob["user"], "bob");
    assert_eq!(bob["plugin"], "users");
    assert_eq!(bob["account"], "APP2");
    assert_eq!(bob["client"], "127.0.0.1");
    assert_eq!(bob["digest"].as_str().map(str::len), Some(12), "{bob}");
    let alice = &decisions[1]["fields"];
    assert_eq!(alice["message"], "login denied");
    assert!(
        alice["reason"].as_str().unwrap().contains("wrong password"),
        "{alice}"
    );

    // The request id names one login: the server's one-time user nkey, not
    // the request `jti` the server repeats for every request of a second.
    let ids: std::collections::HashSet<&str> = decisions
        .iter()
        .map(|d| d["fields"]["request"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(ids.len(), 3, "one request id per login: {ids:?}");
    assert!(
        ids.iter().all(|id| id.len() == 56 && id.starts_with('U')),
        "{ids:?}"
    );

    for secret in ["hunter2-wrong", "tok3n-like-secret"] {
        assert!(!text.contains(secret), "{secret} reached the log");
    }
    let dir = stack.deployment.dir.path();
    for seed_file in ["issuer.nk", "xkey.nk"] {
        let seed = std::fs::read_to_string(dir.join(seed_file))?;
        assert!(!text.contains(seed.trim()), "{seed_file} reached the log");
    }
    Ok(())
}
