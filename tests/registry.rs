//! A real OCI registry for tests: Debian's `docker-registry` (distribution
//! 2.8, installed by scripts/setup) on an ephemeral loopback port, with
//! its storage and access log in a temp dir; and the `wkg` CLI that
//! scripts/setup builds into a cache outside the clone.

use super::WAIT;
use anyhow::{Context, Result, bail};
use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

/// `$DOCKER_REGISTRY_BIN`, else `docker-registry` on PATH.
pub fn registry_bin() -> PathBuf {
    std::env::var_os("DOCKER_REGISTRY_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| "docker-registry".into())
}

/// `$WKG_BIN`, else where scripts/setup installs it.
pub fn wkg_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("WKG_BIN") {
        return bin.into();
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .expect("HOME or XDG_CACHE_HOME");
    let bin = cache.join("portcullis-tools/bin/wkg");
    assert!(
        bin.exists(),
        "{} is missing: scripts/setup installs it",
        bin.display()
    );
    bin
}

pub struct OciRegistry {
    child: Option<Child>,
    port: u16,
    log: Arc<Mutex<Vec<String>>>,
    dir: tempfile::TempDir,
}

impl OciRegistry {
    pub fn start() -> Result<OciRegistry> {
        OciRegistry::start_with(None)
    }

    /// A registry that wants `user`/`password` (htpasswd, basic auth).
    pub fn with_login(user: &str, password: &str) -> Result<OciRegistry> {
        OciRegistry::start_with(Some((user, password)))
    }

    fn start_with(login: Option<(&str, &str)>) -> Result<OciRegistry> {
        let dir = tempfile::tempdir()?;
        let config = dir.path().join("config.yml");
        let auth = match login {
            Some((user, password)) => {
                let options = portcullis_cli::hash_password::HashOptions {
                    algorithm: portcullis_cli::hash_password::Algorithm::Bcrypt,
                    bcrypt_cost: 4,
                    ..Default::default()
                };
                let hash = portcullis_cli::hash_password::hash(password, &options)?;
                let htpasswd = dir.path().join("htpasswd");
                std::fs::write(&htpasswd, format!("{user}:{hash}\n"))?;
                format!(
                    "auth:\n  htpasswd:\n    realm: portcullis-tests\n    path: {}\n",
                    htpasswd.display()
                )
            }
            None => String::new(),
        };
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog:\n  level: info\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:0\n  secret: portcullis-tests\n{auth}",
                dir.path().join("storage").display()
            ),
        )?;
        let mut child = Command::new(registry_bin())
            .arg("serve")
            .arg(&config)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("cannot start {}", registry_bin().display()))?;
        let log = Arc::new(Mutex::new(Vec::new()));
        let (port_tx, port_rx) = std::sync::mpsc::channel();
        // The registry logs to stderr and its access log to stdout.
        for stream in [
            Box::new(child.stderr.take().context("no stderr")?) as Box<dyn std::io::Read + Send>,
            Box::new(child.stdout.take().context("no stdout")?),
        ] {
            let (sink, port_tx) = (log.clone(), port_tx.clone());
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if let Some(rest) = line.split("listening on 127.0.0.1:").nth(1) {
                        let digits: String =
                            rest.chars().take_while(char::is_ascii_digit).collect();
                        if let Ok(port) = digits.parse::<u16>() {
                            let _ = port_tx.send(port);
                        }
                    }
                    sink.lock().unwrap().push(line);
                }
            });
        }
        let Ok(port) = port_rx.recv_timeout(WAIT) else {
            let _ = child.kill();
            bail!(
                "docker-registry did not start; its log:\n{}",
                log.lock().unwrap().join("\n")
            );
        };
        Ok(OciRegistry {
            child: Some(child),
            port,
            log,
            dir,
        })
    }

    /// `127.0.0.1:PORT`.
    pub fn address(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// `oci://127.0.0.1:PORT/REPO:TAG`.
    pub fn reference(&self, repo_tag: &str) -> String {
        format!("oci://{}/{repo_tag}", self.address())
    }

    /// The stored bytes of a blob (`sha256:HEX`), to tamper with.
    pub fn blob_path(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.dir
            .path()
            .join("storage/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Stop the registry (it stays down).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OciRegistry {
    fn drop(&mut self) {
        self.stop();
    }
}
