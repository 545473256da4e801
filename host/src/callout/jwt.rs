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

/// The header nats-io/jwt v2 writes; `ed25519` is the v1 spelling, still
/// accepted on decode.
const HEADER: &str = r#"{"typ":"JWT","alg":"ed25519-nkey"}"#;

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

/// Decode a JWT, verify its signature by the key in `iss`, and parse its
/// claims into `T`. The caller checks issuer kind, audience, type and time.
pub fn decode_verified<T: for<'de> Deserialize<'de>>(token: &str) -> Result<T, JwtError> {
    let mut parts = token.trim().split('.');
    let (Some(h), Some(c), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwtError::Shape);
    };
    let header: Header = serde_json::from_slice(&b64(h)?).map_err(|_| JwtError::Header)?;
    if !(header.typ.eq_ignore_ascii_case("jwt")
        && matches!(header.alg.as_str(), "ed25519-nkey" | "ed25519"))
    {
        return Err(JwtError::Header);
    }
    let claims = b64(c)?;
    let sig = b64(s)?;
    let iss = serde_json::from_slice::<IssuerOnly>(&claims)
        .map_err(|e| JwtError::Json(e.to_string()))?
        .iss;
    let signer = KeyPair::from_public_key(&iss).map_err(|_| JwtError::Issuer(iss.clone()))?;
    let signed = &token.trim().as_bytes()[..h.len() + 1 + c.len()];
    signer
        .verify(signed, &sig)
        .map_err(|_| JwtError::Signature)?;
    serde_json::from_slice(&claims).map_err(|e| JwtError::Json(e.to_string()))
}

/// Encode and sign claims. `T` must serialise a `jti` field; it is filled
/// with the hash of the claims as nats-io/jwt does (base32 of SHA-512/256
/// over the claims with an empty `jti`).
pub fn encode<T: Serialize>(
    claims: &mut T,
    jti: impl Fn(&mut T) -> &mut String,
    signer: &KeyPair,
) -> Result<String, JwtError> {
    jti(claims).clear();
    let unhashed = serde_json::to_vec(claims).map_err(|e| JwtError::Json(e.to_string()))?;
    *jti(claims) = data_encoding::BASE32_NOPAD.encode(&Sha512_256::digest(&unhashed));
    let body = serde_json::to_vec(claims).map_err(|e| JwtError::Json(e.to_string()))?;
    let mut token = String::with_capacity(64 + body.len() * 4 / 3 + 90);
    URL_SAFE_NO_PAD.encode_string(HEADER, &mut token);
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(&body, &mut token);
    let sig = signer
        .sign(token.as_bytes())
        .map_err(|e| JwtError::Sign(e.to_string()))?;
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(sig, &mut token);
    Ok(token)
}

fn b64(part: &str) -> Result<Vec<u8>, JwtError> {
    // Go's jwt library writes raw (unpadded) base64url; tolerate padding.
    URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .map_err(|_| JwtError::Base64)
}

#[cfg(test)]
mod tests {
    use super::*;

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
