//! Signatures over an OCI artifact's manifest digest, made with the same
//! NKeys as fleet releases (`[trust] trusted_signers`).
//!
//! They are stored in the registry next to the component as an OCI 1.1
//! artifact of our own `artifactType` whose `subject` is the signed
//! manifest. A registry with the referrers API lists it there, and then no
//! tag is written. Without that API it goes under a tag of our own,
//! `sha256-HEX.portcullis-sig`: cosign's fallback tag is `sha256-HEX.sig`,
//! and sharing it meant a cosign signature and ours erased each other.
//! Hosts still read signatures from the `.sig` tag that earlier versions
//! wrote, for this version only, so artifacts signed before the upgrade
//! keep loading; re-sign them (`portcullis plugin sign`) before the next.
//! The artifact has one layer per signer: a small JSON [`Signature`].

use nkeys::KeyPair;
use serde::{Deserialize, Serialize};

/// `artifactType` of the signature artifact and media type of its layers.
pub const SIGNATURE_MEDIA_TYPE: &str = "application/vnd.portcullis.signature.v1+json";
/// The OCI "empty" config blob, `{}`.
pub const EMPTY_CONFIG_MEDIA_TYPE: &str = "application/vnd.oci.empty.v1+json";
/// What is signed starts with this, so a signature made for anything else
/// (a fleet release, a NATS nonce) never verifies here.
const SIGNED_PREFIX: &str = "portcullis-oci-signature-v1\n";

/// One signer's signature over a manifest digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    /// Public NKey of the signer.
    pub signer: String,
    /// The signed manifest digest, `sha256:HEX`.
    pub manifest: String,
    /// Ed25519 over [`signed_text`], base64url.
    pub signature: String,
}

fn signed_text(manifest_digest: &str) -> String {
    format!("{SIGNED_PREFIX}manifest={manifest_digest}\n")
}

/// The tag of the signature artifact for `manifest_digest`, on a registry
/// without the referrers API.
pub fn signature_tag(manifest_digest: &str) -> String {
    format!("{}.portcullis-sig", manifest_digest.replace(':', "-"))
}

/// The tag earlier versions wrote signatures under (cosign's fallback tag):
/// read, never written, and only until the next version.
pub fn legacy_signature_tag(manifest_digest: &str) -> String {
    format!("{}.sig", manifest_digest.replace(':', "-"))
}

/// Why an artifact is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TrustError {
    #[error("unsigned: no signature found for {manifest}")]
    Unsigned { manifest: String },
    #[error("signed only by keys that are not in trusted_signers: {}", signers.join(", "))]
    UntrustedSigner { signers: Vec<String> },
    #[error("the signature by trusted signer {signer} does not match digest {manifest}")]
    BadSignature { signer: String, manifest: String },
}

impl Signature {
    /// Sign `manifest_digest` with a user (or account/operator) key pair.
    pub fn sign(manifest_digest: &str, key: &KeyPair) -> Result<Signature, String> {
        let signature = key
            .sign(signed_text(manifest_digest).as_bytes())
            .map_err(|e| format!("cannot sign: {e}"))?;
        Ok(Signature {
            signer: key.public_key(),
            manifest: manifest_digest.to_owned(),
            signature: data_encoding::BASE64URL_NOPAD.encode(&signature),
        })
    }

    /// Whether this is a valid signature by its signer over `manifest_digest`.
    pub fn is_valid_for(&self, manifest_digest: &str) -> bool {
        if self.manifest != manifest_digest {
            return false;
        }
        let Ok(key) = KeyPair::from_public_key(&self.signer) else {
            return false;
        };
        let Ok(signature) = data_encoding::BASE64URL_NOPAD.decode(self.signature.as_bytes()) else {
            return false;
        };
        key.verify(signed_text(manifest_digest).as_bytes(), &signature)
            .is_ok()
    }
}

/// The trusted signer that vouches for `manifest_digest`, or which check
/// failed: a valid signature by a trusted key wins; otherwise a trusted
/// key's invalid signature is reported before untrusted signers.
pub fn check(
    signatures: &[Signature],
    manifest_digest: &str,
    trusted: &[String],
) -> Result<String, TrustError> {
    let is_trusted = |s: &&Signature| trusted.contains(&s.signer);
    if let Some(good) = signatures
        .iter()
        .filter(is_trusted)
        .find(|s| s.is_valid_for(manifest_digest))
    {
        return Ok(good.signer.clone());
    }
    if let Some(bad) = signatures.iter().find(is_trusted) {
        return Err(TrustError::BadSignature {
            signer: bad.signer.clone(),
            manifest: manifest_digest.to_owned(),
        });
    }
    if signatures.is_empty() {
        return Err(TrustError::Unsigned {
            manifest: manifest_digest.to_owned(),
        });
    }
    let mut signers: Vec<String> = signatures.iter().map(|s| s.signer.clone()).collect();
    signers.dedup();
    Err(TrustError::UntrustedSigner { signers })
}

#[cfg(test)]
mod tests {
    use super::*;

    const DIGEST: &str = "sha256:1111111111111111111111111111111111111111111111111111111111111111";
    const OTHER: &str = "sha256:2222222222222222222222222222222222222222222222222222222222222222";

    #[test]
    fn trust_needs_a_valid_signature_by_a_trusted_key() {
        let trusted = KeyPair::new_user();
        let stranger = KeyPair::new_user();
        let good = Signature::sign(DIGEST, &trusted).unwrap();
        let keys = [trusted.public_key()];
        assert_eq!(
            check(std::slice::from_ref(&good), DIGEST, &keys).unwrap(),
            trusted.public_key()
        );

        assert!(matches!(
            check(&[], DIGEST, &keys),
            Err(TrustError::Unsigned { .. })
        ));
        let foreign = Signature::sign(DIGEST, &stranger).unwrap();
        assert_eq!(
            check(std::slice::from_ref(&foreign), DIGEST, &keys),
            Err(TrustError::UntrustedSigner {
                signers: vec![stranger.public_key()]
            })
        );
        // Signed, but over another artifact; or the digest field rewritten.
        let elsewhere = Signature::sign(OTHER, &trusted).unwrap();
        let relabelled = Signature {
            manifest: DIGEST.into(),
            ..elsewhere.clone()
        };
        for bad in [elsewhere, relabelled] {
            assert!(matches!(
                check(&[foreign.clone(), bad], DIGEST, &keys),
                Err(TrustError::BadSignature { .. })
            ));
        }
        // One good signature among others is enough.
        assert!(check(&[foreign, good], DIGEST, &keys).is_ok());
    }

    #[test]
    fn signatures_are_not_tagged_like_cosign() {
        assert_eq!(
            signature_tag(DIGEST),
            format!("sha256-{}.portcullis-sig", &DIGEST[7..])
        );
        assert_eq!(
            legacy_signature_tag(DIGEST),
            format!("sha256-{}.sig", &DIGEST[7..])
        );
    }
}
