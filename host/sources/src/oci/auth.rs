//! Registry credentials, found where container tools keep them: the
//! `PORTCULLIS_REGISTRY_USERNAME` / `PORTCULLIS_REGISTRY_PASSWORD`
//! variables, for the one registry `PORTCULLIS_REGISTRY_HOST` names, else
//! docker's `config.json` (`$DOCKER_CONFIG/config.json` or
//! `~/.docker/config.json`) as docker reads it: the registry's
//! `credHelpers` entry, else the `credsStore`, else its `auths` entry.
//! They are never logged: [`Credentials`] prints as the user name only.
//!
//! A credential helper is `docker-credential-NAME` on the PATH, spoken to
//! as docker does (`get`, the registry on stdin, JSON on stdout). It is
//! the operator's program, but it may wait on a keyring or a PIN prompt:
//! it gets [`HELPER_TIMEOUT`] and is killed after that, and its answer is
//! read up to [`MAX_HELPER_OUTPUT`]. A NAME that is not a plain file name
//! (a `/`, `..`) is refused rather than run.
//!
//! Credentials are always for one registry: a host pulls from registries
//! that plugin configurations name, and a password sent to any of them
//! would be the password of all of them. So the environment's pair is
//! used only for the registry named beside it (without that name it is
//! not used at all, and the log says so), as docker's file names one per
//! registry. And none are sent over plain HTTP to a registry that is not
//! on loopback (`insecure = true`), where anyone on the path reads them:
//! see [`super::Registry::new`].

use base64::Engine;
use portcullis_protocol::logsafe::escape;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long a credential helper may take to answer.
pub const HELPER_TIMEOUT: Duration = Duration::from_secs(10);
/// The most a credential helper's answer may hold.
pub const MAX_HELPER_OUTPUT: usize = 64 << 10;

pub const USERNAME_VAR: &str = "PORTCULLIS_REGISTRY_USERNAME";
pub const PASSWORD_VAR: &str = "PORTCULLIS_REGISTRY_PASSWORD";
/// The registry (`host[:port]`, as in `oci://HOST[:PORT]/...`) that the
/// credentials of [`USERNAME_VAR`] and [`PASSWORD_VAR`] belong to.
pub const REGISTRY_VAR: &str = "PORTCULLIS_REGISTRY_HOST";

/// A user name and password for one registry.
#[derive(Clone)]
pub struct Credentials {
    pub username: String,
    password: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Credentials({}, password hidden)", self.username)
    }
}

impl Credentials {
    pub fn new(username: &str, password: &str) -> Credentials {
        Credentials {
            username: username.to_owned(),
            password: password.to_owned(),
        }
    }

    pub(crate) fn registry_auth(creds: Option<&Credentials>) -> oci_client::secrets::RegistryAuth {
        match creds {
            Some(c) => {
                oci_client::secrets::RegistryAuth::Basic(c.username.clone(), c.password.clone())
            }
            None => oci_client::secrets::RegistryAuth::Anonymous,
        }
    }
}

/// The credentials for `registry` (`host[:port]`), if any are configured.
pub async fn lookup(registry: &str) -> Option<Credentials> {
    if let Some(creds) = from_environment(|name| std::env::var(name).ok(), registry) {
        return Some(creds);
    }
    let path = docker_config_path()?;
    let text = std::fs::read_to_string(&path).ok()?;
    let helper = |name: &str| OsString::from(format!("docker-credential-{name}"));
    from_docker_config(&text, registry, helper, HELPER_TIMEOUT).await
}

/// The environment's credentials, if they belong to `registry`.
fn from_environment(var: impl Fn(&str) -> Option<String>, registry: &str) -> Option<Credentials> {
    let (username, password) = (var(USERNAME_VAR)?, var(PASSWORD_VAR)?);
    let Some(theirs) = var(REGISTRY_VAR) else {
        // Once per process: every pull looks credentials up.
        static WARNED: AtomicBool = AtomicBool::new(false);
        if !WARNED.swap(true, Ordering::Relaxed) {
            tracing::warn!(
                "{USERNAME_VAR} and {PASSWORD_VAR} are not used: set {REGISTRY_VAR} to the registry they belong to"
            );
        }
        return None;
    };
    same_registry(&theirs, registry).then_some(Credentials { username, password })
}

/// Whether `configured` (as an operator wrote it) names `registry`
/// (`host[:port]` of a reference): host names are case-insensitive, a
/// scheme or trailing `/` is tolerated, and a port must match exactly.
fn same_registry(configured: &str, registry: &str) -> bool {
    let configured = configured.trim();
    let configured = configured
        .strip_prefix("https://")
        .or_else(|| configured.strip_prefix("http://"))
        .unwrap_or(configured)
        .trim_end_matches('/');
    !configured.is_empty() && configured.eq_ignore_ascii_case(registry)
}

fn docker_config_path() -> Option<PathBuf> {
    match std::env::var_os("DOCKER_CONFIG") {
        Some(dir) => Some(PathBuf::from(dir).join("config.json")),
        None => std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker/config.json")),
    }
}

#[derive(serde::Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct DockerConfig {
    auths: BTreeMap<String, DockerAuth>,
    /// The helper that holds every registry's credentials.
    creds_store: Option<String>,
    /// Registry -> the helper that holds its credentials.
    cred_helpers: BTreeMap<String, String>,
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct DockerAuth {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
}

/// The `host[:port]` of a `config.json` key, which may carry a scheme and
/// a path (`https://host/v1/`), as older docker versions wrote them.
fn key_host(key: &str) -> &str {
    key.trim_start_matches("https://")
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or_default()
}

/// Find `registry` in a docker `config.json`, as docker does: its
/// `credHelpers` entry, else the `credsStore`, else its `auths` entry
/// (also when the helper has nothing for it). `helper` names the program
/// of a helper NAME.
async fn from_docker_config(
    text: &str,
    registry: &str,
    helper: impl Fn(&str) -> OsString,
    timeout: Duration,
) -> Option<Credentials> {
    let config: DockerConfig = match serde_json::from_str(text) {
        Ok(config) => config,
        Err(e) => {
            tracing::warn!(error = %e, "docker config.json is not valid JSON: no registry credentials from it");
            return None;
        }
    };
    let per_registry = config
        .cred_helpers
        .iter()
        .find(|(key, _)| same_registry(key_host(key), registry))
        .map(|(_, name)| name);
    if let Some(name) = per_registry.or(config.creds_store.as_ref()) {
        match from_helper(name, &helper, registry, timeout).await {
            Ok(Some(creds)) => return Some(creds),
            Ok(None) => {
                tracing::debug!(helper = %escape(name), %registry, "the credential helper has no credentials for this registry")
            }
            Err(reason) => {
                tracing::warn!(helper = %escape(name), %registry, %reason, "registry credential helper failed")
            }
        }
    }
    from_auths(&config, registry)
}

/// The answer of a credential helper's `get`.
#[derive(serde::Deserialize)]
#[serde(rename_all = "PascalCase")]
struct HelperAnswer {
    username: String,
    secret: String,
}

/// Ask credential helper `name` for `registry`: `Ok(None)` when it has
/// none, `Err` with a reason (that never holds its output) when it failed.
async fn from_helper(
    name: &str,
    program: &impl Fn(&str) -> OsString,
    registry: &str,
    timeout: Duration,
) -> Result<Option<Credentials>, String> {
    let plain = !name.is_empty()
        && name != "."
        && name != ".."
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    if !plain {
        return Err("its name is not a plain program name".into());
    }
    let mut child = tokio::process::Command::new(program(name))
        .arg("get")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run docker-credential-{name}: {e}"))?;
    let ask = async {
        let mut stdin = child.stdin.take().expect("piped");
        // A helper that exits without reading is judged by its answer.
        let _ = stdin.write_all(registry.as_bytes()).await;
        drop(stdin);
        let mut out = Vec::new();
        let mut stdout = child
            .stdout
            .take()
            .expect("piped")
            .take(MAX_HELPER_OUTPUT as u64 + 1);
        stdout
            .read_to_end(&mut out)
            .await
            .map_err(|e| format!("cannot read its answer: {e}"))?;
        let status = child
            .wait()
            .await
            .map_err(|e| format!("cannot wait for it: {e}"))?;
        Ok::<_, String>((status, out))
    };
    let (status, out) = tokio::time::timeout(timeout, ask)
        .await
        .map_err(|_| format!("no answer within {timeout:?}"))??;
    if out.len() > MAX_HELPER_OUTPUT {
        return Err(format!(
            "its answer is longer than {MAX_HELPER_OUTPUT} bytes"
        ));
    }
    if !status.success() {
        // docker's helpers say so on stdout, and exit 1.
        if String::from_utf8_lossy(&out).contains("credentials not found") {
            return Ok(None);
        }
        return Err(format!("it exited with {status}"));
    }
    let answer: HelperAnswer = serde_json::from_slice(&out)
        .map_err(|_| "its answer is not the JSON docker expects".to_owned())?;
    if answer.username == "<token>" {
        return Err("it holds an identity token, which Portcullis cannot use: log in with a user name and password".into());
    }
    Ok(Some(Credentials {
        username: answer.username,
        password: answer.secret,
    }))
}

/// The `auths` entry for `registry`.
fn from_auths(config: &DockerConfig, registry: &str) -> Option<Credentials> {
    let entry = config
        .auths
        .iter()
        .find_map(|(key, auth)| same_registry(key_host(key), registry).then_some(auth))?;
    if let (Some(username), Some(password)) = (&entry.username, &entry.password) {
        return Some(Credentials {
            username: username.clone(),
            password: password.clone(),
        });
    }
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(entry.auth.as_deref()?)
        .ok()?;
    let (username, password) = std::str::from_utf8(&decoded).ok()?.split_once(':')?;
    Some(Credentials {
        username: username.to_owned(),
        password: password.to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Look `registry` up in `text` with helpers from `dir`.
    async fn find(text: &str, registry: &str, dir: &std::path::Path) -> Option<Credentials> {
        let dir = dir.to_owned();
        let program = move |name: &str| dir.join(format!("docker-credential-{name}")).into();
        from_docker_config(text, registry, program, Duration::from_millis(500)).await
    }

    /// A credential helper `docker-credential-NAME` in `dir` running `script`.
    fn helper(dir: &std::path::Path, name: &str, script: &str) {
        use std::os::unix::fs::PermissionsExt;
        let path = dir.join(format!("docker-credential-{name}"));
        std::fs::write(&path, format!("#!/bin/sh\n{script}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[tokio::test]
    async fn docker_config_auths_are_found_by_registry() {
        let dir = tempfile::tempdir().unwrap();
        let auth = base64::engine::general_purpose::STANDARD.encode("ci:s3cret-pass");
        let text = format!(
            r#"{{"auths": {{"https://other.example/v1/": {{"auth": "eDp5"}},
                "127.0.0.1:5000": {{"auth": "{auth}"}}}}}}"#
        );
        let creds = find(&text, "127.0.0.1:5000", dir.path()).await.unwrap();
        assert_eq!(creds.username, "ci");
        assert_eq!(creds.password, "s3cret-pass");
        assert!(find(&text, "127.0.0.1:5001", dir.path()).await.is_none());
        assert_eq!(
            find(&text, "other.example", dir.path())
                .await
                .unwrap()
                .username,
            "x"
        );
    }

    #[tokio::test]
    async fn credential_helpers_are_asked_as_docker_asks_them() {
        let dir = tempfile::tempdir().unwrap();
        // Answers for the registry it is given on stdin, as docker's do.
        helper(
            dir.path(),
            "store",
            r#"read r; printf '{"ServerURL":"%s","Username":"from-store","Secret":"store-pass"}' "$r""#,
        );
        helper(
            dir.path(),
            "ecr",
            r#"read r; [ "$r" = "registry-a.example" ] || exit 3; echo '{"Username":"from-ecr","Secret":"ecr-pass"}'"#,
        );
        helper(
            dir.path(),
            "empty",
            "echo 'credentials not found in native keychain'; exit 1",
        );
        let text = r#"{"credsStore": "store",
            "credHelpers": {"registry-a.example": "ecr", "registry-b.example": "empty"},
            "auths": {"registry-b.example": {"auth": "Yjpi"}}}"#;

        // The registry's own helper first, then the store for the rest.
        let a = find(text, "registry-a.example", dir.path()).await.unwrap();
        assert_eq!((&*a.username, &*a.password), ("from-ecr", "ecr-pass"));
        let c = find(text, "registry-c.example", dir.path()).await.unwrap();
        assert_eq!((&*c.username, &*c.password), ("from-store", "store-pass"));
        // A helper with nothing for the registry: its `auths` entry.
        let b = find(text, "registry-b.example", dir.path()).await.unwrap();
        assert_eq!((&*b.username, &*b.password), ("b", "b"));
    }

    #[tokio::test]
    async fn a_helper_that_hangs_fails_or_misbehaves_costs_only_its_credentials() {
        let dir = tempfile::tempdir().unwrap();
        helper(dir.path(), "hangs", "exec sleep 30");
        helper(dir.path(), "fails", "echo 'keyring locked' >&2; exit 2");
        helper(dir.path(), "garbage", "echo not json");
        helper(
            dir.path(),
            "token",
            r#"echo '{"Username":"<token>","Secret":"refresh"}'"#,
        );
        helper(dir.path(), "floods", "yes '{}'");
        for name in [
            "hangs",
            "fails",
            "garbage",
            "token",
            "floods",
            "missing",
            "../../bin/sh",
            "..",
        ] {
            let text = format!(
                r#"{{"credsStore": "{name}", "auths": {{"r.example": {{"auth": "eDp5"}}}}}}"#
            );
            let started = std::time::Instant::now();
            let found = find(&text, "r.example", dir.path()).await;
            // Bounded by the timeout, and the `auths` entry still answers.
            assert!(
                started.elapsed() < Duration::from_secs(5),
                "{name}: {:?}",
                started.elapsed()
            );
            assert_eq!(found.map(|c| c.username).as_deref(), Some("x"), "{name}");
        }
        let name = "../../bin/sh";
        assert!(
            from_helper(
                name,
                &|n: &str| n.into(),
                "r.example",
                Duration::from_secs(1)
            )
            .await
            .unwrap_err()
            .contains("not a plain program name")
        );
    }

    #[test]
    fn environment_credentials_are_only_for_the_registry_named_beside_them() {
        let env = |registry: Option<&'static str>| {
            move |name: &str| match name {
                USERNAME_VAR => Some("ci".to_owned()),
                PASSWORD_VAR => Some("s3cret-pass".to_owned()),
                REGISTRY_VAR => registry.map(str::to_owned),
                _ => None,
            }
        };
        let a = "registry-a.example:5000";
        let creds = from_environment(env(Some(a)), a).unwrap();
        assert_eq!((&*creds.username, &*creds.password), ("ci", "s3cret-pass"));
        for spelling in [
            "REGISTRY-A.example:5000",
            "https://registry-a.example:5000/",
        ] {
            assert!(
                from_environment(env(Some(spelling)), a).is_some(),
                "{spelling}"
            );
        }
        for other in [
            "registry-b.example:5000",
            "registry-a.example",
            "registry-a.example:5001",
        ] {
            assert!(
                from_environment(env(Some(a)), other).is_none(),
                "sent to {other}"
            );
        }
        assert!(from_environment(env(Some("")), a).is_none());
        assert!(
            from_environment(env(None), a).is_none(),
            "credentials that name no registry are for none"
        );
    }

    #[test]
    fn credentials_never_print_the_password() {
        let creds = Credentials {
            username: "ci".into(),
            password: "s3cret-pass".into(),
        };
        let shown = format!("{creds:?}");
        assert!(shown.contains("ci") && !shown.contains("s3cret"), "{shown}");
    }
}
