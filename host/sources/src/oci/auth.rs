//! Registry credentials, found where container tools keep them: the
//! `PORTCULLIS_REGISTRY_USERNAME` / `PORTCULLIS_REGISTRY_PASSWORD`
//! variables, for the one registry `PORTCULLIS_REGISTRY_HOST` names, else
//! the `auths` of docker's `config.json` (`$DOCKER_CONFIG/config.json` or
//! `~/.docker/config.json`). They are never logged: [`Credentials`] prints
//! as the user name only.
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
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

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
pub fn lookup(registry: &str) -> Option<Credentials> {
    if let Some(creds) = from_environment(|name| std::env::var(name).ok(), registry) {
        return Some(creds);
    }
    let path = docker_config_path()?;
    let text = std::fs::read_to_string(&path).ok()?;
    from_docker_config(&text, registry)
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
#[serde(default)]
struct DockerConfig {
    auths: BTreeMap<String, DockerAuth>,
}

#[derive(serde::Deserialize, Default)]
#[serde(default)]
struct DockerAuth {
    auth: Option<String>,
    username: Option<String>,
    password: Option<String>,
}

/// Find `registry` in a docker `config.json`; keys may carry a scheme
/// (`https://host/v1/`), as older docker versions wrote them.
fn from_docker_config(text: &str, registry: &str) -> Option<Credentials> {
    let config: DockerConfig = serde_json::from_str(text).ok()?;
    let entry = config.auths.iter().find_map(|(key, auth)| {
        let host = key
            .trim_start_matches("https://")
            .trim_start_matches("http://")
            .split('/')
            .next()
            .unwrap_or_default();
        same_registry(host, registry).then_some(auth)
    })?;
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

    #[test]
    fn docker_config_auths_are_found_by_registry() {
        let auth = base64::engine::general_purpose::STANDARD.encode("ci:s3cret-pass");
        let text = format!(
            r#"{{"auths": {{"https://other.example/v1/": {{"auth": "eDp5"}},
                "127.0.0.1:5000": {{"auth": "{auth}"}}}}}}"#
        );
        let creds = from_docker_config(&text, "127.0.0.1:5000").unwrap();
        assert_eq!(creds.username, "ci");
        assert_eq!(creds.password, "s3cret-pass");
        assert!(from_docker_config(&text, "127.0.0.1:5001").is_none());
        assert_eq!(
            from_docker_config(&text, "other.example").unwrap().username,
            "x"
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
