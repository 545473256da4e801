//! Signatures over an OCI release: the manifest digest, the repository it
//! was released to and a release sequence, made with the same NKeys as
//! fleet releases (`[trust] trusted_signers`).
//!
//! The repository is signed so that a signed artifact cannot be served
//! under another repository's name (a permissive plugin in place of a
//! strict one), and the sequence so that a tag moved back to an older
//! signed release is told from a new one: hosts remember the newest
//! release they accepted per tag (see [`crate::releases`]). Version 1
//! signatures covered the manifest digest only; they still verify, as
//! sequence 0 and for any repository, so artifacts signed before keep
//! loading until a newer release of their tag has been accepted.
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
const SIGNED_PREFIX: &str = "portcullis-oci-signature-v2\n";
/// The prefix of version 1, which signed the manifest digest alone.
const SIGNED_PREFIX_V1: &str = "portcullis-oci-signature-v1\n";

/// One signer's signature over a release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    /// Public NKey of the signer.
    pub signer: String,
    /// The signed manifest digest, `sha256:HEX`.
    pub manifest: String,
    /// `REGISTRY/REPOSITORY` the release was signed for; absent in
    /// version 1 signatures, which bind no repository.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repository: Option<String>,
    /// The release's sequence: a host refuses a release of a tag whose
    /// sequence is below the newest it accepted for that tag. 0 in
    /// version 1 signatures.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub sequence: u64,
    /// Ed25519 over [`Signature::signed_text`], base64url.
    pub signature: String,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// How far ahead of the clock a release seen in a registry or bucket may
/// be and still set the next sequence: what is seen there was written by
/// whoever can write there, and a sequence near `u64::MAX` taken on trust
/// would leave no room for any release after it.
const MAX_AHEAD_MS: u64 = 24 * 3600 * 1000;

/// The sequence of a new release: the clock in milliseconds, or one past
/// the newest release seen where it is published if that is ahead
/// (another signer's clock, or releases within one millisecond), unless
/// that is implausibly far ahead.
pub fn next_sequence(newest_seen: u64) -> u64 {
    let now = u64::try_from(portcullis_protocol::time::unix_now_ms()).unwrap_or(0);
    if newest_seen > now.saturating_add(MAX_AHEAD_MS) {
        return now;
    }
    now.max(newest_seen + 1)
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
    #[error(
        "trusted signer {signer} signed {manifest} as a release of {signed_for}, not of {repository}"
    )]
    OtherRepository {
        signer: String,
        manifest: String,
        signed_for: String,
        repository: String,
    },
}

/// What a valid signature by a trusted key vouches for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vouched {
    pub signer: String,
    /// The release sequence (0 for a version 1 signature).
    pub sequence: u64,
}

impl Signature {
    /// Sign the release of `manifest_digest` to `repository`
    /// (`REGISTRY/REPOSITORY`) as release `sequence`, with a user (or
    /// account/operator) key pair.
    pub fn sign(
        repository: &str,
        manifest_digest: &str,
        sequence: u64,
        key: &KeyPair,
    ) -> Result<Signature, String> {
        let mut signature = Signature {
            signer: key.public_key(),
            manifest: manifest_digest.to_owned(),
            repository: Some(repository.to_owned()),
            sequence,
            signature: String::new(),
        };
        let bytes = key
            .sign(signature.signed_text().as_bytes())
            .map_err(|e| format!("cannot sign: {e}"))?;
        signature.signature = data_encoding::BASE64URL_NOPAD.encode(&bytes);
        Ok(signature)
    }

    /// The bytes the signature covers. A version 1 signature (no
    /// repository) covered the manifest digest alone.
    fn signed_text(&self) -> String {
        match &self.repository {
            Some(repository) => format!(
                "{SIGNED_PREFIX}repository={repository}\nmanifest={}\nsequence={}\n",
                self.manifest, self.sequence
            ),
            None => format!("{SIGNED_PREFIX_V1}manifest={}\n", self.manifest),
        }
    }

    /// Whether the signature itself holds: its signer signed exactly these
    /// fields. A version 1 signature carries no sequence, so one that
    /// claims a sequence was edited.
    fn holds(&self) -> bool {
        if self.repository.is_none() && self.sequence != 0 {
            return false;
        }
        let Ok(key) = KeyPair::from_public_key(&self.signer) else {
            return false;
        };
        let Ok(signature) = data_encoding::BASE64URL_NOPAD.decode(self.signature.as_bytes()) else {
            return false;
        };
        key.verify(self.signed_text().as_bytes(), &signature)
            .is_ok()
    }

    /// The release sequence, if this is a valid signature by its signer
    /// over `manifest_digest` released to `repository`.
    pub fn verify(&self, repository: &str, manifest_digest: &str) -> Option<u64> {
        let for_repository = self.repository.as_deref().is_none_or(|r| r == repository);
        (self.manifest == manifest_digest && for_repository && self.holds())
            .then_some(self.sequence)
    }
}

/// The trusted signer that vouches for `manifest_digest` as a release of
/// `repository`, with the newest sequence any trusted key signed, or
/// which check failed: a valid signature by a trusted key wins; otherwise
/// a trusted key's signature for another repository, then a trusted
/// key's invalid signature, are reported before untrusted signers.
pub fn check(
    signatures: &[Signature],
    repository: &str,
    manifest_digest: &str,
    trusted: &[String],
) -> Result<Vouched, TrustError> {
    let is_trusted = |s: &&Signature| trusted.contains(&s.signer);
    if let Some(good) = signatures
        .iter()
        .filter(is_trusted)
        .filter_map(|s| Some((s, s.verify(repository, manifest_digest)?)))
        .max_by_key(|(_, sequence)| *sequence)
    {
        return Ok(Vouched {
            signer: good.0.signer.clone(),
            sequence: good.1,
        });
    }
    if let Some(elsewhere) = signatures.iter().filter(is_trusted).find(|s| {
        s.manifest == manifest_digest
            && s.repository.as_deref().is_some_and(|r| r != repository)
            && s.holds()
    }) {
        return Err(TrustError::OtherRepository {
            signer: elsewhere.signer.clone(),
            manifest: manifest_digest.to_owned(),
            signed_for: elsewhere.repository.clone().unwrap_or_default(),
            repository: repository.to_owned(),
        });
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
    const REPO: &str = "registry.example.com/auth/users";

    #[test]
    fn trust_needs_a_valid_signature_by_a_trusted_key() {
        let trusted = KeyPair::new_user();
        let stranger = KeyPair::new_user();
        let good = Signature::sign(REPO, DIGEST, 7, &trusted).unwrap();
        let keys = [trusted.public_key()];
        assert_eq!(
            check(std::slice::from_ref(&good), REPO, DIGEST, &keys).unwrap(),
            Vouched {
                signer: trusted.public_key(),
                sequence: 7
            }
        );

        assert!(matches!(
            check(&[], REPO, DIGEST, &keys),
            Err(TrustError::Unsigned { .. })
        ));
        let foreign = Signature::sign(REPO, DIGEST, 7, &stranger).unwrap();
        assert_eq!(
            check(std::slice::from_ref(&foreign), REPO, DIGEST, &keys),
            Err(TrustError::UntrustedSigner {
                signers: vec![stranger.public_key()]
            })
        );
        // Signed, but over another artifact; or the digest field rewritten.
        let elsewhere = Signature::sign(REPO, OTHER, 7, &trusted).unwrap();
        let relabelled = Signature {
            manifest: DIGEST.into(),
            ..elsewhere.clone()
        };
        for bad in [elsewhere, relabelled] {
            assert!(matches!(
                check(&[foreign.clone(), bad], REPO, DIGEST, &keys),
                Err(TrustError::BadSignature { .. })
            ));
        }
        // One good signature among others is enough.
        assert!(check(&[foreign, good], REPO, DIGEST, &keys).is_ok());
    }

    #[test]
    fn a_signature_binds_the_repository_and_the_sequence() {
        let key = KeyPair::new_user();
        let keys = [key.public_key()];
        let signed = Signature::sign(REPO, DIGEST, 7, &key).unwrap();
        // Served under another repository's name.
        let refused = check(
            std::slice::from_ref(&signed),
            "registry.example.com/auth/strict",
            DIGEST,
            &keys,
        );
        assert!(
            matches!(&refused, Err(TrustError::OtherRepository { signed_for, .. }) if signed_for == REPO),
            "{refused:?}"
        );
        // The sequence or the repository field edited to pass as newer or
        // as another repository's release.
        for edited in [
            Signature {
                sequence: 8,
                ..signed.clone()
            },
            Signature {
                repository: Some("registry.example.com/auth/strict".into()),
                ..signed.clone()
            },
        ] {
            let repository = edited.repository.clone().unwrap();
            assert!(matches!(
                check(&[edited], &repository, DIGEST, &keys),
                Err(TrustError::BadSignature { .. })
            ));
        }
        // Of several valid signatures, the newest release counts.
        let newer = Signature::sign(REPO, DIGEST, 9, &key).unwrap();
        assert_eq!(
            check(&[signed, newer], REPO, DIGEST, &keys)
                .unwrap()
                .sequence,
            9
        );
    }

    /// A signature as version 1 wrote it: the manifest digest alone.
    fn v1(digest: &str, key: &KeyPair) -> Signature {
        let text = format!("{SIGNED_PREFIX_V1}manifest={digest}\n");
        Signature {
            signer: key.public_key(),
            manifest: digest.into(),
            repository: None,
            sequence: 0,
            signature: data_encoding::BASE64URL_NOPAD.encode(&key.sign(text.as_bytes()).unwrap()),
        }
    }

    #[test]
    fn version_1_signatures_verify_as_sequence_0() {
        let key = KeyPair::new_user();
        let keys = [key.public_key()];
        let old = v1(DIGEST, &key);
        // As stored by version 1: no repository or sequence field.
        let stored = serde_json::to_string(&old).unwrap();
        assert!(
            !stored.contains("repository") && !stored.contains("sequence"),
            "{stored}"
        );
        let read: Signature = serde_json::from_str(&stored).unwrap();
        assert_eq!(check(&[read], REPO, DIGEST, &keys).unwrap().sequence, 0);
        // A sequence added to it, to pass as a newer release: refused.
        let bumped = Signature {
            sequence: u64::MAX,
            ..old.clone()
        };
        assert!(matches!(
            check(&[bumped], REPO, DIGEST, &keys),
            Err(TrustError::BadSignature { .. })
        ));
        // A version 2 signature stripped to look like version 1: refused.
        let stripped = Signature {
            repository: None,
            sequence: 0,
            ..Signature::sign(REPO, DIGEST, 7, &key).unwrap()
        };
        assert!(matches!(
            check(&[stripped], REPO, DIGEST, &keys),
            Err(TrustError::BadSignature { .. })
        ));
        assert!(check(&[v1(OTHER, &key)], REPO, DIGEST, &keys).is_err());
    }

    #[test]
    fn a_new_sequence_is_past_the_clock_and_past_what_was_seen() {
        let now = next_sequence(0);
        assert!(now > 1_700_000_000_000, "milliseconds: {now}");
        assert_eq!(next_sequence(now + 1000), now + 1001);
        // Written where releases are published by someone without a key,
        // to exhaust the sequence: not followed.
        assert!(next_sequence(u64::MAX) < now + 1000);
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
