//! Native unit tests: tokens minted with keys generated here.

use super::*;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use p256::ecdsa::SigningKey as EcKey;
use rsa::RsaPrivateKey;
use rsa::rand_core::OsRng;
use rsa::traits::PublicKeyParts as _;
use serde_json::json;
use sha2::{Digest, Sha256};
use std::sync::OnceLock;

const NOW: i64 = 1_700_000_000;
const ISS: &str = "https://id.example.com";

fn rsa_key() -> &'static RsaPrivateKey {
    static KEY: OnceLock<RsaPrivateKey> = OnceLock::new();
    KEY.get_or_init(|| RsaPrivateKey::new(&mut OsRng, 2048).unwrap())
}

fn ec_key() -> &'static EcKey {
    static KEY: OnceLock<EcKey> = OnceLock::new();
    KEY.get_or_init(|| EcKey::random(&mut OsRng))
}

fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

fn jwks() -> Value {
    let point = ec_key().verifying_key().to_encoded_point(false);
    json!({"keys": [
        {"kty": "RSA", "kid": "rsa1", "use": "sig", "alg": "RS256",
         "n": b64(&rsa_key().n().to_bytes_be()), "e": b64(&rsa_key().e().to_bytes_be())},
        {"kty": "EC", "kid": "ec1", "crv": "P-256",
         "x": b64(point.x().unwrap()), "y": b64(point.y().unwrap())},
        {"kty": "oct", "kid": "hmac", "k": "c2VjcmV0"},
        {"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"}
    ]})
}

fn config() -> String {
    json!({
        "issuer": ISS,
        "audience": ["nats", "other"],
        "jwks": jwks(),
        "rules": [
            {"when": {"groups": "admins"}, "account": "ADMIN"},
            {"when": {"realm_access.roles": ["ops", "sre"], "email_verified": true},
             "account": "OPS", "expires_in_secs": 600},
            {"account": "APP1", "name": "{email}",
             "permissions": {"pub": {"allow": ["user.{sub}.>"]},
                             "sub": {"allow": ["user.{sub}.>", "_INBOX.>"]}}}
        ]
    })
    .to_string()
}

fn plugin() -> Oidc {
    Oidc::configure(&config()).unwrap()
}

fn claims() -> Value {
    json!({"iss": ISS, "aud": "nats", "sub": "alice", "email": "alice@example.com",
           "iat": NOW - 10, "nbf": NOW - 10, "exp": NOW + 300})
}

fn mint(header: Value, claims: &Value) -> String {
    let input = format!(
        "{}.{}",
        b64(header.to_string().as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let sig = match header["alg"].as_str() {
        Some("RS256") => rsa_key()
            .sign(rsa::Pkcs1v15Sign::new::<Sha256>(), &Sha256::digest(&input))
            .unwrap(),
        Some("ES256") => {
            use p256::ecdsa::signature::Signer as _;
            let sig: p256::ecdsa::Signature = ec_key().sign(input.as_bytes());
            sig.to_bytes().to_vec()
        }
        _ => Vec::new(),
    };
    format!("{input}.{}", b64(&sig))
}

fn rs(claims: &Value) -> String {
    mint(json!({"alg": "RS256", "kid": "rsa1", "typ": "JWT"}), claims)
}

fn es(claims: &Value) -> String {
    mint(json!({"alg": "ES256", "kid": "ec1"}), claims)
}

fn with_token(token: &str) -> AuthRequest {
    let mut r = AuthRequest::empty();
    r.connect.token = Some(token.into());
    r
}

fn allow(token: &str) -> portcullis_sdk::Grant {
    match plugin().decide(&with_token(token), NOW) {
        Decision::Allow(g) => g,
        Decision::Deny(r) => panic!("denied: {r}"),
        Decision::Abstain => panic!("abstained"),
    }
}

fn deny(token: &str, needle: &str) {
    match plugin().decide(&with_token(token), NOW) {
        Decision::Deny(r) => assert!(r.contains(needle), "{r:?} lacks {needle:?}"),
        _ => panic!("expected a deny with {needle:?}"),
    }
}

#[test]
fn rs256_and_es256_tokens_map_through_the_rules() {
    for token in [rs(&claims()), es(&claims())] {
        let g = allow(&token);
        assert_eq!(g.account, "APP1");
        assert_eq!(g.display_name.as_deref(), Some("alice@example.com"));
        assert_eq!(g.publish.allow, ["user.alice.>"]);
        assert_eq!(g.subscribe.allow, ["user.alice.>", "_INBOX.>"]);
        assert_eq!(g.expires_in_secs, Some(300), "expiry is the token's exp");
    }
    let mut admin = claims();
    admin["groups"] = json!(["users", "admins"]);
    assert_eq!(allow(&rs(&admin)).account, "ADMIN");

    let mut ops = claims();
    ops["realm_access"] = json!({"roles": ["sre"]});
    ops["email_verified"] = json!(true);
    let g = allow(&es(&ops));
    assert_eq!(g.account, "OPS");
    assert_eq!(
        g.expires_in_secs,
        Some(300),
        "rule's 600s capped by the token"
    );
    ops["exp"] = json!(NOW + 7200);
    assert_eq!(allow(&es(&ops)).expires_in_secs, Some(600), "rule's 600s");
    // No rule lifetime: the plugin's max_expires_in_secs (default 3600),
    // never more than what is left of the token.
    let mut long = claims();
    long["exp"] = json!(NOW + 86_400);
    assert_eq!(allow(&rs(&long)).expires_in_secs, Some(3600));
    ops["email_verified"] = json!(false);
    assert_eq!(
        allow(&es(&ops)).account,
        "APP1",
        "every condition must hold"
    );
}

#[test]
fn token_in_password_and_non_jwt_credentials() {
    let mut r = AuthRequest::with_password("anyone", &rs(&claims()));
    assert!(matches!(plugin().decide(&r, NOW), Decision::Allow(_)));
    r.connect.pass = Some("just-a-password".into());
    assert!(matches!(plugin().decide(&r, NOW), Decision::Abstain));
    assert!(matches!(
        plugin().decide(&with_token("opaque-token"), NOW),
        Decision::Abstain
    ));
    assert!(matches!(
        plugin().decide(&AuthRequest::empty(), NOW),
        Decision::Abstain
    ));
}

#[test]
fn every_broken_token_is_denied_with_its_reason() {
    let mut c = claims();
    c["exp"] = json!(NOW - 1);
    deny(&rs(&c), "expired");
    c["exp"] = json!(NOW);
    deny(&rs(&c), "expired");

    let mut c = claims();
    c["aud"] = json!("someone-else");
    deny(&rs(&c), "audience");
    c["aud"] = json!(["x", "other"]);
    assert_eq!(allow(&rs(&c)).account, "APP1", "any configured audience");
    c.as_object_mut().unwrap().remove("aud");
    deny(&rs(&c), "audience");

    let mut c = claims();
    c["iss"] = json!("https://evil.example.com");
    deny(&es(&c), "issuer");

    let mut c = claims();
    c["nbf"] = json!(NOW + 61);
    deny(&rs(&c), "not valid before");
    c["nbf"] = json!(NOW + 59);
    allow(&rs(&c));

    let mut c = claims();
    c.as_object_mut().unwrap().remove("exp");
    deny(&rs(&c), "no exp");

    // Bad signature: claims swapped after signing.
    let good = rs(&claims());
    let mut evil = claims();
    evil["sub"] = json!("root");
    let forged_claims = rs(&evil);
    let parts: Vec<&str> = good.split('.').collect();
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        forged_claims.split('.').nth(1).unwrap(),
        parts[2]
    );
    deny(&forged, "signature does not verify");

    deny(
        &mint(json!({"alg": "RS256", "kid": "nope"}), &claims()),
        "key id \"nope\"",
    );
    deny(&mint(json!({"alg": "none"}), &claims()), "alg \"none\"");
    deny(
        &mint(json!({"alg": "None", "kid": "rsa1"}), &claims()),
        "alg \"none\"",
    );
    deny(
        &mint(json!({"alg": "HS256", "kid": "hmac"}), &claims()),
        "not accepted",
    );
    // Algorithm confusion: an RS256 signature presented as ES256.
    let confused = rs(&claims()).replacen(
        &b64(json!({"alg": "RS256", "kid": "rsa1", "typ": "JWT"})
            .to_string()
            .as_bytes()),
        &b64(json!({"alg": "ES256", "kid": "rsa1"})
            .to_string()
            .as_bytes()),
        1,
    );
    deny(&confused, "no ES256 key");
    deny(
        &mint(
            json!({"alg": "RS256", "kid": "rsa1", "crit": ["exp"]}),
            &claims(),
        ),
        "critical",
    );

    let mut c = claims();
    c["sub"] = json!("*");
    deny(&rs(&c), "{sub}");
}

#[test]
fn unknown_kid_less_tokens_try_every_key_of_their_algorithm() {
    let g = allow(&mint(json!({"alg": "ES256"}), &claims()));
    assert_eq!(g.account, "APP1");
}

#[test]
fn configuration_errors() {
    let base: Value = serde_json::from_str(&config()).unwrap();
    let bad = |edit: &dyn Fn(&mut Value), needle: &str| {
        let mut c = base.clone();
        edit(&mut c);
        let err = Oidc::configure(&c.to_string()).err().expect("must fail");
        assert!(err.contains(needle), "{err:?} lacks {needle:?}");
    };
    bad(&|c| c["issuer"] = json!(""), "issuer");
    bad(&|c| c["audience"] = json!([]), "audience");
    bad(&|c| c["rules"] = json!([]), "rules");
    bad(&|c| c["rules"][2]["acount"] = json!("x"), "rules[2]");
    bad(
        &|c| c["rules"][0]["when"] = json!("admins"),
        "rules[0].when",
    );
    bad(&|c| c["jwks"] = json!({"keys": []}), "no RS256 or ES256");
    bad(
        &|c| c["jwks"]["keys"][0]["n"] = json!(b64(&[0xff; 128])),
        "2048",
    );
    bad(
        &|c| c["jwks"]["keys"][1]["x"] = json!(b64(&[1; 32])),
        "not a point",
    );
    bad(&|c| c["algorithms"] = json!(["HS256"]), "HS256");
    bad(&|c| c["extra"] = json!(1), "extra");
    bad(
        &|c| c["max_expires_in_secs"] = json!(0),
        "max_expires_in_secs",
    );
}
