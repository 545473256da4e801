//! What one warm decision costs per authenticator (the plugin call alone:
//! request record in, decision out, in a pooled instance), so operators can
//! size `timeout_ms`: NKey signature check, RS256 and ES256 tokens, a client
//! certificate, static-users with each password hash kind, and
//! static-users from a KV bucket's warm copy against the same user from
//! the configuration.
//!
//! Needs the plugins built (`scripts/build-plugins`).
//! `cargo bench -p portcullis-tests --bench authenticators [-- ITERATIONS]`

use base64::Engine as _;
use nkeys::KeyPair;
use portcullis_cli::hash_password::{self, Algorithm, HashOptions};
use portcullis_protocol::claims::{AuthorizationRequest, ClientTls};
use portcullis_runtime::bindings::{AuthRequest, Decision};
use portcullis_runtime::{LogLimits, Plugin, PluginLimits, Runtime, RuntimeOptions};
use portcullis_tests::idp::{AUDIENCE, ISSUER, Idp};
use serde_json::json;
use std::time::{Duration, Instant};

const MEMORY: usize = 64 << 20;

async fn plugin(
    runtime: &Runtime,
    wasm: &str,
    config: serde_json::Value,
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
    Ok(Plugin::new(wasm, pre, limits, config.to_string(), None).await?)
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

    // Bearer tokens.
    let idp = Idp::new()?;
    let oidc = plugin(
        &runtime,
        "oidc_auth",
        json!({ "issuer": ISSUER, "audience": AUDIENCE, "jwks": idp.jwks(),
                "rules": [ { "account": "APP1",
                             "permissions": { "pub": { "allow": ["user.{sub}.>"] } } } ] }),
    )
    .await?;
    for (name, token) in [
        (
            "oidc: RS256 token (2048-bit)",
            idp.rs256(&Idp::claims("alice", 3600)),
        ),
        (
            "oidc: ES256 token (P-256)",
            idp.es256(&Idp::claims("alice", 3600)),
        ),
    ] {
        let mut r = AuthorizationRequest::default();
        r.connect_opts.auth_token = token;
        measure(
            name,
            iterations,
            &oidc,
            &portcullis::request::auth_request(&r),
        )
        .await;
    }

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
    let capabilities = runtime.capabilities(&[], None, Some(KvGrant::new([copy])));
    let config = json!({ "kv_bucket": "users" }).to_string();
    Ok(Plugin::granted("static_users_kv", pre, limits, config, None, capabilities).await?)
}
