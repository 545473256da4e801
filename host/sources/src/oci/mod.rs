//! OCI registries as a plugin source (`wasm = "oci://REGISTRY/REPO:TAG"`).
//!
//! Components are CNCF Wasm OCI artifacts (one `application/wasm` layer,
//! as `wkg oci push` writes them). Every digest a registry sends is parsed
//! as a [`Digest`] before it is used for anything, because digests name
//! cache files: a manifest naming its layer `sha256:/etc/passwd` is
//! refused, not joined onto a path. A pull checks, in order: the manifest
//! against a pinned digest, the declared layer size against `max_size`
//! (before any byte of it is fetched, and again while streaming), the
//! layer bytes against the layer digest, and the signatures over the
//! manifest digest and repository against `[trust] trusted_signers`.
//! Only then are the bytes handed to the load path shared with the other
//! sources, which also refuses a tag whose release is older than the
//! newest one accepted from it (see [`crate::releases`]).
//!
//! Pulled components are kept in [`cache::OciCache`]; when the registry
//! cannot be reached, the digest a tag last resolved to is used (and the
//! log says so), and a pinned digest is served from the cache without
//! asking the registry at all. What the cache holds is checked as a pull
//! is (see its module docs): a cached pull that fails a check is refused
//! when the registry is unreachable, and replaced when it is not.

pub mod artifact;
pub mod auth;
pub mod cache;
pub mod reference;
pub mod signature;

pub use cache::{CacheRefusal, OciCache};
pub use reference::{OCI_SCHEME, OciRef};
pub use signature::{Signature, TrustError, Vouched};

use futures::StreamExt;
use oci_client::client::{BlobResponse, ClientConfig, ClientProtocol};
use oci_client::errors::OciDistributionError;
use oci_client::manifest::{OciDescriptor, OciImageManifest};
use portcullis_protocol::digest::{Digest, DigestError};
use std::time::{Duration, Instant, SystemTime};

/// Largest component pulled unless a plugin says otherwise.
pub const DEFAULT_MAX_SIZE: u64 = 64 * 1024 * 1024;
/// Signature artifacts are small; bound what a registry can make us read.
const MAX_SIGNATURE_LAYERS: usize = 16;
const MAX_SIGNATURE_SIZE: i64 = 16 * 1024;
/// Largest manifest read back from the cache: the size registries must
/// accept, far above a one-layer artifact's few hundred bytes.
const MAX_MANIFEST_SIZE: u64 = 4 * 1024 * 1024;
const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
/// `{}`, the OCI empty descriptor's content.
const EMPTY_CONFIG: &[u8] = b"{}";

/// A `[[plugins]]` entry whose `wasm` is an `oci://` reference.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OciSource {
    pub reference: OciRef,
    /// Plain HTTP to a registry that is not on loopback.
    pub insecure: bool,
    /// Load artifacts without a trusted signature (warned at every load).
    pub allow_unsigned: bool,
    pub max_size: u64,
}

impl OciSource {
    pub fn new(reference: OciRef) -> OciSource {
        OciSource {
            reference,
            insecure: false,
            allow_unsigned: false,
            max_size: DEFAULT_MAX_SIZE,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum OciError {
    #[error("{reference}: registry unreachable ({reason}), and no earlier pull of it is cached")]
    Unreachable { reference: String, reason: String },
    #[error(
        "{reference}: registry unreachable ({reason}), and its cached pull is refused: {refused}"
    )]
    CacheRefused {
        reference: String,
        reason: String,
        refused: CacheRefusal,
    },
    #[error("{reference}: registry: {reason}")]
    Registry { reference: String, reason: String },
    #[error("{reference}: not a Wasm component artifact: {reason}")]
    NotWasm { reference: String, reason: String },
    #[error(
        "{reference}: the component is {size} bytes, over max_size ({max} bytes); not downloaded"
    )]
    TooLarge {
        reference: String,
        size: u64,
        max: u64,
    },
    #[error("{reference}: refused: the {what} digest {refused}")]
    BadDigest {
        reference: String,
        what: &'static str,
        refused: DigestError,
    },
    #[error("{reference}: {what} digest mismatch: expected {expected}, got {actual}")]
    Digest {
        reference: String,
        what: &'static str,
        expected: String,
        actual: String,
    },
    #[error("{reference}: refused: {source}")]
    Trust {
        reference: String,
        #[source]
        source: TrustError,
    },
    #[error("{reference}: {reason}")]
    Push { reference: String, reason: String },
}

/// A component pulled and verified.
pub struct Pulled {
    pub bytes: Vec<u8>,
    /// The component layer's digest, which `bytes` were checked against
    /// (downloaded or read back from the cache).
    pub layer_digest: Digest,
    /// The manifest's digest: what signatures cover.
    pub manifest_digest: Digest,
    /// The trusted signer, `None` for an unsigned artifact that was
    /// allowed (or, for [`Registry::inspect`], not checked).
    pub signer: Option<String>,
    /// The newest release sequence a trusted signer gave this manifest
    /// in this repository (0: unsigned, unchecked or signed by version 1).
    pub sequence: u64,
    pub signatures: Vec<Signature>,
    /// Served from the local cache rather than the registry.
    pub from_cache: bool,
}

impl Pulled {
    /// SHA-256 of `bytes`, lower-case hex, from the layer digest they were
    /// verified against: no second pass over a component of many megabytes.
    pub fn component_sha256(&self) -> &str {
        self.layer_digest.hex()
    }
}

impl std::fmt::Debug for Pulled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pulled")
            .field("bytes", &self.bytes.len())
            .field("layer_digest", &self.layer_digest)
            .field("manifest_digest", &self.manifest_digest)
            .field("signer", &self.signer)
            .field("sequence", &self.sequence)
            .field("signatures", &self.signatures.len())
            .field("from_cache", &self.from_cache)
            .finish()
    }
}

/// Whether an error means "could not talk to the registry" (so a cached
/// pull may stand in) rather than "the registry said no".
fn is_unreachable(e: &OciDistributionError) -> bool {
    match e {
        OciDistributionError::RequestError(e) => e.is_connect() || e.is_timeout() || e.is_request(),
        OciDistributionError::ServerError { code, .. } => *code >= 500,
        OciDistributionError::IoError(_) => true,
        _ => false,
    }
}

/// Plain HTTP only for loopback registries, or when the plugin says
/// `insecure = true`.
fn plain_http(reference: &OciRef, insecure: bool) -> bool {
    insecure || reference.is_loopback()
}

/// Credentials only where nobody on the path can read them: HTTPS, or
/// loopback (`insecure = true` to another host is plain HTTP).
fn may_send_credentials(reference: &OciRef, insecure: bool) -> bool {
    !plain_http(reference, insecure) || reference.is_loopback()
}

/// `found` (the credentials for the registry of `reference`), unless
/// they may not be sent there.
fn credentials_for(
    reference: &OciRef,
    insecure: bool,
    found: Option<auth::Credentials>,
) -> Option<auth::Credentials> {
    let creds = found?;
    if !may_send_credentials(reference, insecure) {
        tracing::warn!(
            registry = %reference.registry,
            "registry credentials not sent: insecure = true is plain HTTP, and the registry is not on loopback"
        );
        return None;
    }
    Some(creds)
}

/// Told, as a component layer downloads, the bytes received so far and
/// the size the manifest declares.
pub type Progress = std::sync::Arc<dyn Fn(u64, u64) + Send + Sync>;

/// A connection to the registry of one reference.
pub struct Registry {
    client: oci_client::Client,
    reference: OciRef,
    insecure: bool,
    /// Looked up on first use: a credential helper is a process to run.
    auth: tokio::sync::OnceCell<oci_client::secrets::RegistryAuth>,
    /// Whom to tell how a layer download advances (`plugin pull`'s
    /// progress line); hosts set none.
    progress: Option<Progress>,
}

impl Registry {
    /// Loopback registries (and others with `insecure`) are reached over
    /// plain HTTP; every other registry over HTTPS. Credentials for this
    /// registry (see [`auth`]) are sent only where
    /// [`may_send_credentials`] allows.
    pub fn new(reference: &OciRef, insecure: bool) -> Registry {
        // reqwest is built without a default rustls provider (see the
        // workspace Cargo.toml); ring is the one async-nats uses.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let protocol = if plain_http(reference, insecure) {
            ClientProtocol::HttpsExcept(vec![reference.registry.clone()])
        } else {
            ClientProtocol::Https
        };
        let client = oci_client::Client::new(ClientConfig {
            protocol,
            connect_timeout: Some(Duration::from_secs(5)),
            read_timeout: Some(Duration::from_secs(30)),
            platform_resolver: None,
            no_proxy: Some("localhost,127.0.0.1,::1".into()),
            ..Default::default()
        });
        Registry {
            client,
            reference: reference.clone(),
            insecure,
            auth: tokio::sync::OnceCell::new(),
            progress: None,
        }
    }

    /// Report each chunk of a component download to `progress`.
    pub fn with_progress(mut self, progress: Progress) -> Registry {
        self.progress = Some(progress);
        self
    }

    /// How to log in to this registry: its credentials (see [`auth`]),
    /// where [`may_send_credentials`] allows them, else anonymously.
    async fn auth(&self) -> &oci_client::secrets::RegistryAuth {
        self.auth
            .get_or_init(|| async {
                let found = auth::lookup(&self.reference.registry).await;
                let creds = credentials_for(&self.reference, self.insecure, found);
                auth::Credentials::registry_auth(creds.as_ref())
            })
            .await
    }

    fn error(&self, reference: &OciRef, e: OciDistributionError) -> OciError {
        let reason = e.to_string();
        if is_unreachable(&e) {
            OciError::Unreachable {
                reference: reference.to_string(),
                reason,
            }
        } else {
            OciError::Registry {
                reference: reference.to_string(),
                reason,
            }
        }
    }

    /// The manifest `reference` names, its raw bytes and digest.
    pub async fn resolve(
        &self,
        reference: &OciRef,
    ) -> Result<(OciImageManifest, bytes::Bytes, Digest), OciError> {
        let (raw, _) = self
            .client
            .pull_manifest_raw(&reference.client_ref(), self.auth().await, &[OCI_MANIFEST])
            .await
            .map_err(|e| self.error(reference, e))?;
        let digest = Digest::of(&raw);
        if let Some(pinned) = &reference.digest
            && *pinned != digest
        {
            return Err(OciError::Digest {
                reference: reference.to_string(),
                what: "manifest",
                expected: pinned.to_string(),
                actual: digest.to_string(),
            });
        }
        let manifest: OciImageManifest =
            serde_json::from_slice(&raw).map_err(|e| OciError::NotWasm {
                reference: reference.to_string(),
                reason: format!("manifest: {e}"),
            })?;
        Ok((manifest, raw, digest))
    }

    /// Download one layer, never more than `max` bytes, and check it
    /// against its digest.
    async fn pull_layer(
        &self,
        reference: &OciRef,
        layer: &OciDescriptor,
        digest: &Digest,
        max: u64,
    ) -> Result<Vec<u8>, OciError> {
        let too_large = |size| OciError::TooLarge {
            reference: reference.to_string(),
            size,
            max,
        };
        // Unverified stream: the digest is checked below with our own
        // error, after the size bound has had its say.
        let response = self
            .client
            .pull_blob_stream_partial(&reference.client_ref(), layer, 0, None)
            .await
            .map_err(|e| self.error(reference, e))?;
        let mut stream = match response {
            BlobResponse::Full(s) | BlobResponse::Partial(s) => s,
        };
        if let Some(length) = stream.content_length
            && length > max
        {
            return Err(too_large(length));
        }
        let declared = u64::try_from(layer.size).unwrap_or(0);
        let mut bytes = Vec::with_capacity(declared.min(max) as usize);
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| OciError::Unreachable {
                reference: reference.to_string(),
                reason: e.to_string(),
            })?;
            let total = (bytes.len() + chunk.len()) as u64;
            if total > max {
                return Err(too_large(total));
            }
            if total > declared {
                return Err(OciError::Digest {
                    reference: reference.to_string(),
                    what: "component layer",
                    expected: format!("{digest} ({declared} bytes)"),
                    actual: format!("more than {declared} bytes"),
                });
            }
            bytes.extend_from_slice(&chunk);
            if let Some(progress) = &self.progress {
                progress(total, declared);
            }
        }
        let actual = Digest::of(&bytes);
        if actual != *digest {
            return Err(OciError::Digest {
                reference: reference.to_string(),
                what: "component layer",
                expected: digest.to_string(),
                actual: actual.to_string(),
            });
        }
        Ok(bytes)
    }

    /// Every signature the registry holds for `manifest_digest`: OCI 1.1
    /// referrers, our `sha256-HEX.portcullis-sig` tag, and (this version
    /// only) the `sha256-HEX.sig` tag earlier versions wrote.
    pub async fn signatures(
        &self,
        reference: &OciRef,
        manifest_digest: &Digest,
    ) -> Result<Vec<Signature>, OciError> {
        let mut artifacts: Vec<OciImageManifest> = Vec::new();
        let subject = reference.pinned(manifest_digest);
        match self
            .client
            .pull_referrers(&subject.client_ref(), Some(signature::SIGNATURE_MEDIA_TYPE))
            .await
        {
            Ok(index) => {
                for entry in index.manifests.iter().take(MAX_SIGNATURE_LAYERS) {
                    if entry.artifact_type.as_deref() != Some(signature::SIGNATURE_MEDIA_TYPE) {
                        continue;
                    }
                    let Ok(digest) = Digest::parse(&entry.digest) else {
                        tracing::warn!(%reference, "referrer with a malformed digest skipped");
                        continue;
                    };
                    if let Ok((manifest, _, _)) = self.resolve(&reference.pinned(&digest)).await {
                        artifacts.push(manifest);
                    }
                }
            }
            Err(e) if is_unreachable(&e) => return Err(self.error(reference, e)),
            Err(e) => tracing::debug!(%reference, error = %e, "no referrers API"),
        }
        for tag in [
            signature::signature_tag(manifest_digest.as_str()),
            signature::legacy_signature_tag(manifest_digest.as_str()),
        ] {
            match self.resolve(&reference.with_tag(&tag)).await {
                Ok((manifest, _, _)) => artifacts.push(manifest),
                Err(e @ OciError::Unreachable { .. }) => return Err(e),
                Err(e) => tracing::debug!(%reference, %tag, error = %e, "no signature tag"),
            }
        }
        let mut found: Vec<Signature> = Vec::new();
        for artifact in &artifacts {
            for layer in artifact.layers.iter().take(MAX_SIGNATURE_LAYERS) {
                if layer.media_type != signature::SIGNATURE_MEDIA_TYPE
                    || layer.size > MAX_SIGNATURE_SIZE
                {
                    continue;
                }
                if Digest::parse(&layer.digest).is_err() {
                    tracing::warn!(%reference, "signature layer with a malformed digest skipped");
                    continue;
                }
                let mut blob = Vec::new();
                if let Err(e) = self
                    .client
                    .pull_blob(&reference.client_ref(), layer, &mut blob)
                    .await
                {
                    tracing::warn!(%reference, error = %e, "unreadable signature blob skipped");
                    continue;
                }
                match serde_json::from_slice::<Signature>(&blob) {
                    Ok(s) if !found.contains(&s) => found.push(s),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(%reference, error = %e, "malformed signature skipped"),
                }
            }
        }
        Ok(found)
    }

    /// Pull `source` from the registry, verified as the module docs say;
    /// `trusted = None` skips the trust check (inspect, pull without a
    /// trust list).
    pub async fn pull(
        &self,
        source: &OciSource,
        trusted: Option<&[String]>,
        cache: Option<&OciCache>,
    ) -> Result<Pulled, OciError> {
        let reference = &source.reference;
        let (manifest, raw_manifest, manifest_digest) = self.resolve(reference).await?;
        let (layer, layer_digest) =
            component_layer(&manifest, source.max_size).map_err(|e| e.at(reference))?;
        let cached = match cache.map(|c| c.blob(&layer_digest, source.max_size)) {
            Some(Ok(bytes)) => bytes,
            Some(Err(refused)) => {
                tracing::warn!(%reference, reason = %refused, "cached component refused; downloading it again");
                None
            }
            None => None,
        };
        let from_cache = cached.is_some();
        let bytes = match cached {
            Some(bytes) => bytes,
            None => {
                self.pull_layer(reference, layer, &layer_digest, source.max_size)
                    .await?
            }
        };
        let signatures = self.signatures(reference, &manifest_digest).await?;
        let vouched = match trusted {
            Some(trusted) => judge(source, &manifest_digest, &signatures, trusted)?,
            None => None,
        };
        if let Some(cache) = cache {
            let record = cache::Resolved {
                reference: reference.to_string(),
                manifest: manifest_digest.clone(),
                layer: layer_digest.clone(),
                size: bytes.len() as u64,
                signatures: signatures.clone(),
                resolved_at: portcullis_protocol::time::unix_now().max(0) as u64,
            };
            // The manifest too: an offline start reads the layer's digest
            // from it, never from the record alone.
            if let Err(e) = cache
                .put_blob(&manifest_digest, &raw_manifest)
                .and_then(|()| cache.put_blob(&layer_digest, &bytes))
                .and_then(|()| cache.put_record(&record))
            {
                tracing::warn!(%reference, error = %e, "cannot cache the pulled component");
            }
        }
        Ok(Pulled {
            bytes,
            layer_digest,
            manifest_digest,
            signer: vouched.as_ref().map(|v| v.signer.clone()),
            sequence: vouched.map_or(0, |v| v.sequence),
            signatures,
            from_cache,
        })
    }

    /// The newest release sequence signed for what `reference` names now
    /// (0 if it names nothing yet): a new release of it must be newer.
    /// Any key's valid signature counts, trusted or not: this only picks
    /// the next number, and [`signature::next_sequence`] bounds how far
    /// ahead a planted one can push it.
    pub async fn newest_sequence(&self, reference: &OciRef) -> Result<u64, OciError> {
        let manifest = match self.resolve(reference).await {
            Ok((_, _, digest)) => digest,
            Err(OciError::Registry { .. }) => return Ok(0),
            Err(e) => return Err(e),
        };
        let repository = reference.signed_repository();
        Ok(self
            .signatures(reference, &manifest)
            .await?
            .iter()
            .filter_map(|s| s.verify(&repository, manifest.as_str()))
            .max()
            .unwrap_or(0))
    }

    /// Push a component as a Wasm OCI artifact; the manifest digest.
    pub async fn push_component(
        &self,
        reference: &OciRef,
        component: Vec<u8>,
    ) -> Result<Digest, OciError> {
        let push_error = |reason: String| OciError::Push {
            reference: reference.to_string(),
            reason,
        };
        let layer = Digest::of(&component);
        let config = artifact::component_config(&component, &layer, SystemTime::now())
            .map_err(|e| push_error(format!("not a component: {e}")))?;
        let config_digest = Digest::of(&config);
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {
                "mediaType": artifact::CONFIG_MEDIA_TYPE,
                "digest": config_digest,
                "size": config.len(),
            },
            "layers": [{
                "mediaType": artifact::LAYER_MEDIA_TYPE,
                "digest": layer,
                "size": component.len(),
            }],
        });
        let target = reference.client_ref();
        // Blob and manifest pushes only send the credentials the client
        // already holds for the registry, and an unsigned push makes no
        // request before these that would have handed them over.
        self.client
            .store_auth_if_needed(target.resolve_registry(), self.auth().await)
            .await;
        for (blob, digest) in [(component, &layer), (config, &config_digest)] {
            self.client
                .push_blob(&target, blob, digest.as_str())
                .await
                .map_err(|e| push_error(format!("push failed: {e}")))?;
        }
        let raw = serde_json::to_vec(&manifest).expect("a manifest serializes");
        let digest = Digest::of(&raw);
        self.client
            .push_manifest_raw(
                &target,
                raw,
                OCI_MANIFEST.parse().expect("a valid header value"),
            )
            .await
            .map_err(|e| push_error(format!("push failed: {e}")))?;
        Ok(digest)
    }

    /// Store `signature` for the manifest `reference` resolves to, beside
    /// the signatures other keys made (one layer per signer).
    pub async fn push_signature(
        &self,
        reference: &OciRef,
        signature: &Signature,
    ) -> Result<(), OciError> {
        let push_error = |e: OciDistributionError| OciError::Push {
            reference: reference.to_string(),
            reason: format!("cannot store the signature: {e}"),
        };
        let manifest =
            Digest::parse(&signature.manifest).map_err(|refused| OciError::BadDigest {
                reference: reference.to_string(),
                what: "signed manifest",
                refused,
            })?;
        let subject = reference.pinned(&manifest);
        let (_, subject_raw, _) = self.resolve(&subject).await?;
        let mut signatures: Vec<Signature> = self
            .signatures(reference, &manifest)
            .await?
            .into_iter()
            .filter(|s| s.signer != signature.signer)
            .collect();
        signatures.push(signature.clone());
        let target = reference.with_tag(&signature::signature_tag(manifest.as_str()));
        let mut layers = Vec::new();
        for s in &signatures {
            let blob = serde_json::to_vec(s).expect("a signature serializes");
            let digest = Digest::of(&blob);
            self.client
                .push_blob(&target.client_ref(), blob.clone(), digest.as_str())
                .await
                .map_err(push_error)?;
            layers.push(serde_json::json!({
                "mediaType": signature::SIGNATURE_MEDIA_TYPE,
                "digest": digest,
                "size": blob.len(),
                "annotations": { "dev.portcullis.signer": s.signer },
            }));
        }
        let config_digest = Digest::of(EMPTY_CONFIG);
        self.client
            .push_blob(
                &target.client_ref(),
                EMPTY_CONFIG.to_vec(),
                config_digest.as_str(),
            )
            .await
            .map_err(push_error)?;
        let manifest = serde_json::json!({
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "artifactType": signature::SIGNATURE_MEDIA_TYPE,
            "config": {
                "mediaType": signature::EMPTY_CONFIG_MEDIA_TYPE,
                "digest": config_digest,
                "size": EMPTY_CONFIG.len(),
            },
            "layers": layers,
            "subject": {
                "mediaType": OCI_MANIFEST,
                "digest": manifest,
                "size": subject_raw.len(),
            },
        });
        let raw = serde_json::to_vec(&manifest).expect("a manifest serializes");
        let digest = Digest::of(&raw);
        let push_raw = async |at: &OciRef| {
            self.client
                .push_manifest_raw(
                    &at.client_ref(),
                    raw.clone(),
                    OCI_MANIFEST.parse().expect("a valid header value"),
                )
                .await
                .map_err(push_error)
        };
        // Pushed by digest first: a registry with the referrers API then
        // lists it under its subject and no tag is needed. The client falls
        // back to the referrers tag schema by itself, so support is judged
        // by whether the artifact is listed, not by whether the call worked.
        push_raw(&reference.pinned(&digest)).await?;
        let listed = self
            .client
            .pull_referrers(&subject.client_ref(), Some(signature::SIGNATURE_MEDIA_TYPE))
            .await
            .is_ok_and(|index| index.manifests.iter().any(|m| m.digest == digest.as_str()));
        if !listed {
            push_raw(&target).await?;
        }
        Ok(())
    }
}

/// Why a manifest is not a component artifact this host takes.
#[derive(Debug)]
enum LayerError {
    NotWasm(String),
    TooLarge { size: u64, max: u64 },
    BadDigest(DigestError),
}

impl LayerError {
    fn at(self, reference: &OciRef) -> OciError {
        let reference = reference.to_string();
        match self {
            LayerError::NotWasm(reason) => OciError::NotWasm { reference, reason },
            LayerError::TooLarge { size, max } => OciError::TooLarge {
                reference,
                size,
                max,
            },
            LayerError::BadDigest(refused) => OciError::BadDigest {
                reference,
                what: "component layer",
                refused,
            },
        }
    }

    /// Why, for a manifest read back from the cache.
    fn reason(self) -> String {
        match self {
            LayerError::NotWasm(reason) => format!("not a Wasm component artifact: {reason}"),
            LayerError::TooLarge { size, max } => {
                format!("the component is {size} bytes, over max_size ({max} bytes)")
            }
            LayerError::BadDigest(refused) => format!("the component layer digest {refused}"),
        }
    }
}

/// The one `application/wasm` layer of a component artifact, and its
/// digest, parsed before anything (the cache, a blob URL) uses it.
fn component_layer(
    manifest: &OciImageManifest,
    max: u64,
) -> Result<(&OciDescriptor, Digest), LayerError> {
    let [layer] = manifest.layers.as_slice() else {
        return Err(LayerError::NotWasm(format!(
            "{} layers, a component has exactly one",
            manifest.layers.len()
        )));
    };
    if layer.media_type != artifact::LAYER_MEDIA_TYPE {
        return Err(LayerError::NotWasm(format!(
            "layer type {:?}, expected {}",
            layer.media_type,
            artifact::LAYER_MEDIA_TYPE
        )));
    }
    let digest = Digest::parse(&layer.digest).map_err(LayerError::BadDigest)?;
    let size =
        u64::try_from(layer.size).map_err(|_| LayerError::NotWasm("negative layer size".into()))?;
    if size > max {
        return Err(LayerError::TooLarge { size, max });
    }
    Ok((layer, digest))
}

/// The trust decision for one artifact: the trusted signer and release
/// sequence, `None` when unsigned artifacts are allowed for this plugin,
/// or why it is refused.
fn judge(
    source: &OciSource,
    manifest_digest: &Digest,
    signatures: &[Signature],
    trusted: &[String],
) -> Result<Option<Vouched>, OciError> {
    let repository = source.reference.signed_repository();
    match signature::check(signatures, &repository, manifest_digest.as_str(), trusted) {
        Ok(vouched) => Ok(Some(vouched)),
        Err(why) if source.allow_unsigned => {
            tracing::warn!(
                reference = %source.reference,
                reason = %why,
                "loading an artifact without a trusted signature: allow_unsigned = true"
            );
            Ok(None)
        }
        Err(source_error) => Err(OciError::Trust {
            reference: source.reference.to_string(),
            source: source_error,
        }),
    }
}

/// Fetch for the load path: a pinned digest already cached is served
/// without the network; otherwise the registry is asked, and if it cannot
/// be reached the last pull of this reference stands in (and is logged).
pub async fn fetch(
    source: &OciSource,
    trusted: &[String],
    cache: Option<&OciCache>,
) -> Result<Pulled, OciError> {
    let started = Instant::now();
    let reference = &source.reference;
    let mut refused = None;
    if reference.digest.is_some() {
        match from_cache(source, cache) {
            Ok(Some(pulled)) => {
                tracing::debug!(%reference, "pinned digest served from the local cache");
                return judged(source, trusted, pulled);
            }
            Ok(None) => {}
            Err(why) => {
                tracing::warn!(%reference, reason = %why, "cached pull refused; asking the registry");
                refused = Some(why);
            }
        }
    }
    // A refresh that finds the same digest is routine: logged at debug.
    let previous = cache
        .and_then(|c| c.record(&reference.to_string()).ok().flatten())
        .map(|record| record.manifest);
    let registry = Registry::new(reference, source.insecure);
    let pulled = match registry.pull(source, Some(trusted), cache).await {
        Ok(pulled) => pulled,
        Err(OciError::Unreachable { reason, .. }) => {
            let cached = match refused {
                Some(why) => Err(why),
                None => from_cache(source, cache),
            };
            match cached {
                Ok(Some(pulled)) => {
                    let pulled = judged(source, trusted, pulled)?;
                    tracing::warn!(
                        %reference,
                        manifest = %pulled.manifest_digest,
                        error = %reason,
                        "registry unreachable: using the digest this reference last resolved to, from the local cache"
                    );
                    pulled
                }
                Ok(None) => {
                    return Err(OciError::Unreachable {
                        reference: reference.to_string(),
                        reason,
                    });
                }
                Err(refused) => {
                    return Err(OciError::CacheRefused {
                        reference: reference.to_string(),
                        reason,
                        refused,
                    });
                }
            }
        }
        Err(e) => return Err(e),
    };
    let ms = started.elapsed().as_secs_f64() * 1e3;
    if previous.as_ref() == Some(&pulled.manifest_digest) {
        tracing::debug!(%reference, manifest = %pulled.manifest_digest, ms, "component unchanged");
    } else {
        tracing::info!(
            %reference,
            manifest = %pulled.manifest_digest,
            bytes = pulled.bytes.len(),
            component_cached = pulled.from_cache,
            ms,
            "component pulled and verified"
        );
    }
    Ok(pulled)
}

/// `pulled` with its trusted signer, or refused.
fn judged(source: &OciSource, trusted: &[String], pulled: Pulled) -> Result<Pulled, OciError> {
    let vouched = judge(source, &pulled.manifest_digest, &pulled.signatures, trusted)?;
    Ok(Pulled {
        signer: vouched.as_ref().map(|v| v.signer.clone()),
        sequence: vouched.map_or(0, |v| v.sequence),
        ..pulled
    })
}

/// The last pull of `source`, read back from the cache and checked as a
/// pull is, except for trust, which the caller judges: the manifest bytes
/// against the recorded (and any pinned) digest, then the layer that
/// manifest names, never the one the record names.
fn from_cache(
    source: &OciSource,
    cache: Option<&OciCache>,
) -> Result<Option<Pulled>, CacheRefusal> {
    let Some(cache) = cache else { return Ok(None) };
    let reference = &source.reference;
    let Some(record) = cache.record(&reference.to_string())? else {
        return Ok(None);
    };
    if let Some(pinned) = &reference.digest
        && *pinned != record.manifest
    {
        return Err(CacheRefusal::NotPinned {
            recorded: record.manifest,
            pinned: pinned.clone(),
        });
    }
    let raw = cache
        .blob(&record.manifest, MAX_MANIFEST_SIZE)?
        .ok_or_else(|| CacheRefusal::Missing {
            what: "manifest",
            digest: record.manifest.clone(),
        })?;
    let bad_manifest = |reason: String| CacheRefusal::Manifest {
        digest: record.manifest.clone(),
        reason,
    };
    let manifest: OciImageManifest =
        serde_json::from_slice(&raw).map_err(|e| bad_manifest(e.to_string()))?;
    let (_, layer) =
        component_layer(&manifest, source.max_size).map_err(|e| bad_manifest(e.reason()))?;
    if layer != record.layer {
        return Err(CacheRefusal::OtherLayer {
            recorded: record.layer,
            named: layer,
        });
    }
    let bytes = cache
        .blob(&layer, source.max_size)?
        .ok_or_else(|| CacheRefusal::Missing {
            what: "component layer",
            digest: layer.clone(),
        })?;
    Ok(Some(Pulled {
        bytes,
        layer_digest: layer,
        manifest_digest: record.manifest,
        signer: None,
        sequence: 0,
        signatures: record.signatures,
        from_cache: true,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_on_loopback_or_when_insecure() {
        let local = OciRef::parse("oci://127.0.0.1:5000/a:1").unwrap();
        let remote = OciRef::parse("oci://registry.example.com/a:1").unwrap();
        let private = OciRef::parse("oci://10.1.2.3:5000/a:1").unwrap();
        assert!(plain_http(&local, false));
        assert!(!plain_http(&remote, false));
        assert!(!plain_http(&private, false));
        assert!(plain_http(&private, true));
    }

    #[test]
    fn credentials_never_go_over_plain_http_off_loopback() {
        let local = OciRef::parse("oci://127.0.0.1:5000/a:1").unwrap();
        let remote = OciRef::parse("oci://registry.example.com/a:1").unwrap();
        assert!(may_send_credentials(&local, false));
        assert!(may_send_credentials(&local, true));
        assert!(may_send_credentials(&remote, false), "HTTPS");
        assert!(
            !may_send_credentials(&remote, true),
            "insecure: plain HTTP to another host"
        );
        let found = || Some(auth::Credentials::new("ci", "s3cret-pass"));
        assert!(credentials_for(&remote, false, found()).is_some());
        assert!(credentials_for(&remote, true, found()).is_none());
    }
}
