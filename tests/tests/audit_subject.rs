//! `[audit] subject`: every decision is also published as one JSON event
//! for central collection, with the facts of the audit log line and never
//! a password, token or key.

use portcullis_tests::{Stack, expect_refused};

#[tokio::test]
async fn decisions_are_published_on_the_audit_subject_without_secrets() -> anyhow::Result<()> {
    use futures::StreamExt;
    let deployment = portcullis_tests::Deployment::new(true)?;
    let plugins = format!(
        "[audit]\nsubject = \"portcullis.audit\"\n{}",
        deployment.static_users()
    );
    let stack = Stack::with_plugins(deployment, &plugins).await?;
    let collector = stack.login("auth", "auth").await?;
    let mut events = collector.subscribe("portcullis.audit").await?;
    collector.flush().await?;

    stack.login("bob", "bob").await?;
    expect_refused(stack.login("alice", "hunter2-wrong"))
        .await
        .map_err(|e| e.context("wrong password"))?;

    let mut received = Vec::new();
    for _ in 0..2 {
        let message = tokio::time::timeout(portcullis_tests::WAIT, events.next())
            .await?
            .expect("subscription open");
        let text = String::from_utf8(message.payload.to_vec())?;
        assert!(!text.contains("hunter2"), "{text}");
        received.push(serde_json::from_str::<serde_json::Value>(&text)?);
    }
    let bob = &received[0];
    assert_eq!(bob["user"], "bob");
    assert_eq!(bob["outcome"], "allow");
    assert_eq!(bob["plugin"], "users");
    assert_eq!(bob["account"], "APP2");
    assert_eq!(bob["digest"].as_str().map(str::len), Some(64));
    assert!(
        bob["request"]
            .as_str()
            .is_some_and(|r| r.len() == 56 && r.starts_with('U')),
        "{bob}"
    );
    assert_eq!(bob["client"], "127.0.0.1");
    let alice = &received[1];
    assert_eq!(alice["user"], "alice");
    assert_ne!(alice["request"], bob["request"], "one request id per login");
    assert_eq!(alice["outcome"], "deny");
    assert!(
        alice["reason"]
            .as_str()
            .is_some_and(|r| r.contains("users")),
        "{alice}"
    );
    Ok(())
}
