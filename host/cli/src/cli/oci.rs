//! Registry commands: `plugin push oci://...`, `plugin pull` and
//! `plugin inspect oci://...`. Pull and inspect never run the component.

use anyhow::{Context, Result, bail};
use portcullis::config::Config;
use portcullis_protocol::keys::SeedSource;
use portcullis_sources::oci::{OciRef, OciSource, Registry, Signature, signature};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Where to find trusted signers for `plugin pull`.
#[derive(clap::Args, Debug)]
pub struct Trust {
    /// A portcullis.toml whose `[trust] trusted_signers` to use.
    #[arg(short, long)]
    pub config: Option<PathBuf>,
    /// A trusted signer's public NKey (repeatable).
    #[arg(long = "trusted-signer")]
    pub trusted_signers: Vec<String>,
    /// Accept an artifact without a trusted signature.
    #[arg(long)]
    pub allow_unsigned: bool,
}

/// Reach a registry that is not on loopback over plain HTTP.
#[derive(clap::Args, Debug)]
pub struct Insecure {
    #[arg(long)]
    pub insecure: bool,
}

fn parse(reference: &str) -> Result<OciRef> {
    OciRef::parse(reference).map_err(anyhow::Error::msg)
}

/// A user seed from a file or `env:NAME`.
fn signing_key(seed: &str) -> Result<nkeys::KeyPair> {
    Ok(portcullis_protocol::keys::user_key(&SeedSource::parse(
        seed,
        Path::new("."),
    ))?)
}

/// Sign `digest` and store the signature beside the artifact.
async fn store_signature(
    registry: &Registry,
    reference: &OciRef,
    digest: &str,
    key: &nkeys::KeyPair,
) -> Result<Signature> {
    let signature = Signature::sign(digest, key).map_err(anyhow::Error::msg)?;
    registry.push_signature(reference, &signature).await?;
    Ok(signature)
}

pub async fn push(
    reference: &str,
    wasm: &Path,
    signer: Option<&str>,
    insecure: bool,
) -> Result<ExitCode> {
    let reference = parse(reference)?;
    if reference.digest.is_some() {
        bail!("push to a tag, not a digest: {reference}");
    }
    let bytes = super::fleet::read_loadable(wasm)?;
    let key = signer.map(signing_key).transpose()?;
    let registry = Registry::new(&reference, insecure);
    let digest = registry.push_component(&reference, bytes).await?;
    println!(
        "pushed {} to {reference}\n  manifest {digest}",
        wasm.display()
    );
    match key {
        Some(key) => {
            let signature = store_signature(&registry, &reference, &digest, &key).await?;
            println!(
                "  signer   {} (tag {})",
                signature.signer,
                signature::signature_tag(&digest)
            );
        }
        None => {
            println!("  unsigned: hosts refuse it unless the plugin sets allow_unsigned = true")
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Sign what `reference` resolves to now (an artifact pushed by another
/// tool, or a second signer), storing the signature beside the others.
pub async fn sign(reference: &str, signer: &str, insecure: bool) -> Result<ExitCode> {
    let reference = parse(reference)?;
    let key = signing_key(signer)?;
    let registry = Registry::new(&reference, insecure);
    let (_, _, digest) = registry.resolve(&reference).await?;
    let signature = store_signature(&registry, &reference, &digest, &key).await?;
    println!(
        "signed {reference}\n  manifest {digest}\n  signer   {}",
        signature.signer
    );
    Ok(ExitCode::SUCCESS)
}

pub async fn pull(
    reference: &str,
    output: &Path,
    trust: &Trust,
    insecure: bool,
) -> Result<ExitCode> {
    let mut trusted = trust.trusted_signers.clone();
    if let Some(config) = &trust.config {
        trusted.extend(Config::load(config)?.trust.trusted_signers);
    }
    if trusted.is_empty() && !trust.allow_unsigned {
        bail!(
            "nothing to trust: give --trusted-signer KEY, -c portcullis.toml, or --allow-unsigned"
        );
    }
    let source = OciSource {
        allow_unsigned: trust.allow_unsigned,
        insecure,
        ..OciSource::new(parse(reference)?)
    };
    let pulled = Registry::new(&source.reference, insecure)
        .pull(&source, Some(&trusted), None)
        .await?;
    std::fs::write(output, &pulled.bytes)
        .with_context(|| format!("cannot write {}", output.display()))?;
    println!(
        "pulled {} to {}\n  manifest {}\n  sha256   {}\n  signer   {}",
        source.reference,
        output.display(),
        pulled.manifest_digest,
        pulled.component_sha256(),
        pulled
            .signer
            .as_deref()
            .unwrap_or("none (allowed unsigned)")
    );
    Ok(ExitCode::SUCCESS)
}

/// Digests, size and signers of an artifact, then what the component
/// itself declares (printed by the caller, as for a local file).
pub async fn fetch_for_inspect(reference: &str, insecure: bool) -> Result<Vec<u8>> {
    let source = OciSource::new(parse(reference)?);
    let pulled = Registry::new(&source.reference, insecure)
        .pull(&source, None, None)
        .await?;
    println!("artifact   {}", source.reference);
    println!("manifest   {}", pulled.manifest_digest);
    if pulled.signatures.is_empty() {
        println!("signers    none");
    }
    for s in &pulled.signatures {
        let valid = if s.is_valid_for(&pulled.manifest_digest) {
            "valid signature"
        } else {
            "INVALID signature"
        };
        println!("signer     {} ({valid})", s.signer);
    }
    Ok(pulled.bytes)
}
