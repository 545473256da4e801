//! What one warm decision costs per authenticator (the plugin call alone:
//! request record in, decision out, in a pooled instance), so operators can
//! size `timeout_ms`: NKey signature check, RS256 and ES256 tokens (keys in
//! the configuration, and fetched from a local `jwks_uri` under an `http`
//! grant, warm), a client certificate, static-users with each password
//! hash kind, static-users from a KV bucket's warm copy against the same
//! user from the configuration, and sql-users reading its row from a real
//! PostgreSQL.
//!
//! Needs the plugins built (`scripts/build-plugins`).
//! `cargo bench -p portcullis-tests --bench authenticators [-- ITERATIONS]`

use base64::Engine as _;
use nkeys::KeyPair;
use portcullis_cli::hash_password::{self, Algorithm, HashOptions};
use portcullis_protocol::claims::{AuthorizationRequest, ClientTls};
use portcullis_runtime::bindings::{AuthRequest, Decision};
use portcullis_runtime::capabilities::http::{HttpGrant, HttpOptions};
use portcullis_runtime::{Capabilities, LogLimits, Plugin, PluginLimits, Runtime, RuntimeOptions};
use portcullis_tests::idp::{AUDIENCE, ISSUER, Idp, IdpServer};
use serde_json::json;
use std::time::{Duration, Instant};

const MEMORY: usize = 64 << 20;

async fn plugin(
    runtime: &Runtime,
    wasm: &str,
    config: serde_json::Value,
) -> anyhow::Result<Plugin> {
    granted(runtime, wasm, config, Capabilities::default()).await
}

async fn granted(
    runtime: &Runtime,
    wasm: &str,
    config: serde_json::Value,
    capabilities: Capabilities,
) -> anyhow::Result<Plugin> {
    let pre = runtime.prepare(&std::fs::read(portcullis_tests::plugin(wasm))?)?;
    let limits = PluginLimits {
        timeout: Duration::from_secs(5),
        configure_timeout: Duration::from_secs(5),
        memory_bytes: MEMORY,
        max_concurrency: 1,
        queue_timeout: Duration::from_secs(5),
        log: LogLimits::default(),
    };
    Ok(Plugin::granted(wasm, pre, limits, config.to_string(), None, capabilities).await?)
}

async fn measure(name: &str, iterations: usize, plugin: &Plugin, request: &AuthRequest) {
    match plugin.authenticate(request).await {
        Ok(Decision::Allow(_)) => {}
        other => panic!("{name}: expected an allow, got {other:?}"),
    }
    let mut samples = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let t = Instant::now();
        plugin.authenticate(request).await.expect("decision");
        samples.push(t.elapsed());
    }
    samples.sort();
    let pct = |p: f64| samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)];
    println!(
        "{name:<40} n={:<6} median {:>9.1?}  p99 {:>9.1?}",
        samples.len(),
        pct(0.5),
        pct(0.99)
    );
}

/// Medians of two plugins deciding alternately, so both see the same
/// machine (a shared machine's noise would otherwise decide the ratio).
async fn measure_pair(
    iterations: usize,
    a: (&Plugin, &AuthRequest),
    b: (&Plugin, &AuthRequest),
) -> (Duration, Duration) {
    let mut samples = (Vec::new(), Vec::new());
    for i in 0..=iterations {
        for (plugin, request, into) in [(a.0, a.1, &mut samples.0), (b.0, b.1, &mut samples.1)] {
            let t = Instant::now();
            match plugin.authenticate(request).await {
                Ok(Decision::Allow(_)) => {}
                other => panic!("expected an allow, got {other:?}"),
            }
            // The first round warms the instances (and fetches the keys).
            if i > 0 {
                into.push(t.elapsed());
            }
        }
    }
    let median = |mut v: Vec<Duration>| {
        v.sort();
        v[v.len() / 2]
    };
    (median(samples.0), median(samples.1))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let iterations: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(2_000);
    let cache = tempfile::tempdir()?;
    let runtime = Runtime::new(&RuntimeOptions {
        cache_dir: Some(cache.path().to_owned()),
        pool_instances: Some(16),
        max_memory_bytes: MEMORY,
        cache_max_age: None,
    })?;

    // NKey challenge.
    let sensor = KeyPair::new_user();
    let nkeys = plugin(
        &runtime,
        "nkeys_auth",
        json!({ "users": { sensor.public_key(): { "account": "APP1" } } }),
    )
    .await?;
    let mut r = AuthorizationRequest::default();
    r.client_info.nonce = "RyFQ0bGRcC1nMJI".into();
    r.connect_opts.nkey = sensor.public_key();
    r.connect_opts.sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(sensor.sign(r.client_info.nonce.as_bytes())?);
    measure(
        "nkeys: signature check",
        iterations,
        &nkeys,
        &portcullis::request::auth_request(&r),
    )
    .await;

    // Bearer tokens: keys in the configuration (oidc_auth), then the same
    // keys from a jwks_uri on 127.0.0.1 under an http grant
    // (oidc_http_auth), warm: after the first login the decision path
    // makes no request, and should cost the same.
    let idp = Idp::new()?;
    let server = IdpServer::start(idp.jwks()).await?;
    let rules = json!([ { "account": "APP1",
                          "permissions": { "pub": { "allow": ["user.{sub}.>"] } } } ]);
    let oidc = plugin(
        &runtime,
        "oidc_auth",
        json!({ "issuer": ISSUER, "audience": AUDIENCE, "jwks": idp.jwks(), "rules": rules }),
    )
    .await?;
    let grant = HttpGrant::new(&[server.http.origin()], &HttpOptions::default())?;
    let oidc_remote = granted(
        &runtime,
        "oidc_http_auth",
        json!({ "issuer": server.issuer(), "audience": AUDIENCE,
                "jwks_uri": server.jwks_uri(), "rules": rules }),
        Capabilities {
            http: Some(grant),
            ..Capabilities::default()
        },
    )
    .await?;
    let token = |issuer: &str, es: bool| {
        let claims = Idp::claims_of(issuer, "alice", 3600);
        let token = if es {
            idp.es256(&claims)
        } else {
            idp.rs256(&claims)
        };
        let mut r = AuthorizationRequest::default();
        r.connect_opts.auth_token = token;
        portcullis::request::auth_request(&r)
    };
    for (alg, es) in [
        ("RS256 token (2048-bit)", false),
        ("ES256 token (P-256)", true),
    ] {
        let (fixed, fetched) = measure_pair(
            iterations,
            (&oidc, &token(ISSUER, es)),
            (&oidc_remote, &token(&server.issuer(), es)),
        )
        .await;
        println!("{:<48} median {fixed:>9.1?}", format!("oidc: {alg}"));
        println!(
            "{:<48} median {fetched:>9.1?}  {:+.1}% (interleaved with the line above)",
            format!("oidc: {alg}, jwks_uri (warm)"),
            (fetched.as_secs_f64() / fixed.as_secs_f64() - 1.0) * 100.0
        );
    }
    println!(
        "{:<48} {} JWKS request(s) in all",
        "",
        server.jwks_requests()
    );

    // Client certificate.
    let deployment = portcullis_tests::Deployment::new(false)?.with_mutual_tls()?;
    let tls = deployment.tls.as_ref().expect("tls");
    let (cert, _) = tls.issue("dev1", |p| {
        p.distinguished_name
            .push(rcgen::DnType::OrganizationalUnitName, "devices");
    })?;
    let x509 = plugin(
        &runtime,
        "x509_auth",
        json!({ "rules": [ { "when": { "ou": "devices" }, "account": "APP1", "name": "{cn}" } ] }),
    )
    .await?;
    let r = AuthorizationRequest {
        client_tls: Some(ClientTls {
            verified_chains: vec![vec![
                std::fs::read_to_string(&cert)?,
                std::fs::read_to_string(&tls.ca_file)?,
            ]],
            ..Default::default()
        }),
        ..Default::default()
    };
    measure(
        "x509: verified chain, leaf parsed",
        iterations,
        &x509,
        &portcullis::request::auth_request(&r),
    )
    .await;

    // static-users with each hash kind; slow hashes get fewer rounds.
    let hashes = [
        ("static-users: plaintext", "pw".to_owned(), iterations),
        (
            "static-users: bcrypt cost 10 (default)",
            hash_password::hash(
                "pw",
                &HashOptions {
                    algorithm: Algorithm::Bcrypt,
                    ..Default::default()
                },
            )?,
            (iterations / 100).max(10),
        ),
        (
            "static-users: bcrypt cost 12",
            hash_password::hash(
                "pw",
                &HashOptions {
                    algorithm: Algorithm::Bcrypt,
                    bcrypt_cost: 12,
                    ..Default::default()
                },
            )?,
            (iterations / 400).max(5),
        ),
        (
            "static-users: argon2id 19 MiB t=2 (default)",
            hash_password::hash("pw", &HashOptions::default())?,
            (iterations / 100).max(10),
        ),
    ];
    for (name, hash, n) in hashes {
        let users = plugin(
            &runtime,
            "static_users",
            json!({ "u": { "pass": hash, "account": "APP1" } }),
        )
        .await?;
        let mut r = AuthorizationRequest::default();
        r.connect_opts.user = "u".into();
        r.connect_opts.pass = "pw".into();
        measure(name, n, &users, &portcullis::request::auth_request(&r)).await;
    }

    // static-users from a KV bucket with a warm copy (the host's watched
    // copy, filled here without NATS) against the same user from the
    // configuration: the cost of the host call and the per-login parse.
    let entry = json!({ "pass": "pw", "account": "APP1" });
    let mut r = AuthorizationRequest::default();
    r.connect_opts.user = "u".into();
    r.connect_opts.pass = "pw".into();
    let request = portcullis::request::auth_request(&r);
    let file = plugin(&runtime, "static_users", json!({ "u": entry })).await?;
    measure(
        "static-users: plaintext, from config",
        iterations,
        &file,
        &request,
    )
    .await;
    let kv = kv_plugin(&runtime, &entry).await?;
    measure(
        "static-users-kv: plaintext, warm copy",
        iterations,
        &kv,
        &request,
    )
    .await;
    sql_users(&cache, iterations).await
}

/// sql-users: one row read from a real PostgreSQL (the harness's, on
/// loopback) per decision, through the host's pool and prepared statement.
async fn sql_users(cache: &tempfile::TempDir, iterations: usize) -> anyhow::Result<()> {
    let pg = portcullis_tests::Postgres::start()?;
    pg.client()
        .await?
        .batch_execute(
            "CREATE TABLE nats_users (name text PRIMARY KEY, pass text NOT NULL, account text NOT NULL); \
             INSERT INTO nats_users VALUES ('u', 'pw', 'APP1');",
        )
        .await?;
    let dir = tempfile::tempdir()?;
    let pass_file = dir.path().join("pg.pass");
    pg.write_password(&pass_file)?;
    let database = portcullis::config::DatabaseConfig {
        url: pg.url(),
        password: Some(portcullis::config::Secret::inline(std::fs::read_to_string(
            &pass_file,
        )?)),
        pool_size: 4,
        tls: portcullis::config::DatabaseTls::Disable,
        ca_file: None,
        cert_file: None,
        key_file: None,
        max_rows: portcullis::config::DEFAULT_MAX_ROWS,
        max_field_bytes: portcullis::config::DEFAULT_MAX_FIELD_BYTES,
        queries: [(
            "user".to_owned(),
            "SELECT pass, account FROM nats_users WHERE name = $1".to_owned(),
        )]
        .into(),
    };
    let databases =
        portcullis::databases::Databases::new(&[("users".to_owned(), database)].into())?;
    let mut runtime = Runtime::new(&RuntimeOptions {
        cache_dir: Some(cache.path().to_owned()),
        pool_instances: Some(4),
        max_memory_bytes: MEMORY,
        cache_max_age: None,
    })?;
    runtime.serve_sql(std::sync::Arc::new(databases));
    let pre = runtime.prepare(&std::fs::read(portcullis_tests::plugin("sql_users"))?)?;
    let limits = PluginLimits {
        timeout: Duration::from_secs(5),
        configure_timeout: Duration::from_secs(5),
        memory_bytes: MEMORY,
        max_concurrency: 1,
        queue_timeout: Duration::from_secs(5),
        log: LogLimits::default(),
    };
    let plugin = Plugin::granted(
        "sql_users",
        pre,
        limits,
        json!({ "database": "users", "query": "user" }).to_string(),
        None,
        Capabilities {
            sql: runtime.sql_grant(&["users".to_owned()]),
            ..Capabilities::default()
        },
    )
    .await?;
    let mut r = AuthorizationRequest::default();
    r.connect_opts.user = "u".into();
    r.connect_opts.pass = "pw".into();
    measure(
        "sql-users: plaintext, one PostgreSQL row",
        iterations,
        &plugin,
        &portcullis::request::auth_request(&r),
    )
    .await;
    Ok(())
}

/// static_users_kv.wasm granted a bucket `users` whose copy holds `u`.
async fn kv_plugin(runtime: &Runtime, entry: &serde_json::Value) -> anyhow::Result<Plugin> {
    use portcullis_runtime::capabilities::kv::{KvCache, KvContents, KvGrant};
    let (copy, _closed) = KvCache::new("users");
    let mut contents = KvContents::default();
    contents.apply("u", Some(entry.to_string().as_bytes()))?;
    copy.install(contents, 1);
    let pre = runtime.prepare(&std::fs::read(portcullis_tests::plugin("static_users_kv"))?)?;
    let limits = PluginLimits {
        timeout: Duration::from_secs(5),
        configure_timeout: Duration::from_secs(5),
        memory_bytes: MEMORY,
        max_concurrency: 1,
        queue_timeout: Duration::from_secs(5),
        log: LogLimits::default(),
    };
    let capabilities = Capabilities {
        kv: Some(KvGrant::new([copy])),
        ..Capabilities::default()
    };
    let config = json!({ "kv_bucket": "users" }).to_string();
    Ok(Plugin::granted("static_users_kv", pre, limits, config, None, capabilities).await?)
}
