//! `portcullis plugin rollback`: makes the previous release of a plugin in
//! a JetStream object store bucket current again; every host loading it
//! swaps back.

use crate::commands::fleet;
use anyhow::Result;
use portcullis_sources::fleet::Bucket;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Args {
    pub name: String,
    #[arg(long, default_value = portcullis_sources::fleet::DEFAULT_BUCKET)]
    pub bucket: String,
    #[command(flatten)]
    pub target: fleet::Target,
}

pub async fn run(args: Args) -> Result<ExitCode> {
    let name = &args.name;
    let client = args.target.connect().await?;
    let js = async_nats::jetstream::new(client);
    let bucket = Bucket::open(&js, &args.bucket, false).await?;
    let release = bucket.rollback(name).await?;
    println!(
        "nats-object://{}/{name} is back at sha256 {} (signed by {})",
        bucket.name(),
        release.wasm,
        release.signer
    );
    Ok(ExitCode::SUCCESS)
}
