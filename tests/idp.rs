//! A stand-in identity provider for the oidc tests: freshly generated RSA
//! (2048) and P-256 keys, the JWKS that publishes them, and tokens signed
//! with them (or deliberately broken); and [`IdpServer`], the same
//! provider over HTTP (discovery document and JWKS) whose keys rotate while
//! a host runs.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rsa::rand_core::OsRng;
use rsa::traits::PublicKeyParts as _;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::sync::{Arc, Mutex};

use crate::http_service::{HttpService, Reply};

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
        self.jwks_with_kids("rsa-1", "ec-1")
    }

    /// The JWKS with these key ids, for a second provider key that
    /// replaces the first in a rotation.
    pub fn jwks_with_kids(&self, rsa_kid: &str, ec_kid: &str) -> Value {
        let point = self.ec.verifying_key().to_encoded_point(false);
        json!({ "keys": [
            { "kty": "RSA", "kid": rsa_kid, "use": "sig", "alg": "RS256",
              "n": b64(&self.rsa.n().to_bytes_be()), "e": b64(&self.rsa.e().to_bytes_be()) },
            { "kty": "EC", "kid": ec_kid, "use": "sig", "alg": "ES256", "crv": "P-256",
              "x": b64(point.x().expect("x")), "y": b64(point.y().expect("y")) }
        ]})
    }

    /// Claims of a valid token of `issuer` for `sub`.
    pub fn claims_of(issuer: &str, sub: &str, ttl: i64) -> Value {
        let mut claims = Idp::claims(sub, ttl);
        claims["iss"] = json!(issuer);
        claims
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

/// Path of the realm under the server's origin; the issuer is
/// `ORIGIN/realms/nats`, as Keycloak names them.
const REALM: &str = "/realms/nats";
/// Path of the JWKS, as Keycloak publishes it.
const CERTS: &str = "/realms/nats/protocol/openid-connect/certs";

/// An identity provider over HTTP on 127.0.0.1: `ISSUER/.well-known/
/// openid-configuration` and the JWKS it names, served with
/// `Cache-Control: max-age=300` and an ETag (a revalidation with the
/// current ETag gets 304), as real providers do, so the host's cache is in
/// the path. [`IdpServer::publish`] rotates the keys.
pub struct IdpServer {
    pub http: HttpService,
    jwks: Arc<Mutex<(Value, u32)>>,
}

impl IdpServer {
    pub async fn start(jwks: Value) -> anyhow::Result<IdpServer> {
        let state = Arc::new(Mutex::new((jwks, 1u32)));
        let served = state.clone();
        let http = HttpService::start(|_| Reply::status(503)).await?;
        let issuer = format!("{}{REALM}", http.origin());
        let jwks_uri = format!("{}{CERTS}", http.origin());
        http.answer(move |request| {
            if request.path == format!("{REALM}/.well-known/openid-configuration") {
                return Reply::json(&json!({
                    "issuer": issuer, "jwks_uri": jwks_uri,
                    "id_token_signing_alg_values_supported": ["RS256", "ES256"]
                }));
            }
            if request.path != CERTS {
                return Reply::status(404);
            }
            let (jwks, generation) = served.lock().unwrap().clone();
            let etag = format!("\"keys-{generation}\"");
            if request.header("if-none-match") == Some(etag.as_str()) {
                return Reply::status(304)
                    .with_header("etag", &etag)
                    .with_header("cache-control", "max-age=300");
            }
            Reply::json(&jwks)
                .with_header("etag", &etag)
                .with_header("cache-control", "max-age=300")
        });
        Ok(IdpServer { http, jwks: state })
    }

    /// The issuer, `http://127.0.0.1:PORT/realms/nats`.
    pub fn issuer(&self) -> String {
        format!("{}{REALM}", self.http.origin())
    }

    /// The JWKS URL.
    pub fn jwks_uri(&self) -> String {
        format!("{}{CERTS}", self.http.origin())
    }

    /// Serve `jwks` from now on (a new ETag).
    pub fn publish(&self, jwks: Value) {
        let mut state = self.jwks.lock().unwrap();
        *state = (jwks, state.1 + 1);
    }

    /// Requests for the JWKS so far (full answers and revalidations).
    pub fn jwks_requests(&self) -> usize {
        self.http
            .received()
            .iter()
            .filter(|r| r.path == CERTS)
            .count()
    }

    /// Requests for the discovery document so far.
    pub fn discovery_requests(&self) -> usize {
        self.http
            .received()
            .iter()
            .filter(|r| r.path.ends_with("/.well-known/openid-configuration"))
            .count()
    }
}
