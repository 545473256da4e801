//! `portcullis plugin pull`: an `oci://` artifact into a file, with every
//! digest and the signature checked as a host would, and the component
//! never run. On a terminal a progress line shows the download.

use super::oci;
use anyhow::{Context, Result, bail};
use portcullis::config::Config;
use portcullis_sources::oci::{OciSource, Registry};
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// At most this many progress updates a second: a fast registry sends
/// thousands of chunks.
const PROGRESS_EVERY: Duration = Duration::from_millis(250);

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
    let mut registry = Registry::new(&source.reference, insecure);
    let terminal = std::io::stderr().is_terminal();
    if terminal {
        registry = registry.with_progress(progress_line());
    }
    let pulled = registry.pull(&source, Some(&trusted), None).await;
    if terminal {
        eprint!("\r\x1b[K");
    }
    let pulled = pulled?;
    eprintln!("downloaded {}", mib(pulled.bytes.len() as u64));
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

/// "3.2 MiB / 12.0 MiB" on one line of stderr, redrawn in place at most
/// every [`PROGRESS_EVERY`].
fn progress_line() -> portcullis_sources::oci::Progress {
    let last: Mutex<Option<Instant>> = Mutex::new(None);
    Arc::new(move |done, total| {
        let Ok(mut last) = last.lock() else { return };
        if last.is_some_and(|at| at.elapsed() < PROGRESS_EVERY) && done < total {
            return;
        }
        *last = Some(Instant::now());
        let mut stderr = std::io::stderr().lock();
        let _ = write!(stderr, "\r\x1b[Kdownloading {} / {}", mib(done), mib(total));
        let _ = stderr.flush();
    })
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}
