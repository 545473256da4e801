//! `portcullis plugin push`: signs a component and publishes it, to one of
//! two places chosen by NAME. A plugin name makes it the current release
//! in a JetStream object store bucket, which every host loading
//! `nats-object://BUCKET/NAME` swaps to; `oci://REGISTRY/REPO:TAG` pushes
//! it as a Wasm OCI artifact with the signature stored beside it. Either
//! way a component no host would load is refused before it leaves.

use super::oci;
use crate::commands::fleet;
use anyhow::{Context, Result, bail};
use portcullis_protocol::keys::SeedSource;
use portcullis_runtime::inspect;
use portcullis_sources::fleet::Bucket;
use portcullis_sources::oci::{Registry, signature};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Args {
    pub name: String,
    pub wasm: PathBuf,
    /// Plugin configuration (JSON) to ship with this release; it
    /// replaces the hosts' `config` / `config_file` for this plugin.
    #[arg(long)]
    pub config_file: Option<PathBuf>,
    /// User NKey seed (SU...) that signs the release: a file or env:NAME.
    /// Hosts accept it only if its public key is in `[trust] trusted_signers`.
    #[arg(long, required_unless_present = "unsigned")]
    pub signer: Option<String>,
    /// oci:// only: push without a signature.
    #[arg(long, conflicts_with = "signer")]
    pub unsigned: bool,
    #[command(flatten)]
    pub insecure: oci::Insecure,
    #[arg(long, default_value = portcullis_sources::fleet::DEFAULT_BUCKET)]
    pub bucket: String,
    #[command(flatten)]
    pub target: fleet::Target,
}

pub async fn run(args: Args) -> Result<ExitCode> {
    if args.name.starts_with(portcullis_sources::oci::OCI_SCHEME) {
        if args.config_file.is_some() {
            bail!(
                "--config-file applies to bucket releases; a registry plugin's configuration stays in portcullis.toml"
            );
        }
        return to_registry(
            &args.name,
            &args.wasm,
            args.signer.as_deref(),
            args.insecure.insecure,
        )
        .await;
    }
    let Some(signer) = &args.signer else {
        bail!("a bucket release must be signed: give --signer");
    };
    to_bucket(&args, signer).await
}

async fn to_bucket(args: &Args, signer: &str) -> Result<ExitCode> {
    let bytes = read_loadable(&args.wasm)?;
    let config = match &args.config_file {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            serde_json::from_str::<serde_json::Value>(&text)
                .with_context(|| format!("{} is not valid JSON", path.display()))?;
            Some(text)
        }
        None => None,
    };
    let signer = portcullis_protocol::keys::user_key(&SeedSource::parse(signer, Path::new(".")))?;
    let client = args.target.connect().await?;
    let js = async_nats::jetstream::new(client);
    let bucket = Bucket::open(&js, &args.bucket, true).await?;
    let release = bucket
        .push(&args.name, &bytes, config.as_deref(), &signer)
        .await?;
    println!(
        "pushed {} to nats-object://{}/{}\n  sha256  {}\n  release {}\n  signer  {}{}",
        args.wasm.display(),
        bucket.name(),
        args.name,
        release.wasm,
        release.sequence,
        release.signer,
        release
            .config
            .map(|c| format!("\n  config sha256 {c}"))
            .unwrap_or_default()
    );
    Ok(ExitCode::SUCCESS)
}

async fn to_registry(
    reference: &str,
    wasm: &Path,
    signer: Option<&str>,
    insecure: bool,
) -> Result<ExitCode> {
    let reference = oci::parse(reference)?;
    if reference.digest.is_some() {
        bail!("push to a tag, not a digest: {reference}");
    }
    let bytes = read_loadable(wasm)?;
    let key = signer.map(oci::signing_key).transpose()?;
    let registry = Registry::new(&reference, insecure);
    // Newer than what the tag names before the push: asked first.
    let sequence = match key {
        Some(_) => oci::next_sequence(&registry, &reference).await?,
        None => 0,
    };
    let digest = registry.push_component(&reference, bytes).await?;
    println!(
        "pushed {} to {reference}\n  manifest {digest}",
        wasm.display()
    );
    match key {
        Some(key) => {
            let signature =
                oci::store_signature(&registry, &reference, &digest, sequence, &key).await?;
            println!(
                "  release  {sequence}\n  signer   {} (referrer, or tag {})",
                signature.signer,
                signature::signature_tag(digest.as_str())
            );
        }
        None => {
            println!("  unsigned: hosts refuse it unless the plugin sets allow_unsigned = true")
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Read a component and refuse what no host would load, before it
/// reaches the fleet or a registry.
fn read_loadable(wasm: &Path) -> Result<Vec<u8>> {
    let bytes = std::fs::read(wasm).with_context(|| format!("cannot read {}", wasm.display()))?;
    let info = inspect::inspect(&bytes).map_err(anyhow::Error::msg)?;
    match &info.plugin_version {
        Some(v) if inspect::served(v).is_some() => Ok(bytes),
        Some(v) => bail!(
            "{} targets portcullis:authenticator@{v}, which this version cannot load",
            wasm.display()
        ),
        None => bail!("{} is not a Portcullis plugin", wasm.display()),
    }
}
