//! A stand-in identity provider for the oidc tests: freshly generated RSA
//! (2048) and P-256 keys, the JWKS that publishes them, and tokens signed
//! with them (or deliberately broken).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rsa::rand_core::OsRng;
use rsa::traits::PublicKeyParts as _;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub const ISSUER: &str = "https://id.example.test/realms/nats";
pub const AUDIENCE: &str = "nats";

pub struct Idp {
    rsa: rsa::RsaPrivateKey,
    ec: p256::ecdsa::SigningKey,
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

impl Idp {
    pub fn new() -> anyhow::Result<Idp> {
        Ok(Idp {
            rsa: rsa::RsaPrivateKey::new(&mut OsRng, 2048)?,
            ec: p256::ecdsa::SigningKey::random(&mut OsRng),
        })
    }

    /// The JWKS: kid "rsa-1" (RS256) and "ec-1" (ES256).
    pub fn jwks(&self) -> Value {
        let point = self.ec.verifying_key().to_encoded_point(false);
        json!({ "keys": [
            { "kty": "RSA", "kid": "rsa-1", "use": "sig", "alg": "RS256",
              "n": b64(&self.rsa.n().to_bytes_be()), "e": b64(&self.rsa.e().to_bytes_be()) },
            { "kty": "EC", "kid": "ec-1", "use": "sig", "alg": "ES256", "crv": "P-256",
              "x": b64(point.x().expect("x")), "y": b64(point.y().expect("y")) }
        ]})
    }

    /// Claims of a valid token for `sub`, expiring `ttl` seconds from now.
    pub fn claims(sub: &str, ttl: i64) -> Value {
        let now = portcullis_protocol::time::unix_now();
        json!({ "iss": ISSUER, "aud": AUDIENCE, "sub": sub, "iat": now, "nbf": now, "exp": now + ttl })
    }

    /// A compact JWS with `header` over `claims`, signed according to the
    /// header's `alg` (RS256, ES256; anything else gets an empty signature).
    pub fn sign(&self, header: Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let signature = match header["alg"].as_str() {
            Some("RS256") => self
                .rsa
                .sign(
                    rsa::Pkcs1v15Sign::new::<Sha256>(),
                    &Sha256::digest(input.as_bytes()),
                )
                .expect("RSA signature"),
            Some("ES256") => {
                use p256::ecdsa::signature::Signer as _;
                let sig: p256::ecdsa::Signature = self.ec.sign(input.as_bytes());
                sig.to_bytes().to_vec()
            }
            _ => Vec::new(),
        };
        format!("{input}.{}", b64(&signature))
    }

    pub fn rs256(&self, claims: &Value) -> String {
        self.sign(
            json!({ "alg": "RS256", "typ": "JWT", "kid": "rsa-1" }),
            claims,
        )
    }

    pub fn es256(&self, claims: &Value) -> String {
        self.sign(
            json!({ "alg": "ES256", "typ": "JWT", "kid": "ec-1" }),
            claims,
        )
    }
}
