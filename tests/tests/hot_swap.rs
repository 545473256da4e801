//! Hot swap on one host: plugin files and their configuration change under
//! a running host, which swaps in what loads and keeps what runs when the
//! new version does not; logins never fail because of a swap.
//!
//! "Never fail" is checked two ways: the load saw no failed login, and it
//! saw successful logins inside every swap window (action to swap seen), so
//! a load that stalled through a swap cannot pass. How long a swap took is
//! reported, not asserted: on a loaded 2-core machine it is a figure, and
//! correctness does not depend on it.

use portcullis_tests::{
    Deployment, LoginLoad, Stack, admitted, expect_refused, plugin, replace_file,
};
use std::time::Instant;

const USERS_WITH_CAROL: &str = r#"{
  "alice": { "pass": "alice", "account": "APP1" },
  "bob": { "pass": "bob", "account": "APP2" },
  "carol": { "pass": "carol", "account": "APP1" }
}"#;

/// A stack whose plugin file is a copy in the deployment directory, so the
/// tests can replace it without touching the build output.
async fn stack_with_own_plugin_copy() -> anyhow::Result<Stack> {
    let deployment = Deployment::new(true)?;
    let wasm = deployment.dir.path().join("users.wasm");
    std::fs::copy(plugin("static_users"), &wasm)?;
    let plugins = format!(
        "[[plugins]]\nname = \"users\"\nwasm = \"{}\"\naccounts = [\"APP1\", \"APP2\"]\nconfig_file = \"users.json\"\n",
        wasm.display()
    );
    Stack::with_plugins(deployment, &plugins).await
}

/// Admitted, or refused by an answer (anything else is an error).
async fn can_log_in(stack: &Stack, user: &str) -> anyhow::Result<bool> {
    admitted(stack.login(user, user)).await
}

#[tokio::test]
async fn twenty_component_swaps_under_load_lose_no_login() -> anyhow::Result<()> {
    let stack = stack_with_own_plugin_copy().await?;
    let wasm = stack.deployment.dir.path().join("users.wasm");
    // v1 is static-users with users.json (no carol); v2 is a different
    // component that also admits carol.
    let v1 = std::fs::read(plugin("static_users"))?;
    let v2 = std::fs::read(plugin("users_v2"))?;
    assert!(!can_log_in(&stack, "carol").await?, "v1 serves at first");
    let load = LoginLoad::start(&[stack.server.url()], 4);
    load.wait_for_logins(4).await?;
    let mut latencies = Vec::new();
    for round in 0..20 {
        let to_v2 = round % 2 == 0;
        let before = stack.host.metrics.reload_counts();
        let renamed = Instant::now();
        replace_file(&wasm, if to_v2 { &v2 } else { &v1 })?;
        stack.host.wait_for_swaps(before, 1, 0).await?;
        assert_eq!(can_log_in(&stack, "carol").await?, to_v2, "round {round}");
        let seen = renamed.elapsed();
        load.ensure_logins_during(renamed, Instant::now(), &format!("round {round}"))?;
        latencies.push(seen);
    }
    let (ok, failed, errors) = load.finish().await;
    assert_eq!(
        failed,
        0,
        "{failed} of {} logins failed during swaps: {errors:?}",
        ok + failed
    );
    assert!(ok > 0, "the load ran");
    latencies.sort();
    eprintln!(
        "swap: rename -> first login on the new version, median {:?} max {:?} over {} swaps ({ok} logins under load)",
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1],
        latencies.len()
    );
    Ok(())
}

#[tokio::test]
async fn changing_the_directory_adds_a_user_live() -> anyhow::Result<()> {
    let stack = Stack::static_users(true).await?;
    assert!(!can_log_in(&stack, "carol").await?);
    let before = stack.host.metrics.reload_counts();
    replace_file(
        &stack.deployment.dir.path().join("users.json"),
        USERS_WITH_CAROL.as_bytes(),
    )?;
    stack.host.wait_for_swaps(before, 1, 0).await?;
    assert!(can_log_in(&stack, "carol").await?);
    Ok(())
}

#[tokio::test]
async fn a_malformed_directory_is_rejected_and_the_old_one_keeps_serving() -> anyhow::Result<()> {
    let stack = Stack::static_users(true).await?;
    let users = stack.deployment.dir.path().join("users.json");
    let before = stack.host.metrics.reload_counts();
    replace_file(&users, USERS_WITH_CAROL.as_bytes())?;
    let now = stack.host.wait_for_swaps(before, 1, 0).await?;
    assert!(can_log_in(&stack, "carol").await?);

    for broken in [r#"{"alice": "#, r#"{"alice": {"pass": "alice"}}"#] {
        let before = stack.host.metrics.reload_counts();
        replace_file(&users, broken.as_bytes())?;
        stack.host.wait_for_swaps(before, 0, 1).await?;
        assert!(
            can_log_in(&stack, "carol").await?,
            "the last good directory serves"
        );
        assert!(can_log_in(&stack, "alice").await?);
    }
    assert_eq!(
        stack.host.metrics.reload_counts().swapped,
        now.swapped,
        "nothing broken was swapped in"
    );
    Ok(())
}

#[tokio::test]
async fn broken_components_are_rejected_under_load_and_a_good_one_swaps_back() -> anyhow::Result<()>
{
    let stack = stack_with_own_plugin_copy().await?;
    let wasm = stack.deployment.dir.path().join("users.wasm");
    let good_digest = stack.host.registry.chain().plugins()[0].digest.clone();
    let load = LoginLoad::start(&[stack.server.url()], 4);
    load.wait_for_logins(4).await?;

    let not_a_component = b"not a component".to_vec();
    let wrong_wit = std::fs::read(plugin("wrong_wit"))?;
    // hostile.wasm is a fine component, but it rejects users.json as its config.
    let rejects_config = std::fs::read(plugin("hostile"))?;
    for (what, bytes) in [
        ("not a component", not_a_component),
        ("wrong WIT version", wrong_wit),
        ("rejects its config", rejects_config),
    ] {
        let before = stack.host.metrics.reload_counts();
        let replaced = Instant::now();
        replace_file(&wasm, &bytes)?;
        stack
            .host
            .wait_for_swaps(before, 0, 1)
            .await
            .map_err(|e| anyhow::anyhow!("{what}: {e}"))?;
        assert_eq!(
            stack.host.registry.chain().plugins()[0].digest,
            good_digest,
            "{what}"
        );
        assert!(
            can_log_in(&stack, "alice").await?,
            "{what}: the old version serves"
        );
        load.ensure_logins_during(replaced, Instant::now(), what)?;
    }

    // A good new version after the broken ones is swapped in.
    let before = stack.host.metrics.reload_counts();
    let replaced = Instant::now();
    replace_file(&wasm, &std::fs::read(plugin("users_v2"))?)?;
    stack.host.wait_for_swaps(before, 1, 0).await?;
    assert!(can_log_in(&stack, "carol").await?, "the new version serves");
    load.ensure_logins_during(replaced, Instant::now(), "the good version")?;
    let (ok, failed, errors) = load.finish().await;
    assert_eq!(
        failed,
        0,
        "{failed} of {} logins failed: {errors:?}",
        ok + failed
    );
    Ok(())
}

#[tokio::test]
async fn a_reload_request_rereads_the_config_and_a_broken_one_is_rejected() -> anyhow::Result<()> {
    let stack = Stack::static_users(true).await?;
    let toml = stack.deployment.dir.path().join("portcullis.toml");
    let original = std::fs::read_to_string(&toml)?;

    // Add a plugin in front of static-users (what SIGHUP does in `run`).
    let added = format!(
        "{original}\n[[plugins]]\nname = \"env-reader\"\nwasm = \"{}\"\naccounts = [\"APP1\"]\nconfig = {{ attack = \"read-env\" }}\n",
        plugin("hostile").display()
    );
    let before = stack.host.metrics.reload_counts();
    replace_file(&toml, added.as_bytes())?;
    stack.host.request_reload().await?;
    stack.host.wait_for_swaps(before, 1, 0).await?;
    let names: Vec<String> = stack
        .host
        .registry
        .chain()
        .plugins()
        .iter()
        .map(|p| p.plugin.name().to_owned())
        .collect();
    assert_eq!(names, ["users", "env-reader"]);
    // static-users denies mallory first, by an answer.
    expect_refused(stack.login("mallory", "x")).await?;

    // A broken file is rejected whole; the running chain stays.
    let before = stack.host.metrics.reload_counts();
    replace_file(&toml, format!("{added}\nunknown_key = 1\n").as_bytes())?;
    stack.host.request_reload().await?;
    stack.host.wait_for_swaps(before, 0, 1).await?;
    assert_eq!(stack.host.registry.chain().plugins().len(), 2);
    stack.login("alice", "alice").await?;
    Ok(())
}

#[tokio::test]
async fn a_version_that_traps_in_configure_is_rejected_and_the_old_one_serves() -> anyhow::Result<()>
{
    let stack = Stack::static_users(true).await?;
    let toml = stack.deployment.dir.path().join("portcullis.toml");
    let original = std::fs::read_to_string(&toml)?;
    let trapping = original.replace(
        &format!("wasm = \"{}\"", plugin("static_users").display()),
        &format!(
            "wasm = \"{}\"\nconfig = {{ attack = \"configure-trap\" }}",
            plugin("hostile").display()
        ),
    );
    let trapping = trapping.replace("config_file = \"users.json\"\n", "");
    assert_ne!(trapping, original);
    let load = LoginLoad::start(&[stack.server.url()], 4);
    load.wait_for_logins(4).await?;
    let before = stack.host.metrics.reload_counts();
    let requested = Instant::now();
    replace_file(&toml, trapping.as_bytes())?;
    stack.host.request_reload().await?;
    stack.host.wait_for_swaps(before, 0, 1).await?;
    load.ensure_logins_during(requested, Instant::now(), "the trapping version")?;
    load.wait_for_logins(4).await?;
    let (ok, failed, errors) = load.finish().await;
    assert_eq!(
        failed,
        0,
        "{failed} of {} logins failed: {errors:?}",
        ok + failed
    );
    assert_eq!(
        stack.host.registry.chain().plugins()[0].origin,
        plugin("static_users").display().to_string(),
        "static-users still serves"
    );
    Ok(())
}

#[tokio::test]
async fn a_version_that_fails_its_vectors_is_not_swapped_in() -> anyhow::Result<()> {
    let deployment = Deployment::new(true)?;
    let dir = deployment.dir.path();
    let wasm = dir.join("users.wasm");
    std::fs::copy(plugin("static_users"), &wasm)?;
    // The operator's smoke test: strangers such as carol are not admitted.
    let vectors = dir.join("vectors");
    std::fs::create_dir(&vectors)?;
    std::fs::write(vectors.join("config.json"), portcullis_tests::users_json())?;
    std::fs::write(
        vectors.join("01-alice.json"),
        r#"{"request": {"connect_opts": {"user": "alice", "pass": "alice"}}, "expect": {"decision": "allow", "account": "APP1"}}"#,
    )?;
    std::fs::write(
        vectors.join("02-carol-is-a-stranger.json"),
        r#"{"request": {"connect_opts": {"user": "carol", "pass": "carol"}}, "expect": {"decision": "deny"}}"#,
    )?;
    let plugins = format!(
        "[[plugins]]\nname = \"users\"\nwasm = \"{}\"\naccounts = [\"APP1\", \"APP2\"]\nconfig_file = \"users.json\"\nvectors = \"vectors\"\n",
        wasm.display()
    );
    let stack = Stack::with_plugins(deployment, &plugins).await?;
    let good = stack.host.registry.chain().plugins()[0].digest.clone();
    let load = LoginLoad::start(&[stack.server.url()], 4);
    load.wait_for_logins(4).await?;

    // users-v2 admits carol: a fine component that fails the smoke test.
    let before = stack.host.metrics.reload_counts();
    let replaced = Instant::now();
    replace_file(&wasm, &std::fs::read(plugin("users_v2"))?)?;
    stack.host.wait_for_swaps(before, 0, 1).await?;
    assert_eq!(stack.host.registry.chain().plugins()[0].digest, good);
    assert!(!can_log_in(&stack, "carol").await?);
    load.ensure_logins_during(replaced, Instant::now(), "the failing version")?;
    load.wait_for_logins(4).await?;
    let (ok, failed, errors) = load.finish().await;
    assert_eq!(
        failed,
        0,
        "{failed} of {} logins failed: {errors:?}",
        ok + failed
    );
    Ok(())
}
