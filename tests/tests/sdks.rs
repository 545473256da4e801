//! The JavaScript and Python SDKs (sdk/js, sdk/python) as their users get
//! them: the npm package carries its code and the TypeScript types, and
//! those types are what the WIT generates today; the wheel carries the
//! typed package; the helpers of both pass their own tests; the
//! static-users plugin type-checks against the SDK's types; and a `plugin
//! new --lang python` project, with the SDK installed from the wheel into
//! its .venv as pip would, builds and passes its starter vectors.

use portcullis::vectors;
use portcullis_runtime::{LogLimits, Plugin, PluginLimits, Runtime, RuntimeOptions};
use portcullis_tests::{cache_dir, workspace};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::Duration;

/// Runs `command`, panicking with its output when it fails.
fn run(command: &mut Command) -> Output {
    let shown = format!("{command:?}");
    let out = command
        .output()
        .unwrap_or_else(|e| panic!("{shown}: {e} (scripts/setup installs node, npm and .venv)"));
    assert!(
        out.status.success(),
        "{shown} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn python() -> PathBuf {
    workspace().join(".venv/bin/python")
}

/// Every file under `dir`, relative, with its bytes.
fn tree(dir: &Path) -> Vec<(String, Vec<u8>)> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let relative = path.strip_prefix(root).unwrap().display().to_string();
                out.push((relative, std::fs::read(&path).unwrap()));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

#[test]
fn the_npm_package_holds_the_sdk_and_its_generated_types_and_nothing_else() {
    let out = run(Command::new("npm")
        .args(["pack", "--dry-run", "--json", "--loglevel=error"])
        .current_dir(workspace().join("sdk/js")));
    let packs: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(packs[0]["name"], "portcullis-sdk");
    let files: BTreeSet<&str> = packs[0]["files"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["path"].as_str().unwrap())
        .collect();
    let expected: BTreeSet<&str> = [
        "README.md",
        "package.json",
        "index.js",
        "index.d.ts",
        "types/authenticator.d.ts",
        "types/interfaces/portcullis-authenticator-host.d.ts",
        "types/interfaces/portcullis-authenticator-plugin.d.ts",
        "types/interfaces/portcullis-authenticator-types.d.ts",
    ]
    .into();
    assert_eq!(files, expected);
}

#[test]
fn the_committed_typescript_types_are_what_the_wit_generates() {
    let sdk = workspace().join("sdk/js");
    let fresh = tempfile::tempdir().unwrap();
    run(Command::new("node")
        .arg(sdk.join("scripts/generate-types.mjs"))
        .arg("--wit")
        .arg(workspace().join("wit/v0.1.0"))
        .arg("--out")
        .arg(fresh.path()));
    let committed = tree(&sdk.join("types"));
    let generated = tree(fresh.path());
    let names = |t: &[(String, Vec<u8>)]| t.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(names(&committed), names(&generated));
    for ((name, old), (_, new)) in committed.iter().zip(&generated) {
        assert!(
            old == new,
            "sdk/js/types/{name} is stale: run `npm run generate-types` in sdk/js and commit it"
        );
    }
}

#[test]
fn the_js_sdk_helpers_pass_their_node_tests() {
    run(Command::new("node")
        .args(["--test", "test/"])
        .current_dir(workspace().join("sdk/js")));
}

#[test]
fn the_js_static_users_plugin_type_checks_against_the_sdk_types() {
    // typescript is a pinned devDependency of the plugin (`npm run check`).
    let js = workspace().join("plugins/static-users-js");
    run(Command::new(js.join("node_modules/.bin/tsc"))
        .args(["-p", "jsconfig.json"])
        .current_dir(&js));
}

#[test]
fn the_python_sdk_helpers_pass_their_tests_against_the_binding_stubs() {
    // componentize-py's `bindings` writes the wit_world dataclasses (and
    // host functions that raise), so the helpers run under plain CPython.
    let bindings = tempfile::tempdir().unwrap();
    run(Command::new(workspace().join(".venv/bin/componentize-py"))
        .arg("-d")
        .arg(workspace().join("wit/v0.1.0"))
        .args(["-w", "authenticator", "bindings"])
        .arg(bindings.path()));
    let sdk = workspace().join("sdk/python");
    let path = std::env::join_paths([bindings.path(), sdk.as_path()]).unwrap();
    run(Command::new(python())
        .args(["-m", "unittest", "discover", "-s", "tests"])
        .env("PYTHONPATH", path)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .current_dir(&sdk));
}

/// The SDK's wheel, built once per test run (offline: no build isolation,
/// setuptools and wheel from .venv). Built from a copy, since setuptools
/// writes build/ and *.egg-info beside the sources.
fn wheel() -> &'static Path {
    static WHEEL: OnceLock<PathBuf> = OnceLock::new();
    WHEEL.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap().keep();
        let source = dir.join("src");
        for (name, bytes) in tree(&workspace().join("sdk/python")) {
            if name.starts_with("build/")
                || name.contains("egg-info")
                || name.contains("__pycache__")
            {
                continue;
            }
            let path = source.join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, bytes).unwrap();
        }
        let out = dir.join("dist");
        run(Command::new(python())
            .args([
                "-m",
                "pip",
                "wheel",
                "--no-deps",
                "--no-build-isolation",
                "--quiet",
            ])
            .args(["--disable-pip-version-check", "-w"])
            .arg(&out)
            .arg(&source));
        let wheel = out.join("portcullis_sdk-0.1.0-py3-none-any.whl");
        assert!(wheel.is_file(), "{} missing", wheel.display());
        wheel
    })
}

#[test]
fn the_wheel_holds_the_typed_package_and_nothing_else() {
    let out = run(Command::new(python())
        .arg("-c")
        .arg("import sys, zipfile; print('\\n'.join(zipfile.ZipFile(sys.argv[1]).namelist()))")
        .arg(wheel()));
    let names: BTreeSet<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    let package: BTreeSet<&str> = names
        .iter()
        .filter(|n| !n.starts_with("portcullis_sdk-0.1.0.dist-info/"))
        .map(String::as_str)
        .collect();
    assert_eq!(
        package,
        ["portcullis_sdk/__init__.py", "portcullis_sdk/py.typed"].into()
    );
    assert!(names.contains("portcullis_sdk-0.1.0.dist-info/METADATA"));
}

#[tokio::test]
async fn a_new_python_project_builds_with_the_sdk_from_its_venv_and_passes_its_vectors()
-> anyhow::Result<()> {
    let parent = tempfile::tempdir()?;
    let project = portcullis_cli::commands::plugin::new::create(
        "users",
        portcullis_cli::commands::plugin::new::Lang::Python,
        parent.path(),
        None,
    )?
    .dir;
    // The project's .venv with the SDK installed from the wheel, as
    // `pip install -r requirements.txt` installs it from PyPI (offline here).
    let venv = project.join(".venv");
    run(Command::new(python())
        .args(["-m", "venv", "--without-pip"])
        .arg(&venv));
    run(Command::new(python())
        .args(["-m", "pip", "--python"])
        .arg(venv.join("bin/python"))
        .args([
            "install",
            "--no-deps",
            "--no-index",
            "--quiet",
            "--disable-pip-version-check",
        ])
        .arg(wheel()));
    // build.sh finds the SDK through the project's .venv (no VIRTUAL_ENV
    // set); componentize-py is the repository's, the project's would be
    // the same pinned version.
    run(Command::new(project.join("build.sh"))
        .env_remove("VIRTUAL_ENV")
        .env(
            "COMPONENTIZE_PY",
            workspace().join(".venv/bin/componentize-py"),
        )
        .current_dir(&project));

    let dir = project.join("vectors");
    let vectors = vectors::load_dir(&dir)?;
    let config = std::fs::read_to_string(dir.join(vectors::CONFIG_FILE))?;
    let runtime = Runtime::new(&RuntimeOptions {
        cache_dir: Some(cache_dir()),
        pool_instances: Some(4),
        max_memory_bytes: 32 << 20,
        cache_max_age: None,
    })?;
    let pre = runtime.prepare(&std::fs::read(project.join("plugin.wasm"))?)?;
    let limits = PluginLimits {
        timeout: Duration::from_secs(1),
        configure_timeout: Duration::from_secs(5),
        memory_bytes: 32 << 20,
        max_concurrency: 1,
        queue_timeout: Duration::from_secs(1),
        log: LogLimits::default(),
    };
    let plugin = Plugin::new("users", pre, limits, config, None).await?;
    let report = vectors::run(&plugin, &vectors, None).await;
    assert!(report.ok(), "{report}");
    assert!(report.results.len() >= 6);
    Ok(())
}
