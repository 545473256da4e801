//! NATS JWT encoding: `base64url(header).base64url(claims).base64url(sig)`
//! where the signature is ed25519 by the NKey named in `iss`.
//!
//! Rust NATS JWT crates cannot decode what nats-server sends, so this is a
//! small codec over our own serde claim structs.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use curve25519_dalek::edwards::EdwardsPoint;
use curve25519_dalek::scalar::Scalar;
use nkeys::KeyPair;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha512, Sha512_256};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum JwtError {
    #[error("not a JWT: expected three dot-separated parts")]
    Shape,
    #[error("JWT part is not base64url")]
    Base64,
    #[error("JWT header is not a NATS ed25519-nkey header")]
    Header,
    #[error("JWT claims are not valid JSON: {0}")]
    Json(String),
    #[error("JWT issuer {0:?} is not a public NKey")]
    Issuer(String),
    #[error("JWT signature does not verify against its issuer")]
    Signature,
    #[error("cannot sign JWT: {0}")]
    Sign(String),
}

#[derive(Deserialize)]
struct Header {
    #[serde(default)]
    typ: String,
    alg: String,
}

#[derive(Deserialize)]
struct IssuerOnly {
    #[serde(default)]
    iss: String,
}

/// `base64url({"typ":"JWT","alg":"ed25519-nkey"})`, the header nats-io/jwt
/// v2 writes: nearly every token we see has it, so it needs no decoding.
/// Other spellings (`ed25519` is the v1 one) are decoded and checked.
const HEADER_B64: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ";

/// Decode a JWT, verify its signature by the key in `iss`, and parse its
/// claims into `T`. The caller checks issuer kind, audience, type and time.
pub fn decode_verified<T: for<'de> Deserialize<'de>>(token: &str) -> Result<T, JwtError> {
    let token = token.trim();
    let (h, c, s) = split(token)?;
    let claims = b64(c)?;
    let iss = serde_json::from_slice::<IssuerOnly>(&claims)
        .map_err(|e| JwtError::Json(e.to_string()))?
        .iss;
    let key = issuer_key(&iss)?;
    let sig = signature(s)?;
    let signed = &token.as_bytes()[..h.len() + 1 + c.len()];
    key.verify(signed, &sig)?;
    serde_json::from_slice(&claims).map_err(|e| JwtError::Json(e.to_string()))
}

/// A JWT whose claims are parsed and whose issuer key is known, but whose
/// signature is not checked yet: [`Unverified::verify`] checks one,
/// [`crate::batch::verify`] several at once. The claims must not be acted
/// on before that.
pub struct Unverified<T> {
    claims: T,
    /// The token as received; `..signed_len` is what the signature covers.
    token: Vec<u8>,
    signed_len: usize,
    signature: [u8; 64],
    key: Arc<IssuerKey>,
}

impl<T> Unverified<T> {
    /// Check the signature alone.
    pub fn verify(self) -> Result<T, JwtError> {
        self.key.verify(self.signed(), &self.signature)?;
        Ok(self.claims)
    }

    /// The claims as sent, before the signature is checked: only to drop a
    /// token early (one already expired), never to act on.
    pub fn unverified_claims(&self) -> &T {
        &self.claims
    }

    /// The claims, once a batch verification has vouched for the signature.
    pub(crate) fn into_verified_claims(self) -> T {
        self.claims
    }

    pub(crate) fn signed(&self) -> &[u8] {
        &self.token[..self.signed_len]
    }

    pub(crate) fn signature(&self) -> &[u8; 64] {
        &self.signature
    }

    pub(crate) fn key(&self) -> &Arc<IssuerKey> {
        &self.key
    }
}

/// Decode a JWT and parse its claims once into `T`, whose `iss` names the
/// key that must have signed it; the signature is left for the caller to
/// check (alone or in a batch). `token` is kept for that check.
pub fn decode_unverified<T: for<'de> Deserialize<'de>>(
    token: String,
    iss: impl FnOnce(&T) -> &str,
) -> Result<Unverified<T>, JwtError> {
    let trimmed = token.trim();
    let start = trimmed.as_ptr() as usize - token.as_ptr() as usize;
    let (h, c, s) = split(trimmed)?;
    let claims: T = serde_json::from_slice(&b64(c)?).map_err(|e| JwtError::Json(e.to_string()))?;
    let key = issuer_key(iss(&claims))?;
    let signature = signature(s)?;
    let signed_len = h.len() + 1 + c.len();
    let token = if start == 0 {
        token.into_bytes()
    } else {
        token.as_bytes()[start..].to_vec()
    };
    Ok(Unverified {
        claims,
        token,
        signed_len,
        signature,
        key,
    })
}

/// The three parts of a token, the header checked.
fn split(token: &str) -> Result<(&str, &str, &str), JwtError> {
    let mut parts = token.split('.');
    let (Some(h), Some(c), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Shape);
    };
    if h != HEADER_B64 {
        let header: Header = serde_json::from_slice(&b64(h)?).map_err(|_| JwtError::Header)?;
        if !(header.typ.eq_ignore_ascii_case("jwt")
            && matches!(header.alg.as_str(), "ed25519-nkey" | "ed25519"))
        {
            return Err(JwtError::Header);
        }
    }
    Ok((h, c, s))
}

/// An ed25519 signature is 64 bytes; anything else cannot verify.
fn signature(part: &str) -> Result<[u8; 64], JwtError> {
    b64(part)?.try_into().map_err(|_| JwtError::Signature)
}

/// An issuer's verifying key, decoded once: as ed25519-dalek verifies a
/// single signature, and as the curve point batch verification adds up.
/// (Width-8 tables of the key for `VartimeEdwardsPrecomputation` were
/// tried: single checks +3.5% instructions, batches no better.)
pub(crate) struct IssuerKey {
    pub(crate) verifying: ed25519_dalek::VerifyingKey,
    pub(crate) point: EdwardsPoint,
}

impl IssuerKey {
    fn new(verifying: ed25519_dalek::VerifyingKey) -> IssuerKey {
        IssuerKey {
            point: verifying.to_edwards(),
            verifying,
        }
    }

    /// Verify one signature as nkeys does (`VerifyingKey::verify`).
    pub(crate) fn verify(&self, signed: &[u8], signature: &[u8; 64]) -> Result<(), JwtError> {
        use ed25519_dalek::Verifier as _;
        self.verifying
            .verify(signed, &ed25519_dalek::Signature::from_bytes(signature))
            .map_err(|_| JwtError::Signature)
    }
}

/// Ed25519's `k = SHA-512(R || A || M)` as a scalar.
pub(crate) fn challenge(r: &[u8], key: &ed25519_dalek::VerifyingKey, signed: &[u8]) -> Scalar {
    Scalar::from_bytes_mod_order_wide(
        &Sha512::new()
            .chain_update(r)
            .chain_update(key.as_bytes())
            .chain_update(signed)
            .finalize()
            .into(),
    )
}

/// Issuers whose decoded key is kept. A host hears from a handful of
/// servers; the bound only stops a flood of made-up issuers from growing it.
const MAX_CACHED_ISSUERS: usize = 256;

/// The verifying key of `iss`, decoded once per issuer: turning an NKey
/// into an ed25519 key decompresses a curve point (a field square root),
/// which would otherwise be repeated for every request of the same server.
fn issuer_key(iss: &str) -> Result<Arc<IssuerKey>, JwtError> {
    static KEYS: OnceLock<Mutex<HashMap<String, Arc<IssuerKey>>>> = OnceLock::new();
    let keys = KEYS.get_or_init(Default::default);
    if let Some(key) = keys.lock().unwrap_or_else(|p| p.into_inner()).get(iss) {
        return Ok(key.clone());
    }
    let bad = || JwtError::Issuer(iss.to_owned());
    let (_, raw) = nkeys::from_public_key(iss).map_err(|_| bad())?;
    let verifying = ed25519_dalek::VerifyingKey::from_bytes(&raw).map_err(|_| bad())?;
    let key = Arc::new(IssuerKey::new(verifying));
    let mut keys = keys.lock().unwrap_or_else(|p| p.into_inner());
    if keys.len() >= MAX_CACHED_ISSUERS {
        keys.clear();
    }
    keys.insert(iss.to_owned(), key.clone());
    Ok(key)
}

/// What signs the JWTs this host issues: an ed25519 NKey.
pub trait Sign {
    fn sign_jwt(&self, signed: &[u8]) -> Result<Vec<u8>, JwtError>;
}

impl Sign for KeyPair {
    fn sign_jwt(&self, signed: &[u8]) -> Result<Vec<u8>, JwtError> {
        self.sign(signed).map_err(|e| JwtError::Sign(e.to_string()))
    }
}

impl Sign for crate::keys::Signer {
    fn sign_jwt(&self, signed: &[u8]) -> Result<Vec<u8>, JwtError> {
        self.sign(signed)
            .map(|sig| sig.to_vec())
            .ok_or_else(|| JwtError::Sign("ED25519_sign failed".into()))
    }
}

/// Encode and sign claims. `T` must serialise a `jti` field; it is filled
/// with the hash of the claims as nats-io/jwt does (base32 of SHA-512/256
/// over the claims with an empty `jti`).
pub fn encode<T: Serialize>(
    claims: &mut T,
    jti: impl Fn(&mut T) -> &mut String,
    signer: &impl Sign,
) -> Result<String, JwtError> {
    jti(claims).clear();
    let unhashed = serde_json::to_vec(claims).map_err(|e| JwtError::Json(e.to_string()))?;
    let hash = data_encoding::BASE32_NOPAD.encode(&Sha512_256::digest(&unhashed));
    // Our claim structs serialise `jti` first, so the hashed claims are
    // the unhashed ones with the hash between the first pair of quotes
    // (base32 needs no escaping): no second serialisation.
    let body = match unhashed.strip_prefix(EMPTY_JTI) {
        Some(rest) => {
            let mut body = Vec::with_capacity(unhashed.len() + hash.len());
            body.extend_from_slice(&EMPTY_JTI[..EMPTY_JTI.len() - 1]);
            body.extend_from_slice(hash.as_bytes());
            body.push(b'"');
            body.extend_from_slice(rest);
            *jti(claims) = hash;
            body
        }
        None => {
            *jti(claims) = hash;
            serde_json::to_vec(claims).map_err(|e| JwtError::Json(e.to_string()))?
        }
    };
    let mut token = String::with_capacity(HEADER_B64.len() + 2 + body.len() * 4 / 3 + 90);
    token.push_str(HEADER_B64);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(&body, &mut token);
    let sig = signer.sign_jwt(token.as_bytes())?;
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(sig, &mut token);
    Ok(token)
}

/// How claims with an empty `jti` as their first field begin.
const EMPTY_JTI: &[u8] = br#"{"jti":"""#;

fn b64(part: &str) -> Result<Vec<u8>, JwtError> {
    // Go's jwt library writes raw (unpadded) base64url; tolerate padding.
    URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .map_err(|_| JwtError::Base64)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADER: &str = r#"{"typ":"JWT","alg":"ed25519-nkey"}"#;

    #[derive(Serialize, Deserialize, Debug, PartialEq, Default)]
    struct Claims {
        jti: String,
        iss: String,
        sub: String,
    }

    #[test]
    fn round_trip_and_tamper_detection() {
        let kp = KeyPair::new_account();
        let mut claims = Claims {
            iss: kp.public_key(),
            sub: "x".into(),
            ..Default::default()
        };
        let token = encode(&mut claims, |c| &mut c.jti, &kp).unwrap();
        assert_eq!(claims.jti.len(), 52, "base32 of a 32-byte hash");
        let back: Claims = decode_verified(&token).unwrap();
        assert_eq!(back, claims);

        // Change one claim but keep the signature: refused.
        let parts: Vec<&str> = token.split('.').collect();
        let forged_claims = URL_SAFE_NO_PAD.encode(
            serde_json::to_vec(&Claims {
                sub: "y".into(),
                ..back
            })
            .unwrap(),
        );
        let forged = format!("{}.{}.{}", parts[0], forged_claims, parts[2]);
        assert_eq!(
            decode_verified::<Claims>(&forged).unwrap_err(),
            JwtError::Signature
        );

        assert_eq!(
            decode_verified::<Claims>("a.b").unwrap_err(),
            JwtError::Shape
        );
        assert_eq!(
            decode_verified::<Claims>("a.b.c.d").unwrap_err(),
            JwtError::Shape
        );
        assert_eq!(
            decode_verified::<Claims>("!!.b.c").unwrap_err(),
            JwtError::Base64
        );
    }

    #[test]
    fn header_constant_is_the_encoded_header() {
        assert_eq!(URL_SAFE_NO_PAD.encode(HEADER), HEADER_B64);
    }

    /// Claims whose `jti` is not first: encoded the slow way, same result.
    #[derive(Serialize, Deserialize, Debug, PartialEq, Default)]
    struct JtiLast {
        iss: String,
        sub: String,
        jti: String,
    }

    #[test]
    fn encoding_splices_the_hash_exactly_as_a_second_serialisation_would() {
        let kp = KeyPair::new_account();
        let mut claims = Claims {
            iss: kp.public_key(),
            sub: "sub with \"quotes\" and \\ and é".into(),
            ..Default::default()
        };
        let token = encode(&mut claims, |c| &mut c.jti, &kp).unwrap();
        let body = URL_SAFE_NO_PAD
            .decode(token.split('.').nth(1).unwrap())
            .unwrap();
        assert_eq!(body, serde_json::to_vec(&claims).unwrap());
        let mut unhashed = serde_json::to_value(&claims).unwrap();
        unhashed["jti"] = "".into();
        let expected = data_encoding::BASE32_NOPAD.encode(&Sha512_256::digest(
            serde_json::to_vec(&Claims {
                jti: String::new(),
                ..serde_json::from_value(unhashed).unwrap()
            })
            .unwrap(),
        ));
        assert_eq!(claims.jti, expected);
        assert_eq!(decode_verified::<Claims>(&token).unwrap(), claims);

        let mut last = JtiLast {
            iss: kp.public_key(),
            sub: "x".into(),
            jti: "stale".into(),
        };
        let token = encode(&mut last, |c| &mut c.jti, &kp).unwrap();
        assert_eq!(last.jti.len(), 52);
        assert_eq!(decode_verified::<JtiLast>(&token).unwrap(), last);
    }

    #[test]
    fn tokens_with_another_header_spelling_still_decode() {
        let kp = KeyPair::new_account();
        let mut claims = Claims {
            iss: kp.public_key(),
            ..Default::default()
        };
        let token = encode(&mut claims, |c| &mut c.jti, &kp).unwrap();
        let body = token.split('.').nth(1).unwrap();
        for (header, ok) in [
            (r#"{"typ":"jwt","alg":"ed25519"}"#, true),
            (r#"{"alg":"ed25519-nkey","typ":"JWT"}"#, true),
            (r#"{"typ":"JWT","alg":"HS256"}"#, false),
        ] {
            let signed = format!("{}.{body}", URL_SAFE_NO_PAD.encode(header));
            let sig = URL_SAFE_NO_PAD.encode(kp.sign(signed.as_bytes()).unwrap());
            let result = decode_verified::<Claims>(&format!("{signed}.{sig}"));
            assert_eq!(result.is_ok(), ok, "{header}: {result:?}");
        }
    }

    #[test]
    fn issuer_must_be_a_public_key() {
        let kp = KeyPair::new_account();
        let mut claims = Claims {
            iss: "not-a-key".into(),
            ..Default::default()
        };
        let token = encode(&mut claims, |c| &mut c.jti, &kp).unwrap();
        assert!(matches!(
            decode_verified::<Claims>(&token),
            Err(JwtError::Issuer(_))
        ));
    }
}
