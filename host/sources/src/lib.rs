//! Where a plugin's component comes from. Every source yields the same
//! thing (bytes, their digest, who signed them, and a configuration if the
//! release carries one), so trust, the compile cache and the swap path are
//! shared and a new source never re-implements them.
//!
//! Owns: local files, releases in a JetStream object store ([`fleet`]) and
//! OCI registries ([`oci`]), with their signatures and caches, and the
//! newest release accepted from each ([`releases`]). Built from
//! the values it needs (a cache directory, the trusted signers, a NATS
//! client), never from the server's configuration, and must never depend
//! on wasmtime: fetching changes for registries and credentials, running
//! for the runtime, and the two move at different speeds.

pub mod fleet;
pub mod oci;
pub mod releases;

use crate::fleet::{Bucket, FleetError};
use crate::oci::{OCI_SCHEME, OciCache, OciError, OciRef, OciSource};
use crate::releases::{ReleaseError, ReleaseLog};
use async_nats::jetstream;
use std::fmt;
use std::path::{Path, PathBuf};

/// URL scheme of plugins stored in a JetStream object store bucket.
pub const OBJECT_SCHEME: &str = "nats-object://";

/// A `[[plugins]] wasm` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PluginSource {
    /// A local file, watched for changes.
    File(PathBuf),
    /// The current release of `name` in a JetStream object store bucket
    /// (`nats-object://BUCKET/NAME`), watched for new releases.
    Object { bucket: String, name: String },
    /// A component in an OCI registry (`oci://REGISTRY/REPO:TAG` or
    /// `...@sha256:DIGEST`); tags are re-resolved on reload.
    Oci(OciSource),
}

impl Default for PluginSource {
    fn default() -> Self {
        PluginSource::File(PathBuf::new())
    }
}

impl PluginSource {
    /// Parse a `wasm` value; relative file paths are resolved against `base`.
    pub fn parse(text: &str, base: &Path) -> Result<PluginSource, String> {
        if text.starts_with(OCI_SCHEME) {
            return OciRef::parse(text).map(|r| PluginSource::Oci(OciSource::new(r)));
        }
        let Some(rest) = text.strip_prefix(OBJECT_SCHEME) else {
            return Ok(PluginSource::File(base.join(text)));
        };
        let valid = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        };
        match rest.split_once('/') {
            Some((bucket, name)) if valid(bucket) && valid(name) => Ok(PluginSource::Object {
                bucket: bucket.into(),
                name: name.into(),
            }),
            _ => Err(format!(
                "{text:?} is not {OBJECT_SCHEME}BUCKET/NAME (letters, digits, '-', '_', '.')"
            )),
        }
    }

    /// The file to watch, for local sources.
    pub fn file(&self) -> Option<&Path> {
        match self {
            PluginSource::File(path) => Some(path),
            PluginSource::Object { .. } | PluginSource::Oci(_) => None,
        }
    }

    /// The OCI source, if this is one.
    pub fn oci(&self) -> Option<&OciSource> {
        match self {
            PluginSource::Oci(oci) => Some(oci),
            _ => None,
        }
    }
}

impl fmt::Display for PluginSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PluginSource::File(path) => write!(f, "{}", path.display()),
            PluginSource::Object { bucket, name } => write!(f, "{OBJECT_SCHEME}{bucket}/{name}"),
            PluginSource::Oci(oci) => write!(f, "{}", oci.reference),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{source_url} needs a NATS connection with JetStream")]
    NoNats { source_url: String },
    #[error(transparent)]
    Fleet(#[from] FleetError),
    #[error(transparent)]
    Oci(#[from] OciError),
    #[error(transparent)]
    Release(#[from] ReleaseError),
}

/// A component as a source delivered it.
#[derive(Debug)]
pub struct Fetched {
    pub bytes: Vec<u8>,
    /// SHA-256 of `bytes`, hex.
    pub digest: String,
    /// Public NKey that signed this version (remote sources).
    pub signer: Option<String>,
    /// Configuration shipped with this version; it replaces the plugin's
    /// `config` / `config_file`.
    pub config: Option<String>,
}

/// What fetching needs: JetStream for object store sources, a cache for
/// registry pulls, the keys whose signatures make a remote version
/// acceptable, and the newest release accepted from each remote source.
#[derive(Clone, Default)]
pub struct Sources {
    jetstream: Option<jetstream::Context>,
    trusted_signers: Vec<String>,
    oci_cache: Option<OciCache>,
    /// Shared by clones, so a reload compares with what the host runs.
    releases: ReleaseLog,
}

impl Sources {
    /// Local files only (benchmarks that load components from disk).
    pub fn local() -> Sources {
        Sources::default()
    }

    /// Files and registries: remote versions must be signed by one of
    /// `trusted_signers`; registry pulls are cached, and the newest
    /// release of each remote source remembered, under `cache_dir`
    /// (without one, for the life of the process). Object store buckets
    /// need [`Sources::with_nats`].
    pub fn new(cache_dir: Option<&Path>, trusted_signers: Vec<String>) -> Sources {
        let oci_cache = cache_dir.and_then(|dir| match OciCache::new(dir) {
            Ok(cache) => Some(cache),
            Err(why) => {
                tracing::warn!(reason = %why, "registry pull cache not used, every load asks the registry");
                None
            }
        });
        Sources {
            jetstream: None,
            trusted_signers,
            oci_cache,
            releases: ReleaseLog::new(cache_dir),
        }
    }

    /// Also reach object store buckets through `client`.
    pub fn with_nats(self, client: async_nats::Client) -> Sources {
        Sources {
            jetstream: Some(jetstream::new(client)),
            ..self
        }
    }

    /// Remove the registry pulls no reference names any more once they
    /// are `max_age` old (see [`OciCache::prune`]), and log what went.
    pub fn prune_cache(&self, max_age: std::time::Duration) {
        let Some(cache) = &self.oci_cache else {
            return;
        };
        portcullis_protocol::files::Pruned::log(
            cache.prune(max_age),
            "registry pull cache",
            max_age,
        );
    }

    pub fn jetstream(&self) -> Option<&jetstream::Context> {
        self.jetstream.as_ref()
    }

    pub async fn fetch(&self, source: &PluginSource) -> Result<Fetched, SourceError> {
        match source {
            PluginSource::File(path) => {
                let bytes = tokio::fs::read(path)
                    .await
                    .map_err(|source| SourceError::Read {
                        path: path.clone(),
                        source,
                    })?;
                Ok(Fetched {
                    digest: portcullis_protocol::digest::sha256_hex(&bytes),
                    bytes,
                    signer: None,
                    config: None,
                })
            }
            PluginSource::Object { bucket, name } => {
                let js = self.jetstream.as_ref().ok_or_else(|| SourceError::NoNats {
                    source_url: source.to_string(),
                })?;
                let fetched = Bucket::open(js, bucket, false)
                    .await?
                    .fetch(name, &self.trusted_signers)
                    .await?;
                let release = &fetched.release;
                self.releases
                    .accept(&source.to_string(), release.sequence, &release.content(), || {
                        format!(
                            "To run an older release on purpose, release it anew: `portcullis plugin rollback {name} --bucket {bucket} --signer SEED` signs the one before the current release again, `portcullis plugin push` any other."
                        )
                    })?;
                Ok(Fetched {
                    digest: fetched.release.wasm,
                    bytes: fetched.wasm,
                    signer: Some(fetched.release.signer),
                    config: fetched.config,
                })
            }
            PluginSource::Oci(oci) => {
                let pulled =
                    crate::oci::fetch(oci, &self.trusted_signers, self.oci_cache.as_ref()).await?;
                // Pinned references chose their release; an unsigned one
                // (allow_unsigned) has no signed order to check.
                if let (Some(origin), Some(_)) = (oci.reference.release_source(), &pulled.signer) {
                    let digest = &pulled.manifest_digest;
                    self.releases
                        .accept(&origin, pulled.sequence, digest.as_str(), || {
                            format!(
                                "To run it on purpose, pin it by digest ({}) or sign it as a new release: `portcullis plugin sign {} --signer SEED`.",
                                oci.reference.pinned(digest),
                                oci.reference
                            )
                        })?;
                }
                Ok(Fetched {
                    digest: pulled.component_sha256().to_owned(),
                    bytes: pulled.bytes,
                    signer: pulled.signer,
                    config: None,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wasm_values_are_files_or_object_store_entries() {
        let base = Path::new("/etc/portcullis");
        assert_eq!(
            PluginSource::parse("plugins/u.wasm", base).unwrap(),
            PluginSource::File("/etc/portcullis/plugins/u.wasm".into())
        );
        let object = PluginSource::parse("nats-object://portcullis_plugins/users", base).unwrap();
        assert_eq!(
            object,
            PluginSource::Object {
                bucket: "portcullis_plugins".into(),
                name: "users".into()
            }
        );
        assert_eq!(object.to_string(), "nats-object://portcullis_plugins/users");
        for bad in [
            "nats-object://",
            "nats-object://bucket",
            "nats-object://bucket/",
            "nats-object:///name",
            "nats-object://b/n/extra",
            "nats-object://b*/n",
        ] {
            assert!(PluginSource::parse(bad, base).is_err(), "{bad}");
        }
    }
}
