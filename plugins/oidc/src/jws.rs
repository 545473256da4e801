//! JWS compact tokens and the JWKS they are checked against. Only RS256
//! and ES256 are implemented, on pure Rust crates (rsa, p256) that build for
//! wasm32-wasip2 without randomness or C code. `none` and every HMAC
//! algorithm are refused outright: a token's header never chooses how
//! weakly it is checked.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use serde_json::Value;
use sha2::{Digest, Sha256};

/// Largest token accepted; bounds the work a login can cause.
pub const MAX_TOKEN: usize = 16 * 1024;
/// Smallest RSA modulus accepted, in bits.
pub const MIN_RSA_BITS: usize = 2048;

/// Signature algorithms this plugin implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum Alg {
    RS256,
    ES256,
}

impl Alg {
    fn parse(name: &str) -> Option<Alg> {
        match name {
            "RS256" => Some(Alg::RS256),
            "ES256" => Some(Alg::ES256),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Alg::RS256 => "RS256",
            Alg::ES256 => "ES256",
        }
    }
}

/// A verification key from the JWKS.
pub enum PublicKey {
    Rsa(Box<rsa::RsaPublicKey>),
    P256(Box<p256::ecdsa::VerifyingKey>),
}

pub struct Key {
    pub kid: Option<String>,
    pub alg: Alg,
    pub key: PublicKey,
}

/// One JWK as identity providers publish them; fields this plugin does not
/// use (`x5c`, `x5t`, ...) are ignored.
#[derive(Deserialize)]
struct Jwk {
    kty: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    alg: Option<String>,
    #[serde(default, rename = "use")]
    usage: Option<String>,
    #[serde(default)]
    n: Option<String>,
    #[serde(default)]
    e: Option<String>,
    #[serde(default)]
    crv: Option<String>,
    #[serde(default)]
    x: Option<String>,
    #[serde(default)]
    y: Option<String>,
}

#[derive(Deserialize)]
struct JwkSet {
    keys: Vec<Jwk>,
}

fn b64(field: &str, value: Option<&str>) -> Result<Vec<u8>, String> {
    let value = value.ok_or_else(|| format!("missing {field:?}"))?;
    URL_SAFE_NO_PAD
        .decode(value.trim_end_matches('='))
        .map_err(|e| format!("{field:?} is not base64url: {e}"))
}

/// Parse a JWKS (`{"keys": [...]}`). Keys for encryption and key types
/// this plugin cannot use are skipped, as a JWKS copied from an identity
/// provider usually holds some; at least one usable key must remain.
pub fn parse_jwks(jwks: &Value) -> Result<Vec<Key>, String> {
    let set: JwkSet = serde_json::from_value(jwks.clone()).map_err(|e| format!("jwks: {e}"))?;
    let mut keys = Vec::new();
    for (i, jwk) in set.keys.into_iter().enumerate() {
        let what = match &jwk.kid {
            Some(kid) => format!("jwks.keys[{i}] (kid {kid:?})"),
            None => format!("jwks.keys[{i}]"),
        };
        if jwk.usage.as_deref().is_some_and(|u| u != "sig") {
            continue;
        }
        let declared = match jwk.alg.as_deref() {
            None => None,
            Some(a) => match Alg::parse(a) {
                Some(alg) => Some(alg),
                // A key pinned to an algorithm we do not implement.
                None => continue,
            },
        };
        let (alg, key) = match jwk.kty.as_str() {
            "RSA" => {
                let n = rsa::BigUint::from_bytes_be(
                    &b64("n", jwk.n.as_deref()).map_err(|e| format!("{what}: {e}"))?,
                );
                let e = rsa::BigUint::from_bytes_be(
                    &b64("e", jwk.e.as_deref()).map_err(|e| format!("{what}: {e}"))?,
                );
                if n.bits() < MIN_RSA_BITS {
                    return Err(format!(
                        "{what}: RSA key of {} bits; at least {MIN_RSA_BITS} required",
                        n.bits()
                    ));
                }
                let key = rsa::RsaPublicKey::new(n, e).map_err(|e| format!("{what}: {e}"))?;
                (Alg::RS256, PublicKey::Rsa(Box::new(key)))
            }
            "EC" => {
                if jwk.crv.as_deref() != Some("P-256") {
                    continue;
                }
                let x = b64("x", jwk.x.as_deref()).map_err(|e| format!("{what}: {e}"))?;
                let y = b64("y", jwk.y.as_deref()).map_err(|e| format!("{what}: {e}"))?;
                if x.len() != 32 || y.len() != 32 {
                    return Err(format!("{what}: P-256 coordinates must be 32 bytes"));
                }
                let point = p256::EncodedPoint::from_affine_coordinates(
                    p256::FieldBytes::from_slice(&x),
                    p256::FieldBytes::from_slice(&y),
                    false,
                );
                let key = p256::ecdsa::VerifyingKey::from_encoded_point(&point)
                    .map_err(|_| format!("{what}: not a point on P-256"))?;
                (Alg::ES256, PublicKey::P256(Box::new(key)))
            }
            _ => continue,
        };
        if declared.is_some_and(|d| d != alg) {
            return Err(format!(
                "{what}: alg {:?} does not fit kty {}",
                jwk.alg, jwk.kty
            ));
        }
        keys.push(Key {
            kid: jwk.kid,
            alg,
            key,
        });
    }
    if keys.is_empty() {
        return Err("jwks: no RS256 or ES256 signing key".into());
    }
    Ok(keys)
}

/// Why a token does not verify. Messages never contain the token.
#[derive(Debug, PartialEq)]
pub enum JwsError {
    Malformed(&'static str),
    AlgNone,
    AlgNotAccepted(String),
    Critical,
    UnknownKid(String),
    NoKey(&'static str),
    Signature,
}

impl std::fmt::Display for JwsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            JwsError::Malformed(why) => write!(f, "token is malformed: {why}"),
            JwsError::AlgNone => write!(f, "unsigned token (alg \"none\") refused"),
            JwsError::AlgNotAccepted(alg) => write!(f, "token algorithm {alg:?} is not accepted"),
            JwsError::Critical => write!(f, "token has critical header extensions"),
            JwsError::UnknownKid(kid) => write!(f, "token key id {kid:?} is not in the JWKS"),
            JwsError::NoKey(alg) => write!(f, "no {alg} key in the JWKS"),
            JwsError::Signature => write!(f, "token signature does not verify"),
        }
    }
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    #[serde(default)]
    crit: Option<Value>,
}

/// True when `text` has the shape of a JWS compact token (three base64url
/// parts whose first is a JSON header with `alg`): the plugin claims such
/// credentials and leaves anything else to the next plugin.
pub fn looks_like_jws(text: &str) -> bool {
    let mut parts = text.split('.');
    let (Some(h), Some(_), Some(_), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    URL_SAFE_NO_PAD
        .decode(h)
        .ok()
        .and_then(|b| serde_json::from_slice::<Header>(&b).ok())
        .is_some()
}

/// Verify `token` against `keys` with one of `accepted` algorithms; its
/// claims (unchecked beyond the signature) on success.
pub fn verify(token: &str, keys: &[Key], accepted: &[Alg]) -> Result<Value, JwsError> {
    if token.len() > MAX_TOKEN {
        return Err(JwsError::Malformed("longer than 16 KiB"));
    }
    let mut parts = token.split('.');
    let (Some(h), Some(c), Some(s), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(JwsError::Malformed("not three dot-separated parts"));
    };
    let header: Header = URL_SAFE_NO_PAD
        .decode(h)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .ok_or(JwsError::Malformed("header is not base64url JSON"))?;
    if header.alg.eq_ignore_ascii_case("none") {
        return Err(JwsError::AlgNone);
    }
    let alg = Alg::parse(&header.alg)
        .filter(|a| accepted.contains(a))
        .ok_or_else(|| JwsError::AlgNotAccepted(header.alg.chars().take(16).collect()))?;
    if header.crit.is_some() {
        return Err(JwsError::Critical);
    }
    let signature = URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| JwsError::Malformed("signature is not base64url"))?;
    let candidates: Vec<&Key> = match &header.kid {
        Some(kid) => {
            let found: Vec<&Key> = keys
                .iter()
                .filter(|k| k.kid.as_deref() == Some(kid))
                .collect();
            if found.is_empty() {
                return Err(JwsError::UnknownKid(kid.chars().take(64).collect()));
            }
            found.into_iter().filter(|k| k.alg == alg).collect()
        }
        None => keys.iter().filter(|k| k.alg == alg).collect(),
    };
    if candidates.is_empty() {
        return Err(JwsError::NoKey(alg.name()));
    }
    let signing_input = &token[..h.len() + 1 + c.len()];
    if !candidates
        .iter()
        .any(|k| verify_one(&k.key, signing_input.as_bytes(), &signature))
    {
        return Err(JwsError::Signature);
    }
    let claims = URL_SAFE_NO_PAD
        .decode(c)
        .map_err(|_| JwsError::Malformed("claims are not base64url"))?;
    let claims: Value =
        serde_json::from_slice(&claims).map_err(|_| JwsError::Malformed("claims are not JSON"))?;
    if !claims.is_object() {
        return Err(JwsError::Malformed("claims are not a JSON object"));
    }
    Ok(claims)
}

fn verify_one(key: &PublicKey, message: &[u8], signature: &[u8]) -> bool {
    match key {
        PublicKey::Rsa(key) => {
            use rsa::traits::PublicKeyParts as _;
            if signature.len() != key.size() {
                return false;
            }
            let digest = Sha256::digest(message);
            key.verify(rsa::Pkcs1v15Sign::new::<Sha256>(), &digest, signature)
                .is_ok()
        }
        PublicKey::P256(key) => {
            use p256::ecdsa::signature::Verifier as _;
            // JWS carries r || s (64 bytes), not DER.
            let Ok(sig) = p256::ecdsa::Signature::from_slice(signature) else {
                return false;
            };
            key.verify(message, &sig).is_ok()
        }
    }
}
