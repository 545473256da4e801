//! The host as a separate process, for what only a process has: signals,
//! exit status, a log on stderr.

use crate::WAIT;
use crate::nats_server::{LogMark, wait_for_line};
use anyhow::{Context, Result, bail};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
    /// Fires once the host logs that it serves.
    serving: std::sync::mpsc::Receiver<()>,
}

impl HostProcess {
    /// Start `portcullis run -c CONFIG` and wait until it serves.
    pub fn start(config: &Path) -> Result<HostProcess> {
        HostProcess::start_with(config, &[], WAIT)
    }

    /// [`HostProcess::start`] with `--log-format json`.
    pub fn start_json(config: &Path) -> Result<HostProcess> {
        HostProcess::start_with(config, &["--log-format", "json"], WAIT)
    }

    /// [`HostProcess::start`] for a start that may take longer than
    /// `WAIT`: one that compiles a JavaScript or Python component.
    pub fn start_within(config: &Path, timeout: Duration) -> Result<HostProcess> {
        HostProcess::start_with(config, &[], timeout)
    }

    fn start_with(config: &Path, global_args: &[&str], timeout: Duration) -> Result<HostProcess> {
        let mut host = HostProcess::spawn_with(config, global_args)?;
        if host.serving.recv_timeout(timeout).is_err() {
            let _ = host.child.kill();
            bail!(
                "portcullis run did not become ready; its log:\n{}",
                host.log()
            );
        }
        Ok(host)
    }

    /// Start `portcullis run -c CONFIG` without waiting for anything: for
    /// a host that cannot serve yet (no NATS) or should fail.
    pub fn spawn(config: &Path) -> Result<HostProcess> {
        HostProcess::spawn_with(config, &[])
    }

    fn spawn_with(config: &Path, global_args: &[&str]) -> Result<HostProcess> {
        let mut child = Command::new(portcullis_bin())
            .args(global_args)
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
        Ok(HostProcess {
            child,
            log,
            serving: ready_rx,
        })
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
    pub async fn wait(&mut self) -> Result<std::process::ExitStatus> {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                bail!("portcullis did not exit within {WAIT:?}");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }

    /// Where the log ends now (see [`NatsServer::log_mark`](crate::NatsServer::log_mark)).
    pub fn log_mark(&self) -> LogMark {
        LogMark(self.log.lock().unwrap().len())
    }

    /// The first line since the start containing `needle`, waiting up to
    /// `WAIT`: for lines only one moment of the process writes.
    pub async fn wait_for_log(&self, needle: &str) -> Result<String> {
        wait_for_line(&self.log, LogMark(0), needle).await
    }

    /// The first line after `mark` containing `needle`, waiting up to `WAIT`.
    pub async fn wait_for_log_since(&self, mark: LogMark, needle: &str) -> Result<String> {
        wait_for_line(&self.log, mark, needle).await
    }
}

impl Drop for HostProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
