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

/// `portcullis init` into a fresh directory; the directory and its
/// portcullis.toml.
fn init(mode: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap().to_owned();
    let out = portcullis(&[
        "init",
        &d,
        "--mode",
        mode,
        "--plugin",
        &plugin("static_users"),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    (dir, format!("{d}/portcullis.toml"))
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `check -c toml`: its exit code and output.
fn check(toml: &str) -> (Option<i32>, String) {
    let out = portcullis(&["check", "-c", toml]);
    (out.status.code(), text(&out))
}

#[test]
fn init_then_check_passes_in_both_modes_and_reports_a_wrong_signing_key() {
    for mode in ["config", "operator"] {
        let (dir, toml) = init(mode);
        let (code, shown) = check(&toml);
        assert_eq!(code, Some(0), "{mode}: {shown}");
        assert!(shown.contains("ok    plugin users"), "{shown}");

        if mode == "operator" {
            let keys = dir.path().join("keys");
            std::fs::copy(keys.join("APP1-signing.nk"), keys.join("APP2-signing.nk")).unwrap();
            let (code, shown) = check(&toml);
            assert_eq!(code, Some(1), "{shown}");
            assert!(shown.contains("FAIL  account APP2"), "{shown}");
            assert!(
                shown.contains("is not one of the account's signing keys"),
                "{shown}"
            );
        }
    }
}

#[test]
fn check_reports_a_plugin_that_rejects_its_config() {
    let (dir, toml) = init("config");
    std::fs::write(dir.path().join("users.json"), r#"{"alice": {"pass": "x"}}"#).unwrap();
    let (code, shown) = check(&toml);
    assert_eq!(code, Some(1), "{shown}");
    assert!(
        shown.contains("plugin rejected its configuration"),
        "{shown}"
    );
    assert!(shown.contains("missing field `account`"), "{shown}");
}

#[test]
fn check_names_the_bad_key_of_a_broken_config() {
    let (_dir, toml) = init("config");
    let before = std::fs::read_to_string(&toml).unwrap();
    std::fs::write(&toml, before.replace("timeout_ms", "timeout")).unwrap();
    let (code, shown) = check(&toml);
    assert_eq!(code, Some(1), "{shown}");
    assert!(shown.contains("unknown field `timeout`"), "{shown}");
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

/// `portcullis plugin test` of static-users with the init users, as JSON.
fn decide(dir: &Path, connect_opts: &str) -> serde_json::Value {
    let request = dir.join("request.json");
    let users = dir.join("users.json");
    std::fs::write(&users, portcullis::init::USERS_JSON).unwrap();
    std::fs::write(&request, format!(r#"{{"connect_opts": {connect_opts}}}"#)).unwrap();
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
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn plugin_test_prints_the_decision() {
    let dir = tempfile::tempdir().unwrap();
    let decision = decide(dir.path(), r#"{"user": "bob", "pass": "bob"}"#);
    assert_eq!(decision["Allow"]["account"], "APP2");
    assert_eq!(decision["Allow"]["publish"]["allow"][0], "bob.>");
    let decision = decide(dir.path(), r#"{"user": "bob", "pass": "nope"}"#);
    assert!(
        decision["Deny"]
            .as_str()
            .unwrap()
            .contains("wrong password"),
        "{decision}"
    );
}
