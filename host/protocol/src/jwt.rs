//! NATS JWT encoding: `base64url(header).base64url(claims).base64url(sig)`
//! where the signature is ed25519 by the NKey named in `iss`.
//!
//! Rust NATS JWT crates cannot decode what nats-server sends, so this is a
//! small codec over our own serde claim structs.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use nkeys::KeyPair;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha512_256};
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
    let claims = b64(c)?;
    let sig = b64(s)?;
    let iss = serde_json::from_slice::<IssuerOnly>(&claims)
        .map_err(|e| JwtError::Json(e.to_string()))?
        .iss;
    let signer = issuer_key(&iss)?;
    let signed = &token.as_bytes()[..h.len() + 1 + c.len()];
    signer
        .verify(signed, &sig)
        .map_err(|_| JwtError::Signature)?;
    serde_json::from_slice(&claims).map_err(|e| JwtError::Json(e.to_string()))
}

/// Issuers whose decoded key is kept. A host hears from a handful of
/// servers; the bound only stops a flood of made-up issuers from growing it.
const MAX_CACHED_ISSUERS: usize = 256;

/// The verifying key of `iss`, decoded once per issuer: turning an NKey
/// into an ed25519 key decompresses a curve point (a field square root),
/// which would otherwise be repeated for every request of the same server.
fn issuer_key(iss: &str) -> Result<Arc<KeyPair>, JwtError> {
    static KEYS: OnceLock<Mutex<HashMap<String, Arc<KeyPair>>>> = OnceLock::new();
    let keys = KEYS.get_or_init(Default::default);
    if let Some(key) = keys.lock().unwrap_or_else(|p| p.into_inner()).get(iss) {
        return Ok(key.clone());
    }
    let key =
        Arc::new(KeyPair::from_public_key(iss).map_err(|_| JwtError::Issuer(iss.to_owned()))?);
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
