//! Hostile plugins: each attack costs exactly one denied login, with the
//! reason in the server's log, and the next login succeeds.
//!
//! The `hostile` fixture attacks when the user is `mallory` and abstains
//! for everyone else, so the static-users plugin after it keeps serving.

use async_nats::ConnectErrorKind;
use portcullis::metrics::FailureLabels;
use portcullis_tests::{
    Deployment, LoginLoad, Stack, WAIT, expect_refused, login, plugin, replace_file,
};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How soon a login whose plugin overran its 200 ms deadline must be
/// refused: a correctness bound far below nats-server's auth timeout
/// (10 s in these tests), not a benchmark.
const REFUSED_WITHIN: Duration = Duration::from_secs(2);

async fn stack_with_attack(attack: &str, limits: &str) -> anyhow::Result<Stack> {
    let deployment = Deployment::new(true)?;
    // Attacks are repeated on purpose: the failed-login limit (tested in
    // throttle.rs) would refuse them before the plugin is asked.
    let plugins = format!(
        r#"
[limits]
failed_logins_per_user = 0
failed_logins_per_address = 0

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
    attack_is_contained_on(attack, limits, reason)
        .await
        .map(drop)
}

/// [`attack_is_contained`], handing back the stack for the metrics.
async fn attack_is_contained_on(attack: &str, limits: &str, reason: &str) -> anyhow::Result<Stack> {
    let stack = stack_with_attack(attack, limits).await?;
    let mark = stack.server.log_mark();
    expect_refused(stack.login("mallory", "x"))
        .await
        .map_err(|e| e.context("the attack must not log in"))?;
    let line = stack.server.wait_for_log_since(mark, reason).await?;
    assert!(
        line.contains("Auth callout service returned an error"),
        "{line}"
    );
    // The host is up and the plugin chain serves the next login.
    stack.login("alice", "alice").await?;
    // And the attacker's next try is refused the same way (a fresh instance).
    expect_refused(stack.login("mallory", "x"))
        .await
        .map_err(|e| e.context("still refused"))?;
    stack.login("bob", "bob").await?;
    Ok(stack)
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

/// Both of mallory's tries trap, and the failures metric says so under
/// `trap` (an operator alerts on the kind, not on a log line).
#[tokio::test]
async fn contains_a_panic() -> anyhow::Result<()> {
    let stack = attack_is_contained_on("trap", "", "plugin hostile failed: plugin trapped").await?;
    assert_eq!(failures(&stack, "hostile", "trap"), 2);
    assert_eq!(failures(&stack, "hostile", "out_of_memory"), 0);
    Ok(())
}

/// Both tries hit the memory cap, counted as `out_of_memory` and not as
/// a generic trap.
#[tokio::test]
async fn caps_a_memory_bomb() -> anyhow::Result<()> {
    let stack = attack_is_contained_on(
        "memory-bomb",
        "memory_mb = 16",
        "plugin hostile failed: plugin exceeded its memory limit of 16 MiB",
    )
    .await?;
    assert_eq!(failures(&stack, "hostile", "out_of_memory"), 2);
    assert_eq!(failures(&stack, "hostile", "trap"), 0);
    Ok(())
}

/// One instance and four logins that spin through their deadline at
/// once: a login waits at most one call's budget for the instance, so
/// the ones still queued when it runs out are refused as `busy` (the
/// back-pressure branch) instead of waiting behind the attacker, and
/// every refused login is counted under exactly one kind.
#[tokio::test]
async fn a_saturated_plugin_refuses_queued_logins_as_busy() -> anyhow::Result<()> {
    const SLEEPERS: u64 = 4;
    // Long enough that the four logins queue behind the first even when a
    // loaded machine spreads their arrival over a few hundred milliseconds
    // (with 200 ms they sometimes arrived one after another and every one
    // ran into the plugin's deadline, none queued), short enough that the
    // second call still ends well inside nats-server's auth timeout.
    let stack = stack_with_attack("busy-loop", "timeout_ms = 500\nmax_concurrency = 1").await?;
    let url = stack.server.url();
    let sleepers: Vec<_> = (0..SLEEPERS)
        .map(|_| {
            let url = url.clone();
            tokio::spawn(async move { refused_mallory(&url).await })
        })
        .collect();
    for (i, sleeper) in sleepers.into_iter().enumerate() {
        let (kind, took) = sleeper.await?;
        assert_eq!(
            kind,
            Some(ConnectErrorKind::AuthorizationViolation),
            "sleeper {i}, after {took:?}"
        );
    }
    let busy = failures(&stack, "hostile", "busy");
    let timeout = failures(&stack, "hostile", "timeout");
    assert!(busy >= 1, "busy {busy}, timeout {timeout}");
    assert!(timeout >= 1, "busy {busy}, timeout {timeout}");
    assert_eq!(busy + timeout, SLEEPERS);
    // The permit comes back: the next login goes through the plugin again.
    stack.login("alice", "alice").await?;
    Ok(())
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

/// Host handles live in host memory, outside the plugin's memory cap: a
/// plugin that takes 20,000 clock pollables and never drops them runs
/// into the instance's handle limit (10,000) and traps; without it the
/// plugin would keep them, and its login would be allowed.
#[tokio::test]
async fn caps_the_host_handles_an_instance_may_hold() -> anyhow::Result<()> {
    let stack =
        attack_is_contained_on("handle-flood", "", "plugin hostile failed: plugin trapped").await?;
    assert_eq!(failures(&stack, "hostile", "trap"), 2);
    Ok(())
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

/// wasi:filesystem and wasi:sockets are linked inert (CPython needs them
/// to load): a plugin that imports them starts, and every attempt fails
/// before it touches anything. The fixture is pointed at a file this test
/// can read and at loopback listeners this test owns; its login is
/// denied with what each attempt achieved (nothing), and the listeners
/// heard nothing.
#[tokio::test]
async fn a_plugin_with_filesystem_and_socket_imports_loads_but_reaches_nothing()
-> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let secret = dir.path().join("secret.txt");
    std::fs::write(&secret, "the host's secret")?;
    let tcp = std::net::TcpListener::bind("127.0.0.1:0")?;
    let udp = std::net::UdpSocket::bind("127.0.0.1:0")?;
    let deployment = Deployment::new(true)?;
    let plugins = format!(
        r#"
[limits]
failed_logins_per_user = 0

[[plugins]]
name = "hostile-io"
wasm = "{wasm}"
accounts = ["APP1"]
config = {{ file = "{file}", tcp_port = {tcp_port}, udp_port = {udp_port} }}
"#,
        wasm = plugin("hostile_io").display(),
        file = secret.display(),
        tcp_port = tcp.local_addr()?.port(),
        udp_port = udp.local_addr()?.port(),
    );
    let stack = Stack::with_plugins(deployment, &plugins).await?;
    let mark = stack.server.log_mark();
    expect_refused(stack.login("mallory", "x"))
        .await
        .map_err(|e| e.context("a plugin that reads files must not log in"))?;
    stack
        .server
        .wait_for_log_since(
            mark,
            "denied by plugin hostile-io: file: read 0 bytes, root: listed nothing, \
             tcp: no connection, udp: sent nothing, lookup: no address",
        )
        .await?;
    // The answer is in, so any connection or datagram would be queued by
    // now: the listeners must have none.
    tcp.set_nonblocking(true)?;
    let accepted = tcp.accept();
    assert!(
        matches!(&accepted, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the plugin reached the TCP listener: {accepted:?}"
    );
    udp.set_nonblocking(true)?;
    let received = udp.recv_from(&mut [0; 64]);
    assert!(
        matches!(&received, Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the plugin reached the UDP socket: {received:?}"
    );
    Ok(())
}

#[tokio::test]
async fn refuses_to_load_a_plugin_built_for_another_wit_version() -> anyhow::Result<()> {
    let err = load_error(&plugin("wrong_wit"), "").await?;
    assert!(
        err.contains("plugin targets portcullis:authenticator/plugin@9.0.0, this host serves portcullis:authenticator/plugin@0.1.0 and @0.2.0"),
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
    assert!(
        err.contains(r##"not a WebAssembly file: it starts with "#!/b", not "\0asm""##),
        "{err}"
    );
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

/// Plugin calls of `plugin` that failed with `kind`, so far.
fn failures(stack: &Stack, plugin: &str, kind: &'static str) -> u64 {
    stack
        .host
        .metrics
        .plugin_failures
        .get_or_create(&FailureLabels {
            plugin: plugin.to_owned(),
            kind,
        })
        .get()
}

/// Log in as mallory; the error kind (`None`: not refused) and how long
/// the login took. While the server still waits for the callout, its first
/// PING (after about 2 s) is enough for the client to call the connection
/// made: only a refusal that comes sooner is seen as one.
async fn refused_mallory(url: &str) -> (Option<ConnectErrorKind>, Duration) {
    let started = Instant::now();
    let kind = login(url, "mallory", "x").await.err().map(|e| e.kind());
    (kind, started.elapsed())
}

/// A plugin that blocks in a WASI sleep runs no guest code, so epoch ticks
/// never reach it: the call is abandoned at its deadline all the same.
#[tokio::test]
async fn abandons_a_sleep_in_authenticate_at_its_deadline() -> anyhow::Result<()> {
    let stack = stack_with_attack("sleep", "").await?;
    for attempt in 0..2 {
        let (kind, took) = refused_mallory(&stack.server.url()).await;
        assert_eq!(
            kind,
            Some(ConnectErrorKind::AuthorizationViolation),
            "attempt {attempt}, after {took:?}"
        );
        assert!(
            took < REFUSED_WITHIN,
            "attempt {attempt}: refused after {took:?}"
        );
        assert_eq!(failures(&stack, "hostile", "timeout"), attempt + 1);
        stack.login("alice", "alice").await?;
    }
    let line = stack
        .server
        .wait_for_log("plugin hostile failed: plugin exceeded its 200ms time limit")
        .await?;
    assert!(
        line.contains("Auth callout service returned an error"),
        "{line}"
    );
    Ok(())
}

/// Twenty logins sleeping in the same plugin at once: each is refused at
/// its deadline, the users the plugin abstains for keep logging in through
/// it meanwhile, and a second wave finds every permit back (an abandoned
/// call releases its permit and its instance).
#[tokio::test]
async fn twenty_concurrent_sleeps_leave_other_logins_unaffected() -> anyhow::Result<()> {
    const SLEEPERS: u64 = 20;
    // Room for the sleepers and the two clients below: a plugin saturated
    // by one user's logins is back-pressure, not what this test is about.
    let stack = stack_with_attack("sleep", "max_concurrency = 24").await?;
    let url = stack.server.url();
    let load = LoginLoad::start(std::slice::from_ref(&url), 2);
    load.wait_for_logins(2).await?;
    for wave in 1..=2 {
        let sleepers: Vec<_> = (0..SLEEPERS)
            .map(|_| {
                let url = url.clone();
                tokio::spawn(async move { refused_mallory(&url).await })
            })
            .collect();
        // Logins of other users complete while the sleepers are held.
        load.wait_for_logins(4).await?;
        for (i, sleeper) in sleepers.into_iter().enumerate() {
            let (kind, took) = sleeper.await?;
            assert_eq!(
                kind,
                Some(ConnectErrorKind::AuthorizationViolation),
                "wave {wave}, sleeper {i}, after {took:?}"
            );
            assert!(
                took < REFUSED_WITHIN,
                "wave {wave}, sleeper {i}: refused after {took:?}"
            );
        }
        assert_eq!(
            failures(&stack, "hostile", "timeout"),
            wave * SLEEPERS,
            "wave {wave}"
        );
        assert_eq!(failures(&stack, "hostile", "busy"), 0, "wave {wave}");
    }
    load.wait_for_logins(2).await?;
    let (ok, failed, errors) = load.finish().await;
    assert_eq!(
        failed,
        0,
        "{failed} of {} other logins failed: {errors:?}",
        ok + failed
    );
    Ok(())
}

#[tokio::test]
async fn refuses_to_start_a_plugin_that_sleeps_in_configure() -> anyhow::Result<()> {
    let started = Instant::now();
    let err = configure_error("configure-sleep").await?;
    assert!(
        err.contains("plugin hostile")
            && err.contains("configure: plugin exceeded its 1s time limit"),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "refused after {:?}",
        started.elapsed()
    );
    Ok(())
}

/// A reload (what SIGHUP does) that adds a plugin whose `configure` sleeps
/// is rejected at the configure deadline; every login meanwhile is served
/// by the running chain.
#[tokio::test]
async fn rejects_a_reload_whose_configure_sleeps() -> anyhow::Result<()> {
    let (log, _guard) = CapturedLog::start();
    let stack = Stack::static_users(true).await?;
    let toml = stack.deployment.dir.path().join("portcullis.toml");
    let original = std::fs::read_to_string(&toml)?;
    // timeout_ms = 100: configure gets its minimum of 1 s.
    let added = format!(
        "{original}\n[[plugins]]\nname = \"sleeper\"\nwasm = \"{}\"\naccounts = [\"APP1\"]\n\
         timeout_ms = 100\nconfig = {{ attack = \"configure-sleep\" }}\n",
        plugin("hostile").display()
    );
    let load = LoginLoad::start(&[stack.server.url()], 4);
    load.wait_for_logins(4).await?;
    let before = stack.host.metrics.reload_counts();
    replace_file(&toml, added.as_bytes())?;
    let requested = Instant::now();
    stack.host.request_reload().await?;
    stack.host.wait_for_swaps(before, 0, 1).await?;
    let took = requested.elapsed();
    assert!(took < Duration::from_secs(5), "rejected after {took:?}");
    let rejected = log.wait_for("reload: rejected").await?;
    assert!(
        rejected.contains("plugin sleeper")
            && rejected.contains("configure: plugin exceeded its 1s time limit"),
        "{rejected}"
    );
    load.wait_for_logins(4).await?;
    let (ok, failed, errors) = load.finish().await;
    assert_eq!(
        failed,
        0,
        "{failed} of {} logins failed: {errors:?}",
        ok + failed
    );
    let names: Vec<String> = stack
        .host
        .registry
        .chain()
        .plugins()
        .iter()
        .map(|p| p.plugin.name().to_owned())
        .collect();
    assert_eq!(names, ["users"], "the running chain stays");
    Ok(())
}

/// The host's log as the human format writes it, for the test's thread
/// (where the in-process host runs): `tracing` keeps the default subscriber
/// per thread, and a `#[tokio::test]` runs every task on its own thread.
#[derive(Clone, Default)]
struct CapturedLog(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for CapturedLog {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl CapturedLog {
    /// Capture at `info`, as `portcullis run` logs by default, until the
    /// guard is dropped.
    fn start() -> (CapturedLog, impl Drop) {
        use tracing_subscriber::util::SubscriberInitExt;
        let log = CapturedLog::default();
        let writer = log.clone();
        let guard = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish()
            .set_default();
        (log, guard)
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// Wait (up to `WAIT`) for a line containing `needle`.
    async fn wait_for(&self, needle: &str) -> anyhow::Result<String> {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(line) = self.text().lines().find(|l| l.contains(needle)) {
                return Ok(line.to_owned());
            }
            anyhow::ensure!(Instant::now() < deadline, "no log line with {needle:?}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// One login of a plugin that logs 20,000 forged host lines leaves at most
/// its per-call budget in the log (100 lines by default), every line break
/// and escape visible as text, one summary of what was dropped, and the
/// dropped lines counted per plugin.
#[tokio::test]
async fn bounds_and_escapes_a_log_flood() -> anyhow::Result<()> {
    let (log, _guard) = CapturedLog::start();
    let stack = stack_with_attack("log-flood", "").await?;
    expect_refused(stack.login("mallory", "x"))
        .await
        .map_err(|e| e.context("the flood denies"))?;
    stack.login("alice", "alice").await?;
    let summary = log.wait_for("log lines dropped").await?;
    assert!(
        summary.contains("WARN") && summary.contains("plugin=\"hostile\""),
        "{summary}"
    );
    assert!(summary.contains("lines=19900"), "{summary}");

    let text = log.text();
    let from_plugin: Vec<&str> = text
        .lines()
        .filter(|l| l.contains(" plugin: ") && l.contains("plugin=\"hostile\""))
        .collect();
    let bytes: usize = from_plugin.iter().map(|l| l.len() + 1).sum();
    assert_eq!(from_plugin.len(), 100, "the default line budget");
    assert!(
        bytes <= 16 * 1024 + 100 * 200,
        "{bytes} bytes from the plugin"
    );
    assert!(
        text.len() < 64 * 1024,
        "the whole log is {} bytes",
        text.len()
    );
    for line in text.lines() {
        assert!(
            !line.starts_with("2026-12-05T00:00:00Z"),
            "a plugin forged a host line: {line:?}"
        );
        assert!(
            !line.contains(['\u{1b}', '\r']),
            "a terminal escape reached the log: {line:?}"
        );
    }
    let forged = "2026-12-05T00:00:00Z  INFO portcullis: login allowed user=root account=SYS";
    assert!(
        text.contains(&format!("\\n{forged}")),
        "newline shown as \\n"
    );
    assert!(
        text.contains(&format!("\\u{{1b}}[2K\\r{forged}")),
        "ESC and CR shown as \\u{{1b}} and \\r"
    );
    assert_eq!(
        text.matches("log lines dropped").count(),
        1,
        "one summary per call"
    );
    let metrics = stack.host.metrics.encode();
    assert!(
        metrics.contains("portcullis_plugin_log_dropped_total{plugin=\"hostile\"} 19900"),
        "{metrics}"
    );
    Ok(())
}
