//! `portcullis plugin inspect`: what a component is and asks for (digest,
//! size, signers, world and WIT version, exports, imports), from a local
//! file or an `oci://` artifact, pulled and digest-checked but never run.
//! Exits non-zero for a component that is not a Portcullis plugin.

use super::oci;
use anyhow::{Context, Result, bail};
use portcullis_runtime::inspect;
use portcullis_sources::oci::{OciSource, Registry};
use std::process::ExitCode;

/// What inspect says of an inert import: it loads, and every call fails.
const INERT: &str = "inert: linked with nothing behind it (no directories, no sockets)";

#[derive(clap::Args, Debug)]
pub struct Args {
    pub wasm: String,
    #[command(flatten)]
    pub insecure: oci::Insecure,
}

pub async fn run(args: Args) -> Result<ExitCode> {
    let wasm = &args.wasm;
    let bytes = if wasm.starts_with(portcullis_sources::oci::OCI_SCHEME) {
        fetch(wasm, args.insecure.insecure).await?
    } else {
        let bytes = std::fs::read(wasm).with_context(|| format!("cannot read {wasm}"))?;
        println!("component  {wasm}");
        println!("signers    none (a local file)");
        bytes
    };
    let info = inspect::inspect(&bytes).map_err(anyhow::Error::msg)?;
    let digest = portcullis_protocol::digest::sha256_hex(&bytes);
    println!("sha256     {digest}");
    println!("size       {} bytes", info.size);
    match &info.plugin_version {
        Some(v) => {
            let ok = inspect::served(v).is_some();
            println!(
                "world      portcullis:authenticator/authenticator@{v} ({})",
                if ok {
                    "compatible with this host"
                } else {
                    "NOT compatible with this host"
                }
            );
        }
        None => println!(
            "world      not a Portcullis plugin (no {} export)",
            portcullis_runtime::bindings::PLUGIN_INTERFACE
        ),
    }
    println!("exports:");
    for e in &info.exports {
        println!("  {e}");
    }
    // What the component asks for: the baseline, the inert imports (linked
    // so that CPython and the like load, with nothing to reach),
    // capabilities an operator grants per plugin (named with their grant
    // key), and anything else, which no host grants.
    println!("imports:");
    for i in &info.imports {
        if let Some(key) = portcullis_runtime::capabilities::grant_key(i) {
            println!("  {i}   needs grants = {{ {key} = [...] }}");
        } else if portcullis_runtime::inert(i) {
            println!("  {i}   {INERT}");
        } else if portcullis_runtime::granted(i) {
            println!("  {i}");
        } else {
            println!("  {i}   NOT GRANTED: this host refuses to load the component");
        }
    }
    if info.plugin_version.is_none() {
        bail!("{wasm} is not a Portcullis plugin");
    }
    Ok(ExitCode::SUCCESS)
}

/// Pull an artifact and print its reference, manifest digest and signers;
/// the caller then prints what the component declares, as for a local
/// file.
async fn fetch(reference: &str, insecure: bool) -> Result<Vec<u8>> {
    let source = OciSource::new(oci::parse(reference)?);
    let pulled = Registry::new(&source.reference, insecure)
        .pull(&source, None, None)
        .await?;
    println!("artifact   {}", source.reference);
    println!("manifest   {}", pulled.manifest_digest);
    if pulled.signatures.is_empty() {
        println!("signers    none");
    }
    let repository = source.reference.signed_repository();
    for s in &pulled.signatures {
        let valid = match s.verify(&repository, pulled.manifest_digest.as_str()) {
            Some(0) => "valid signature, version 1: no repository or release sequence".to_owned(),
            Some(sequence) => format!("valid signature, release {sequence}"),
            None => match &s.repository {
                Some(other) if *other != repository => {
                    format!("INVALID signature here: signed for {other}")
                }
                _ => "INVALID signature".to_owned(),
            },
        };
        println!("signer     {} ({valid})", s.signer);
    }
    Ok(pulled.bytes)
}
