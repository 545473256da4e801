//! The `portcullis` binary as an operator uses it: init, check, plugin
//! inspect, plugin test. Needs the plugins built (scripts/build-plugins).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn portcullis(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_portcullis"))
        .args(args)
        .env(
            "XDG_CACHE_HOME",
            workspace().join("target/portcullis-test-cache-cli"),
        )
        .output()
        .expect("run portcullis")
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn plugin(name: &str) -> String {
    let path = workspace().join(format!("target/wasm32-wasip2/release/{name}.wasm"));
    assert!(
        path.exists(),
        "{} missing: run scripts/build-plugins",
        path.display()
    );
    path.display().to_string()
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn init_then_check_passes_in_both_modes_and_reports_a_wrong_signing_key() {
    for mode in ["config", "operator"] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap();
        let out = portcullis(&[
            "init",
            d,
            "--mode",
            mode,
            "--plugin",
            &plugin("static_users"),
        ]);
        assert!(out.status.success(), "{}", text(&out));
        let toml = format!("{d}/portcullis.toml");
        let out = portcullis(&["check", "-c", &toml]);
        assert!(out.status.success(), "{mode}: {}", text(&out));
        assert!(text(&out).contains("ok    plugin users"), "{}", text(&out));

        if mode == "operator" {
            std::fs::copy(
                dir.path().join("keys/APP1-signing.nk"),
                dir.path().join("keys/APP2-signing.nk"),
            )
            .unwrap();
            let out = portcullis(&["check", "-c", &toml]);
            assert_eq!(out.status.code(), Some(1), "{}", text(&out));
            assert!(text(&out).contains("FAIL  account APP2"), "{}", text(&out));
            assert!(
                text(&out).contains("is not one of the account's signing keys"),
                "{}",
                text(&out)
            );
        }
    }
}

#[test]
fn check_reports_a_plugin_that_rejects_its_config() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    assert!(
        portcullis(&["init", d, "--plugin", &plugin("static_users")])
            .status
            .success()
    );
    std::fs::write(dir.path().join("users.json"), r#"{"alice": {"pass": "x"}}"#).unwrap();
    let out = portcullis(&["check", "-c", &format!("{d}/portcullis.toml")]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("plugin rejected its configuration"),
        "{}",
        text(&out)
    );
    assert!(
        text(&out).contains("missing field `account`"),
        "{}",
        text(&out)
    );
}

#[test]
fn check_names_the_bad_key_of_a_broken_config() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap();
    assert!(
        portcullis(&["init", d, "--plugin", &plugin("static_users")])
            .status
            .success()
    );
    let toml = dir.path().join("portcullis.toml");
    let text_before = std::fs::read_to_string(&toml).unwrap();
    std::fs::write(&toml, text_before.replace("timeout_ms", "timeout")).unwrap();
    let out = portcullis(&["check", "-c", toml.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out).contains("unknown field `timeout`"),
        "{}",
        text(&out)
    );
}

#[test]
fn plugin_inspect_shows_the_wit_world_and_refuses_non_plugins() {
    let out = portcullis(&["plugin", "inspect", &plugin("static_users")]);
    assert!(out.status.success(), "{}", text(&out));
    let shown = text(&out);
    assert!(
        shown.contains("portcullis:authenticator/authenticator@0.1.0 (compatible with this host)"),
        "{shown}"
    );
    assert!(
        shown.contains("portcullis:authenticator/plugin@0.1.0"),
        "{shown}"
    );

    let dir = tempfile::tempdir().unwrap();
    let module = dir.path().join("core.wasm");
    std::fs::write(&module, b"\0asm\x01\0\0\0").unwrap();
    let out = portcullis(&["plugin", "inspect", module.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("core WebAssembly module, not a component"),
        "{}",
        text(&out)
    );
}

#[test]
fn plugin_test_prints_the_decision() {
    let dir = tempfile::tempdir().unwrap();
    let request = dir.path().join("request.json");
    let users = dir.path().join("users.json");
    std::fs::write(&users, portcullis::init::USERS_JSON).unwrap();
    std::fs::write(
        &request,
        r#"{"connect_opts": {"user": "bob", "pass": "bob"}}"#,
    )
    .unwrap();
    let out = portcullis(&[
        "plugin",
        "test",
        &plugin("static_users"),
        "--request",
        request.to_str().unwrap(),
        "--config",
        users.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let decision: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(decision["Allow"]["account"], "APP2");
    assert_eq!(decision["Allow"]["publish"]["allow"][0], "bob.>");

    std::fs::write(
        &request,
        r#"{"connect_opts": {"user": "bob", "pass": "nope"}}"#,
    )
    .unwrap();
    let out = portcullis(&[
        "plugin",
        "test",
        &plugin("static_users"),
        "--request",
        request.to_str().unwrap(),
        "--config",
        users.to_str().unwrap(),
    ]);
    let decision: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(
        decision["Deny"]
            .as_str()
            .unwrap()
            .contains("wrong password"),
        "{decision}"
    );
}
