//! `portcullis plugin sign`: signs what an `oci://` reference resolves to
//! now, for an artifact pushed by another tool (such as `wkg oci push`) or
//! a second signer, storing the signature beside the others. Each
//! signature is a new release (a newer sequence), so signing what a tag
//! was moved back to is how an older release is rolled back to on
//! purpose: hosts refuse it until then.

use super::oci;
use anyhow::Result;
use portcullis_sources::oci::Registry;
use std::process::ExitCode;

#[derive(clap::Args, Debug)]
pub struct Args {
    pub reference: String,
    /// User NKey seed (SU...): a file or env:NAME.
    #[arg(long)]
    pub signer: String,
    #[command(flatten)]
    pub insecure: oci::Insecure,
}

pub async fn run(args: Args) -> Result<ExitCode> {
    let reference = oci::parse(&args.reference)?;
    let key = oci::signing_key(&args.signer)?;
    let registry = Registry::new(&reference, args.insecure.insecure);
    let (_, _, digest) = registry.resolve(&reference).await?;
    let sequence = oci::next_sequence(&registry, &reference).await?;
    let signature = oci::store_signature(&registry, &reference, &digest, sequence, &key).await?;
    println!(
        "signed {reference}\n  manifest {digest}\n  release  {sequence} of {}\n  signer   {}",
        reference.signed_repository(),
        signature.signer
    );
    Ok(ExitCode::SUCCESS)
}
