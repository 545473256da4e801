//! Plugins in any Wasm language: the static-users plugin written in Rust,
//! JavaScript (componentize-js) and Python (componentize-py) passes the
//! same conformance vectors, gives the same decisions and logs the same
//! users in through a real nats-server; a JavaScript or Python plugin that
//! throws or returns malformed data costs a denied login and nothing more.

use futures::StreamExt;
use portcullis::vectors::{self, DecisionJson, Outcome};
use portcullis_runtime::{LogLimits, Plugin, PluginLimits, Runtime, RuntimeOptions};
use portcullis_tests::{
    Deployment, Stack, WAIT, cache_dir, expect_refused, plugin, user_info, workspace,
};
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

/// The static-users plugin per language: (language, component name, the
/// WIT version its SDK builds for). The JavaScript and Python ones are
/// built for 0.1.0 and must keep loading beside the Rust one's 0.2.0.
const STATIC_USERS: [(&str, &str, &str); 3] = [
    ("rust", "static_users", "0.2.0"),
    ("js", "static_users_js", "0.1.0"),
    ("python", "static_users_py", "0.1.0"),
];

/// Compiling a JS or Python component takes seconds; tests of this binary
/// run in parallel and would all compile the same one at once. The first
/// caller per component compiles into the shared cache, the others wait.
fn warm_cache(name: &str) {
    static WARMED: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let mut warmed = WARMED.lock().unwrap_or_else(|p| p.into_inner());
    if warmed.iter().any(|n| n == name) {
        return;
    }
    let runtime = Runtime::new(&options()).expect("runtime");
    let bytes = std::fs::read(plugin(name)).expect("component");
    runtime.prepare(&bytes).expect("compiles");
    warmed.push(name.to_owned());
}

fn options() -> RuntimeOptions {
    RuntimeOptions {
        cache_dir: Some(cache_dir()),
        pool_instances: Some(16),
        max_memory_bytes: 32 << 20,
        cache_max_age: None,
    }
}

/// A component loaded and configured with `config`, as the host loads it.
async fn load(name: &str, config: &str) -> anyhow::Result<Plugin> {
    warm_cache(name);
    let runtime = Runtime::new(&options())?;
    let pre = runtime.prepare(&std::fs::read(plugin(name))?)?;
    let limits = PluginLimits {
        timeout: Duration::from_secs(1),
        configure_timeout: Duration::from_secs(5),
        memory_bytes: 32 << 20,
        max_concurrency: 2,
        queue_timeout: Duration::from_secs(1),
        log: LogLimits::default(),
    };
    Ok(Plugin::new(name, pre, limits, config.to_owned(), None).await?)
}

async fn run_dir(name: &str, dir: &Path) -> anyhow::Result<vectors::Report> {
    let vectors = vectors::load_dir(dir)?;
    let config = std::fs::read_to_string(dir.join(vectors::CONFIG_FILE))?;
    let plugin = load(name, &config).await?;
    Ok(vectors::run(&plugin, &vectors, None).await)
}

#[tokio::test]
async fn every_static_users_plugin_passes_the_conformance_vectors() -> anyhow::Result<()> {
    let dir = workspace().join("plugins/static-users/vectors");
    let count = vectors::load_dir(&dir)?.len();
    assert!(count >= 15, "the suite has {count} vectors");
    for (lang, name, wit) in STATIC_USERS {
        warm_cache(name);
        let prepared = Runtime::new(&options())?.prepare(&std::fs::read(plugin(name))?)?;
        assert_eq!(prepared.wit_version(), wit, "{lang} ({name})");
        let report = run_dir(name, &dir).await?;
        assert_eq!(report.results.len(), count);
        assert!(report.ok(), "{lang} ({name}):\n{report}");
    }
    Ok(())
}

#[tokio::test]
async fn the_rust_static_users_passes_the_token_vectors() -> anyhow::Result<()> {
    // Shared tokens (`tokens`) exist in the Rust plugin only, so their
    // vectors live apart from the suite every language passes.
    let dir = workspace().join("plugins/static-users/vectors-tokens");
    let report = run_dir("static_users", &dir).await?;
    assert_eq!(report.results.len(), vectors::load_dir(&dir)?.len());
    assert!(report.results.len() >= 6, "{report}");
    assert!(report.ok(), "{report}");
    Ok(())
}

#[tokio::test]
async fn the_three_languages_decide_identically() -> anyhow::Result<()> {
    // Stronger than the vectors, which compare only what they name: every
    // field of every decision, reasons included, is the same.
    let dir = workspace().join("plugins/static-users/vectors");
    let vectors = vectors::load_dir(&dir)?;
    let config = std::fs::read_to_string(dir.join(vectors::CONFIG_FILE))?;
    let mut answers: Vec<(&str, Vec<serde_json::Value>)> = Vec::new();
    for (lang, name, _) in STATIC_USERS {
        let plugin = load(name, &config).await?;
        let mut decisions = Vec::new();
        for vector in &vectors {
            let target = match &vector.config {
                Some(own) if *own != config => plugin.with_config(own.clone()).await?,
                _ => plugin.with_config(config.clone()).await?,
            };
            let request = portcullis::request::auth_request(&vector.request);
            let decision = target.authenticate(&request).await?;
            decisions.push(serde_json::to_value(DecisionJson::from(&decision))?);
        }
        answers.push((lang, decisions));
    }
    let (rust, expected) = &answers[0];
    for (lang, decisions) in &answers[1..] {
        for ((vector, want), got) in vectors.iter().zip(expected).zip(decisions) {
            assert_eq!(got, want, "{lang} differs from {rust} on {}", vector.id);
        }
    }
    Ok(())
}

#[tokio::test]
async fn the_starter_vectors_of_plugin_new_pass_in_every_language() -> anyhow::Result<()> {
    // `plugin new --lang js|python` copies static-users-js/-py verbatim, so
    // these are the components a new project builds.
    let dir = workspace().join("host/cli/src/commands/plugin/new/templates/vectors");
    for (lang, name, _) in STATIC_USERS {
        let report = run_dir(name, &dir).await?;
        assert!(report.ok(), "{lang}:\n{report}");
    }
    Ok(())
}

#[tokio::test]
async fn a_failing_vector_is_reported_with_what_differs() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    std::fs::write(
        dir.path().join("config.json"),
        r#"{"alice": {"pass": "alice", "account": "APP1"}}"#,
    )?;
    std::fs::write(
        dir.path().join("wrong.json"),
        r#"{"request": {"connect_opts": {"user": "alice", "pass": "alice"}},
            "expect": {"decision": "allow", "account": "APP2"}}"#,
    )?;
    for (lang, name, _) in STATIC_USERS {
        let report = run_dir(name, dir.path()).await?;
        assert!(!report.ok(), "{lang}");
        assert_eq!(
            report.results[0].outcome,
            Outcome::Fail(vec!["account: expected \"APP2\", got \"APP1\"".to_owned()]),
            "{lang}"
        );
    }
    Ok(())
}

/// The tests' users plus carol, whose password is a bcrypt hash (cost 4):
/// her login goes through the host's verify-password.
const USERS_WITH_BCRYPT: &str = r#"{
  "alice": { "pass": "alice", "account": "APP1" },
  "bob": {
    "pass": "bob",
    "account": "APP2",
    "permissions": {
      "pub": { "allow": ["bob.>", "$SYS.REQ.USER.INFO"] },
      "sub": { "allow": ["bob.>", "_INBOX.>"] },
      "resp": { "max": 1 }
    }
  },
  "carol": { "pass": "$2b$04$bOAI6.XIWE02Kp4h.ciL.uV7pmiMkKQVry1yS6vOa8MhHHfYqv11O", "account": "APP1" }
}"#;

async fn users_stack(name: &str) -> anyhow::Result<Stack> {
    warm_cache(name);
    let deployment = Deployment::new(true)?;
    std::fs::write(deployment.dir.path().join("users.json"), USERS_WITH_BCRYPT)?;
    let plugins = format!(
        "[[plugins]]\nname = \"users\"\nwasm = \"{}\"\naccounts = [\"APP1\", \"APP2\"]\n\
         max_expiry = \"1h\"\nconfig_file = \"users.json\"\n",
        plugin(name).display()
    );
    Stack::with_plugins(deployment, &plugins).await
}

/// Refused at once (a signed error, not a timeout), with `reason` in the
/// server's log.
async fn assert_refused(stack: &Stack, user: &str, pass: &str, reason: &str) -> anyhow::Result<()> {
    let mark = stack.server.log_mark();
    expect_refused(stack.login(user, pass))
        .await
        .map_err(|e| e.context("must be refused"))?;
    stack.server.wait_for_log_since(mark, reason).await?;
    Ok(())
}

async fn logins_through_nats(name: &str) -> anyhow::Result<()> {
    let stack = users_stack(name).await?;

    let alice = stack.login("alice", "alice").await?;
    let info = user_info(&alice).await?;
    assert_eq!(info["account"], "APP1", "{name}: {info}");
    assert_eq!(info["user"], "alice", "{name}: {info}");

    let bob = stack.login("bob", "bob").await?;
    let info = user_info(&bob).await?;
    assert_eq!(info["account"], "APP2", "{name}: {info}");
    assert_eq!(info["permissions"]["responses"]["max"], 1, "{name}: {info}");
    let mut sub = bob.subscribe("bob.inbox").await?;
    bob.publish("bob.inbox", "hi".into()).await?;
    let msg = tokio::time::timeout(WAIT, sub.next())
        .await?
        .expect("message");
    assert_eq!(&msg.payload[..], b"hi");

    let carol = stack.login("carol", "carol-s3cret").await?;
    assert_eq!(user_info(&carol).await?["account"], "APP1", "{name}");

    assert_refused(
        &stack,
        "alice",
        "bob",
        "denied by plugin users: wrong password for user \"alice\"",
    )
    .await?;
    assert_refused(
        &stack,
        "carol",
        "carol",
        "denied by plugin users: wrong password for user \"carol\"",
    )
    .await?;
    assert_refused(
        &stack,
        "mallory",
        "x",
        "denied by plugin users: unknown user \"mallory\"",
    )
    .await?;
    let mark = stack.server.log_mark();
    expect_refused(async_nats::ConnectOptions::new().connect(stack.server.url()))
        .await
        .map_err(|e| e.context("anonymous login must be refused"))?;
    stack
        .server
        .wait_for_log_since(mark, "no plugin accepted this login")
        .await?;

    // Still serving after the refusals.
    stack.login("alice", "alice").await?;
    Ok(())
}

#[tokio::test]
async fn rust_plugin_logs_users_in_through_nats() -> anyhow::Result<()> {
    logins_through_nats("static_users").await
}

#[tokio::test]
async fn javascript_plugin_logs_users_in_through_nats() -> anyhow::Result<()> {
    logins_through_nats("static_users_js").await
}

#[tokio::test]
async fn python_plugin_logs_users_in_through_nats() -> anyhow::Result<()> {
    logins_through_nats("static_users_py").await
}

/// A chain of `hostile` (component `name`, attacking mallory) then the
/// Rust static-users.
async fn hostile_stack(name: &str, attack: &str) -> anyhow::Result<Stack> {
    warm_cache(name);
    let deployment = Deployment::new(true)?;
    let plugins = format!(
        "[[plugins]]\nname = \"hostile\"\nwasm = \"{}\"\naccounts = [\"APP1\"]\ntimeout_ms = 200\n\
         config = {{ attack = \"{attack}\", user = \"mallory\" }}\n{}",
        plugin(name).display(),
        deployment.static_users()
    );
    Stack::with_plugins(deployment, &plugins).await
}

/// Each attack of `name` is refused with `reason` in the server's log, the
/// next login of another user succeeds, and the attack is refused again.
async fn attacks_are_contained(name: &str, attacks: &[(&str, &str)]) -> anyhow::Result<()> {
    for (attack, reason) in attacks {
        let stack = hostile_stack(name, attack).await?;
        for _ in 0..2 {
            let mark = stack.server.log_mark();
            expect_refused(stack.login("mallory", "x"))
                .await
                .map_err(|e| e.context("the attack must not log in"))?;
            let line = stack.server.wait_for_log_since(mark, reason).await?;
            assert!(
                line.contains("Auth callout service returned an error"),
                "{line}"
            );
            stack.login("alice", "alice").await?;
        }
    }
    Ok(())
}

#[tokio::test]
async fn a_javascript_plugin_that_throws_or_returns_garbage_is_denied_cleanly() -> anyhow::Result<()>
{
    attacks_are_contained(
        "hostile_js",
        &[
            ("throw", "plugin hostile failed: plugin trapped"),
            ("malformed-variant", "plugin hostile failed: plugin trapped"),
            ("malformed-grant", "plugin hostile failed: plugin trapped"),
            ("not-a-decision", "plugin hostile failed: plugin trapped"),
            (
                "busy-loop",
                "plugin hostile failed: plugin exceeded its 200ms time limit",
            ),
        ],
    )
    .await
}

#[tokio::test]
async fn a_python_plugin_that_raises_or_returns_garbage_is_denied_cleanly() -> anyhow::Result<()> {
    attacks_are_contained(
        "hostile_py",
        &[
            ("raise", "plugin hostile failed: plugin trapped"),
            ("malformed-grant", "plugin hostile failed: plugin trapped"),
            ("not-a-decision", "plugin hostile failed: plugin trapped"),
            (
                "busy-loop",
                "plugin hostile failed: plugin exceeded its 200ms time limit",
            ),
        ],
    )
    .await
}

/// The error with which the host refuses to start `name` with `attack`.
async fn start_error(name: &str, attack: &str) -> anyhow::Result<String> {
    warm_cache(name);
    let deployment = Deployment::new(false)?;
    let plugins = format!(
        "[[plugins]]\nname = \"hostile\"\nwasm = \"{}\"\naccounts = [\"APP1\"]\n\
         config = {{ attack = \"{attack}\" }}\n",
        plugin(name).display()
    );
    let config =
        deployment.write_host_config(&deployment.host_config("nats://127.0.0.1:1", &plugins))?;
    match portcullis::host::build(&config).await {
        Ok(_) => anyhow::bail!("{name} with {attack} must not start"),
        Err(e) => Ok(e.to_string()),
    }
}

#[tokio::test]
async fn configure_errors_in_javascript_and_python_keep_the_plugin_from_starting()
-> anyhow::Result<()> {
    for (name, attack, reason) in [
        (
            "hostile_js",
            "configure-reject",
            "plugin rejected its configuration: hostile-js rejects every configuration",
        ),
        ("hostile_js", "configure-throw", "configure: plugin trapped"),
        (
            "hostile_py",
            "configure-reject",
            "plugin rejected its configuration: hostile-py rejects every configuration",
        ),
        ("hostile_py", "configure-raise", "configure: plugin trapped"),
    ] {
        let err = start_error(name, attack).await?;
        assert!(
            err.contains("plugin hostile") && err.contains(reason),
            "{name} {attack}: {err}"
        );
    }
    Ok(())
}

#[tokio::test]
async fn the_authenticators_pass_their_conformance_vectors() -> anyhow::Result<()> {
    for (name, dir) in [
        ("nkeys_auth", "plugins/nkeys/vectors"),
        ("oidc_auth", "plugins/oidc/vectors"),
        ("x509_auth", "plugins/x509/vectors"),
    ] {
        let dir = workspace().join(dir);
        let report = run_dir(name, &dir).await?;
        assert!(report.results.len() >= 10, "{name}: {report}");
        assert!(report.ok(), "{name}:\n{report}");
    }
    Ok(())
}

/// A plugin that traps on every login must not pass deny-expecting
/// vectors: a trap refuses the login at the server, but a test runner that
/// counted "no allow" as "deny" would certify a plugin that cannot decide.
#[tokio::test]
async fn a_trapping_plugin_never_passes_deny_expecting_vectors() -> anyhow::Result<()> {
    let plugin = load("hostile", r#"{"attack": "trap", "user": "mallory"}"#).await?;
    let deny = |id: &str, reason: &str| {
        let text = format!(
            r#"{{"description": "mallory is refused ({id})",
                "request": {{"connect_opts": {{"user": "mallory", "pass": "x"}},
                             "client_info": {{"host": "127.0.0.1", "id": 7, "kind": "Client", "type": "nats"}}}},
                "expect": {{"decision": "deny"{reason}}}}}"#
        );
        vectors::parse_file(&text, Path::new(&format!("{id}.json")), None)
    };
    let vectors = vec![
        deny("any-reason", "")?,
        deny("named-reason", r#", "reason_contains": "trapped""#)?,
    ];
    let report = vectors::run(&plugin, &vectors, None).await;
    assert!(!report.ok(), "{report}");
    assert_eq!(report.passed(), 0, "{report}");
    for result in &report.results {
        assert!(
            matches!(&result.outcome, Outcome::Error(e) if e.contains("trapped")),
            "{}: {:?}",
            result.id,
            result.outcome
        );
    }
    Ok(())
}
