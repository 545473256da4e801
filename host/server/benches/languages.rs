//! Per-language plugin costs: the static-users plugin built from Rust,
//! JavaScript (componentize-js) and Python (componentize-py). For each:
//! component size, cold compile, load from the compile cache, first
//! instance (instantiate + configure), and the warm decision latency
//! (median / p99) for a plaintext login with permissions and for a bcrypt
//! login (verify-password in the host).
//!
//! Needs the plugins built (`scripts/build-plugins`).
//! `cargo bench -p portcullis --bench languages [-- ITERATIONS]`

use portcullis_protocol::claims::AuthorizationRequest;
use portcullis_runtime::bindings::{AuthRequest, Decision};
use portcullis_runtime::{LogLimits, Plugin, PluginLimits, Runtime, RuntimeOptions};
use std::path::PathBuf;
use std::time::{Duration, Instant};

const PLUGINS: [(&str, &str); 3] = [
    ("Rust", "static_users"),
    ("JavaScript", "static_users_js"),
    ("Python", "static_users_py"),
];

/// The vectors' directory: bob (plaintext, permissions) and carol (bcrypt
/// cost 4) are measured.
const USERS: &str = include_str!("../../../plugins/static-users/vectors/config.json");

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 * p) as usize).min(sorted.len() - 1)]
}

async fn decisions(
    plugin: &Plugin,
    request: &AuthRequest,
    iterations: usize,
) -> (Duration, Duration) {
    for _ in 0..iterations / 10 {
        plugin.authenticate(request).await.expect("decision");
    }
    let mut samples = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let t = Instant::now();
        let decision = plugin.authenticate(request).await.expect("decision");
        samples.push(t.elapsed());
        assert!(matches!(decision, Decision::Allow(_)), "{decision:?}");
    }
    samples.sort();
    (percentile(&samples, 0.5), percentile(&samples, 0.99))
}

fn login(user: &str, pass: &str) -> AuthRequest {
    let mut request = AuthorizationRequest::default();
    request.connect_opts.user = user.into();
    request.connect_opts.pass = pass.into();
    request.client_info.host = "127.0.0.1".into();
    portcullis::request::auth_request(&request)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let iterations: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(5_000);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let cache = tempfile::tempdir()?;
    let options = RuntimeOptions {
        cache_dir: Some(cache.path().to_owned()),
        pool_instances: Some(16),
        max_memory_bytes: 32 << 20,
        cache_max_age: None,
    };
    let limits = PluginLimits {
        timeout: Duration::from_millis(200),
        configure_timeout: Duration::from_secs(2),
        memory_bytes: 32 << 20,
        max_concurrency: 1,
        queue_timeout: Duration::from_secs(1),
        log: LogLimits::default(),
    };
    println!(
        "| plugin | component | cold compile | cached load | first instance | decision median | decision p99 | bcrypt decision median | bcrypt p99 |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for (lang, name) in PLUGINS {
        let wasm = root.join(format!("target/wasm32-wasip2/release/{name}.wasm"));
        anyhow::ensure!(
            wasm.exists(),
            "{} missing: run scripts/build-plugins",
            wasm.display()
        );
        let bytes = std::fs::read(&wasm)?;

        let runtime = Runtime::new(&options)?;
        let t = Instant::now();
        runtime.prepare(&bytes)?;
        let cold = t.elapsed();

        let mut loads = Vec::new();
        let mut pre = None;
        for _ in 0..20 {
            let t = Instant::now();
            pre = Some(runtime.prepare(&bytes)?);
            loads.push(t.elapsed());
        }
        loads.sort();
        let cached = percentile(&loads, 0.5);

        let t = Instant::now();
        let plugin = Plugin::new(
            name,
            pre.expect("loaded"),
            limits.clone(),
            USERS.into(),
            None,
        )
        .await?;
        let first = t.elapsed();

        let (median, p99) = decisions(&plugin, &login("bob", "bob"), iterations).await;
        let (b_median, b_p99) = decisions(
            &plugin,
            &login("carol", "carol-s3cret"),
            (iterations / 10).max(100),
        )
        .await;
        println!(
            "| {lang} | {:.1} MB | {cold:.2?} | {cached:.2?} | {first:.2?} | {median:.1?} | {p99:.1?} | {b_median:.2?} | {b_p99:.2?} |",
            bytes.len() as f64 / 1e6
        );
    }
    Ok(())
}
