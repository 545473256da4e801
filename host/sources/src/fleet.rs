//! Fleet-wide plugin versions in a JetStream object store bucket.
//!
//! A bucket (default `portcullis_plugins`) holds, per plugin NAME:
//! - `NAME@sha256:HEX`: a component, stored once per content digest;
//! - `NAME.config@sha256:HEX`: a plugin configuration pushed with it;
//! - `NAME`: the manifest, a small JSON document naming the current release
//!   (digests, signer, signature) and the releases before it.
//!
//! Hosts watch the bucket and reload when a manifest they use changes. A
//! release is accepted only when an NKey listed in `[trust]
//! trusted_signers` signed its plugin name, digests and release sequence,
//! so write access to the bucket is not enough to change what a host
//! runs: nor to bring an older release back, since hosts refuse a release
//! whose sequence is below the newest they accepted (see
//! [`crate::releases`]). Rollback therefore signs the previous release
//! again, with a new sequence: it needs the seed, as a push does.

use async_nats::jetstream::{self, object_store};
use nkeys::KeyPair;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tokio::io::AsyncReadExt;

/// The bucket `plugin push` writes to when none is named.
pub const DEFAULT_BUCKET: &str = "portcullis_plugins";
/// Releases kept for rollback besides the current one.
pub const HISTORY: usize = 10;
/// A component or configuration larger than this is refused before it is
/// read whole.
pub const MAX_OBJECT_BYTES: usize = 64 << 20;
/// A read of an object that makes no progress for this long is retried.
const READ_STALL: Duration = Duration::from_millis(300);
const READ_ATTEMPTS: u32 = 5;
/// What a release signature covers is prefixed with this, so a signature
/// made for anything else never verifies as a release.
const SIGNED_PREFIX: &str = "portcullis-plugin-release-v2";
/// The prefix of version 1 releases, which signed no sequence.
const SIGNED_PREFIX_V1: &str = "portcullis-plugin-release-v1";

#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error("object store {bucket}: {message}")]
    Store { bucket: String, message: String },
    #[error("object store {bucket}: no plugin {name} has been pushed")]
    NotPushed { bucket: String, name: String },
    #[error(
        "object store {bucket}: {object} is {size} bytes, more than the {MAX_OBJECT_BYTES} allowed"
    )]
    TooLarge {
        bucket: String,
        object: String,
        size: usize,
    },
    #[error("manifest of {name} is not valid: {message}")]
    Manifest { name: String, message: String },
    #[error("release of {name} is not signed")]
    Unsigned { name: String },
    #[error("release of {name} is signed by {signer}, which is not in trusted_signers")]
    UntrustedSigner { name: String, signer: String },
    #[error("release of {name}: the signature by {signer} does not match its digests")]
    BadSignature { name: String, signer: String },
    #[error("{object}: content digest {actual} does not match the signed {expected}")]
    DigestMismatch {
        object: String,
        expected: String,
        actual: String,
    },
    #[error("plugin {name} has no previous release to roll back to")]
    NoPrevious { name: String },
    #[error("signer: {0}")]
    Signer(String),
}

/// One signed version of a plugin: what `push` wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Release {
    /// SHA-256 (hex) of the component.
    pub wasm: String,
    /// SHA-256 (hex) of the configuration pushed with it, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
    /// Public NKey of the signer.
    #[serde(default)]
    pub signer: String,
    /// Ed25519 signature over [`Release::signed_text`], base64url.
    #[serde(default)]
    pub signature: String,
    /// When it was pushed (Unix seconds).
    #[serde(default)]
    pub pushed_at: i64,
    /// Release order, signed: hosts refuse a release of this plugin whose
    /// sequence is below the newest they accepted. 0 in releases pushed
    /// by version 1, whose signatures cover no sequence.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub sequence: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// The manifest object of a plugin: the release hosts run, and earlier
/// ones for rollback (newest first).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Manifest {
    pub name: String,
    pub current: Release,
    #[serde(default)]
    pub previous: Vec<Release>,
}

impl Release {
    /// The bytes a signature covers: the plugin name, both digests and
    /// the sequence. A release without a sequence was signed by version
    /// 1, over the name and digests alone; one edited to drop its
    /// sequence no longer matches the text its signature covers.
    pub fn signed_text(&self, name: &str) -> String {
        let config = self
            .config
            .as_deref()
            .map(|c| format!("sha256:{c}"))
            .unwrap_or_else(|| "none".into());
        if self.sequence == 0 {
            return format!(
                "{SIGNED_PREFIX_V1}\nname={name}\nwasm=sha256:{}\nconfig={config}\n",
                self.wasm
            );
        }
        format!(
            "{SIGNED_PREFIX}\nname={name}\nwasm=sha256:{}\nconfig={config}\nsequence={}\n",
            self.wasm, self.sequence
        )
    }

    /// What the release delivers, for telling two releases apart: the
    /// component's digest and the configuration's, if any.
    pub fn content(&self) -> String {
        match &self.config {
            Some(config) => format!("sha256:{} config sha256:{config}", self.wasm),
            None => format!("sha256:{}", self.wasm),
        }
    }

    /// Sign this release of `name` with `signer`.
    pub fn sign(&mut self, name: &str, signer: &KeyPair) -> Result<(), FleetError> {
        let signature = signer
            .sign(self.signed_text(name).as_bytes())
            .map_err(|e| FleetError::Signer(e.to_string()))?;
        self.signer = signer.public_key();
        self.signature = data_encoding::BASE64URL_NOPAD.encode(&signature);
        Ok(())
    }

    /// Check the signature and that the signer is one of `trusted`.
    pub fn verify(&self, name: &str, trusted: &[String]) -> Result<(), FleetError> {
        if self.signer.is_empty() || self.signature.is_empty() {
            return Err(FleetError::Unsigned { name: name.into() });
        }
        if !trusted.contains(&self.signer) {
            return Err(FleetError::UntrustedSigner {
                name: name.into(),
                signer: self.signer.clone(),
            });
        }
        let bad = || FleetError::BadSignature {
            name: name.into(),
            signer: self.signer.clone(),
        };
        let key = KeyPair::from_public_key(&self.signer).map_err(|_| bad())?;
        let signature = data_encoding::BASE64URL_NOPAD
            .decode(self.signature.as_bytes())
            .map_err(|_| bad())?;
        key.verify(self.signed_text(name).as_bytes(), &signature)
            .map_err(|_| bad())
    }
}

/// Object name of a component blob.
pub fn wasm_object(name: &str, digest: &str) -> String {
    format!("{name}@sha256:{digest}")
}

/// Object name of a configuration blob.
pub fn config_object(name: &str, digest: &str) -> String {
    format!("{name}.config@sha256:{digest}")
}

/// A verified release, fetched: what a host loads.
#[derive(Debug)]
pub struct Fetched {
    pub release: Release,
    pub wasm: Vec<u8>,
    /// The configuration pushed with the release, as JSON text.
    pub config: Option<String>,
}

/// One bucket, opened.
pub struct Bucket {
    name: String,
    store: object_store::ObjectStore,
}

impl Bucket {
    /// Open `bucket`; with `create`, make it when missing (push does).
    pub async fn open(
        js: &jetstream::Context,
        bucket: &str,
        create: bool,
    ) -> Result<Bucket, FleetError> {
        let store = match js.get_object_store(bucket).await {
            Ok(store) => store,
            Err(_) if create => js
                .create_object_store(object_store::Config {
                    bucket: bucket.to_owned(),
                    description: Some("Portcullis plugin releases".into()),
                    ..Default::default()
                })
                .await
                .map_err(|e| store_error(bucket, e))?,
            Err(e) => return Err(store_error(bucket, e)),
        };
        Ok(Bucket {
            name: bucket.to_owned(),
            store,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn store(&self) -> &object_store::ObjectStore {
        &self.store
    }

    /// The manifest of plugin `name`.
    pub async fn manifest(&self, name: &str) -> Result<Manifest, FleetError> {
        let bytes = match self.read(name).await {
            Err(FleetError::Store { message, .. }) if message.contains("not found") => {
                return Err(FleetError::NotPushed {
                    bucket: self.name.clone(),
                    name: name.into(),
                });
            }
            other => other?,
        };
        let manifest: Manifest =
            serde_json::from_slice(&bytes).map_err(|e| FleetError::Manifest {
                name: name.into(),
                message: e.to_string(),
            })?;
        if manifest.name != name {
            return Err(FleetError::Manifest {
                name: name.into(),
                message: format!("it names plugin {:?}", manifest.name),
            });
        }
        Ok(manifest)
    }

    /// The current release of `name`, verified against `trusted`, with its
    /// component and configuration checked against the signed digests.
    pub async fn fetch(&self, name: &str, trusted: &[String]) -> Result<Fetched, FleetError> {
        let release = self.manifest(name).await?.current;
        release.verify(name, trusted)?;
        let wasm = self
            .read_verified(&wasm_object(name, &release.wasm), &release.wasm)
            .await?;
        let config = match &release.config {
            Some(digest) => {
                let bytes = self
                    .read_verified(&config_object(name, digest), digest)
                    .await?;
                Some(String::from_utf8(bytes).map_err(|_| FleetError::Manifest {
                    name: name.into(),
                    message: "its configuration is not UTF-8".into(),
                })?)
            }
            None => None,
        };
        Ok(Fetched {
            release,
            wasm,
            config,
        })
    }

    /// Store a component (and configuration) as the new current release of
    /// `name`, signed by `signer`; the old current one becomes the first
    /// previous release.
    pub async fn push(
        &self,
        name: &str,
        wasm: &[u8],
        config: Option<&str>,
        signer: &KeyPair,
    ) -> Result<Release, FleetError> {
        let previous: Vec<Release> = match self.manifest(name).await {
            Ok(m) => std::iter::once(m.current).chain(m.previous).collect(),
            Err(FleetError::NotPushed { .. }) => Vec::new(),
            Err(e) => return Err(e),
        };
        let mut release = Release {
            wasm: portcullis_protocol::digest::sha256_hex(wasm),
            config: config.map(|c| portcullis_protocol::digest::sha256_hex(c.as_bytes())),
            signer: String::new(),
            signature: String::new(),
            pushed_at: portcullis_protocol::time::unix_now(),
            sequence: next_sequence(&previous),
        };
        release.sign(name, signer)?;
        self.write(&wasm_object(name, &release.wasm), wasm).await?;
        if let (Some(text), Some(digest)) = (config, &release.config) {
            self.write(&config_object(name, digest), text.as_bytes())
                .await?;
        }
        self.write_manifest(Manifest {
            name: name.into(),
            current: release.clone(),
            previous,
        })
        .await?;
        Ok(release)
    }

    /// Make the previous release of `name` current again, as a new
    /// release signed by `signer`: the same component and configuration
    /// under a sequence newer than the current one's, which hosts accept
    /// (the previous release as it was signed is older than the one they
    /// run, and refused). The release rolled back from is dropped.
    pub async fn rollback(&self, name: &str, signer: &KeyPair) -> Result<Release, FleetError> {
        let manifest = self.manifest(name).await?;
        let sequence = next_sequence(
            &std::iter::once(&manifest.current)
                .chain(&manifest.previous)
                .cloned()
                .collect::<Vec<_>>(),
        );
        let mut previous = manifest.previous.into_iter();
        let Some(mut current) = previous.next() else {
            return Err(FleetError::NoPrevious { name: name.into() });
        };
        current.sequence = sequence;
        current.pushed_at = portcullis_protocol::time::unix_now();
        current.sign(name, signer)?;
        self.write_manifest(Manifest {
            name: name.into(),
            current: current.clone(),
            previous: previous.collect(),
        })
        .await?;
        Ok(current)
    }

    /// Write a manifest, keeping at most [`HISTORY`] previous releases and
    /// deleting blobs no kept release refers to.
    async fn write_manifest(&self, mut manifest: Manifest) -> Result<(), FleetError> {
        let dropped: Vec<Release> = manifest
            .previous
            .drain(HISTORY.min(manifest.previous.len())..)
            .collect();
        let text = serde_json::to_vec_pretty(&manifest).map_err(|e| FleetError::Manifest {
            name: manifest.name.clone(),
            message: e.to_string(),
        })?;
        self.write(&manifest.name, &text).await?;
        let kept: Vec<&Release> = std::iter::once(&manifest.current)
            .chain(&manifest.previous)
            .collect();
        for old in dropped {
            if !kept.iter().any(|r| r.wasm == old.wasm) {
                let _ = self
                    .store
                    .delete(wasm_object(&manifest.name, &old.wasm))
                    .await;
            }
            if let Some(c) = &old.config
                && !kept.iter().any(|r| r.config.as_ref() == Some(c))
            {
                let _ = self.store.delete(config_object(&manifest.name, c)).await;
            }
        }
        Ok(())
    }

    async fn write(&self, object: &str, bytes: &[u8]) -> Result<(), FleetError> {
        let mut reader = bytes;
        self.store
            .put(object, &mut reader)
            .await
            .map_err(|e| store_error(&self.name, e))?;
        Ok(())
    }

    /// Read a whole object. A push that replaces an object while it is
    /// being read purges the chunks the reader waits for, so a read that
    /// stalls is started again (bounded) and then sees the new version.
    async fn read(&self, object: &str) -> Result<Vec<u8>, FleetError> {
        for attempt in 1..=READ_ATTEMPTS {
            let mut found = tokio::time::timeout(READ_STALL, self.store.get(object))
                .await
                .map_err(|_| store_error(&self.name, format!("{object}: no answer")))?
                .map_err(|e| store_error(&self.name, e))?;
            let size = found.info().size;
            if size > MAX_OBJECT_BYTES {
                return Err(FleetError::TooLarge {
                    bucket: self.name.clone(),
                    object: object.into(),
                    size,
                });
            }
            // Chunks of a live object stream in; allow for large ones.
            let budget = READ_STALL + Duration::from_millis((size >> 14) as u64);
            let mut bytes = Vec::with_capacity(size);
            let mut limited = (&mut found).take(MAX_OBJECT_BYTES as u64 + 1);
            match tokio::time::timeout(budget, limited.read_to_end(&mut bytes)).await {
                Ok(Ok(_)) => return Ok(bytes),
                Ok(Err(e)) => return Err(store_error(&self.name, e)),
                Err(_) => {
                    tracing::debug!(bucket = %self.name, object, attempt, "object read stalled (replaced while read?); reading it again");
                }
            }
        }
        Err(store_error(
            &self.name,
            format!("{object}: read stalled {READ_ATTEMPTS} times"),
        ))
    }

    async fn read_verified(&self, object: &str, expected: &str) -> Result<Vec<u8>, FleetError> {
        let bytes = self.read(object).await?;
        let actual = portcullis_protocol::digest::sha256_hex(&bytes);
        if actual != expected {
            return Err(FleetError::DigestMismatch {
                object: object.into(),
                expected: expected.into(),
                actual,
            });
        }
        Ok(bytes)
    }
}

/// The sequence of a release after `releases` (the manifest's, newest
/// first): see [`crate::oci::signature::next_sequence`].
fn next_sequence(releases: &[Release]) -> u64 {
    let newest = releases.iter().map(|r| r.sequence).max().unwrap_or(0);
    crate::oci::signature::next_sequence(newest)
}

fn store_error(bucket: &str, e: impl std::fmt::Display) -> FleetError {
    FleetError::Store {
        bucket: bucket.to_owned(),
        message: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn release() -> Release {
        Release {
            wasm: "ab".repeat(32),
            config: None,
            signer: String::new(),
            signature: String::new(),
            pushed_at: 0,
            sequence: 5,
        }
    }

    #[test]
    fn a_signed_release_verifies_only_for_its_name_digests_and_trusted_signer() {
        let signer = KeyPair::new_user();
        let mut r = release();
        r.sign("users", &signer).unwrap();
        let trusted = vec![signer.public_key()];
        r.verify("users", &trusted).unwrap();

        assert!(matches!(
            r.verify("other", &trusted),
            Err(FleetError::BadSignature { .. })
        ));
        assert!(matches!(
            r.verify("users", &[KeyPair::new_user().public_key()]),
            Err(FleetError::UntrustedSigner { .. })
        ));
        let mut tampered = r.clone();
        tampered.wasm = "cd".repeat(32);
        assert!(matches!(
            tampered.verify("users", &trusted),
            Err(FleetError::BadSignature { .. })
        ));
        let mut with_config = r.clone();
        with_config.config = Some("ef".repeat(32));
        assert!(matches!(
            with_config.verify("users", &trusted),
            Err(FleetError::BadSignature { .. })
        ));
        assert!(matches!(
            release().verify("users", &trusted),
            Err(FleetError::Unsigned { .. })
        ));
        let mut garbage = r.clone();
        garbage.signature = "not base64!".into();
        assert!(matches!(
            garbage.verify("users", &trusted),
            Err(FleetError::BadSignature { .. })
        ));
    }

    #[test]
    fn the_sequence_is_signed_and_version_1_releases_still_verify() {
        let signer = KeyPair::new_user();
        let trusted = vec![signer.public_key()];
        let mut r = release();
        r.sign("users", &signer).unwrap();
        // Edited to pass as newer, or stripped to pass as version 1.
        for sequence in [6, u64::MAX, 0] {
            let edited = Release {
                sequence,
                ..r.clone()
            };
            assert!(
                matches!(
                    edited.verify("users", &trusted),
                    Err(FleetError::BadSignature { .. })
                ),
                "{sequence}"
            );
        }

        // A manifest written by version 1: no sequence field, its
        // signature over the name and digests; it loads as sequence 0.
        let mut old = Release {
            sequence: 0,
            ..release()
        };
        let text = format!(
            "{SIGNED_PREFIX_V1}\nname=users\nwasm=sha256:{}\nconfig=none\n",
            old.wasm
        );
        old.signer = signer.public_key();
        old.signature =
            data_encoding::BASE64URL_NOPAD.encode(&signer.sign(text.as_bytes()).unwrap());
        let stored = serde_json::to_string(&old).unwrap();
        assert!(!stored.contains("sequence"), "{stored}");
        let read: Release = serde_json::from_str(&stored).unwrap();
        read.verify("users", &trusted).unwrap();
        assert_eq!(read.sequence, 0);
    }

    #[test]
    fn a_new_release_is_newer_than_every_release_in_the_manifest() {
        let ahead = portcullis_protocol::time::unix_now_ms() as u64 + 60_000;
        let releases = [
            Release {
                sequence: ahead,
                ..release()
            },
            release(),
        ];
        assert_eq!(next_sequence(&releases), ahead + 1);
        assert!(next_sequence(&[]) > 1_700_000_000_000);
    }

    #[test]
    fn signing_errors_never_carry_the_seed() {
        let signer = KeyPair::new_user();
        let seed = signer.seed().unwrap();
        let mut r = release();
        r.sign("users", &signer).unwrap();
        let text = serde_json::to_string(&r).unwrap();
        assert!(!text.contains(&seed));
    }
}
