//! What the registry subcommands (`plugin push oci://...`, `sign`, `pull`,
//! `inspect oci://...`) share: the `--insecure` switch, reference parsing,
//! and the signatures stored beside an artifact.

use anyhow::Result;
use portcullis_protocol::digest::Digest;
use portcullis_protocol::keys::SeedSource;
use portcullis_sources::oci::{OciRef, Registry, Signature};
use std::path::Path;

/// Reach a registry that is not on loopback over plain HTTP.
#[derive(clap::Args, Debug)]
pub struct Insecure {
    #[arg(long)]
    pub insecure: bool,
}

pub fn parse(reference: &str) -> Result<OciRef> {
    OciRef::parse(reference).map_err(anyhow::Error::msg)
}

/// A user seed from a file or `env:NAME`.
pub fn signing_key(seed: &str) -> Result<nkeys::KeyPair> {
    Ok(portcullis_protocol::keys::user_key(&SeedSource::parse(
        seed,
        Path::new("."),
    ))?)
}

/// Sign `digest` and store the signature beside the artifact.
pub async fn store_signature(
    registry: &Registry,
    reference: &OciRef,
    digest: &Digest,
    key: &nkeys::KeyPair,
) -> Result<Signature> {
    let signature = Signature::sign(digest.as_str(), key).map_err(anyhow::Error::msg)?;
    registry.push_signature(reference, &signature).await?;
    Ok(signature)
}
