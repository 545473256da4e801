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

/// Sign `digest` as release `sequence` of `reference`'s repository and
/// store the signature beside the artifact.
pub async fn store_signature(
    registry: &Registry,
    reference: &OciRef,
    digest: &Digest,
    sequence: u64,
    key: &nkeys::KeyPair,
) -> Result<Signature> {
    let signature = Signature::sign(
        &reference.signed_repository(),
        digest.as_str(),
        sequence,
        key,
    )
    .map_err(anyhow::Error::msg)?;
    registry.push_signature(reference, &signature).await?;
    Ok(signature)
}

/// The sequence of a new release of `reference`: newer than the clock
/// and than any release its tag names now (see `signature::next_sequence`).
pub async fn next_sequence(registry: &Registry, reference: &OciRef) -> Result<u64> {
    let newest = registry.newest_sequence(reference).await?;
    Ok(portcullis_sources::oci::signature::next_sequence(newest))
}
