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

/// One canned answer of a [`FakeRegistry`].
#[derive(Clone)]
pub struct Canned {
    pub status: u16,
    pub content_type: &'static str,
    pub body: Vec<u8>,
}

/// A registry that says whatever a test wants, as a hostile or broken one
/// would: a hand-written HTTP/1.1 server on an ephemeral loopback port,
/// answering `GET /v2/` and the paths it was given, 404 to anything else.
/// It remembers every request head it read, so a test can see what a host
/// asked for and what it sent (credentials, say).
pub struct FakeRegistry {
    address: std::net::SocketAddr,
    requests: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

/// Largest request head read; a host's requests are a few hundred bytes.
const MAX_HEAD: usize = 64 * 1024;

impl FakeRegistry {
    /// Serve `routes` (path -> answer). With `basic_auth`, every request
    /// without an `Authorization` header is answered 401 with a Basic
    /// challenge, as a registry that wants a login does.
    pub async fn start(routes: Vec<(String, Canned)>, basic_auth: bool) -> Result<FakeRegistry> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let address = listener.local_addr()?;
        let requests = Arc::new(Mutex::new(Vec::new()));
        let routes = Arc::new(routes);
        let seen = requests.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (routes, seen) = (routes.clone(), seen.clone());
                tokio::spawn(async move {
                    let _ = serve_one(stream, &routes, basic_auth, &seen).await;
                });
            }
        });
        Ok(FakeRegistry {
            address,
            requests,
            task,
        })
    }

    /// `127.0.0.1:PORT`.
    pub fn address(&self) -> String {
        self.address.to_string()
    }

    /// `oci://127.0.0.1:PORT/REPO:TAG`.
    pub fn reference(&self, repo_tag: &str) -> String {
        format!("oci://{}/{repo_tag}", self.address())
    }

    /// Every request head read so far, in order.
    pub fn requests(&self) -> Vec<String> {
        self.requests.lock().unwrap().clone()
    }
}

impl Drop for FakeRegistry {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Read one request head, answer it, close the connection.
async fn serve_one(
    mut stream: tokio::net::TcpStream,
    routes: &[(String, Canned)],
    basic_auth: bool,
    seen: &Mutex<Vec<String>>,
) -> std::io::Result<()> {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tokio::time::timeout(WAIT, stream.read(&mut buf))
            .await
            .map_err(std::io::Error::other)??;
        if n == 0 || head.len() > MAX_HEAD {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    seen.lock().unwrap().push(head.clone());
    let mut request_line = head.lines().next().unwrap_or_default().split(' ');
    let method = request_line.next().unwrap_or_default();
    let target = request_line.next().unwrap_or_default();
    let path = target.split('?').next().unwrap_or_default();
    let authorized = head
        .lines()
        .any(|l| l.to_ascii_lowercase().starts_with("authorization:"));
    let not_found = Canned {
        status: 404,
        content_type: "application/json",
        body: br#"{"errors":[{"code":"NOT_FOUND","message":"not found"}]}"#.to_vec(),
    };
    let mut extra = String::new();
    let answer = if basic_auth && !authorized {
        extra.push_str("WWW-Authenticate: Basic realm=\"fake-registry\"\r\n");
        Canned {
            status: 401,
            content_type: "application/json",
            body: br#"{"errors":[{"code":"UNAUTHORIZED","message":"login"}]}"#.to_vec(),
        }
    } else if path == "/v2/" {
        Canned {
            status: 200,
            content_type: "application/json",
            body: b"{}".to_vec(),
        }
    } else {
        routes
            .iter()
            .find(|(p, _)| p == path)
            .map_or(not_found, |(_, c)| c.clone())
    };
    let reason = match answer.status {
        200 => "OK",
        401 => "Unauthorized",
        _ => "Not Found",
    };
    let mut response = format!(
        "HTTP/1.1 {} {reason}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n{extra}\r\n",
        answer.status,
        answer.content_type,
        answer.body.len()
    )
    .into_bytes();
    if method != "HEAD" {
        response.extend_from_slice(&answer.body);
    }
    stream.write_all(&response).await?;
    stream.shutdown().await
}
