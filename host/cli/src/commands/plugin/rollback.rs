//! `portcullis plugin rollback`: makes the previous release of a plugin in
//! a JetStream object store bucket current again, as a new release signed
//! with a newer sequence; every host loading it swaps back. Hosts refuse a
//! release older than the newest they accepted, so writing the previous
//! release back as it was signed would be refused: that is the attack
//! they stop, and why a rollback needs a signing key.

use crate::commands::fleet;
use anyhow::{Result, bail};
use portcullis_protocol::keys::SeedSource;
use portcullis_sources::fleet::Bucket;
use std::path::Path;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Args {
    pub name: String,
    #[arg(long, default_value = portcullis_sources::fleet::DEFAULT_BUCKET)]
    pub bucket: String,
    /// User NKey seed (SU...) that signs the rollback as a new release: a
    /// file or env:NAME, a key in the hosts' `[trust] trusted_signers`.
    #[arg(long)]
    pub signer: Option<String>,
    #[command(flatten)]
    pub target: fleet::Target,
}

pub async fn run(args: Args) -> Result<ExitCode> {
    let name = &args.name;
    let Some(signer) = &args.signer else {
        bail!(
            "a rollback must be signed: give --signer SEED (a key in the hosts' trusted_signers). \
             Hosts refuse a release older than the newest they accepted, so the previous release \
             is signed again with a newer sequence rather than written back as it was."
        );
    };
    let signer = portcullis_protocol::keys::user_key(&SeedSource::parse(signer, Path::new(".")))?;
    let client = args.target.connect().await?;
    let js = async_nats::jetstream::new(client);
    let bucket = Bucket::open(&js, &args.bucket, false).await?;
    let release = bucket.rollback(name, &signer).await?;
    println!(
        "nats-object://{}/{name} is back at sha256 {} (release {}, signed by {})",
        bucket.name(),
        release.wasm,
        release.sequence,
        release.signer
    );
    Ok(ExitCode::SUCCESS)
}
