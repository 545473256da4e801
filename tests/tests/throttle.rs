//! Password guessing is bounded: after `[limits]` failed logins a user name
//! (or a client address) is refused at once with a signed error, without
//! asking a plugin, while everyone else keeps logging in.

use portcullis_tests::{Deployment, Stack, expect_refused};

async fn stack(limits: &str) -> anyhow::Result<Stack> {
    let deployment = Deployment::new(true)?;
    let plugins = format!("[limits]\n{limits}\n\n{}", deployment.static_users());
    Stack::with_plugins(deployment, &plugins).await
}

fn throttled(stack: &Stack, limit: &str) -> u64 {
    stack
        .host
        .metrics
        .throttled
        .get_or_create(&portcullis::metrics::ThrottleLabels {
            limit: if limit == "user" { "user" } else { "address" },
        })
        .get()
}

#[tokio::test]
async fn guessing_a_password_locks_that_user_name_not_the_others() -> anyhow::Result<()> {
    let stack = stack("failed_logins_per_user = 3\nfailed_logins_per_address = 0").await?;
    for guess in ["a", "b", "c"] {
        expect_refused(stack.login("alice", guess))
            .await
            .map_err(|e| e.context("wrong password"))?;
    }
    let decisions_before = stack.host.metrics.encode();
    let mark = stack.server.log_mark();
    // Refused by an answer, well before the auth timeout (expect_refused).
    expect_refused(stack.login("alice", "alice"))
        .await
        .map_err(|e| e.context("the right password is refused once the user name is locked"))?;
    stack
        .server
        .wait_for_log_since(mark, "too many failed logins for this user name")
        .await?;
    assert_eq!(throttled(&stack, "user"), 1);
    // No plugin was asked: the decision counters did not move.
    assert_eq!(
        decisions_before
            .lines()
            .filter(|l| l.starts_with("portcullis_decisions_total"))
            .collect::<Vec<_>>(),
        stack
            .host
            .metrics
            .encode()
            .lines()
            .filter(|l| l.starts_with("portcullis_decisions_total"))
            .collect::<Vec<_>>(),
    );
    stack.login("bob", "bob").await?;
    Ok(())
}

#[tokio::test]
async fn an_address_spraying_user_names_is_refused_for_every_user() -> anyhow::Result<()> {
    let stack = stack("failed_logins_per_address = 4\nfailed_logins_per_user = 0").await?;
    for user in ["u1", "u2", "u3", "u4"] {
        expect_refused(stack.login(user, "x"))
            .await
            .map_err(|e| e.context("unknown user"))?;
    }
    let mark = stack.server.log_mark();
    expect_refused(stack.login("bob", "bob"))
        .await
        .map_err(|e| e.context("every login from the address is refused once it is locked"))?;
    stack
        .server
        .wait_for_log_since(mark, "too many failed logins from this client address")
        .await?;
    assert_eq!(throttled(&stack, "address"), 1);
    Ok(())
}

#[tokio::test]
async fn successful_logins_are_never_counted() -> anyhow::Result<()> {
    let stack = stack("failed_logins_per_user = 2\nfailed_logins_per_address = 2").await?;
    for _ in 0..5 {
        stack.login("bob", "bob").await?;
    }
    assert_eq!(throttled(&stack, "user") + throttled(&stack, "address"), 0);
    Ok(())
}
