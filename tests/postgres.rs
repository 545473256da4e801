//! A real PostgreSQL per test: `initdb` into a temp dir, `pg_ctl` on an
//! ephemeral loopback port (and a socket directory inside the temp dir),
//! password authentication for one superuser. Stopped (immediately) on
//! drop.
//!
//! [`Postgres::start_tls`] serves TLS with a certificate from a test CA
//! and accepts TCP connections only over it (`hostssl`); the harness's
//! own client then goes through the Unix socket.
//!
//! PostgreSQL refuses to run as root; when the tests do (CI), every
//! server command runs as the `postgres` user (Debian's package creates
//! it), or `nobody`, through `runuser`, and the temp dir is handed to
//! that user.

use crate::{WAIT, free_port};
use anyhow::{Context, Result, bail};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The superuser the harness creates, and its password.
pub const PG_USER: &str = "portcullis";
const PG_PASSWORD: &str = "pg-test-password";

/// A PostgreSQL server in a temp dir.
pub struct Postgres {
    bin: PathBuf,
    /// Whom the server runs as, when the tests run as root.
    run_as: Option<&'static str>,
    data: PathBuf,
    pub port: u16,
    /// TCP only over TLS: the harness's client uses the socket instead.
    tls_only: bool,
    dir: tempfile::TempDir,
}

/// The directory of `initdb` and `pg_ctl`: `$PG_BIN`, the PATH, or the
/// newest /usr/lib/postgresql/*/bin (Debian keeps them off the PATH).
fn pg_bin() -> Result<PathBuf> {
    if let Some(bin) = std::env::var_os("PG_BIN") {
        return Ok(bin.into());
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            if dir.join("initdb").exists() && dir.join("pg_ctl").exists() {
                return Ok(dir);
            }
        }
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let version = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    match versions.pop() {
        Some((_, bin)) => Ok(bin),
        None => bail!("PostgreSQL not found (initdb): run scripts/setup, or set PG_BIN"),
    }
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() == 0 }
}

impl Postgres {
    /// initdb, start, wait until it accepts connections (pg_ctl -w,
    /// bounded by WAIT).
    pub fn start() -> Result<Postgres> {
        Self::start_with(None)
    }

    /// Like [`Postgres::start`], with `ssl = on` and the server
    /// certificate `cert` (and its `key`), refusing TCP connections without
    /// TLS (`hostssl` only in pg_hba.conf). Paths, not [`crate::Tls`]: the
    /// bench includes this file without the test CA.
    pub fn start_tls(cert: &Path, key: &Path) -> Result<Postgres> {
        Self::start_with(Some((cert, key, None)))
    }

    /// Like [`Postgres::start_tls`], logging TCP clients in by a client
    /// certificate that `client_ca` issued for the user's name (`cert`
    /// in pg_hba.conf), with no password.
    pub fn start_tls_client_certs(cert: &Path, key: &Path, client_ca: &Path) -> Result<Postgres> {
        Self::start_with(Some((cert, key, Some(client_ca))))
    }

    fn start_with(tls: Option<(&Path, &Path, Option<&Path>)>) -> Result<Postgres> {
        let bin = pg_bin()?;
        let dir = tempfile::tempdir()?;
        let run_as = if is_root() {
            let user = if Command::new("id")
                .arg("postgres")
                .output()?
                .status
                .success()
            {
                "postgres"
            } else {
                "nobody"
            };
            let status = Command::new("chown")
                .arg(format!("{user}:"))
                .arg(dir.path())
                .status()?;
            anyhow::ensure!(status.success(), "chown {user} {}", dir.path().display());
            Some(user)
        } else {
            None
        };
        let pwfile = dir.path().join("pwfile");
        std::fs::write(&pwfile, PG_PASSWORD)?;
        if let Some(user) = run_as {
            Command::new("chown")
                .arg(format!("{user}:"))
                .arg(&pwfile)
                .status()?;
        }
        let postgres = Postgres {
            bin,
            run_as,
            data: dir.path().join("data"),
            port: free_port()?,
            tls_only: tls.is_some(),
            dir,
        };
        let data = postgres.data.display().to_string();
        let pwfile = pwfile.display().to_string();
        postgres.run(
            "initdb",
            &[
                "-D",
                &data,
                "-U",
                PG_USER,
                "--auth=scram-sha-256",
                "--pwfile",
                &pwfile,
                "--no-sync",
                "-E",
                "UTF8",
            ],
        )?;
        if let Some((cert, key, client_ca)) = tls {
            postgres.serve_tls(cert, key, client_ca)?;
        }
        postgres.start_again()?;
        Ok(postgres)
    }

    /// Install the server certificate and key (the key owned by the
    /// server's user, mode 0600, or PostgreSQL refuses it) and allow TCP
    /// only over TLS: with a password, or with a certificate `client_ca`
    /// issued when one is given.
    fn serve_tls(
        &self,
        server_cert: &Path,
        server_key: &Path,
        client_ca: Option<&Path>,
    ) -> Result<()> {
        use std::os::unix::fs::PermissionsExt as _;
        let (cert, key, ca) = (
            self.data.join("server.crt"),
            self.data.join("server.key"),
            self.data.join("client-ca.crt"),
        );
        std::fs::copy(server_cert, &cert)?;
        std::fs::copy(server_key, &key)?;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))?;
        if let Some(client_ca) = client_ca {
            std::fs::copy(client_ca, &ca)?;
        }
        if let Some(user) = self.run_as {
            let status = Command::new("chown")
                .arg(format!("{user}:"))
                .arg(&cert)
                .arg(&key)
                .args(client_ca.map(|_| &ca))
                .status()?;
            anyhow::ensure!(status.success(), "chown {user} {}", key.display());
        }
        let conf = self.data.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf)?;
        text.push_str("\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
        let tcp = match client_ca {
            Some(_) => {
                text.push_str("ssl_ca_file = 'client-ca.crt'\n");
                "cert"
            }
            None => "scram-sha-256",
        };
        std::fs::write(&conf, text)?;
        std::fs::write(
            self.data.join("pg_hba.conf"),
            format!("local all all scram-sha-256\nhostssl all all 127.0.0.1/32 {tcp}\n"),
        )?;
        Ok(())
    }

    /// Run one of the server's commands as the server's user.
    fn run(&self, command: &str, args: &[&str]) -> Result<Output> {
        let program = self.bin.join(command);
        let mut cmd = match self.run_as {
            Some(user) => {
                let mut cmd = Command::new("runuser");
                cmd.args(["-u", user, "--"]).arg(&program);
                cmd
            }
            None => Command::new(&program),
        };
        // The server inherits the working directory: one its user can read.
        cmd.args(args).current_dir(self.dir.path());
        let output = cmd
            .output()
            .with_context(|| format!("cannot run {}", program.display()))?;
        if !output.status.success() {
            bail!(
                "{command} {args:?} failed: {}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(output)
    }

    /// Start the server (again, after [`Postgres::stop`]) on the same port
    /// and data, and wait until it accepts connections.
    pub fn start_again(&self) -> Result<()> {
        let options = format!(
            "-p {} -c listen_addresses=127.0.0.1 -k {} -c fsync=off -c max_connections=40",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("postgres.log").display().to_string();
        let data = self.data.display().to_string();
        let wait = WAIT.as_secs().to_string();
        self.run(
            "pg_ctl",
            &[
                "-D", &data, "-l", &log, "-o", &options, "-w", "-t", &wait, "start",
            ],
        )
        .map_err(|e| e.context(self.log_tail()))?;
        Ok(())
    }

    /// Stop the server at once (connections are cut, as when a database
    /// host dies), waiting until it is gone.
    pub fn stop(&self) -> Result<()> {
        let data = self.data.display().to_string();
        let wait = WAIT.as_secs().to_string();
        self.run(
            "pg_ctl",
            &["-D", &data, "-m", "immediate", "-w", "-t", &wait, "stop"],
        )?;
        Ok(())
    }

    /// The postmaster's process id (the first line of postmaster.pid),
    /// while the server runs: its backends are its children.
    pub fn pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.data.join("postmaster.pid"))
            .ok()?
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
    }

    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }

    /// A connection URL without the password (as portcullis.toml needs).
    pub fn url(&self) -> String {
        format!("postgres://{PG_USER}@127.0.0.1:{}/postgres", self.port)
    }

    /// Write the password to `path` (for `password = "file:..."`).
    pub fn write_password(&self, path: &Path) -> Result<()> {
        std::fs::write(path, PG_PASSWORD)?;
        Ok(())
    }

    /// A client for the test's own statements (creating tables, changing
    /// rows, looking at pg_stat_activity).
    pub async fn client(&self) -> Result<tokio_postgres::Client> {
        let mut config: tokio_postgres::Config = if self.tls_only {
            let mut config = tokio_postgres::Config::new();
            config
                .user(PG_USER)
                .dbname("postgres")
                .host_path(self.dir.path())
                .port(self.port);
            config
        } else {
            self.url().parse()?
        };
        config.password(PG_PASSWORD).connect_timeout(WAIT);
        let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
        tokio::spawn(connection);
        Ok(client)
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}
