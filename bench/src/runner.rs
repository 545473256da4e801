//! The side-by-side runner: for every target, concurrency and run, a fresh
//! nats-server on an ephemeral loopback port with a generated config, the
//! service under test (none for the ceiling), a check that the job is done
//! right, then the load generator as a child process. CPU and memory of the
//! service and of nats-server are read from /proc over exactly the measured
//! window, which the load generator marks on its stderr. Runs are
//! interleaved (run 1 of every target, then run 2, ...) so a change in the
//! machine's load spreads over all targets instead of skewing one.

use crate::deploy::{self, Database, Keys, Kind, OidcSetup, Store, Target};
use crate::idp::{AUDIENCE, ISSUER, Idp, IdpServer};
use crate::load::{self, Credential, Report};
use crate::postgres::Postgres;
use crate::procfs::{self, MachineTicks};
use anyhow::{Context, Result, bail};
use serde::Serialize;
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

/// How long a server or service may take to become ready.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// How often memory is sampled during the measured window.
const RSS_EVERY: Duration = Duration::from_millis(100);

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub runs: usize,
    pub clients: Vec<usize>,
    pub duration: Duration,
    pub warmup: Duration,
    pub timeout: Duration,
    pub nats_server: PathBuf,
    pub portcullis: PathBuf,
    /// Compile cache shared by every service start (so startup is milliseconds).
    pub cache_dir: PathBuf,
    /// Load generator threads.
    pub threads: usize,
    /// Keep each measurement's directory (configs, logs) for inspection.
    pub keep: bool,
}

/// One target at one concurrency, one run.
#[derive(Debug, Clone, Serialize)]
pub struct Measurement {
    pub target: String,
    pub run: usize,
    pub clients: usize,
    pub check_ok: bool,
    pub error: Option<String>,
    pub report: Option<Report>,
    /// Peak resident memory of the service during the window (KiB).
    pub svc_rss_peak_kib: Option<u64>,
    pub server_rss_peak_kib: Option<u64>,
    pub svc_cpu_ms_per_login: Option<f64>,
    pub server_cpu_ms_per_login: Option<f64>,
    /// PostgreSQL (postmaster and backends), for the `sql` target.
    pub db_cpu_ms_per_login: Option<f64>,
    /// The identity provider (its thread in the runner), for `oidc-uri`.
    pub idp_cpu_ms_per_login: Option<f64>,
    /// JWKS requests the provider answered from its start to the end of
    /// the measured window (job check and warm-up included), and within
    /// the window alone: 1 and 0 when the host's cache is warm.
    pub idp_jwks_requests: Option<usize>,
    pub idp_jwks_requests_in_window: Option<usize>,
    pub loadgen_cpu_ms_per_login: Option<f64>,
    /// All CPUs, percent busy during the window, and the part of it that
    /// none of the measured processes used.
    pub machine_busy_pct: Option<f64>,
    pub other_busy_pct: Option<f64>,
}

impl Measurement {
    fn failed(target: &Target, run: usize, clients: usize, error: String) -> Measurement {
        Measurement {
            target: target.id.into(),
            run,
            clients,
            check_ok: false,
            error: Some(error),
            report: None,
            svc_rss_peak_kib: None,
            server_rss_peak_kib: None,
            svc_cpu_ms_per_login: None,
            server_cpu_ms_per_login: None,
            db_cpu_ms_per_login: None,
            idp_cpu_ms_per_login: None,
            idp_jwks_requests: None,
            idp_jwks_requests_in_window: None,
            loadgen_cpu_ms_per_login: None,
            machine_busy_pct: None,
            other_busy_pct: None,
        }
    }
}

/// A child process this runner started, ended when dropped.
struct Proc {
    child: Child,
}

impl Proc {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGTERM (the service drains), then SIGKILL if it has not exited
    /// within a few seconds.
    fn stop(&mut self) {
        if self.child.try_wait().ok().flatten().is_some() {
            return;
        }
        // SAFETY: signalling a child we started and have not reaped.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Start nats-server on an ephemeral 127.0.0.1 port; its port once it is ready.
fn start_nats(bin: &Path, dir: &Path, config: &str) -> Result<(Proc, u16)> {
    let conf = dir.join("nats-server.conf");
    std::fs::write(&conf, config)?;
    let mut child = Command::new(bin)
        .arg("-c")
        .arg(&conf)
        .args(["-a", "127.0.0.1", "-p", "-1"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot start {} (scripts/setup installs it)", bin.display()))?;
    let stderr = child.stderr.take().context("no stderr")?;
    let proc = Proc { child };
    let (tx, rx) = mpsc::channel();
    let log = Arc::new(Mutex::new(Vec::new()));
    let sink = log.clone();
    std::thread::spawn(move || {
        let mut port = None;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if let Some(rest) = line.split("Listening for client connections on ").nth(1) {
                port = rest
                    .rsplit(':')
                    .next()
                    .and_then(|p| p.trim().parse::<u16>().ok());
            }
            if line.contains("Server is ready") {
                let _ = tx.send(port);
            }
            let mut log = sink.lock().unwrap_or_else(|p| p.into_inner());
            if log.len() < 200 {
                log.push(line);
            }
        }
    });
    match rx.recv_timeout(READY_TIMEOUT) {
        Ok(Some(port)) => Ok((proc, port)),
        _ => bail!(
            "nats-server did not become ready: {}",
            log.lock().unwrap_or_else(|p| p.into_inner()).join("\n")
        ),
    }
}

/// Start `portcullis run` with its log in `dir`, and wait until it says it
/// serves. Per-login log lines go to that file, as in a deployment.
fn start_portcullis(bin: &Path, dir: &Path, config: &Path) -> Result<Proc> {
    let log_path = dir.join("portcullis.log");
    let log = std::fs::File::create(&log_path)?;
    let child = Command::new(bin)
        .arg("run")
        .arg("-c")
        .arg(config)
        .env_remove("PORTCULLIS_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .with_context(|| {
            format!(
                "cannot start {} (cargo build --release -p portcullis-cli)",
                bin.display()
            )
        })?;
    let mut proc = Proc { child };
    let deadline = Instant::now() + READY_TIMEOUT;
    loop {
        let text = std::fs::read_to_string(&log_path).unwrap_or_default();
        if text.contains("serving authorization requests") {
            return Ok(proc);
        }
        if let Some(status) = proc.child.try_wait()? {
            bail!("portcullis exited ({status}) before serving:\n{text}");
        }
        if Instant::now() > deadline {
            bail!("portcullis did not start serving within {READY_TIMEOUT:?}:\n{text}");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// How long one step of the job check may take.
const CHECK_WAIT: Duration = Duration::from_secs(10);

fn current_thread() -> Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// What the job check logs in with: passwords, or the oidc targets' ID
/// tokens.
struct Job {
    alice: Credential,
    bob: Credential,
    /// Logins that must be refused, and what each one is.
    refused: Vec<(Credential, &'static str)>,
    /// Reasons the service must have logged for those refusals, so each is
    /// refused for what it tests (a bad signature, not a token the plugin
    /// did not recognise).
    reasons: Vec<&'static str>,
}

impl Job {
    fn passwords() -> Job {
        let password = |u: &str, p: &str| Credential::Password(u.into(), p.into());
        Job {
            alice: password("alice", "alice"),
            bob: password("bob", "bob"),
            refused: vec![
                (password("alice", "wrong"), "alice with a wrong password"),
                (password("carol", "carol"), "an unknown user"),
            ],
            reasons: Vec::new(),
        }
    }
}

/// The job, checked before the load: alice and bob get in, bob's
/// permissions hold (his own message inside `bob.>` reaches him, a publish
/// outside it is a permissions violation), and the job's refusals (a wrong
/// password and an unknown user; for tokens, see [`Provider::job`]) are
/// refused, for the reasons the job names in the service's `log`.
fn check_job(url: &str, job: &Job, log: &Path) -> Result<()> {
    use futures::StreamExt as _;
    current_thread()?.block_on(async {
        let login = |credential: &Credential| {
            credential
                .connect_options()
                .connection_timeout(CHECK_WAIT)
                .connect(url)
        };
        let alice = login(&job.alice).await.context("alice cannot log in")?;
        alice.flush().await?;

        let (tx, mut events) = tokio::sync::mpsc::unbounded_channel();
        let bob = job
            .bob
            .connect_options()
            .connection_timeout(CHECK_WAIT)
            .event_callback(move |event| {
                let tx = tx.clone();
                async move {
                    let _ = tx.send(event.to_string());
                }
            })
            .connect(url)
            .await
            .context("bob cannot log in")?;
        let mut inside = bob.subscribe("bob.check").await?;
        bob.publish("bob.check", "inside".into()).await?;
        bob.flush().await?;
        match tokio::time::timeout(CHECK_WAIT, inside.next()).await {
            Ok(Some(m)) if &m.payload[..] == b"inside" => {}
            other => bail!("bob's publish to bob.check did not reach him: {other:?}"),
        }
        bob.publish("alice.check", "outside".into()).await?;
        bob.flush().await?;
        let deadline = tokio::time::Instant::now() + CHECK_WAIT;
        loop {
            match tokio::time::timeout_at(deadline, events.recv()).await {
                Ok(Some(e)) if e.to_lowercase().contains("permissions violation") => break,
                Ok(Some(_)) => continue,
                _ => bail!("bob published outside bob.> without a permissions violation"),
            }
        }

        for (credential, what) in &job.refused {
            match login(credential).await {
                Err(e) if e.kind() == async_nats::ConnectErrorKind::AuthorizationViolation => {}
                Err(e) => bail!("{what}: expected a refusal, got {e}"),
                Ok(_) => bail!("{what} got in"),
            }
        }
        // The refusal reached the client after the service logged it, but
        // the log is a file another process appends to: poll, bounded.
        let deadline = Instant::now() + CHECK_WAIT;
        for reason in &job.reasons {
            while !std::fs::read_to_string(log)
                .unwrap_or_default()
                .contains(reason)
            {
                if Instant::now() > deadline {
                    bail!("no refusal logged with the reason {reason:?}");
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        Ok(())
    })
}

/// How long the load's ID tokens stay valid: past any run (warm-up,
/// window and stragglers are bounded far below it).
const TOKEN_TTL_SECS: i64 = 3600;

/// The oidc targets' identity provider: its keys sign the clients' ID
/// tokens (RS256, as Keycloak signs by default) before the load starts;
/// for `jwks_uri` it also serves discovery and its JWKS over HTTP on
/// 127.0.0.1 (tests/idp.rs, `Cache-Control: max-age=300` and an ETag), on
/// a runtime of its own whose one thread's CPU is the provider's.
struct Provider {
    key: Idp,
    http: Option<HttpIdp>,
}

struct HttpIdp {
    server: IdpServer,
    /// The thread every task of `server` runs on.
    tid: u32,
    // Dropped after `server`, whose tasks it runs.
    _runtime: tokio::runtime::Runtime,
}

impl Provider {
    fn start(store: Store) -> Result<(Provider, OidcSetup)> {
        let key = Idp::new()?;
        if store != Store::JwksUri {
            let config =
                deploy::oidc_config(ISSUER, AUDIENCE, serde_json::json!({ "jwks": key.jwks() }))?;
            let setup = OidcSetup {
                config,
                origin: None,
            };
            return Ok((Provider { key, http: None }, setup));
        }
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("bench-idp")
            .enable_all()
            .build()?;
        let server = runtime
            .block_on(IdpServer::start(key.jwks()))
            .context("cannot start the identity provider")?;
        // A multi-thread runtime runs spawned tasks on its workers only,
        // never on the thread that blocks on it: with one worker, every
        // request the provider answers is charged to that thread.
        let tid = runtime.block_on(runtime.spawn(async { procfs::current_tid() }))?;
        let setup = OidcSetup {
            config: deploy::oidc_config(
                ISSUER,
                AUDIENCE,
                serde_json::json!({ "jwks_uri": server.jwks_uri() }),
            )?,
            origin: Some(server.http.origin()),
        };
        Ok((
            Provider {
                key,
                http: Some(HttpIdp {
                    server,
                    tid,
                    _runtime: runtime,
                }),
            },
            setup,
        ))
    }

    fn token(&self, sub: &str) -> Credential {
        Credential::Token(self.key.rs256(&Idp::claims(sub, TOKEN_TTL_SECS)))
    }

    /// The job with tokens: alice's and bob's admit them as their
    /// passwords do; refused are a token for alice signed by a key the
    /// provider never published (under the provider's own key id, so it
    /// is the signature that fails, not a lookup that would refetch the
    /// JWKS), alice's token past its `exp`, and a valid token for a
    /// subject no rule admits.
    fn job(&self) -> Result<Job> {
        let stranger = Idp::new()?;
        Ok(Job {
            alice: self.token("alice"),
            bob: self.token("bob"),
            refused: vec![
                (
                    Credential::Token(stranger.rs256(&Idp::claims("alice", TOKEN_TTL_SECS))),
                    "a token signed by an unknown key",
                ),
                (
                    Credential::Token(self.key.rs256(&Idp::claims("alice", -120))),
                    "an expired token",
                ),
                (self.token("carol"), "a token for an unknown subject"),
            ],
            reasons: vec![
                "token signature does not verify",
                "token expired at",
                "token claims match no rule",
            ],
        })
    }

    /// The tokens the load logs in with, one a line: alice's and bob's.
    fn write_tokens(&self, path: &Path) -> Result<()> {
        let mut text = String::new();
        for sub in ["alice", "bob"] {
            if let Credential::Token(token) = self.token(sub) {
                text.push_str(&token);
                text.push('\n');
            }
        }
        Ok(std::fs::write(path, text)?)
    }

    fn tid(&self) -> Option<u32> {
        self.http.as_ref().map(|h| h.tid)
    }

    fn jwks_requests(&self) -> Option<usize> {
        self.http.as_ref().map(|h| h.server.jwks_requests())
    }
}

/// A PostgreSQL for the `sql` target with alice and bob as rows of
/// [`deploy::SQL_SCHEMA`]'s table, and its password written in `dir`.
fn start_postgres(dir: &Path) -> Result<(Postgres, Database)> {
    let pg = Postgres::start().context("cannot start PostgreSQL (scripts/setup installs it)")?;
    current_thread()?.block_on(async {
        let client = pg.client().await?;
        client.batch_execute(deploy::SQL_SCHEMA).await?;
        for (name, entry) in deploy::users()? {
            let text = |field: &str| entry[field].as_str().map(str::to_owned);
            let permissions = entry.get("permissions").map(|p| p.to_string());
            client
                .execute(
                    "INSERT INTO nats_users VALUES ($1, $2, $3, $4::text::jsonb)",
                    &[&name, &text("pass"), &text("account"), &permissions],
                )
                .await?;
        }
        anyhow::Ok(())
    })?;
    let database = Database {
        url: pg.url(),
        password_file: dir.join("pg.pass"),
    };
    pg.write_password(&database.password_file)?;
    Ok((pg, database))
}

/// The `kv` target's bucket in the callout account of the server at
/// `url`, one key per user, its users.json entry as the value.
fn fill_bucket(url: &str) -> Result<()> {
    current_thread()?
        .block_on(async {
            let client = async_nats::ConnectOptions::with_user_and_password(
                deploy::AUTH_USER.into(),
                deploy::AUTH_PASS.into(),
            )
            .connection_timeout(CHECK_WAIT)
            .connect(url)
            .await?;
            let js = async_nats::jetstream::new(client);
            let bucket = js
                .create_key_value(async_nats::jetstream::kv::Config {
                    bucket: deploy::KV_BUCKET.into(),
                    history: 1,
                    ..Default::default()
                })
                .await?;
            for (name, entry) in deploy::users()? {
                bucket.put(&name, entry.to_string().into()).await?;
            }
            anyhow::Ok(())
        })
        .context("cannot create the KV bucket")
}

/// CPU of the measured processes and of the machine at one instant.
#[derive(Clone, Copy)]
struct Mark {
    svc: Option<Duration>,
    server: Option<Duration>,
    db: Option<Duration>,
    idp: Option<Duration>,
    jwks_requests: Option<usize>,
    loadgen: Option<Duration>,
    machine: MachineTicks,
    at: Instant,
}

/// What a mark reads, by process (and the provider's thread).
#[derive(Clone, Copy)]
struct Watched {
    svc: Option<u32>,
    server: u32,
    db: Option<u32>,
    idp: Option<u32>,
    loadgen: u32,
}

impl Mark {
    fn take(w: Watched, provider: Option<&Provider>) -> Mark {
        Mark {
            svc: w.svc.and_then(procfs::cpu_time),
            server: procfs::cpu_time(w.server),
            db: w.db.and_then(procfs::tree_cpu_time),
            idp: w.idp.and_then(procfs::thread_cpu_time),
            jwks_requests: provider.and_then(Provider::jwks_requests),
            loadgen: procfs::cpu_time(w.loadgen),
            machine: MachineTicks::now(),
            at: Instant::now(),
        }
    }
}

/// Run one measurement end to end.
pub fn measure(options: &RunOptions, target: &Target, run: usize, clients: usize) -> Measurement {
    let dir = match tempfile::Builder::new()
        .prefix(&format!(
            "portcullis-bench-{}-c{clients}-r{run}-",
            target.id
        ))
        .tempdir()
    {
        Ok(d) => d,
        Err(e) => return Measurement::failed(target, run, clients, e.to_string()),
    };
    let result = measure_in(options, target, run, clients, dir.path());
    if options.keep {
        let kept = dir.keep();
        eprintln!("[bench] kept {}", kept.display());
    }
    result.unwrap_or_else(|e| Measurement::failed(target, run, clients, format!("{e:#}")))
}

fn measure_in(
    options: &RunOptions,
    target: &Target,
    run: usize,
    clients: usize,
    dir: &Path,
) -> Result<Measurement> {
    let keys = Keys::new(matches!(target.kind, Kind::Portcullis { xkey: true, .. }));
    let store = target.kind.store();
    // Declared first, so stopped last (on drop), after the service.
    let postgres = match store {
        Some(Store::Sql) => Some(start_postgres(dir)?),
        _ => None,
    };
    let provider = match store {
        Some(store) if store.tokens() => Some(Provider::start(store)?),
        _ => None,
    };
    let (mut server, port) = start_nats(
        &options.nats_server,
        dir,
        &deploy::server_config(&target.kind, &keys, dir),
    )?;
    let url = format!("nats://127.0.0.1:{port}");
    if store == Some(Store::Kv) {
        fill_bucket(&url)?;
    }
    let service_config = deploy::write_service_files(
        dir,
        &target.kind,
        &keys,
        &url,
        &options.cache_dir,
        postgres.as_ref().map(|(_, db)| db),
        provider.as_ref().map(|(_, setup)| setup),
    )?;
    let provider = provider.map(|(p, _)| p);
    let mut service = match &service_config {
        Some(config) => Some(start_portcullis(&options.portcullis, dir, config)?),
        None => None,
    };
    let log = dir.join("portcullis.log");
    let check = match &provider {
        Some(p) => p
            .job()
            .and_then(|job| check_job(&url, &job, &log))
            .and_then(|()| {
                // The first login fetched the keys: from here on the host's
                // cache answers, which the window's count shows.
                match p.jwks_requests() {
                    Some(0) => bail!("the plugin never asked the identity provider for its keys"),
                    _ => Ok(()),
                }
            }),
        None => check_job(&url, &Job::passwords(), &log),
    };

    let exe = std::env::current_exe()?;
    let mut loadgen = Command::new(exe);
    loadgen.arg("load").args(["--url", &url]);
    match &provider {
        Some(p) => {
            let tokens = dir.join("tokens");
            p.write_tokens(&tokens)?;
            loadgen.arg("--tokens-file").arg(tokens);
        }
        None => {
            loadgen.arg("--users-file").arg(dir.join("users.json"));
        }
    }
    let mut loadgen = loadgen
        .args(["--clients", &clients.to_string()])
        .args(["--duration", &options.duration.as_secs_f64().to_string()])
        .args(["--warmup", &options.warmup.as_secs_f64().to_string()])
        .args(["--timeout-ms", &options.timeout.as_millis().to_string()])
        .args(["--threads", &options.threads.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("cannot start the load generator")?;
    let loadgen_pid = loadgen.id();
    let svc_pid = service.as_ref().map(Proc::pid);
    let server_pid = server.pid();
    let db_pid = postgres.as_ref().and_then(|(pg, _)| pg.pid());
    let watched = Watched {
        svc: svc_pid,
        server: server_pid,
        db: db_pid,
        idp: provider.as_ref().and_then(Provider::tid),
        loadgen: loadgen_pid,
    };

    // Marks are taken on this thread as the load generator announces the
    // window's edges; memory is sampled by another while the window is open.
    let (tx, rx) = mpsc::channel();
    let stderr = loadgen.stderr.take().context("no stderr")?;
    let tail = Arc::new(Mutex::new(Vec::<String>::new()));
    let tail_sink = tail.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains(load::MEASURING) || line.contains(load::MEASURED) {
                let _ = tx.send(line.contains(load::MEASURING));
            }
            let mut tail = tail_sink.lock().unwrap_or_else(|p| p.into_inner());
            tail.push(line);
            if tail.len() > 20 {
                tail.remove(0);
            }
        }
    });
    let measuring = Arc::new(AtomicBool::new(false));
    let peaks = Arc::new(Mutex::new((0u64, 0u64)));
    let sampler = {
        let measuring = measuring.clone();
        let peaks = peaks.clone();
        let done = Arc::new(AtomicBool::new(false));
        let stop = done.clone();
        let handle = std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if measuring.load(Ordering::Relaxed) {
                    let svc = svc_pid.and_then(procfs::rss_kib).unwrap_or(0);
                    let srv = procfs::rss_kib(server_pid).unwrap_or(0);
                    let mut p = peaks.lock().unwrap_or_else(|p| p.into_inner());
                    p.0 = p.0.max(svc);
                    p.1 = p.1.max(srv);
                }
                std::thread::sleep(RSS_EVERY);
            }
        });
        (handle, done)
    };
    let limit = options.warmup + options.duration + options.timeout + Duration::from_secs(30);
    let started = Instant::now();
    let mut start_mark = None;
    let mut end_mark = None;
    while end_mark.is_none() {
        let left = limit.saturating_sub(started.elapsed());
        match rx.recv_timeout(left) {
            Ok(true) => {
                start_mark = Some(Mark::take(watched, provider.as_ref()));
                measuring.store(true, Ordering::Relaxed);
            }
            Ok(false) => {
                end_mark = Some(Mark::take(watched, provider.as_ref()));
                measuring.store(false, Ordering::Relaxed);
            }
            Err(_) => break,
        }
    }
    // The load generator finishes its stragglers (each bounded by its
    // timeout) and prints the JSON line.
    let output = wait_with_timeout(&mut loadgen, options.timeout + Duration::from_secs(30));
    sampler.1.store(true, Ordering::Relaxed);
    let _ = sampler.0.join();
    let stdout = output?;
    let service_alive = service
        .as_mut()
        .map(|s| s.child.try_wait().ok().flatten().is_none())
        .unwrap_or(true);
    if let Some(s) = service.as_mut() {
        s.stop();
    }
    server.stop();

    let report: Report = match serde_json::from_str(stdout.trim()) {
        Ok(r) => r,
        Err(_) => bail!(
            "the load generator printed no report: {}",
            tail.lock().unwrap_or_else(|p| p.into_inner()).join("\n")
        ),
    };
    let mut m = Measurement::failed(target, run, clients, String::new());
    m.error = None;
    m.check_ok = check.is_ok();
    if let Err(e) = &check {
        m.error = Some(format!("job check failed: {e:#}"));
    }
    if !service_alive {
        m.error = Some("the service exited during the run".into());
    }
    let (svc_peak, server_peak) = *peaks.lock().unwrap_or_else(|p| p.into_inner());
    m.svc_rss_peak_kib = svc_pid.map(|_| svc_peak).filter(|k| *k > 0);
    m.server_rss_peak_kib = Some(server_peak).filter(|k| *k > 0);
    if let (Some(a), Some(b)) = (start_mark, end_mark) {
        let logins = report.ok.max(1) as f64;
        let per_login = |x: Option<Duration>, y: Option<Duration>| match (x, y) {
            (Some(x), Some(y)) => Some(round3(y.saturating_sub(x).as_secs_f64() * 1000.0 / logins)),
            _ => None,
        };
        m.svc_cpu_ms_per_login = per_login(a.svc, b.svc);
        m.server_cpu_ms_per_login = per_login(a.server, b.server);
        m.db_cpu_ms_per_login = per_login(a.db, b.db);
        m.idp_cpu_ms_per_login = per_login(a.idp, b.idp);
        m.idp_jwks_requests = b.jwks_requests;
        if let (Some(x), Some(y)) = (a.jwks_requests, b.jwks_requests) {
            m.idp_jwks_requests_in_window = Some(y - x);
            if y > x {
                m.error.get_or_insert_with(|| {
                    format!(
                        "the host's cache was not warm: {} JWKS requests during the measured window",
                        y - x
                    )
                });
            }
        }
        m.loadgen_cpu_ms_per_login = per_login(a.loadgen, b.loadgen);
        let busy = a.machine.busy_pct(&b.machine);
        m.machine_busy_pct = Some(round1(busy));
        let window = b.at.duration_since(a.at).as_secs_f64();
        let ours: f64 = [
            (a.svc, b.svc),
            (a.server, b.server),
            (a.db, b.db),
            (a.idp, b.idp),
            (a.loadgen, b.loadgen),
        ]
        .iter()
        .filter_map(|(x, y)| Some(y.as_ref()?.saturating_sub((*x)?).as_secs_f64()))
        .sum();
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
        if window > 0.0 {
            m.other_busy_pct = Some(round1((busy - 100.0 * ours / (window * cpus)).max(0.0)));
        }
    } else {
        m.error
            .get_or_insert_with(|| "the load generator did not mark its measured window".into());
    }
    m.report = Some(report);
    Ok(m)
}

/// Wait for the load generator's stdout and exit, bounded.
fn wait_with_timeout(child: &mut Child, limit: Duration) -> Result<String> {
    let mut stdout = child.stdout.take().context("no stdout")?;
    let reader = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut s);
        s
    });
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait()? {
            let out = reader.join().unwrap_or_default();
            if !status.success() {
                bail!("the load generator exited with {status}");
            }
            return Ok(out);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            bail!("the load generator did not finish within {limit:?} after its window");
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

/// Every measurement, interleaved: for each run, each concurrency, each target.
pub fn run_all(
    options: &RunOptions,
    targets: &[Target],
    mut each: impl FnMut(&Measurement),
) -> Vec<Measurement> {
    let mut out = Vec::new();
    let total = options.runs * options.clients.len() * targets.len();
    for run in 1..=options.runs {
        for &clients in &options.clients {
            for target in targets {
                eprint!(
                    "[bench] {}/{total} run {run} {:>3} clients {:<12} ",
                    out.len() + 1,
                    clients,
                    target.id
                );
                let m = measure(options, target, run, clients);
                match (&m.error, &m.report) {
                    (None, Some(r)) => eprintln!(
                        "{:>7.0} conn/s  p50 {:>6.2} ms  p99 {:>6.2} ms  failed {}  svc CPU {} ms/login{}{}  RSS {}  machine busy {}% (other {}%)",
                        r.conn_per_s,
                        r.connect_us.p50 as f64 / 1000.0,
                        r.connect_us.p99 as f64 / 1000.0,
                        r.failed,
                        m.svc_cpu_ms_per_login
                            .map_or("-".into(), |v| format!("{v:.3}")),
                        m.db_cpu_ms_per_login
                            .map_or(String::new(), |v| format!(" (PostgreSQL {v:.3})")),
                        match (m.idp_cpu_ms_per_login, m.idp_jwks_requests) {
                            (Some(cpu), Some(n)) => format!(" (IdP {cpu:.4}, {n} JWKS requests)"),
                            _ => String::new(),
                        },
                        m.svc_rss_peak_kib
                            .map_or("-".into(), |k| format!("{:.1} MiB", k as f64 / 1024.0)),
                        m.machine_busy_pct.unwrap_or(0.0),
                        m.other_busy_pct.unwrap_or(0.0),
                    ),
                    (Some(e), _) => eprintln!("error: {e}"),
                    (None, None) => eprintln!("no report"),
                }
                each(&m);
                out.push(m);
            }
        }
    }
    out
}

/// Median and range of one figure over the runs of a target at one concurrency.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    pub fn of(values: impl IntoIterator<Item = f64>) -> Option<Spread> {
        let mut v: Vec<f64> = values.into_iter().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return None;
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Some(Spread {
            median,
            min: v[0],
            max: v[n - 1],
        })
    }
}

/// The figures of one target at one concurrency over its good runs.
#[derive(Debug, Clone)]
pub struct Summary {
    pub target: String,
    pub clients: usize,
    pub runs: usize,
    pub errors: Vec<String>,
    pub failed_logins: u64,
    pub conn_per_s: Option<Spread>,
    pub p50_ms: Option<Spread>,
    pub p99_ms: Option<Spread>,
    pub svc_rss_mib: Option<Spread>,
    pub svc_cpu_ms: Option<Spread>,
    pub server_cpu_ms: Option<Spread>,
    pub other_busy_pct: Option<Spread>,
}

pub fn summarise(
    measurements: &[Measurement],
    targets: &[Target],
    clients: &[usize],
) -> Vec<Summary> {
    let mut out = Vec::new();
    for target in targets {
        for &c in clients {
            let all: Vec<&Measurement> = measurements
                .iter()
                .filter(|m| m.target == target.id && m.clients == c)
                .collect();
            let good: Vec<(&Measurement, &Report)> = all
                .iter()
                .filter(|m| m.error.is_none())
                .filter_map(|m| Some((*m, m.report.as_ref()?)))
                .collect();
            let spread = |f: &dyn Fn(&Measurement, &Report) -> Option<f64>| {
                Spread::of(good.iter().filter_map(|(m, r)| f(m, r)))
            };
            let mut errors: Vec<String> = all.iter().filter_map(|m| m.error.clone()).collect();
            errors.dedup();
            out.push(Summary {
                target: target.id.into(),
                clients: c,
                runs: good.len(),
                errors,
                failed_logins: good.iter().map(|(_, r)| r.failed).sum(),
                conn_per_s: spread(&|_, r| Some(r.conn_per_s)),
                p50_ms: spread(&|_, r| Some(r.connect_us.p50 as f64 / 1000.0)),
                p99_ms: spread(&|_, r| Some(r.connect_us.p99 as f64 / 1000.0)),
                svc_rss_mib: spread(&|m, _| m.svc_rss_peak_kib.map(|k| k as f64 / 1024.0)),
                svc_cpu_ms: spread(&|m, _| m.svc_cpu_ms_per_login),
                server_cpu_ms: spread(&|m, _| m.server_cpu_ms_per_login),
                other_busy_pct: spread(&|m, _| m.other_busy_pct),
            });
        }
    }
    out
}

/// Failures by kind over every run, for the report's notes.
pub fn failure_kinds(measurements: &[Measurement]) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    for m in measurements {
        if let Some(r) = &m.report {
            for (kind, n) in &r.failures {
                *out.entry(format!("{} c{}: {kind}", m.target, m.clients))
                    .or_default() += n;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spread_is_median_and_range() {
        let s = Spread::of([3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        let s = Spread::of([4.0, 1.0, 2.0, 3.0]).unwrap();
        assert_eq!(s.median, 2.5);
        assert!(Spread::of([]).is_none());
    }
}
