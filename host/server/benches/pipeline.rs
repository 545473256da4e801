//! Microbenchmarks of the decision path (criterion), no network:
//!
//! - `decision/warm/<lang>`: one `authenticate` call on a warm instance,
//!   per plugin language whose component is built;
//! - `xkey/open+seal`: open a sealed request and seal a response;
//! - `jwt/verify request`: decode and verify a server-signed request JWT;
//! - `jwt/issue user+response`: build and sign the user JWT and the
//!   response JWT around it;
//! - `pipeline/...`: the whole path, request bytes to response bytes;
//! - `load/...`: a plugin loaded from the on-disk compile cache (read,
//!   deserialize, link, instantiate, configure), per language, and one
//!   cold compile for comparison.
//!
//! Needs the plugins built (`scripts/build-plugins`); JS and Python
//! plugins are measured when `static_users_js.wasm` / `static_users_py.wasm`
//! exist next to them (or `PORTCULLIS_JS_WASM` / `PORTCULLIS_PY_WASM` name them).
//! `cargo bench -p portcullis --bench pipeline [-- FILTER]`

use criterion::{Criterion, criterion_group, criterion_main};
use nkeys::{KeyPair, XKey};
use portcullis::callout::Callout;
use portcullis::config::{Config, PluginConfig};
use portcullis_protocol::claims::{
    AuthorizationResponse, CLAIMS_VERSION, Permission, RESPONSE_TYPE, RequestClaims,
    ResponseClaims, User,
};
use portcullis_protocol::time::unix_now;
use portcullis_protocol::{Approved, jwt, verify_request};
use portcullis_runtime::{Runtime, RuntimeOptions};
use std::hint::black_box;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Plugin components by language; Rust is required, the others optional.
fn components() -> Vec<(&'static str, PathBuf)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/wasm32-wasip2/release");
    let rust = dir.join("static_users.wasm");
    assert!(
        rust.exists(),
        "{} missing: run scripts/build-plugins",
        rust.display()
    );
    let mut out = vec![("rust", rust)];
    for (lang, var, names) in [
        (
            "js",
            "PORTCULLIS_JS_WASM",
            ["static_users_js.wasm", "static-users-js.wasm"],
        ),
        (
            "py",
            "PORTCULLIS_PY_WASM",
            ["static_users_py.wasm", "static-users-py.wasm"],
        ),
    ] {
        let found = std::env::var_os(var)
            .map(PathBuf::from)
            .or_else(|| names.iter().map(|n| dir.join(n)).find(|p| p.exists()));
        match found {
            Some(path) => out.push((lang, path)),
            None => eprintln!(
                "note: no {lang} static-users component in {}: skipped",
                dir.display()
            ),
        }
    }
    out
}

/// A deployment in a temp dir: keys, users.json, one `[[plugins]]` per
/// language (named after it), compile cache inside.
struct Fixture {
    _dir: tempfile::TempDir,
    config: Config,
    runtime: Runtime,
    callout: Arc<Callout>,
    server_xkey: XKey,
    our_xkey: portcullis_protocol::keys::Xkey,
    token: String,
    sealed: Vec<u8>,
    claims: RequestClaims,
}

fn fixture(rt: &tokio::runtime::Runtime) -> Fixture {
    let dir = tempfile::tempdir().expect("tempdir");
    let issuer = KeyPair::new_account();
    let our_xkey = XKey::new();
    std::fs::write(dir.path().join("issuer.nk"), issuer.seed().unwrap()).unwrap();
    std::fs::write(dir.path().join("xkey.nk"), our_xkey.seed().unwrap()).unwrap();
    std::fs::write(
        dir.path().join("users.json"),
        portcullis::deployment::USERS_JSON,
    )
    .unwrap();
    // accept_unsealed: "bytes to bytes, no xkey" sends the same request
    // unsealed to this one host.
    let mut toml = String::from(
        "[nats]\nservers = [\"nats://127.0.0.1:4222\"]\n[callout]\nissuer_seed = \"issuer.nk\"\nxkey_seed = \"xkey.nk\"\naccept_unsealed = true\n[runtime]\ncache_dir = \"cache\"\n",
    );
    for (lang, wasm) in components() {
        let memory_mb = if lang == "rust" { 32 } else { 256 };
        toml.push_str(&format!(
            "[[plugins]]\nname = {lang:?}\nwasm = {:?}\naccounts = [\"APP1\", \"APP2\"]\nmemory_mb = {memory_mb}\nconfig_file = \"users.json\"\n",
            wasm.display().to_string()
        ));
    }
    let config = Config::parse(&toml, &dir.path().join("portcullis.toml")).expect("config");
    // The callout answers with the Rust plugin alone (the first).
    let mut rust_only = config.clone();
    rust_only.plugins.truncate(1);
    let callout = rt
        .block_on(portcullis::host::build(&rust_only))
        .expect("host builds");
    let runtime = Runtime::new(&portcullis::host::runtime_options(&config)).expect("runtime");

    // A request exactly as nats-server builds it: signed by the server
    // key, sealed with the server's xkey to ours.
    let server = KeyPair::new_server();
    let server_xkey = XKey::new();
    let mut claims = RequestClaims::new(
        &server.public_key(),
        &KeyPair::new_user().public_key(),
        unix_now(),
        3600,
    );
    claims.nats.server_id.name = "bench".into();
    claims.nats.server_id.xkey = server_xkey.public_key();
    claims.nats.client_info.host = "127.0.0.1".into();
    claims.nats.client_info.id = 42;
    claims.nats.connect_opts.user = "bob".into();
    claims.nats.connect_opts.pass = "bob".into();
    claims.nats.connect_opts.lang = "rust".into();
    claims.nats.connect_opts.version = "0.51.0".into();
    claims.nats.connect_opts.protocol = 1;
    let token = jwt::encode(&mut claims, |c| &mut c.jti, &server).expect("sign");
    let sealed = server_xkey
        .seal(
            token.as_bytes(),
            &XKey::from_public_key(&our_xkey.public_key()).unwrap(),
        )
        .expect("seal");
    let our_xkey = portcullis_protocol::keys::xkey(&portcullis_protocol::keys::SeedSource::File(
        dir.path().join("xkey.nk"),
    ))
    .expect("xkey");
    Fixture {
        _dir: dir,
        config,
        runtime,
        callout,
        server_xkey,
        our_xkey,
        token,
        sealed,
        claims,
    }
}

fn plugin_config<'a>(config: &'a Config, lang: &str) -> &'a PluginConfig {
    config
        .plugins
        .iter()
        .find(|p| p.name == lang)
        .expect("plugin configured")
}

fn benches(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let f = fixture(&rt);
    let request = portcullis::request::auth_request(&f.claims.nats);

    let mut group = c.benchmark_group("decision");
    for plugin in &f.config.plugins {
        let loaded = match rt.block_on(portcullis::registry::load_plugin(
            &f.runtime,
            &portcullis_sources::Sources::local(),
            plugin,
        )) {
            Ok(l) => l,
            Err(e) => {
                eprintln!("note: {} does not load: {e}; skipped", plugin.name);
                continue;
            }
        };
        group.bench_function(format!("warm/{}", plugin.name), |b| {
            b.to_async(&rt).iter(|| async {
                black_box(loaded.plugin.authenticate(&request).await.expect("decides"));
            })
        });
    }
    group.finish();

    let server_xkey = f.server_xkey.public_key();
    let mut group = c.benchmark_group("xkey");
    group.bench_function("open+seal", |b| {
        b.iter(|| {
            let opened = f.our_xkey.open(&f.sealed, &server_xkey).expect("opens");
            black_box(f.our_xkey.seal(&opened, &server_xkey).expect("seals"))
        })
    });
    group.finish();

    let mut group = c.benchmark_group("jwt");
    let now = unix_now();
    group.bench_function("verify request", |b| {
        b.iter(|| black_box(verify_request(f.token.as_bytes(), None, None, now).expect("verifies")))
    });
    let signers = portcullis::host::signers(&f.config).expect("keys");
    let response_public = signers.response.public_key().to_owned();
    let approved = Approved {
        account: "APP2".into(),
        name: "bob".into(),
        expires_at: Some(now + 3600),
        user: User {
            publish: Permission {
                allow: vec!["bob.>".into()],
                deny: vec![],
            },
            subscribe: Permission {
                allow: vec!["bob.>".into(), "_INBOX.>".into()],
                deny: vec![],
            },
            ..User::default()
        },
    };
    group.bench_function("issue user+response", |b| {
        b.iter(|| {
            let user_jwt = signers
                .users
                .issue(&f.claims.nats.user_nkey, approved.clone(), now)
                .expect("issues");
            let mut response = ResponseClaims {
                jti: String::new(),
                iat: now,
                iss: response_public.clone(),
                sub: f.claims.nats.user_nkey.clone(),
                aud: f.claims.nats.server_id.id.clone(),
                nats: AuthorizationResponse {
                    jwt: user_jwt,
                    error: String::new(),
                    issuer_account: String::new(),
                    claim_type: RESPONSE_TYPE,
                    version: CLAIMS_VERSION,
                },
            };
            black_box(jwt::encode(&mut response, |c| &mut c.jti, &signers.response).expect("signs"))
        })
    });
    group.finish();

    let mut group = c.benchmark_group("pipeline");
    group.bench_function("bytes to bytes, xkey", |b| {
        b.to_async(&rt).iter(|| async {
            black_box(
                f.callout
                    .handle(Some(&server_xkey), &f.sealed)
                    .await
                    .expect("answers"),
            )
        })
    });
    group.bench_function("bytes to bytes, no xkey", |b| {
        b.to_async(&rt).iter(|| async {
            black_box(
                f.callout
                    .handle(None, f.token.as_bytes())
                    .await
                    .expect("answers"),
            )
        })
    });
    group.finish();

    let mut group = c.benchmark_group("load");
    group
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    for plugin in &f.config.plugins {
        // Fill the cache once; every iteration then loads from disk.
        if rt
            .block_on(portcullis::registry::load_plugin(
                &f.runtime,
                &portcullis_sources::Sources::local(),
                plugin,
            ))
            .is_err()
        {
            continue;
        }
        group.bench_function(format!("from compile cache/{}", plugin.name), |b| {
            b.to_async(&rt).iter(|| async {
                black_box(
                    portcullis::registry::load_plugin(
                        &f.runtime,
                        &portcullis_sources::Sources::local(),
                        plugin,
                    )
                    .await
                    .expect("loads"),
                )
            })
        });
    }
    let rust = plugin_config(&f.config, "rust");
    let bytes = std::fs::read(&rust.wasm).expect("component");
    let uncached = Runtime::new(&RuntimeOptions {
        cache_dir: None,
        ..portcullis::host::runtime_options(&f.config)
    })
    .expect("runtime");
    group.bench_function("cold compile, no cache/rust", |b| {
        b.iter(|| black_box(uncached.prepare(&bytes).expect("compiles")))
    });
    group.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args()
}

criterion_group! {
    name = pipeline;
    config = config();
    targets = benches
}
criterion_main!(pipeline);
