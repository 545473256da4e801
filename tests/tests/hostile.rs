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

/// The error with which the host refuses to start with this plugin table.
async fn load_error(wasm: &std::path::Path, extra: &str) -> anyhow::Result<String> {
    let deployment = Deployment::new(false)?;
    let plugins = format!(
        "[[plugins]]\nname = \"hostile\"\nwasm = \"{}\"\naccounts = [\"APP1\"]\ntimeout_ms = 50\n{extra}\n",
        wasm.display()
    );
    let config =
        deployment.write_host_config(&deployment.host_config("nats://127.0.0.1:1", &plugins))?;
    match portcullis::host::build(&config).await {
        Ok(_) => anyhow::bail!("{} must not load", wasm.display()),
        Err(e) => Ok(e.to_string()),
    }
}

async fn configure_error(attack: &str) -> anyhow::Result<String> {
    load_error(
        &plugin("hostile"),
        &format!("config = {{ attack = \"{attack}\" }}"),
    )
    .await
}

#[tokio::test]
async fn refuses_to_start_a_plugin_that_loops_in_configure() -> anyhow::Result<()> {
    let err = configure_error("configure-loop").await?;
    // configure gets 10x the call deadline, at least 1 s.
    assert!(
        err.contains("plugin hostile")
            && err.contains("configure: plugin exceeded its 1s time limit"),
        "{err}"
    );
    Ok(())
}

#[tokio::test]
async fn refuses_to_start_a_plugin_that_rejects_its_config() -> anyhow::Result<()> {
    let err = configure_error("configure-error").await?;
    assert!(
        err.contains("plugin rejected its configuration: this plugin rejects every configuration"),
        "{err}"
    );
    Ok(())
}

#[tokio::test]
async fn refuses_to_load_a_plugin_that_imports_the_filesystem_or_network() -> anyhow::Result<()> {
    let err = load_error(&plugin("hostile_io"), "").await?;
    assert!(err.contains("component imports wasi:filesystem/"), "{err}");
    assert!(
        err.contains("which Portcullis does not grant to plugins"),
        "{err}"
    );
    Ok(())
}

#[tokio::test]
async fn refuses_to_load_a_plugin_built_for_another_wit_version() -> anyhow::Result<()> {
    let err = load_error(&plugin("wrong_wit"), "").await?;
    assert!(
        err.contains("plugin targets portcullis:authenticator/plugin@0.2.0, this host serves portcullis:authenticator/plugin@0.1.0"),
        "{err}"
    );
    Ok(())
}

#[tokio::test]
async fn refuses_to_load_what_is_not_a_component() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let garbage = dir.path().join("garbage.wasm");
    std::fs::write(&garbage, b"#!/bin/sh\nrm -rf /\n")?;
    let err = load_error(&garbage, "").await?;
    assert!(err.contains("not a valid WebAssembly component"), "{err}");
    let core = dir.path().join("core.wasm");
    std::fs::write(&core, b"\0asm\x01\0\0\0")?;
    let err = load_error(&core, "").await?;
    assert!(
        err.contains("core WebAssembly module, not a component"),
        "{err}"
    );
    Ok(())
}

#[tokio::test]
async fn sees_no_host_environment() -> anyhow::Result<()> {
    // Deny with what it saw, so the reason in the server log is the proof.
    attack_is_contained(
        "read-env",
        "",
        "denied by plugin hostile: saw 0 environment variables and 0 arguments",
    )
    .await
}

/// A plugin whose instance grows on every login (a garbage-collected heap
/// does) is retired before its memory cap fails a login: 48 logins keep
/// 48 MiB in all, three times the 16 MiB cap, and every one is served.
#[tokio::test]
async fn retires_a_growing_instance_before_the_cap_fails_a_login() -> anyhow::Result<()> {
    // `leak` keeps 1 MiB per login by default.
    let stack = stack_with_attack("leak", "memory_mb = 16\nmax_concurrency = 1").await?;
    for login in 0..48 {
        if let Err(e) = stack.login("mallory", "x").await {
            panic!("login {login} failed: {e}");
        }
    }
    Ok(())
}
