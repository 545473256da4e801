//! `portcullis plugin pull`: an `oci://` artifact into a file, with every
//! digest and the signature checked as a host would, and the component
//! never run.

use super::oci;
use anyhow::{Context, Result, bail};
use portcullis::config::Config;
use portcullis_sources::oci::{OciSource, Registry};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Args {
    pub reference: String,
    #[arg(short, long)]
    pub output: PathBuf,
    #[command(flatten)]
    pub trust: Trust,
    #[command(flatten)]
    pub insecure: oci::Insecure,
}

/// Where to find trusted signers.
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

pub async fn run(args: Args) -> Result<ExitCode> {
    let Args {
        reference,
        output,
        trust,
        insecure,
    } = args;
    let insecure = insecure.insecure;
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
        ..OciSource::new(oci::parse(&reference)?)
    };
    let pulled = Registry::new(&source.reference, insecure)
        .pull(&source, Some(&trusted), None)
        .await?;
    std::fs::write(&output, &pulled.bytes)
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
