//! Hostile plugins: each attack costs exactly one denied login, with the
//! reason in the server's log, and the next login succeeds.
//!
//! The `hostile` fixture attacks when the user is `mallory` and abstains
//! for everyone else, so the static-users plugin after it keeps serving.

use async_nats::ConnectErrorKind;
use portcullis_tests::{Deployment, Stack, plugin};

async fn stack_with_attack(attack: &str, limits: &str) -> anyhow::Result<Stack> {
    let deployment = Deployment::new(true)?;
    let plugins = format!(
        r#"
[[plugins]]
name = "hostile"
wasm = "{wasm}"
accounts = ["APP1"]
max_expiry = "1h"
{limits}
config = {{ attack = "{attack}", user = "mallory" }}
{users}"#,
        wasm = plugin("hostile").display(),
        users = deployment.static_users(),
    );
    Stack::with_plugins(deployment, &plugins).await
}

/// mallory is refused with `reason` in the server log; alice still gets in.
async fn attack_is_contained(attack: &str, limits: &str, reason: &str) -> anyhow::Result<()> {
    let stack = stack_with_attack(attack, limits).await?;
    let err = stack
        .login("mallory", "x")
        .await
        .expect_err("the attack must not log in");
    assert_eq!(
        err.kind(),
        ConnectErrorKind::AuthorizationViolation,
        "{err}"
    );
    let line = stack.server.wait_for_log(reason)?;
    assert!(
        line.contains("Auth callout service returned an error"),
        "{line}"
    );
    // The host is up and the plugin chain serves the next login.
    stack.login("alice", "alice").await?;
    // And the attacker's next try is refused the same way (a fresh instance).
    stack
        .login("mallory", "x")
        .await
        .expect_err("still refused");
    stack.login("bob", "bob").await?;
    Ok(())
}

#[tokio::test]
async fn stops_a_busy_loop_at_its_deadline() -> anyhow::Result<()> {
    attack_is_contained(
        "busy-loop",
        "timeout_ms = 100",
        "plugin hostile failed: plugin exceeded its 100ms time limit",
    )
    .await
}

#[tokio::test]
async fn contains_a_panic() -> anyhow::Result<()> {
    attack_is_contained("trap", "", "plugin hostile failed: plugin trapped").await
}

#[tokio::test]
async fn caps_a_memory_bomb() -> anyhow::Result<()> {
    attack_is_contained(
        "memory-bomb",
        "memory_mb = 16",
        "plugin hostile failed: plugin exceeded its memory limit of 16 MiB",
    )
    .await
}

#[tokio::test]
async fn contains_a_stack_overflow() -> anyhow::Result<()> {
    attack_is_contained(
        "stack-overflow",
        "",
        "plugin hostile failed: plugin trapped",
    )
    .await
}

#[tokio::test]
async fn rejects_a_grant_into_a_foreign_account() -> anyhow::Result<()> {
    attack_is_contained(
        "foreign-account",
        "",
        "plugin hostile: grant refused by host policy: account \"SYS\" is not one this plugin may place users in",
    )
    .await
}

#[tokio::test]
async fn rejects_a_century_long_expiry() -> anyhow::Result<()> {
    attack_is_contained(
        "century-expiry",
        "",
        "grant refused by host policy: expiry of 3153600000s exceeds the plugin's maximum of 3600s",
    )
    .await
}

#[tokio::test]
async fn rejects_huge_subject_lists() -> anyhow::Result<()> {
    attack_is_contained(
        "huge-subjects",
        "memory_mb = 128\ntimeout_ms = 5000",
        "grant refused by host policy: subjects: 100000 entries, at most 1024 allowed",
    )
    .await
}

#[tokio::test]
async fn rejects_malformed_subjects() -> anyhow::Result<()> {
    attack_is_contained(
        "bad-subjects",
        "",
        "grant refused by host policy: invalid subject \"foo..bar\": empty token",
    )
    .await
}

async fn load_error(attack: &str) -> anyhow::Result<String> {
    let deployment = Deployment::new(false)?;
    let plugins = format!(
        "[[plugins]]\nname = \"hostile\"\nwasm = \"{}\"\naccounts = [\"APP1\"]\ntimeout_ms = 50\nconfig = {{ attack = \"{attack}\" }}\n",
        plugin("hostile").display()
    );
    let config =
        deployment.write_host_config(&deployment.host_config("nats://127.0.0.1:1", &plugins))?;
    match portcullis::host::build(&config).await {
        Ok(_) => anyhow::bail!("a plugin that cannot configure must not load"),
        Err(e) => Ok(e.to_string()),
    }
}

#[tokio::test]
async fn refuses_to_start_a_plugin_that_loops_in_configure() -> anyhow::Result<()> {
    let err = load_error("configure-loop").await?;
    // configure gets 10x the call deadline, at least 1 s.
    assert!(
        err.contains("plugin hostile")
            && err.contains("did not start: plugin exceeded its 1s time limit"),
        "{err}"
    );
    Ok(())
}

#[tokio::test]
async fn refuses_to_start_a_plugin_that_rejects_its_config() -> anyhow::Result<()> {
    let err = load_error("configure-error").await?;
    assert!(
        err.contains("plugin rejected its configuration: this plugin rejects every configuration"),
        "{err}"
    );
    Ok(())
}
