//! Decision-path benchmark: warm plugin decision, request verification,
//! the whole in-process pipeline (sealed request bytes -> sealed response
//! bytes, no network) and plugin load from the compile cache.
//!
//! Needs the plugins built (`scripts/build-plugins`).
//! `cargo bench -p portcullis --bench pipeline [-- ITERATIONS]`

use nkeys::{KeyPair, XKey};
use portcullis::callout::claims::RequestClaims;
use portcullis::callout::{jwt, unix_now, verify_request};
use portcullis::runtime::bindings::AuthRequest;
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    let pct = |p: f64| samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)];
    let mean = samples.iter().sum::<Duration>() / samples.len() as u32;
    println!(
        "{name:<34} n={:<6} median {:>9.1?}  p99 {:>9.1?}  mean {:>9.1?}",
        samples.len(),
        pct(0.5),
        pct(0.99),
        mean
    );
}

async fn measure<F, Fut>(name: &str, iterations: usize, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for _ in 0..iterations / 10 {
        f().await;
    }
    let mut samples = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let t = Instant::now();
        f().await;
        samples.push(t.elapsed());
    }
    report(name, samples);
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let iterations: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(20_000);
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let wasm = root.join("target/wasm32-wasip2/release/static_users.wasm");
    anyhow::ensure!(
        wasm.exists(),
        "{} missing: run scripts/build-plugins",
        wasm.display()
    );

    let dir = tempfile::tempdir()?;
    let issuer = KeyPair::new_account();
    let our_xkey = XKey::new();
    std::fs::write(dir.path().join("issuer.nk"), issuer.seed()?)?;
    std::fs::write(dir.path().join("xkey.nk"), our_xkey.seed()?)?;
    std::fs::write(dir.path().join("users.json"), portcullis::init::USERS_JSON)?;
    let toml = format!(
        r#"
[nats]
servers = ["nats://127.0.0.1:4222"]
[callout]
issuer_seed = "issuer.nk"
xkey_seed = "xkey.nk"
[runtime]
cache_dir = "cache"
[[plugins]]
name = "users"
wasm = "{}"
accounts = ["APP1", "APP2"]
config_file = "users.json"
"#,
        wasm.display()
    );
    let config = portcullis::config::Config::parse(&toml, &dir.path().join("portcullis.toml"))?;

    let t = Instant::now();
    let callout = portcullis::host::build(&config).await?;
    println!("host build, cold compile:          {:?}", t.elapsed());
    let t = Instant::now();
    drop(portcullis::host::build(&config).await?);
    println!("host build, from compile cache:    {:?}", t.elapsed());

    // A request exactly as nats-server builds it: signed by the server key,
    // sealed with the server's xkey to ours.
    let server = KeyPair::new_server();
    let server_xkey = XKey::new();
    let mut claims = RequestClaims::new(
        &server.public_key(),
        &KeyPair::new_user().public_key(),
        unix_now(),
        3600,
    );
    claims.nats.server_id.name = "bench".into();
    claims.nats.client_info.host = "127.0.0.1".into();
    claims.nats.connect_opts.user = "bob".into();
    claims.nats.connect_opts.pass = "bob".into();
    let token = jwt::encode(&mut claims, |c| &mut c.jti, &server)?;
    let sealed = server_xkey.seal(
        token.as_bytes(),
        &XKey::from_public_key(&our_xkey.public_key())?,
    )?;
    let server_xkey_pub = server_xkey.public_key();

    let chain = callout.registry().chain();
    let plugin = &chain.plugins()[0].plugin;
    let request = AuthRequest::from(&claims.nats);
    measure("warm decision (static-users, bob)", iterations, || async {
        plugin.authenticate(&request).await.expect("decision");
    })
    .await;

    let xkey = portcullis::keys::xkey(&portcullis::keys::SeedSource::File(
        dir.path().join("xkey.nk"),
    ))?;
    measure("xkey open + JWT verify", iterations, || async {
        verify_request(&sealed, Some(&server_xkey_pub), Some(&xkey), unix_now()).expect("verifies");
    })
    .await;

    measure("whole pipeline (bytes -> bytes)", iterations, || async {
        callout
            .handle(Some(&server_xkey_pub), &sealed)
            .await
            .expect("answer");
    })
    .await;

    // Silence the per-login log lines the pipeline writes at info level:
    // no subscriber is installed here, so they cost nothing.
    let bytes = std::fs::read(&wasm)?;
    let runtime = callout.registry().runtime().clone();
    measure(
        "plugin load from compile cache",
        (iterations / 200).max(20),
        || async {
            runtime.prepare(&bytes).expect("loads");
        },
    )
    .await;
    Ok(())
}
