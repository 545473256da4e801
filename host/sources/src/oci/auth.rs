//! Registry credentials, found where container tools keep them: the
//! `PORTCULLIS_REGISTRY_USERNAME` / `PORTCULLIS_REGISTRY_PASSWORD`
//! variables, else the `auths` of docker's `config.json`
//! (`$DOCKER_CONFIG/config.json` or `~/.docker/config.json`). They are
//! never logged: [`Credentials`] prints as the user name only.

use base64::Engine;
use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;

pub const USERNAME_VAR: &str = "PORTCULLIS_REGISTRY_USERNAME";
pub const PASSWORD_VAR: &str = "PORTCULLIS_REGISTRY_PASSWORD";

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
    if let (Ok(username), Ok(password)) = (std::env::var(USERNAME_VAR), std::env::var(PASSWORD_VAR))
    {
        return Some(Credentials { username, password });
    }
    let path = docker_config_path()?;
    let text = std::fs::read_to_string(&path).ok()?;
    from_docker_config(&text, registry)
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
        (host == registry).then_some(auth)
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
    fn credentials_never_print_the_password() {
        let creds = Credentials {
            username: "ci".into(),
            password: "s3cret-pass".into(),
        };
        let shown = format!("{creds:?}");
        assert!(shown.contains("ci") && !shown.contains("s3cret"), "{shown}");
    }
}
