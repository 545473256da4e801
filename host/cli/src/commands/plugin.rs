//! `portcullis plugin`: the subcommands that work with plugin components,
//! offline (test, inspect, new), in an OCI registry (sign, pull, push to
//! `oci://`) or across the fleet (push to a bucket, rollback, list).

pub mod inspect;
pub mod list;
pub mod new;
pub mod oci;
pub mod pull;
pub mod push;
pub mod rollback;
pub mod sign;
pub mod test;

use anyhow::Result;
use clap::Subcommand;
use std::process::ExitCode;

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run one decision and print it as JSON, or run a directory of
    /// conformance vectors and print a pass/fail table.
    Test(test::Args),
    /// Print the digest, size, signers, world, WIT version, imports and
    /// exports of a component: a local file or `oci://REGISTRY/REPO:TAG`
    /// (pulled and digest-checked, never run).
    Inspect(inspect::Args),
    /// Sign the artifact `oci://REGISTRY/REPO:TAG` resolves to as a new
    /// release (pushed by another tool such as `wkg oci push`, signed by a
    /// second key, or a tag moved back to an older release on purpose).
    Sign(sign::Args),
    /// Pull `oci://REGISTRY/REPO:TAG` (or `@sha256:...`) into a file,
    /// checking every digest and the signature, without running it.
    Pull(pull::Args),
    /// Sign a component and publish it. NAME is either a plugin name, made
    /// the current release in a JetStream object store bucket (every host
    /// whose config says `wasm = "nats-object://BUCKET/NAME"` swaps to
    /// it), or `oci://REGISTRY/REPO:TAG`, pushed as a Wasm OCI artifact
    /// with the signature stored beside it.
    Push(push::Args),
    /// Make the previous release of NAME current again, across the fleet,
    /// signed anew (--signer) so hosts take it as the newest release.
    Rollback(rollback::Args),
    /// Show, per host, the plugins it runs: name, digest, signer, load time.
    List(list::Args),
    /// Create a plugin project NAME that builds into a component and
    /// passes a starter set of conformance vectors.
    New(new::Args),
}

pub async fn run(command: Command) -> Result<ExitCode> {
    match command {
        Command::Test(args) => test::run(args).await,
        Command::Inspect(args) => inspect::run(args).await,
        Command::Sign(args) => sign::run(args).await,
        Command::Pull(args) => pull::run(args).await,
        Command::Push(args) => push::run(args).await,
        Command::Rollback(args) => rollback::run(args).await,
        Command::List(args) => list::run(args).await,
        Command::New(args) => new::run(args),
    }
}
