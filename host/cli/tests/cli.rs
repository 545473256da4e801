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
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
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
    init_with(&["--mode", mode])
}

/// `portcullis init DIR --plugin static_users.wasm ARGS`.
fn init_with(args: &[&str]) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap().to_owned();
    let static_users = plugin("static_users");
    let mut all = vec!["init", &d, "--plugin", &static_users];
    all.extend_from_slice(args);
    let out = portcullis(&all);
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
fn init_options_pass_check_and_meaningless_ones_are_refused() {
    for args in [
        &["--auth", "nkey"][..],
        &["--mode", "operator", "--resolver", "full", "--any-account"],
        &["--mode", "operator", "--auth", "nkey"],
    ] {
        let (_dir, toml) = init_with(args);
        let (code, shown) = check(&toml);
        assert_eq!(code, Some(0), "{args:?}: {shown}");
    }
    for (args, says) in [
        (
            &["--resolver", "full"][..],
            "--resolver is for --mode operator",
        ),
        (&["--any-account"], "--any-account is for --mode operator"),
        (
            &["--mode", "operator", "--auth", "password"],
            "--auth password is for --mode config",
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().to_str().unwrap();
        let mut all = vec!["init", d];
        all.extend_from_slice(args);
        let out = portcullis(&all);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {}", text(&out));
        assert!(text(&out).contains(says), "{args:?}: {}", text(&out));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
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

/// A plugin whose component imports the filesystem and sockets loads
/// (they are linked inert), and `check` warns that its file and socket
/// access will fail, naming the plugin entry.
#[test]
fn check_warns_that_a_plugin_importing_files_and_sockets_reaches_nothing() {
    let (dir, toml) = init("config");
    let mut config = std::fs::read_to_string(&toml).unwrap();
    config.push_str(&format!(
        r#"
[[plugins]]
name = "io"
wasm = "{}"
accounts = ["APP1"]
config = {{ file = "{}", tcp_port = 1, udp_port = 1 }}
"#,
        plugin("hostile_io"),
        dir.path().join("portcullis.toml").display()
    ));
    std::fs::write(&toml, config).unwrap();
    let (code, shown) = check(&toml);
    assert_eq!(code, Some(0), "an inert import is a warning: {shown}");
    assert!(shown.contains("ok    plugin io"), "{shown}");
    assert!(
        shown.contains(
            "warn  plugin io: the component imports wasi:filesystem and wasi:sockets \
             (linked with nothing behind them: no directories, no sockets), \
             so any file or socket access it attempts will fail"
        ),
        "{shown}"
    );
    assert!(!shown.contains("warn  plugin users"), "{shown}");
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
        shown.contains("portcullis:authenticator/authenticator@0.2.0 (compatible with this host)"),
        "{shown}"
    );
    assert!(
        shown.contains("portcullis:authenticator/plugin@0.2.0"),
        "{shown}"
    );
    assert!(!shown.contains("NOT GRANTED"), "{shown}");

    // A component that asks for the filesystem and sockets: inspect says
    // they are linked inert (it loads, and reaches nothing).
    let out = portcullis(&["plugin", "inspect", &plugin("hostile_io")]);
    let shown = text(&out);
    assert!(out.status.success(), "{shown}");
    for import in ["wasi:filesystem/preopens@", "wasi:sockets/tcp@"] {
        assert!(
            shown.lines().any(|l| l.contains(import)
                && l.contains("inert: linked with nothing behind it (no directories, no sockets)")),
            "{import}: {shown}"
        );
    }
    assert!(!shown.contains("NOT GRANTED"), "{shown}");

    // A plugin built for 0.1.0 (componentize-py's) loads on this host too.
    let out = portcullis(&["plugin", "inspect", &plugin("http_allow_py")]);
    let shown = text(&out);
    assert!(
        shown.contains("portcullis:authenticator/authenticator@0.1.0 (compatible with this host)"),
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

/// `plugin push` refuses what no host would load before it contacts the
/// registry, and only that: a plugin built for 0.1.0 (every JS and Python
/// one) gets as far as the registry, here an address nothing listens on.
#[test]
fn plugin_push_refuses_an_unservable_wit_version_but_not_an_older_served_one() {
    let push = |wasm: &str| {
        text(&portcullis(&[
            "plugin",
            "push",
            "oci://127.0.0.1:1/portcullis-test:1",
            &plugin(wasm),
            "--unsigned",
        ]))
    };
    let refused = "which this version cannot load";
    let out = push("wrong_wit");
    assert!(out.contains(refused), "{out}");
    let out = push("static_users_py");
    assert!(!out.contains(refused), "{out}");
    assert!(out.contains("127.0.0.1:1"), "{out}");
}

/// `portcullis plugin test` of static-users with the init users, as JSON.
fn decide(dir: &Path, connect_opts: &str) -> serde_json::Value {
    let request = dir.join("request.json");
    let users = dir.join("users.json");
    std::fs::write(&users, portcullis::deployment::USERS_JSON).unwrap();
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
    assert_eq!(decision["decision"], "allow", "{decision}");
    assert_eq!(decision["account"], "APP2");
    assert_eq!(decision["publish"]["allow"][0], "bob.>");
    let decision = decide(dir.path(), r#"{"user": "bob", "pass": "nope"}"#);
    assert_eq!(decision["decision"], "deny", "{decision}");
    assert!(
        decision["reason"]
            .as_str()
            .unwrap()
            .contains("wrong password"),
        "{decision}"
    );
    let decision = decide(dir.path(), r#"{}"#);
    assert_eq!(decision, serde_json::json!({"decision": "abstain"}));
}

/// `plugin test WASM --vectors DIR`: exit code and output.
fn run_vectors(wasm: &str, dir: &Path) -> (Option<i32>, String) {
    let out = portcullis(&["plugin", "test", wasm, "--vectors", dir.to_str().unwrap()]);
    (out.status.code(), text(&out))
}

#[test]
fn plugin_test_runs_a_vector_directory_and_fails_on_any_mismatch() {
    let vectors = workspace().join("plugins/static-users/vectors");
    let (code, shown) = run_vectors(&plugin("static_users"), &vectors);
    assert_eq!(code, Some(0), "{shown}");
    assert!(shown.contains("20 vectors: 20 passed, 0 failed"), "{shown}");
    assert!(
        shown
            .lines()
            .any(|l| l.starts_with("01-alice-allowed ") && l.contains(" pass ")),
        "{shown}"
    );

    let dir = tempfile::tempdir().unwrap();
    for f in [
        "config.json",
        "01-alice-allowed.json",
        "05-unknown-user.json",
    ] {
        std::fs::copy(vectors.join(f), dir.path().join(f)).unwrap();
    }
    std::fs::write(
        dir.path().join("09-expects-too-much.json"),
        r#"{"description": "bob is not in APP1",
            "request": {"connect_opts": {"user": "bob", "pass": "bob"}},
            "expect": {"decision": "allow", "account": "APP1"}}"#,
    )
    .unwrap();
    let (code, shown) = run_vectors(&plugin("static_users"), dir.path());
    assert_eq!(code, Some(1), "{shown}");
    assert!(
        shown.lines().any(|l| l.starts_with("09-expects-too-much")
            && l.contains("FAIL")
            && l.contains("account: expected \"APP1\", got \"APP2\"")),
        "{shown}"
    );
    assert!(shown.contains("3 vectors: 2 passed, 1 failed"), "{shown}");

    // A broken vector is an error naming the file, not a silent pass.
    std::fs::write(
        dir.path().join("10-typo.json"),
        r#"{"expect": {"decison": "deny"}}"#,
    )
    .unwrap();
    let (code, shown) = run_vectors(&plugin("static_users"), dir.path());
    assert_eq!(code, Some(1), "{shown}");
    assert!(shown.contains("10-typo.json"), "{shown}");
}

#[test]
fn plugin_test_uses_runs_deadline_and_names_vectors_that_only_pass_with_more() {
    // A plugin that blocks 600 ms: within the old 1 s default of `plugin
    // test`, beyond `run`'s 200 ms.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("config.json"),
        r#"{"attack": "sleep", "sleep_ms": 600}"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join("01-slow.json"),
        r#"{"request": {"connect_opts": {"user": "mallory"}}, "expect": {"decision": "allow"}}"#,
    )
    .unwrap();
    let (code, shown) = run_vectors(&plugin("hostile"), dir.path());
    assert_eq!(code, Some(1), "{shown}");
    assert!(
        shown
            .lines()
            .any(|l| l.starts_with("01-slow ") && l.contains("ERROR")),
        "{shown}"
    );
    assert!(
        shown.contains("01-slow: passes only with a longer deadline")
            && shown.contains("timeout_ms is 200 ms"),
        "{shown}"
    );

    // An explicit deadline long enough passes, and says nothing more.
    let out = portcullis(&[
        "plugin",
        "test",
        &plugin("hostile"),
        "--vectors",
        dir.path().to_str().unwrap(),
        "--timeout-ms",
        "3000",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(!text(&out).contains("longer deadline"), "{}", text(&out));
}

#[test]
fn plugin_test_with_a_deployment_applies_its_host_policy() {
    let (_dir, toml) = init("config");
    let vectors = workspace().join("plugins/static-users/vectors");
    let with_host = |toml: &str, more: &[&str]| {
        let wasm = plugin("static_users");
        let mut args = vec![
            "plugin",
            "test",
            &wasm,
            "--vectors",
            vectors.to_str().unwrap(),
            "-c",
            toml,
        ];
        args.extend_from_slice(more);
        let out = portcullis(&args);
        (out.status.code(), text(&out))
    };
    let (code, shown) = with_host(&toml, &[]);
    assert_eq!(code, Some(0), "{shown}");
    assert!(shown.contains("20 vectors: 20 passed, 0 failed"), "{shown}");
    assert!(!shown.contains("host policy not applied"), "{shown}");

    // The deployment no longer lets the plugin place users in APP2: bob,
    // whom the plugin still admits there, is refused as `run` refuses him.
    let written = std::fs::read_to_string(&toml).unwrap();
    let narrowed = written.replace(r#"accounts = ["APP1", "APP2"]"#, r#"accounts = ["APP1"]"#);
    assert_ne!(written, narrowed, "init's plugin entry changed: {written}");
    std::fs::write(&toml, narrowed).unwrap();
    let (code, shown) = with_host(&toml, &[]);
    assert_eq!(code, Some(1), "{shown}");
    assert!(
        shown.lines().any(|l| l.contains("bob")
            && l.contains("FAIL")
            && l.contains("grant refused by host policy: account")
            && l.contains("APP2")),
        "{shown}"
    );

    // A deployment without that plugin is an error naming what it has.
    let (code, shown) = with_host(&toml, &["--plugin", "nope"]);
    assert_eq!(code, Some(1), "{shown}");
    assert!(
        shown.contains("has no plugin \"nope\" (it has: users)"),
        "{shown}"
    );
}

#[test]
fn common_errors_say_each_cause_once_on_one_line() {
    let (dir, toml) = init("config");
    let written = std::fs::read_to_string(&toml).unwrap();
    let with_plugin = |wasm: &str| {
        let path = dir.path().join("other.toml");
        let changed = written.replace(&plugin("static_users"), wasm);
        assert_ne!(changed, written, "init's plugin path changed");
        std::fs::write(&path, changed).unwrap();
        check(path.to_str().unwrap()).1
    };
    let fail_line = |shown: &str| {
        shown
            .lines()
            .find(|l| l.contains("FAIL"))
            .unwrap_or_else(|| panic!("no FAIL line: {shown}"))
            .trim()
            .to_owned()
    };

    let missing = dir.path().join("missing.wasm");
    let missing = missing.to_str().unwrap();
    assert_eq!(
        fail_line(&with_plugin(missing)),
        format!(
            "FAIL  plugin users: fetch: cannot read {missing}: No such file or directory (os error 2)"
        )
    );

    let not_wasm = dir.path().join("notes.wasm");
    std::fs::write(&not_wasm, "hello, this is text\n").unwrap();
    let not_wasm = not_wasm.to_str().unwrap();
    assert_eq!(
        fail_line(&with_plugin(not_wasm)),
        format!(
            r#"FAIL  plugin users ({not_wasm}): compile: not a WebAssembly file: it starts with "hell", not "\0asm""#
        )
    );

    // The same causes through anyhow at the command's edge: once each.
    let vectors = workspace().join("plugins/static-users/vectors");
    let out = portcullis(&[
        "plugin",
        "test",
        missing,
        "--vectors",
        vectors.to_str().unwrap(),
    ]);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        format!("error: cannot read {missing}: No such file or directory (os error 2)")
    );
    let out = portcullis(&["check", "-c", "/nonexistent/portcullis.toml"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "error: cannot read /nonexistent/portcullis.toml: No such file or directory (os error 2)"
    );
}

/// `plugin new` into a fresh directory: the project directory.
fn new_project(lang: &str, parent: &Path, name: &str) -> std::path::PathBuf {
    let out = portcullis(&[
        "plugin",
        "new",
        name,
        "--lang",
        lang,
        "--dir",
        parent.to_str().unwrap(),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    parent.join(name)
}

#[test]
fn plugin_new_rust_builds_a_component_that_passes_its_starter_vectors() {
    let parent = tempfile::tempdir().unwrap();
    let project = new_project("rust", parent.path(), "tenants");
    // The workspace's lock file pins the same dependency versions the
    // plugins here build with, so no registry lookup is needed; a target
    // directory under ours is reused by later runs.
    std::fs::copy(workspace().join("Cargo.lock"), project.join("Cargo.lock")).unwrap();
    // The project depends on the SDK by version, as it would on crates.io;
    // the patch stands in for the registry with this checkout's SDK of
    // that version, so a version mismatch fails here.
    let manifest = std::fs::read_to_string(project.join("Cargo.toml")).unwrap();
    let version = env!("CARGO_PKG_VERSION");
    assert!(
        manifest.contains(&format!("portcullis-sdk = \"{version}\"")),
        "{manifest}"
    );
    let patch = format!(
        "patch.crates-io.portcullis-sdk.path={:?}",
        workspace().join("plugin-sdk").display().to_string()
    );
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let target = workspace().join("target/scaffold-test");
    let build = Command::new(cargo)
        .args([
            "build",
            "--release",
            "--target",
            "wasm32-wasip2",
            "--config",
            &patch,
        ])
        .current_dir(&project)
        .env("CARGO_TARGET_DIR", &target)
        // Built as a plugin author builds it, not with the lints
        // scripts/test compiles this workspace under.
        .env_remove("RUSTC_WORKSPACE_WRAPPER")
        .env_remove("CLIPPY_ARGS")
        .output()
        .expect("run cargo");
    assert!(build.status.success(), "{}", text(&build));
    let wasm = target.join("wasm32-wasip2/release/tenants.wasm");
    let (code, shown) = run_vectors(wasm.to_str().unwrap(), &project.join("vectors"));
    assert_eq!(code, Some(0), "{shown}");
    assert!(shown.contains("6 vectors: 6 passed, 0 failed"), "{shown}");
}

#[test]
fn plugin_new_js_and_python_copy_the_tested_static_users_plugins() {
    // These are the sources scripts/build-plugins builds and the languages
    // tests run against the same starter vectors.
    let parent = tempfile::tempdir().unwrap();
    let js = new_project("js", parent.path(), "my-js");
    let read = |p: std::path::PathBuf| {
        std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
    };
    let repo = workspace().join("plugins");
    assert_eq!(
        read(js.join("src/plugin.js")),
        read(repo.join("static-users-js/src/plugin.js"))
    );
    assert_eq!(
        read(js.join("build.mjs")),
        read(repo.join("static-users-js/build.mjs"))
    );
    assert_eq!(
        read(js.join("jsconfig.json")),
        read(repo.join("static-users-js/jsconfig.json"))
    );
    let package: serde_json::Value = serde_json::from_str(&read(js.join("package.json"))).unwrap();
    assert_eq!(package["name"], "my-js");
    assert_eq!(
        package["devDependencies"]["@bytecodealliance/componentize-js"],
        "0.23.0"
    );
    // The SDK by the version sdk/js releases (the repository's plugin
    // links sdk/js itself; a project elsewhere cannot).
    let sdk: serde_json::Value =
        serde_json::from_str(&read(workspace().join("sdk/js/package.json"))).unwrap();
    assert_eq!(sdk["name"], "portcullis-sdk");
    assert_eq!(package["dependencies"]["portcullis-sdk"], sdk["version"]);
    let lock: serde_json::Value =
        serde_json::from_str(&read(js.join("package-lock.json"))).unwrap();
    assert_eq!(lock["name"], "my-js");
    assert_eq!(lock["packages"][""]["name"], "my-js");
    assert_eq!(
        lock["packages"][""]["dependencies"]["portcullis-sdk"],
        sdk["version"]
    );
    assert_eq!(
        std::fs::read(js.join("wasi_snapshot_preview1.proxy.wasm")).unwrap(),
        std::fs::read(repo.join("static-users-js/wasi_snapshot_preview1.proxy.wasm")).unwrap()
    );
    assert_eq!(
        read(js.join("wit/authenticator.wit")),
        read(workspace().join("wit/v0.1.0/authenticator.wit"))
    );

    let py = new_project("python", parent.path(), "my_py");
    assert_eq!(
        read(py.join("app.py")),
        read(repo.join("static-users-py/app.py"))
    );
    assert_eq!(
        read(py.join("build.sh")),
        read(repo.join("static-users-py/build.sh"))
    );
    let requirements = read(py.join("requirements.txt"));
    assert!(requirements.contains("componentize-py=="));
    // The SDK by the version sdk/python releases.
    let pyproject = read(workspace().join("sdk/python/pyproject.toml"));
    let version = pyproject
        .lines()
        .find_map(|l| l.strip_prefix("version = "))
        .expect("sdk/python/pyproject.toml has a version")
        .trim_matches('"');
    assert!(
        requirements
            .lines()
            .any(|l| l == format!("portcullis-sdk=={version}")),
        "{requirements}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(py.join("build.sh"))
            .unwrap()
            .permissions()
            .mode();
        assert!(mode & 0o111 != 0, "build.sh must be executable");
    }
    for project in [&js, &py] {
        for f in [
            "config.json",
            "01-alice-allowed.json",
            "04-no-user-abstains.json",
        ] {
            assert!(
                project.join("vectors").join(f).is_file(),
                "{} lacks {f}",
                project.display()
            );
        }
    }

    // An existing directory is never overwritten.
    let out = portcullis(&[
        "plugin",
        "new",
        "my-js",
        "--lang",
        "js",
        "--dir",
        parent.path().to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    assert!(text(&out).contains("already exists"), "{}", text(&out));
}
