//! What loading a plugin from an OCI registry costs: pull + verify (digests
//! and signature) + compile + configure, cold (empty caches) and from the
//! caches (component by digest, compiled component), for the Rust and the
//! JavaScript static-users plugins. A real docker-registry on loopback.
//!
//! Needs the plugins built (`scripts/build-plugins`) and docker-registry.
//! `cargo bench -p portcullis-tests --bench oci [-- RUNS]`

use nkeys::KeyPair;
use portcullis::config::Config;
use portcullis::registry::load_plugin;
use portcullis_runtime::Runtime;
use portcullis_sources::oci::{OciCache, OciRef, Registry, Signature};
use portcullis_tests::registry::OciRegistry;
use std::time::{Duration, Instant};

/// A portcullis.toml (in `dir`) loading `repo` from the registry, with
/// its caches in `cache`.
fn config(
    dir: &std::path::Path,
    registry: &OciRegistry,
    repo: &str,
    trusted: &str,
    cache: &std::path::Path,
) -> anyhow::Result<Config> {
    let path = dir.join("portcullis.toml");
    std::fs::write(dir.join("issuer.nk"), KeyPair::new_account().seed()?)?;
    std::fs::write(
        &path,
        format!(
            "[nats]\nservers = [\"nats://127.0.0.1:1\"]\n[callout]\nissuer_seed = \"issuer.nk\"\n[runtime]\ncache_dir = \"{}\"\n[trust]\ntrusted_signers = [\"{trusted}\"]\n[[plugins]]\nname = \"users\"\nwasm = \"{}\"\naccounts = [\"APP1\", \"APP2\"]\nconfig = {{ alice = {{ pass = \"alice\", account = \"APP1\" }} }}\n",
            cache.display(),
            registry.reference(repo)
        ),
    )?;
    Ok(Config::load(&path)?)
}

/// Pull + verify alone.
async fn time_pull(config: &Config) -> anyhow::Result<Duration> {
    let started = Instant::now();
    portcullis_sources::oci::fetch(
        config.plugins[0].source.oci().expect("oci"),
        &config.trust.trusted_signers,
        Some(&OciCache::new(&config.cache_dir().expect("cache"))?),
    )
    .await?;
    Ok(started.elapsed())
}

/// Pull + verify + compile + configure: what a host does at start.
async fn time_load(config: &Config) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let runtime = Runtime::new(&portcullis::host::runtime_options(config))?;
    load_plugin(
        &runtime,
        &portcullis::host::sources(config),
        &config.plugins[0],
    )
    .await?;
    Ok(started.elapsed())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let runs: usize = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(3);
    let registry = OciRegistry::start()?;
    let signer = KeyPair::new_user();
    println!(
        "{:<18} {:>9} {:<6} {:>12} {:>20}",
        "plugin", "bytes", "", "pull+verify", "+compile+configure"
    );
    for (name, wasm) in [
        ("rust static-users", "static_users"),
        ("js static-users", "static_users_js"),
    ] {
        let repo = format!("bench/{wasm}:1");
        let reference = OciRef::parse(&registry.reference(&repo)).map_err(anyhow::Error::msg)?;
        let client = Registry::new(&reference, false);
        let bytes = std::fs::read(portcullis_tests::plugin(wasm))?;
        let size = bytes.len();
        let digest = client.push_component(&reference, bytes).await?;
        client
            .push_signature(
                &reference,
                &Signature::sign(&reference.signed_repository(), digest.as_str(), 1, &signer)
                    .map_err(anyhow::Error::msg)?,
            )
            .await?;
        for _ in 0..runs {
            let dir = tempfile::tempdir()?;
            let key = signer.public_key();
            let cold_pull = config(dir.path(), &registry, &repo, &key, &dir.path().join("a"))?;
            let cold = config(dir.path(), &registry, &repo, &key, &dir.path().join("b"))?;
            let (pull, load) = (time_pull(&cold_pull).await?, time_load(&cold).await?);
            println!("{name:<18} {size:>9} cold   {pull:>12.1?} {load:>20.1?}");
            let (pull, load) = (time_pull(&cold).await?, time_load(&cold).await?);
            println!("{name:<18} {size:>9} cached {pull:>12.1?} {load:>20.1?}");
        }
    }
    Ok(())
}
