//! Granted outbound HTTP through a real nats-server, with a real HTTP
//! server on loopback: the http-probe plugin GETs a URL per login (the
//! user name picks it) and is admitted when the answer is `allow`. Each
//! test is an attack on the grant, or a bound the host promises: a URL
//! outside the grant, a server that never answers, a 100 MB answer, a
//! redirect out of the grant, a name that resolves to loopback, a slow
//! upstream flooding one plugin, and the cache that keeps a JWKS-style
//! lookup from being fetched per login.

use portcullis::metrics::{DecisionLabels, FailureLabels};
use portcullis_tests::{Deployment, Stack, Tls, WAIT, admitted, expect_refused, plugin};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A bare HTTP/1.1 server on 127.0.0.1 that answers by path (see
/// [`answer`]) and counts what it served.
struct Upstream {
    port: u16,
    /// Requests per path.
    hits: Arc<Mutex<HashMap<String, usize>>>,
    /// Body bytes the server managed to write for /huge.
    huge_written: Arc<AtomicU64>,
    /// Requests in progress now, and the most seen at once.
    in_flight: Arc<AtomicUsize>,
    max_in_flight: Arc<AtomicUsize>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Upstream {
    /// `elsewhere`: the port /redirect-out points to.
    async fn start(elsewhere: u16) -> anyhow::Result<Upstream> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let hits = Arc::new(Mutex::new(HashMap::new()));
        let huge_written = Arc::new(AtomicU64::new(0));
        let in_flight = Arc::new(AtomicUsize::new(0));
        let max_in_flight = Arc::new(AtomicUsize::new(0));
        let shared = (
            hits.clone(),
            huge_written.clone(),
            in_flight.clone(),
            max_in_flight.clone(),
        );
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (hits, huge, now, max) = shared.clone();
                tokio::spawn(async move {
                    let current = now.fetch_add(1, Ordering::SeqCst) + 1;
                    max.fetch_max(current, Ordering::SeqCst);
                    let _ = serve(stream, &hits, &huge, elsewhere).await;
                    now.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        Ok(Upstream {
            port,
            hits,
            huge_written,
            in_flight,
            max_in_flight,
            task,
        })
    }

    fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }
}

/// One request per connection (the host opens one per request).
async fn serve(
    mut stream: TcpStream,
    hits: &Mutex<HashMap<String, usize>>,
    huge: &AtomicU64,
    elsewhere: u16,
) -> std::io::Result<()> {
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 || head.len() > 64 * 1024 {
            return Ok(());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let head = String::from_utf8_lossy(&head).into_owned();
    let path = head.split(' ').nth(1).unwrap_or("/").to_owned();
    let if_none_match = head
        .lines()
        .find_map(|l| l.strip_prefix("if-none-match: "))
        .map(str::to_owned);
    let key = match (&*path, &if_none_match) {
        ("/etag", Some(_)) => "/etag 304".to_owned(),
        _ => path.clone(),
    };
    *hits.lock().unwrap().entry(key).or_default() += 1;
    let ok = |body: &str, extra: &str| {
        format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n{extra}\r\n{body}",
            body.len()
        )
    };
    let reply = match &*path {
        "/allow" | "/ok/allow" => ok("allow", ""),
        "/deny" => ok("no", ""),
        "/cached" => ok("allow", "cache-control: max-age=60\r\n"),
        "/etag" if if_none_match.as_deref() == Some("\"v1\"") => {
            "HTTP/1.1 304 Not Modified\r\netag: \"v1\"\r\ncache-control: no-cache\r\nconnection: close\r\n\r\n".to_owned()
        }
        "/etag" => ok("allow", "etag: \"v1\"\r\ncache-control: no-cache\r\n"),
        "/hang" => {
            // Hold the connection open, never answering, until the
            // client gives up.
            let _ = stream.read(&mut buf).await;
            return Ok(());
        }
        "/huge-declared" => {
            "HTTP/1.1 200 OK\r\ncontent-length: 104857600\r\nconnection: close\r\n\r\n".to_owned()
        }
        "/huge" => {
            // No length: the body is delimited by closing, so only the
            // host's running count can stop it.
            stream
                .write_all(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n")
                .await?;
            let chunk = vec![b'a'; 64 * 1024];
            for _ in 0..(100 << 20) / chunk.len() {
                stream.write_all(&chunk).await?;
                huge.fetch_add(chunk.len() as u64, Ordering::SeqCst);
            }
            return Ok(());
        }
        "/redirect-out" => format!(
            "HTTP/1.1 302 Found\r\nlocation: http://127.0.0.1:{elsewhere}/allow\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
        ),
        "/redirect-in" => "HTTP/1.1 302 Found\r\nlocation: /allow\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_owned(),
        p if p.starts_with("/slow") => {
            // Slow, but gone as soon as the host gives up on it, so the
            // in-flight count is the host's.
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(1500)) => ok("allow", ""),
                _ = stream.read(&mut buf) => return Ok(()),
            }
        }
        _ => "HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_owned(),
    };
    stream.write_all(reply.as_bytes()).await?;
    stream.shutdown().await
}

/// The http-probe entry: `base` for relative user names, the grant list
/// and extra keys for the grants table, plus static-users for alice.
fn probe(base: &str, grants: &[String], extra: &str, timeout_ms: u64) -> String {
    let grants = grants
        .iter()
        .map(|g| format!("{g:?}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        r#"
[limits]
failed_logins_per_user = 0

[[plugins]]
name = "probe"
wasm = "{wasm}"
accounts = ["APP1"]
timeout_ms = {timeout_ms}
config = {{ base = "{base}", account = "APP1" }}
grants = {{ http = [{grants}]{extra} }}
match = {{ user = ["http*", "allow", "deny", "cached", "etag", "hang", "huge*", "redirect*", "ok/*", "slow*"] }}

[[plugins]]
name = "users"
wasm = "{users}"
accounts = ["APP1", "APP2"]
max_expiry = "1h"
config_file = "users.json"
"#,
        wasm = plugin("http_probe").display(),
        users = plugin("static_users").display(),
    )
}

async fn stack(plugins: &str) -> anyhow::Result<Stack> {
    Stack::with_plugins(Deployment::new(false)?, plugins).await
}

#[tokio::test]
async fn admits_through_a_granted_origin_and_refuses_outside_it_fast() -> anyhow::Result<()> {
    let outside = Upstream::start(0).await?;
    let upstream = Upstream::start(outside.port).await?;
    let grants = [upstream.url("")];
    let stack = stack(&probe(&upstream.url(""), &grants, "", 2000)).await?;
    assert!(admitted(stack.login("allow", "x")).await?);
    assert!(!admitted(stack.login("deny", "x")).await?);
    // Another port on the same address: not the granted origin.
    let started = Instant::now();
    expect_refused(stack.login(&outside.url("/allow"), "x")).await?;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "a refusal is immediate"
    );
    assert_eq!(
        outside.hits("/allow"),
        0,
        "nothing outside the grant is contacted"
    );
    // Scheme mismatch and a dot segment out of a path prefix.
    expect_refused(stack.login(&format!("https://127.0.0.1:{}/allow", upstream.port), "x")).await?;
    Ok(())
}

#[tokio::test]
async fn a_path_prefix_grant_refuses_dot_segments_out_of_it() -> anyhow::Result<()> {
    let upstream = Upstream::start(0).await?;
    let grants = [upstream.url("/ok/")];
    let stack = stack(&probe(&upstream.url(""), &grants, "", 2000)).await?;
    assert!(admitted(stack.login("ok/allow", "x")).await?);
    expect_refused(stack.login("allow", "x")).await?;
    expect_refused(stack.login(&upstream.url("/ok/../allow"), "x")).await?;
    expect_refused(stack.login(&upstream.url("/ok/%2e%2e/allow"), "x")).await?;
    assert_eq!(upstream.hits("/allow"), 0);
    Ok(())
}

#[tokio::test]
async fn a_server_that_never_answers_is_cut_at_the_deadline() -> anyhow::Result<()> {
    let upstream = Upstream::start(0).await?;
    let stack = stack(&probe(&upstream.url(""), &[upstream.url("")], "", 500)).await?;
    let started = Instant::now();
    expect_refused(stack.login("hang", "x")).await?;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(400),
        "refused before the deadline: {took:?}"
    );
    assert!(upstream.hits("/hang") == 1);
    // The request's share of the deadline ended first, so the plugin saw
    // the timeout and denied with it as its reason: the login is not
    // counted as a plugin that ran out of time.
    let metrics = &stack.host.metrics;
    let timeouts = metrics
        .plugin_failures
        .get_or_create(&FailureLabels {
            plugin: "probe".into(),
            kind: "timeout",
        })
        .get();
    assert_eq!(timeouts, 0, "the plugin was cut by the call timer");
    let denied = metrics
        .decisions
        .get_or_create(&DecisionLabels {
            plugin: "probe".into(),
            outcome: "deny",
        })
        .get();
    assert_eq!(denied, 1, "the plugin denied the login itself");
    // The host is alive and the plugin serves the next login.
    assert!(admitted(stack.login("allow", "x")).await?);
    // The connection to the silent server was dropped.
    let closed = Instant::now();
    while upstream.in_flight.load(Ordering::SeqCst) > 0 {
        assert!(
            closed.elapsed() < WAIT,
            "the hanging connection stayed open"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

#[tokio::test]
async fn a_100_mb_answer_is_capped_while_it_streams() -> anyhow::Result<()> {
    let upstream = Upstream::start(0).await?;
    let stack = stack(&probe(&upstream.url(""), &[upstream.url("")], "", 5000)).await?;
    expect_refused(stack.login("huge", "x")).await?;
    expect_refused(stack.login("huge-declared", "x")).await?;
    // The server stops when the host closes; wait for it to notice.
    let started = Instant::now();
    while upstream.in_flight.load(Ordering::SeqCst) > 0 {
        assert!(
            started.elapsed() < WAIT,
            "the 100 MB writer was never cut off"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let written = upstream.huge_written.load(Ordering::SeqCst);
    eprintln!("the server wrote {written} bytes of 100 MiB");
    // 1 MiB cap; the rest is socket buffers on both sides and hyper's
    // read buffer, a few MiB on loopback, far from 100.
    assert!(
        written < 24 << 20,
        "the server wrote {written} bytes before the host stopped reading"
    );
    assert!(admitted(stack.login("allow", "x")).await?);
    Ok(())
}

#[tokio::test]
async fn a_redirect_out_of_the_grant_is_refused() -> anyhow::Result<()> {
    let outside = Upstream::start(0).await?;
    let upstream = Upstream::start(outside.port).await?;
    let stack = stack(&probe(&upstream.url(""), &[upstream.url("")], "", 2000)).await?;
    // A redirect within the grant is followed (a second, checked request).
    assert!(admitted(stack.login("redirect-in", "x")).await?);
    assert_eq!(upstream.hits("/allow"), 1);
    expect_refused(stack.login("redirect-out", "x")).await?;
    assert_eq!(upstream.hits("/redirect-out"), 1);
    assert_eq!(
        outside.hits("/allow"),
        0,
        "the redirect target was never contacted"
    );
    Ok(())
}

#[tokio::test]
async fn a_name_resolving_to_loopback_needs_a_grant_by_address() -> anyhow::Result<()> {
    let upstream = Upstream::start(0).await?;
    let by_name = format!("http://localhost:{}", upstream.port);
    let grants = [by_name.clone(), upstream.url("")];
    let stack = stack(&probe(&upstream.url(""), &grants, "", 2000)).await?;
    // `localhost` is granted by name, but resolves to 127.0.0.1 (or ::1),
    // which only a grant naming the address allows: refused before any
    // connection, as a public name re-pointed at an inside address would be.
    expect_refused(stack.login(&format!("{by_name}/allow"), "x")).await?;
    assert_eq!(upstream.hits("/allow"), 0);
    assert!(admitted(stack.login(&upstream.url("/allow"), "x")).await?);
    assert_eq!(upstream.hits("/allow"), 1);
    Ok(())
}

#[tokio::test]
async fn a_slow_upstream_holds_its_own_plugin_and_no_other() -> anyhow::Result<()> {
    let upstream = Upstream::start(0).await?;
    let extra = ", http_max_concurrent = 4";
    let stack = stack(&probe(&upstream.url(""), &[upstream.url("")], extra, 5000)).await?;
    let url = stack.server.url();
    let slow: Vec<_> = (0..50)
        .map(|i| {
            let url = url.clone();
            tokio::spawn(async move {
                portcullis_tests::login(&url, &format!("slow{i}"), "x")
                    .await
                    .is_ok()
            })
        })
        .collect();
    // While the 50 wait on the slow server, alice is served by another
    // plugin at its usual pace.
    tokio::time::sleep(Duration::from_millis(200)).await;
    for _ in 0..5 {
        let started = Instant::now();
        assert!(admitted(stack.login("alice", "alice")).await?);
        let took = started.elapsed();
        assert!(
            took < Duration::from_millis(1000),
            "alice waited {took:?} behind the slow plugin"
        );
    }
    for login in slow {
        let _ = tokio::time::timeout(WAIT, login).await?;
    }
    let max = upstream.max_in_flight.load(Ordering::SeqCst);
    assert!(
        (1..=4).contains(&max),
        "{max} requests at once, the grant allows 4"
    );
    assert!(admitted(stack.login("allow", "x")).await?);
    Ok(())
}

#[tokio::test]
async fn max_age_serves_repeated_lookups_from_the_cache() -> anyhow::Result<()> {
    let upstream = Upstream::start(0).await?;
    let stack = stack(&probe(&upstream.url(""), &[upstream.url("")], "", 2000)).await?;
    for _ in 0..5 {
        assert!(admitted(stack.login("cached", "x")).await?);
    }
    assert_eq!(
        upstream.hits("/cached"),
        1,
        "fetched once while max-age holds"
    );
    // no-cache with an ETag: every use revalidates, a 304 serves the body.
    for _ in 0..3 {
        assert!(admitted(stack.login("etag", "x")).await?);
    }
    assert_eq!(upstream.hits("/etag"), 1, "one full fetch");
    assert_eq!(
        upstream.hits("/etag 304"),
        2,
        "then revalidations answered 304"
    );
    Ok(())
}

#[tokio::test]
async fn a_component_importing_http_without_a_grant_is_refused_at_load() -> anyhow::Result<()> {
    let deployment = Deployment::new(false)?;
    let plugins = format!(
        r#"
[[plugins]]
name = "probe"
wasm = "{}"
accounts = ["APP1"]
config = {{ base = "http://127.0.0.1:1", account = "APP1" }}
"#,
        plugin("http_probe").display()
    );
    let err = match Stack::with_plugins(deployment, &plugins).await {
        Ok(_) => anyhow::bail!("a plugin importing wasi:http loaded without a grant"),
        Err(e) => format!("{e:#}"),
    };
    assert!(err.contains("wasi:http/"), "{err}");
    assert!(err.contains("grants = { http = [...] }"), "{err}");
    Ok(())
}

/// An HTTPS server on 127.0.0.1 with a certificate from a test CA (SAN
/// 127.0.0.1) that answers `allow` to every request; its port, and the
/// number of requests that completed a TLS handshake and were answered.
async fn https_upstream(
    tls: &Tls,
) -> anyhow::Result<(u16, Arc<AtomicUsize>, tokio::task::JoinHandle<()>)> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(&tls.server_cert)?.collect::<Result<Vec<_>, _>>()?;
    let key = PrivateKeyDer::from_pem_file(&tls.server_key)?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_no_client_auth()
    .with_single_cert(certs, key)?;
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let answered = Arc::new(AtomicUsize::new(0));
    let counted = answered.clone();
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (acceptor, counted) = (acceptor.clone(), counted.clone());
            tokio::spawn(async move {
                // A client that refuses the certificate ends the handshake
                // here: nothing is read, nothing counted.
                let Ok(mut stream) = acceptor.accept(stream).await else {
                    return;
                };
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 64 * 1024 {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let reply =
                    "HTTP/1.1 200 OK\r\ncontent-length: 5\r\nconnection: close\r\n\r\nallow";
                if stream.write_all(reply.as_bytes()).await.is_ok() {
                    counted.fetch_add(1, Ordering::SeqCst);
                }
                let _ = stream.shutdown().await;
            });
        }
    });
    Ok((port, answered, task))
}

/// HTTPS is verified: a server whose certificate chains to the CA named
/// by `http_ca_file` is reached, and the same server without that CA (the
/// system roots only) is refused at the handshake, before any request.
#[tokio::test]
async fn https_is_verified_against_the_system_roots_plus_http_ca_file() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let tls = Tls::new(dir.path())?;
    let (port, answered, task) = https_upstream(&tls).await?;
    let origin = format!("https://127.0.0.1:{port}");
    let ca = format!(", http_ca_file = {:?}", tls.ca_file.display().to_string());

    let trusted = stack(&probe(&origin, std::slice::from_ref(&origin), &ca, 2000)).await?;
    assert!(admitted(trusted.login("allow", "x")).await?);
    assert_eq!(answered.load(Ordering::SeqCst), 1);

    let untrusted = stack(&probe(&origin, std::slice::from_ref(&origin), "", 2000)).await?;
    expect_refused(untrusted.login("allow", "x")).await?;
    assert_eq!(
        answered.load(Ordering::SeqCst),
        1,
        "no request was sent to a server whose certificate did not verify"
    );
    task.abort();
    Ok(())
}

/// Run the `portcullis` binary: (success, stdout and stderr).
async fn portcullis(args: &[&str]) -> anyhow::Result<(bool, String)> {
    let out = tokio::time::timeout(
        WAIT,
        tokio::process::Command::new(portcullis_tests::portcullis_bin())
            .args(args)
            .output(),
    )
    .await??;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((out.status.success(), text))
}

#[tokio::test]
async fn inspect_names_the_grant_and_check_warns_of_an_unused_one() -> anyhow::Result<()> {
    let probe_wasm = plugin("http_probe").display().to_string();
    let (ok, out) = portcullis(&["plugin", "inspect", &probe_wasm]).await?;
    assert!(ok, "{out}");
    assert!(
        out.lines()
            .any(|l| l.contains("wasi:http/outgoing-handler@")
                && l.contains("needs grants = { http = [...] }")),
        "{out}"
    );

    // static-users never imports wasi:http: its grant is reported, the
    // probe's (which it uses) is not.
    let deployment = Deployment::new(false)?;
    let plugins = format!(
        r#"
[[plugins]]
name = "probe"
wasm = "{probe_wasm}"
accounts = ["APP1"]
config = {{ base = "http://127.0.0.1:1", account = "APP1" }}
grants = {{ http = ["http://127.0.0.1:1"] }}

[[plugins]]
name = "users"
wasm = "{users}"
accounts = ["APP1", "APP2"]
config_file = "users.json"
grants = {{ http = ["https://id.example.com"] }}
"#,
        users = plugin("static_users").display()
    );
    let path = deployment.dir.path().join("portcullis.toml");
    std::fs::write(
        &path,
        deployment.host_config("nats://127.0.0.1:1", &plugins),
    )?;
    let (ok, out) = portcullis(&["check", "-c", &path.display().to_string()]).await?;
    assert!(ok, "an unused grant is a warning, not a failure: {out}");
    assert!(
        out.contains("warn  plugin users: grants.http is set but the component never imports it"),
        "{out}"
    );
    assert!(!out.contains("warn  plugin probe"), "{out}");
    Ok(())
}

#[tokio::test]
async fn a_bad_grant_entry_is_refused_at_config_load() -> anyhow::Result<()> {
    let deployment = Deployment::new(false)?;
    for (entry, needle) in [
        (
            "https://user:secret@id.example.com",
            "no user name or password",
        ),
        ("https://id.example.com/?q=1", "no query or fragment"),
        ("ftp://id.example.com", "start with https://"),
    ] {
        let plugins = format!(
            r#"
[[plugins]]
name = "probe"
wasm = "{}"
accounts = ["APP1"]
grants = {{ http = ["{entry}"] }}
"#,
            plugin("http_probe").display()
        );
        let text = deployment.host_config("nats://127.0.0.1:1", &plugins);
        let err = match deployment.write_host_config(&text) {
            Ok(_) => anyhow::bail!("{entry} was accepted"),
            Err(e) => format!("{e:#}"),
        };
        assert!(
            err.contains("grants.http") && err.contains(needle),
            "{entry}: {err}"
        );
        assert!(
            !err.contains("secret"),
            "the password in a bad entry is not echoed: {err}"
        );
    }
    Ok(())
}
