//! `portcullis plugin new`: a plugin project in Rust, JavaScript or Python
//! that builds into a component and passes a starter set of conformance
//! vectors.
//!
//! The JavaScript and Python projects are copies of the repository's
//! static-users-js and static-users-py plugins (sources, build scripts,
//! pinned tool versions), so what a new project starts from is exactly what
//! the test suite builds and runs against the conformance vectors. Those
//! plugins use the repository's SDKs (sdk/js, sdk/python) by path; a new
//! project lives elsewhere and depends on their released version. The Rust
//! template is a smaller user directory on top of `portcullis-sdk`; it
//! and the starter vectors live in `new/templates/`, beside the code that
//! fills them in.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The WIT contract, copied into every project.
const WIT: &str = include_str!("new/templates/wit/authenticator.wit");

/// Starter vectors: pass against every template and every static-users
/// plugin.
const VECTORS: &[(&str, &str)] = &[
    (
        "config.json",
        include_str!("new/templates/vectors/config.json"),
    ),
    (
        "01-alice-allowed.json",
        include_str!("new/templates/vectors/01-alice-allowed.json"),
    ),
    (
        "02-wrong-password.json",
        include_str!("new/templates/vectors/02-wrong-password.json"),
    ),
    (
        "03-unknown-user.json",
        include_str!("new/templates/vectors/03-unknown-user.json"),
    ),
    (
        "04-no-user-abstains.json",
        include_str!("new/templates/vectors/04-no-user-abstains.json"),
    ),
    (
        "05-bcrypt-user-allowed.json",
        include_str!("new/templates/vectors/05-bcrypt-user-allowed.json"),
    ),
    (
        "06-bcrypt-wrong-password.json",
        include_str!("new/templates/vectors/06-bcrypt-wrong-password.json"),
    ),
];

const RUST_CARGO_TOML: &str = include_str!("new/templates/rust/Cargo.toml");
const RUST_LIB_RS: &str = include_str!("new/templates/rust/src/lib.rs");

const JS_PLUGIN: &str = include_str!("new/templates/js/src/plugin.js");
const JS_BUILD: &str = include_str!("new/templates/js/build.mjs");
const JS_PACKAGE: &str = include_str!("new/templates/js/package.json");
const JS_LOCK: &str = include_str!("new/templates/js/package-lock.json");
/// `npm run check`: tsc over src/ against portcullis-sdk's WIT types.
const JS_JSCONFIG: &str = include_str!("new/templates/js/jsconfig.json");
/// wasmtime's WASI preview1 "proxy" adapter (no filesystem), from the
/// `wasi-preview1-component-adapter-provider` crate of the wasmtime release
/// the host uses; a test checks the copy is byte for byte that crate's.
pub const JS_ADAPTER: &[u8] = include_bytes!("new/templates/js/wasi_snapshot_preview1.proxy.wasm");
/// The package name the JavaScript template's package files carry.
const JS_TEMPLATE_NAME: &str = "static-users-js";
/// How the JavaScript template depends on the repository's SDK (sdk/js).
const JS_SDK_LOCAL: &str = "file:../../sdk/js";
/// The package-lock.json entry of that local SDK (beside its link entry,
/// `node_modules/portcullis-sdk`).
const JS_SDK_LOCK_PATH: &str = "../../sdk/js";

/// The release of the JavaScript (npm) and Python (PyPI) SDKs, both named
/// `portcullis-sdk`, that new projects depend on; a test checks that
/// sdk/js/package.json and sdk/python/pyproject.toml carry it.
pub const SCRIPT_SDK_VERSION: &str = "0.1.0";

const PY_APP: &str = include_str!("new/templates/python/app.py");
const PY_BUILD: &str = include_str!("new/templates/python/build.sh");
const PY_REQUIREMENTS: &str = include_str!("new/templates/python/requirements.txt");

/// The language of a new plugin project.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    Rust,
    Js,
    Python,
}

#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    #[error(
        "invalid plugin name {0:?}: use lowercase letters, digits, '-' and '_', starting with a letter (at most 64)"
    )]
    InvalidName(String),
    #[error("{} already exists", .0.display())]
    Exists(PathBuf),
    #[error(
        "--sdk-path {}: not a portcullis-sdk crate (no Cargo.toml there)",
        .0.display()
    )]
    NoSdk(PathBuf),
    #[error("cannot write {}: {source}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A created project.
#[derive(Debug)]
pub struct Project {
    pub dir: PathBuf,
    /// Every file written, in order.
    pub files: Vec<PathBuf>,
    /// Shell commands that build the plugin and run its vectors.
    pub next_steps: String,
}

#[derive(clap::Args, Debug)]
pub struct Args {
    pub name: String,
    #[arg(long, value_enum, default_value_t = Lang::Rust)]
    pub lang: Lang,
    /// Directory to create the project in.
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
    /// Rust: build against the portcullis-sdk crate in this directory
    /// (developing the SDK itself) instead of the released version.
    #[arg(long = "sdk-path", alias = "sdk", value_name = "DIR")]
    pub sdk_path: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let project = create(&args.name, args.lang, &args.dir, args.sdk_path.as_deref())?;
    for f in &project.files {
        println!("wrote {}", f.display());
    }
    println!("\nnext:\n{}", project.next_steps);
    Ok(ExitCode::SUCCESS)
}

/// The SDK release a new Rust project depends on: the one released with
/// this binary (the workspace versions them together).
const SDK_VERSION: &str = env!("CARGO_PKG_VERSION");

/// The `portcullis-sdk` dependency of a new Rust project: the released
/// version, or that version at a local path (`--sdk-path`).
fn sdk_dependency(sdk_path: Option<&Path>) -> Result<String, ScaffoldError> {
    let Some(path) = sdk_path else {
        return Ok(format!("\"{SDK_VERSION}\""));
    };
    let path = path
        .canonicalize()
        .ok()
        .filter(|p| p.join("Cargo.toml").is_file())
        .ok_or_else(|| ScaffoldError::NoSdk(path.to_owned()))?;
    // A TOML basic string: a path may hold quotes or backslashes.
    let quoted = serde_json::to_string(&path.display().to_string()).expect("a string serialises");
    Ok(format!(
        "{{ version = \"{SDK_VERSION}\", path = {quoted} }}"
    ))
}

/// The template's package-lock.json without the local SDK: its link entry
/// and the `file:` target go, and the root asks for the released version.
/// The lock keeps pinning every other package; `npm install` resolves
/// portcullis-sdk from the registry and adds it (no integrity hash can be
/// written before the release exists). serde_json sorts the keys of each
/// entry; npm reads them in any order and writes its own on install.
fn js_lock(lock: &str) -> String {
    let Ok(mut value) = serde_json::from_str::<serde_json::Value>(lock) else {
        // The template is the repository's lock file, valid JSON (tested).
        return lock.to_owned();
    };
    if let Some(packages) = value
        .get_mut("packages")
        .and_then(serde_json::Value::as_object_mut)
    {
        packages.remove(JS_SDK_LOCK_PATH);
        packages.remove("node_modules/portcullis-sdk");
        if let Some(deps) = packages
            .get_mut("")
            .and_then(|root| root.get_mut("dependencies"))
            .and_then(serde_json::Value::as_object_mut)
        {
            deps.insert("portcullis-sdk".into(), SCRIPT_SDK_VERSION.into());
        }
    }
    let mut text = serde_json::to_string_pretty(&value).expect("JSON serialises");
    text.push('\n');
    text
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        && name.len() <= 64
}

/// Create project `name` in `parent` (as `parent/name`).
pub fn create(
    name: &str,
    lang: Lang,
    parent: &Path,
    sdk_path: Option<&Path>,
) -> Result<Project, ScaffoldError> {
    if !valid_name(name) {
        return Err(ScaffoldError::InvalidName(name.to_owned()));
    }
    let dir = parent.join(name);
    if dir.exists() {
        return Err(ScaffoldError::Exists(dir));
    }
    let mut files: Vec<(String, Vec<u8>)> = vec![("wit/authenticator.wit".into(), WIT.into())];
    for (file, text) in VECTORS {
        files.push((format!("vectors/{file}"), text.as_bytes().to_vec()));
    }
    let wasm = match lang {
        Lang::Rust => {
            let sdk = sdk_dependency(sdk_path)?;
            let fill = |t: &str| t.replace("{{name}}", name).replace("{{sdk}}", &sdk);
            files.push(("Cargo.toml".into(), fill(RUST_CARGO_TOML).into()));
            files.push(("src/lib.rs".into(), fill(RUST_LIB_RS).into()));
            files.push((".gitignore".into(), "/target\n".into()));
            format!(
                "target/wasm32-wasip2/release/{}.wasm",
                name.replace('-', "_")
            )
        }
        Lang::Js => {
            let rename = |t: &str| {
                t.replace(
                    &format!("\"name\": \"{JS_TEMPLATE_NAME}\""),
                    &format!("\"name\": \"{name}\""),
                )
            };
            let package = rename(JS_PACKAGE).replace(
                &format!("\"portcullis-sdk\": \"{JS_SDK_LOCAL}\""),
                &format!("\"portcullis-sdk\": \"{SCRIPT_SDK_VERSION}\""),
            );
            files.push(("package.json".into(), package.into()));
            files.push(("package-lock.json".into(), js_lock(&rename(JS_LOCK)).into()));
            files.push(("build.mjs".into(), JS_BUILD.into()));
            files.push(("jsconfig.json".into(), JS_JSCONFIG.into()));
            files.push(("src/plugin.js".into(), JS_PLUGIN.into()));
            files.push((
                "wasi_snapshot_preview1.proxy.wasm".into(),
                JS_ADAPTER.to_vec(),
            ));
            files.push((".gitignore".into(), "/node_modules\n/plugin.wasm\n".into()));
            "plugin.wasm".to_owned()
        }
        Lang::Python => {
            files.push(("app.py".into(), PY_APP.into()));
            files.push(("build.sh".into(), PY_BUILD.into()));
            let requirements = format!(
                "{PY_REQUIREMENTS}# The plugin's helpers (build.sh finds them in .venv).\n\
                 portcullis-sdk=={SCRIPT_SDK_VERSION}\n"
            );
            files.push(("requirements.txt".into(), requirements.into()));
            files.push((".gitignore".into(), "/.venv\n/plugin.wasm\n".into()));
            "plugin.wasm".to_owned()
        }
    };
    let build = match lang {
        Lang::Rust => {
            "cargo build --release --target wasm32-wasip2   # rustup target add wasm32-wasip2"
        }
        Lang::Js => "npm install && node build.mjs",
        Lang::Python => {
            "python3 -m venv .venv && .venv/bin/pip install -r requirements.txt && ./build.sh"
        }
    };
    let next_steps = format!(
        "  cd {dir}\n  {build}\n  portcullis plugin test {wasm} --vectors vectors",
        dir = dir.display()
    );
    files.push((
        "README.md".into(),
        format!(
            "# {name}\n\nA Portcullis authentication plugin ({lang:?}), for the WIT world \
             `portcullis:authenticator/authenticator@0.1.0` (`wit/authenticator.wit`).\n\n\
             Build it and run its conformance vectors (`vectors/`, format in Portcullis' \
             docs/vectors.md):\n\n```sh\n{build}\nportcullis plugin test {wasm} --vectors vectors\n```\n"
        )
        .into(),
    ));

    let mut written = Vec::with_capacity(files.len());
    for (relative, content) in files {
        let path = dir.join(&relative);
        write(&path, &content)?;
        written.push(path);
    }
    #[cfg(unix)]
    if lang == Lang::Python {
        use std::os::unix::fs::PermissionsExt;
        let script = dir.join("build.sh");
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).map_err(
            |source| ScaffoldError::Write {
                path: script,
                source,
            },
        )?;
    }
    Ok(Project {
        dir,
        files: written,
        next_steps,
    })
}

fn write(path: &Path, content: &[u8]) -> Result<(), ScaffoldError> {
    let err = |source| ScaffoldError::Write {
        path: path.to_owned(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(err)?;
    }
    std::fs::write(path, content).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_js_adapter_is_wasmtimes_proxy_adapter() {
        // Provenance: byte for byte the adapter of the wasmtime release the
        // host links against (an upgrade of wasmtime flags a stale copy).
        assert!(
            JS_ADAPTER
                == wasi_preview1_component_adapter_provider::WASI_SNAPSHOT_PREVIEW1_PROXY_ADAPTER,
            "plugins/static-users-js/wasi_snapshot_preview1.proxy.wasm is not wasmtime's proxy adapter"
        );
    }

    #[test]
    fn js_and_python_projects_depend_on_the_released_sdk() {
        // The template really links the repository's SDK, so the rewrite
        // below is not a no-op.
        assert!(JS_PACKAGE.contains(&format!("\"portcullis-sdk\": \"{JS_SDK_LOCAL}\"")));
        let template: serde_json::Value = serde_json::from_str(JS_LOCK).unwrap();
        assert!(template["packages"][JS_SDK_LOCK_PATH].is_object());

        let dir = tempfile::tempdir().unwrap();
        let js = create("my-js", Lang::Js, dir.path(), None).unwrap();
        let read = |p: PathBuf| std::fs::read_to_string(p).unwrap();
        for file in ["package.json", "package-lock.json"] {
            let text = read(js.dir.join(file));
            assert!(
                !text.contains("file:") && !text.contains("sdk/js"),
                "{file} still links the repository's SDK:\n{text}"
            );
        }
        let package: serde_json::Value =
            serde_json::from_str(&read(js.dir.join("package.json"))).unwrap();
        assert_eq!(
            package["dependencies"]["portcullis-sdk"],
            SCRIPT_SDK_VERSION
        );
        let lock: serde_json::Value =
            serde_json::from_str(&read(js.dir.join("package-lock.json"))).unwrap();
        assert_eq!(
            lock["packages"][""]["dependencies"]["portcullis-sdk"],
            SCRIPT_SDK_VERSION
        );
        assert!(
            lock["packages"]
                .get("node_modules/portcullis-sdk")
                .is_none()
        );
        // Everything else stays pinned.
        assert_eq!(
            lock["packages"]["node_modules/@bytecodealliance/componentize-js"]["version"],
            "0.23.0"
        );

        let py = create("my_py", Lang::Python, dir.path(), None).unwrap();
        let requirements = read(py.dir.join("requirements.txt"));
        assert!(
            requirements
                .lines()
                .any(|l| l == format!("portcullis-sdk=={SCRIPT_SDK_VERSION}")),
            "{requirements}"
        );
    }

    #[test]
    fn names() {
        for ok in ["a", "tenants", "my-plugin_2"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in ["", "2x", "My", "a b", "../x", "a/b", &"x".repeat(65)] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn refuses_bad_names_and_existing_directories() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            create("../evil", Lang::Js, dir.path(), None),
            Err(ScaffoldError::InvalidName(_))
        ));
        std::fs::create_dir(dir.path().join("taken")).unwrap();
        assert!(matches!(
            create("taken", Lang::Python, dir.path(), None),
            Err(ScaffoldError::Exists(_))
        ));
        let missing = dir.path().join("no-sdk");
        assert!(matches!(
            create("p", Lang::Rust, dir.path(), Some(&missing)),
            Err(ScaffoldError::NoSdk(_))
        ));
    }

    #[test]
    fn rust_projects_depend_on_the_released_sdk_or_a_given_path() {
        let dir = tempfile::tempdir().unwrap();
        let manifest =
            |project: &Project| std::fs::read_to_string(project.dir.join("Cargo.toml")).unwrap();
        let released = create("by-version", Lang::Rust, dir.path(), None).unwrap();
        assert!(
            manifest(&released).contains(&format!("portcullis-sdk = \"{SDK_VERSION}\"\n")),
            "{}",
            manifest(&released)
        );
        let sdk = dir.path().join("my \"sdk\"");
        std::fs::create_dir(&sdk).unwrap();
        std::fs::write(sdk.join("Cargo.toml"), "").unwrap();
        let local = create("by-path", Lang::Rust, dir.path(), Some(&sdk)).unwrap();
        let text = manifest(&local);
        let parsed: toml::Value = toml::from_str(&text).unwrap();
        let dep = &parsed["dependencies"]["portcullis-sdk"];
        assert_eq!(dep["version"].as_str(), Some(SDK_VERSION));
        assert_eq!(
            dep["path"].as_str(),
            Some(sdk.canonicalize().unwrap().to_str().unwrap())
        );
    }
}
