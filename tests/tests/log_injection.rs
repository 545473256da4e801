//! Log injection: a client chooses its CONNECT user name, and the host
//! writes it into the audit log line and the `[audit] subject` event. A
//! name carrying a newline and a complete fake log line must not become a
//! second line that reads like the host's own; a carriage return, an ANSI
//! escape or a bidi override must not reach a terminal raw. Run against a
//! real nats-server and the real `portcullis` binary, in both log formats.

use anyhow::{Context, Result, bail};
use futures::StreamExt;
use portcullis_tests::{Deployment, HostProcess, NatsServer, WAIT, expect_refused, login};
use std::time::{Duration, Instant};

/// The start of the line the attacker wants the log to show: what a host
/// log line starts with, in the human format, with a timestamp no real
/// line of this run can have.
const FAKE_PREFIX: &str = "2001-01-01T00:00:00.000000Z  INFO portcullis::audit: login allowed";
const FAKE_LINE: &str = "2001-01-01T00:00:00.000000Z  INFO portcullis::audit: login allowed request=UFAKE user=root account=SYS";

/// The user names the attack logs in with, and how each must show.
fn attacks() -> Vec<(String, String)> {
    vec![
        (
            format!("mallory\n{FAKE_LINE}"),
            format!("mallory\\n{FAKE_LINE}"),
        ),
        (
            format!("mallory\r{FAKE_LINE}"),
            format!("mallory\\r{FAKE_LINE}"),
        ),
        (
            "\x1b[31mmallory\x1b[0m".into(),
            "\\u{1b}[31mmallory\\u{1b}[0m".into(),
        ),
        ("mallory\u{202e}toor".into(), "mallory\\u{202e}toor".into()),
    ]
}

/// A character that must never reach a log or an event raw.
fn is_raw_control(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{2028}' | '\u{2029}')
}

/// Server and host configuration with `[audit] subject`.
fn deployment() -> Result<(Deployment, NatsServer, std::path::PathBuf)> {
    let deployment = Deployment::new(true)?;
    let server = NatsServer::start(&deployment.server_config())?;
    let plugins = format!(
        "[audit]\nsubject = \"portcullis.audit\"\n{}",
        deployment.static_users()
    );
    deployment.write_host_config(&deployment.host_config(&server.url(), &plugins))?;
    let path = deployment.dir.path().join("portcullis.toml");
    Ok((deployment, server, path))
}

/// Log in with every attack user name (each is refused: static-users does
/// not know them) and collect the audit events of those logins.
async fn attack(server: &NatsServer) -> Result<Vec<serde_json::Value>> {
    let collector = login(&server.url(), "auth", "auth").await?;
    let mut events = collector.subscribe("portcullis.audit").await?;
    collector.flush().await?;
    let attacks = attacks();
    for (user, _) in &attacks {
        expect_refused(login(&server.url(), user, "x"))
            .await
            .with_context(|| format!("{user:?} must be refused"))?;
    }
    let mut received = Vec::new();
    for _ in 0..attacks.len() {
        let message = tokio::time::timeout(WAIT, events.next())
            .await
            .context("no audit event")?
            .context("audit subscription closed")?;
        received.push(serde_json::from_slice(&message.payload)?);
    }
    Ok(received)
}

/// The log of a host process once it holds `n` lines containing `needle`,
/// waiting up to `WAIT` for the process to write them.
async fn wait_for_lines(log: impl Fn() -> String, needle: &str, n: usize) -> Result<String> {
    let deadline = Instant::now() + WAIT;
    loop {
        let text = log();
        if text.lines().filter(|l| l.contains(needle)).count() >= n {
            return Ok(text);
        }
        if Instant::now() > deadline {
            bail!("fewer than {n} lines with {needle:?}; log:\n{text}");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The audit events carry the escaped names, never the raw ones.
fn assert_events_escaped(events: &[serde_json::Value]) {
    for (user, shown) in attacks() {
        let event = events
            .iter()
            .find(|e| e["user"].as_str() == Some(shown.as_str()))
            .unwrap_or_else(|| panic!("no audit event with user {shown:?}: {events:#?}"));
        assert_eq!(event["outcome"], "deny", "{event}");
        assert!(
            !events
                .iter()
                .any(|e| e["user"].as_str() == Some(user.as_str())),
            "{user:?} reached an audit event raw"
        );
        for (field, value) in event.as_object().expect("object") {
            if let Some(text) = value.as_str() {
                assert!(
                    !text.contains(is_raw_control),
                    "audit event field {field} carries {text:?}"
                );
            }
        }
    }
}

#[tokio::test]
async fn a_user_name_cannot_forge_a_human_log_line_or_audit_event() -> Result<()> {
    let (_deployment, server, config) = deployment()?;
    let host = HostProcess::start(&config)?;
    let events = attack(&server).await?;
    let log = wait_for_lines(|| host.log(), "login denied", attacks().len()).await?;

    for line in log.lines() {
        assert!(
            !line.starts_with(FAKE_PREFIX),
            "a forged line made it into the log: {line:?}\nlog:\n{log}"
        );
        assert!(
            !line.contains(is_raw_control),
            "a raw control character reached the log: {line:?}"
        );
    }
    for (_, shown) in attacks() {
        assert!(
            log.lines()
                .any(|l| l.contains("login denied") && l.contains(&format!("user={shown}"))),
            "no login denied line with user={shown}; log:\n{log}"
        );
    }
    assert_events_escaped(&events);
    Ok(())
}

#[tokio::test]
async fn a_user_name_cannot_forge_a_json_log_line_or_smuggle_controls_in_a_field() -> Result<()> {
    let (_deployment, server, config) = deployment()?;
    let host = HostProcess::start_json(&config)?;
    let events = attack(&server).await?;
    let log = wait_for_lines(|| host.log(), "login denied", attacks().len()).await?;

    let mut decisions = Vec::new();
    for line in log.lines() {
        let entry: serde_json::Value = serde_json::from_str(line)
            .with_context(|| format!("a log line is not JSON: {line:?}\nlog:\n{log}"))?;
        if entry["fields"]["message"] == "login denied" {
            decisions.push(entry["fields"].clone());
        }
    }
    assert_eq!(decisions.len(), attacks().len(), "{log}");
    for (user, shown) in attacks() {
        let fields = decisions
            .iter()
            .find(|f| f["user"].as_str() == Some(shown.as_str()))
            .with_context(|| format!("no login denied entry with user {shown:?}; log:\n{log}"))?;
        assert!(
            !decisions
                .iter()
                .any(|f| f["user"].as_str() == Some(user.as_str())),
            "{user:?} reached the JSON log raw"
        );
        for (field, value) in fields.as_object().expect("object") {
            if let Some(text) = value.as_str() {
                assert!(
                    !text.contains(is_raw_control),
                    "JSON log field {field} carries {text:?}"
                );
            }
        }
    }
    assert_events_escaped(&events);
    Ok(())
}

/// What a nats-server log line starts with, and a mark only the forged one
/// carries.
const FAKE_SERVER_LINE: &str = "[1] 2001/01/01 00:00:00.000000 [INF] 127.0.0.1:4222 - cid:1 - User \"root\" admitted forged-by-reason";

#[tokio::test]
async fn a_plugin_reason_quoting_a_client_string_cannot_forge_host_or_server_log_lines()
-> Result<()> {
    // The nkeys plugin denies an unknown key with "unknown nkey KEY",
    // quoting the CONNECT `nkey` raw: the client chooses that string, and
    // the reason goes to the host's log and to nats-server, which logs it.
    let deployment = Deployment::new(true)?;
    let server = NatsServer::start(&deployment.server_config())?;
    std::fs::write(
        deployment.dir.path().join("nkeys.json"),
        r#"{ "users": {} }"#,
    )?;
    let plugins = format!(
        "[[plugins]]\nname = \"nkeys\"\nwasm = \"{}\"\naccounts = [\"APP1\"]\nconfig_file = \"nkeys.json\"\n",
        portcullis_tests::plugin("nkeys_auth").display()
    );
    deployment.write_host_config(&deployment.host_config(&server.url(), &plugins))?;
    let host = HostProcess::start(&deployment.dir.path().join("portcullis.toml"))?;

    // A newline, a line separator (a line break to many viewers) and a
    // bidi override (reorders what a reader sees).
    let nkey = format!("UFAKE\n{FAKE_LINE}\u{2028}{FAKE_SERVER_LINE}\u{202e}");
    let options = async_nats::ConnectOptions::with_auth_callback(move |_nonce| {
        let nkey = nkey.clone();
        async move {
            let mut auth = async_nats::Auth::new();
            auth.nkey = Some(nkey);
            Ok(auth)
        }
    });
    expect_refused(options.connection_timeout(WAIT).connect(server.url()))
        .await
        .context("an unknown nkey must be refused")?;

    let log = wait_for_lines(|| host.log(), "login denied", 1).await?;
    for line in log.lines() {
        assert!(
            !line.starts_with(FAKE_PREFIX) && !line.starts_with("[1] 2001/01/01"),
            "a forged line made it into the host log: {line:?}\nlog:\n{log}"
        );
        assert!(
            !line.contains(is_raw_control),
            "a raw control character reached the host log: {line:?}"
        );
    }
    let denied = log
        .lines()
        .find(|l| l.contains("login denied"))
        .context("no login denied line")?;
    // Whichever layer escaped them (the runtime takes plugin text first),
    // they show as escapes.
    for shown in ["unknown nkey UFAKE", "u{2028}", "u{202e}"] {
        assert!(denied.contains(shown), "{shown} not in {denied:?}");
    }
    // nats-server logs the reason it was sent: the forged text must sit
    // inside that line, not start one of its own, and arrive escaped.
    let line = server.wait_for_log("unknown nkey").await?;
    assert!(
        line.contains("forged-by-reason"),
        "nats-server logged a forged line after {line:?}"
    );
    assert!(
        !line.contains(is_raw_control) && line.contains("u{202e}"),
        "nats-server logged a raw control character: {line:?}"
    );
    Ok(())
}
