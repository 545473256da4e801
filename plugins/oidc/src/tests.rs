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

#[cfg(feature = "remote")]
mod remote_keys {
    use super::*;

    /// A stand-in identity provider behind `portcullis_sdk::http::mock`: it
    /// serves `jwks` (and a discovery document) and records every request.
    #[derive(Default)]
    struct Provider {
        jwks: Value,
        discovery_issuer: String,
        status: u16,
        requests: Vec<portcullis_sdk::http::Request>,
    }

    type Shared = std::rc::Rc<std::cell::RefCell<Provider>>;

    const JWKS_URI: &str = "https://id.example.com/keys";

    fn provider(jwks: Value) -> Shared {
        use portcullis_sdk::http::{Response, mock};
        let shared: Shared = Shared::default();
        {
            let mut p = shared.borrow_mut();
            p.jwks = jwks;
            p.discovery_issuer = ISS.into();
            p.status = 200;
        }
        let served = shared.clone();
        mock(move |request| {
            let mut p = served.borrow_mut();
            p.requests.push(request.clone());
            let body = if request.url == format!("{ISS}/.well-known/openid-configuration") {
                json!({"issuer": p.discovery_issuer, "jwks_uri": JWKS_URI}).to_string()
            } else if request.url == JWKS_URI {
                p.jwks.to_string()
            } else {
                return Ok(Response {
                    status: 404,
                    ..Response::default()
                });
            };
            Ok(Response {
                status: p.status,
                headers: Vec::new(),
                body: body.into_bytes(),
            })
        });
        shared
    }

    fn jwks_requests(p: &Shared) -> usize {
        p.borrow()
            .requests
            .iter()
            .filter(|r| r.url == JWKS_URI)
            .count()
    }

    /// The test configuration with its keys fetched: `source` is
    /// `{"jwks_uri": ...}` or `{"discovery": true}`.
    fn remote_plugin(source: Value) -> Oidc {
        let mut c: Value = serde_json::from_str(&config()).unwrap();
        let map = c.as_object_mut().unwrap();
        map.remove("jwks");
        for (k, v) in source.as_object().unwrap() {
            map.insert(k.clone(), v.clone());
        }
        Oidc::configure(&c.to_string()).unwrap()
    }

    fn decide_at(plugin: &Oidc, token: &str, now: i64) -> Result<String, String> {
        match plugin.decide(&with_token(token), now) {
            Decision::Allow(g) => Ok(g.account),
            Decision::Deny(r) => Err(r),
            Decision::Abstain => Err("abstained".into()),
        }
    }

    /// Only the RSA key (kid rsa1).
    fn rsa_only() -> Value {
        json!({"keys": [jwks()["keys"][0].clone()]})
    }

    /// The RSA key and the EC key under a new kid, as after a rotation.
    fn rotated() -> Value {
        let mut ec = jwks()["keys"][1].clone();
        ec["kid"] = json!("ec-2");
        json!({"keys": [jwks()["keys"][0].clone(), ec]})
    }

    fn es_kid(kid: &str) -> String {
        mint(json!({"alg": "ES256", "kid": kid}), &claims())
    }

    #[test]
    fn jwks_uri_keys_are_fetched_once_and_kept() {
        let idp = provider(rsa_only());
        let plugin = remote_plugin(json!({"jwks_uri": JWKS_URI}));
        for i in 0..5 {
            assert_eq!(decide_at(&plugin, &rs(&claims()), NOW + i).unwrap(), "APP1");
        }
        assert_eq!(jwks_requests(&idp), 1, "one fetch serves every login");
        let first = &idp.borrow().requests[0];
        assert_eq!(first.max_response_bytes, remote::MAX_DOCUMENT);
        assert!(
            !first.headers.iter().any(|(n, _)| n == "cache-control"),
            "a first fetch may come from the host's cache"
        );
    }

    #[test]
    fn discovery_finds_the_jwks_uri_of_the_configured_issuer() {
        let idp = provider(rsa_only());
        let plugin = remote_plugin(json!({"discovery": true}));
        assert_eq!(decide_at(&plugin, &rs(&claims()), NOW).unwrap(), "APP1");
        let urls: Vec<String> = idp
            .borrow()
            .requests
            .iter()
            .map(|r| r.url.clone())
            .collect();
        assert_eq!(
            urls,
            [
                format!("{ISS}/.well-known/openid-configuration"),
                JWKS_URI.into()
            ]
        );
    }

    #[test]
    fn a_discovery_document_of_another_issuer_is_refused() {
        let idp = provider(rsa_only());
        idp.borrow_mut().discovery_issuer = "https://evil.example.com".into();
        let plugin = remote_plugin(json!({"discovery": true}));
        let why = decide_at(&plugin, &rs(&claims()), NOW).unwrap_err();
        assert!(
            why.contains("is for issuer \"https://evil.example.com\""),
            "{why}"
        );
        assert_eq!(jwks_requests(&idp), 0, "no keys from a foreign document");
    }

    #[test]
    fn a_rotated_key_is_fetched_on_its_first_token_without_reload() {
        let idp = provider(rsa_only());
        let plugin = remote_plugin(json!({"jwks_uri": JWKS_URI}));
        assert_eq!(decide_at(&plugin, &rs(&claims()), NOW).unwrap(), "APP1");
        idp.borrow_mut().jwks = rotated();
        assert_eq!(
            decide_at(&plugin, &es_kid("ec-2"), NOW + 1).unwrap(),
            "APP1"
        );
        assert_eq!(jwks_requests(&idp), 2);
        let refetch = idp.borrow().requests.last().cloned().unwrap();
        assert!(
            refetch
                .headers
                .contains(&("cache-control".into(), "no-cache".into())),
            "the refetch must get past the host's cache: {refetch:?}"
        );
        // The old key still verifies, and nothing is fetched for it.
        assert_eq!(decide_at(&plugin, &rs(&claims()), NOW + 2).unwrap(), "APP1");
        assert_eq!(jwks_requests(&idp), 2);
    }

    #[test]
    fn made_up_key_ids_cause_at_most_one_refetch_per_interval() {
        let idp = provider(rsa_only());
        let plugin = remote_plugin(json!({"jwks_uri": JWKS_URI, "jwks_refetch_secs": 30}));
        assert_eq!(decide_at(&plugin, &rs(&claims()), NOW).unwrap(), "APP1");
        for i in 0..50 {
            let why = decide_at(&plugin, &es_kid(&format!("bogus-{i}")), NOW + i % 10).unwrap_err();
            assert!(why.contains("is not in the JWKS"), "{why}");
            if i > 0 {
                assert!(why.contains("next refetch in"), "{why}");
            }
        }
        assert_eq!(jwks_requests(&idp), 2, "initial fetch + one refetch");
        // A rotated key within the interval waits for it...
        idp.borrow_mut().jwks = rotated();
        assert!(decide_at(&plugin, &es_kid("ec-2"), NOW + 20).is_err());
        // ...and is admitted once it is over.
        assert_eq!(
            decide_at(&plugin, &es_kid("ec-2"), NOW + 30).unwrap(),
            "APP1"
        );
        assert_eq!(jwks_requests(&idp), 3);
    }

    #[test]
    fn stale_keys_are_refreshed_and_a_failed_refresh_keeps_them() {
        let idp = provider(rsa_only());
        let plugin = remote_plugin(json!({"jwks_uri": JWKS_URI, "jwks_refresh_secs": 100}));
        assert!(decide_at(&plugin, &rs(&claims()), NOW).is_ok());
        idp.borrow_mut().status = 503;
        assert!(decide_at(&plugin, &rs(&claims()), NOW + 100).is_ok());
        assert_eq!(jwks_requests(&idp), 2, "stale keys are fetched again");
        // A withdrawn key stops verifying after the next refresh.
        {
            let mut p = idp.borrow_mut();
            p.status = 200;
            p.jwks = json!({"keys": [rotated()["keys"][1].clone()]});
        }
        let why = decide_at(&plugin, &rs(&claims()), NOW + 200).unwrap_err();
        assert!(why.contains("\"rsa1\" is not in the JWKS"), "{why}");
    }

    #[test]
    fn fetch_errors_deny_with_the_reason_and_never_the_token() {
        use portcullis_sdk::http::{Error, Response, mock};
        let cases: Vec<(Result<Response, Error>, &str)> = vec![
            (Err(Error::Timeout), "no answer in time"),
            (
                Err(Error::Denied("not granted".into())),
                "refused by the host",
            ),
            (
                Ok(Response {
                    status: 500,
                    ..Response::default()
                }),
                "HTTP status 500",
            ),
            (
                Ok(Response {
                    status: 200,
                    body: b"<html>".to_vec(),
                    ..Response::default()
                }),
                "not JSON",
            ),
            (
                Ok(Response {
                    status: 200,
                    body: br#"{"keys": []}"#.to_vec(),
                    ..Response::default()
                }),
                "no RS256 or ES256",
            ),
        ];
        for (answer, needle) in cases {
            let calls = std::rc::Rc::new(std::cell::Cell::new(0));
            let counted = calls.clone();
            mock(move |_| {
                counted.set(counted.get() + 1);
                answer.clone()
            });
            let plugin = remote_plugin(json!({"jwks_uri": JWKS_URI}));
            let token = rs(&claims());
            for now in [NOW, NOW + 1, NOW + 2] {
                let why = decide_at(&plugin, &token, now).unwrap_err();
                assert!(why.contains(needle), "{why:?} lacks {needle:?}");
                assert!(why.contains(JWKS_URI), "{why}");
                assert!(!why.contains(&token[..20]), "token leaked: {why}");
            }
            assert_eq!(
                calls.get(),
                1,
                "an unreachable provider is asked once per interval"
            );
        }
    }

    #[test]
    fn key_source_configuration_errors() {
        let base: Value = serde_json::from_str(&config()).unwrap();
        let bad = |edit: &dyn Fn(&mut Value), needle: &str| {
            let mut c = base.clone();
            edit(&mut c);
            let err = Oidc::configure(&c.to_string()).err().expect("must fail");
            assert!(err.contains(needle), "{err:?} lacks {needle:?}");
        };
        let one_of = "exactly one of jwks, jwks_uri, discovery";
        bad(&|c| c["jwks_uri"] = json!(JWKS_URI), one_of);
        bad(&|c| c["discovery"] = json!(true), one_of);
        bad(&|c| _ = c.as_object_mut().unwrap().remove("jwks"), one_of);
        let remote = |c: &mut Value| {
            c.as_object_mut().unwrap().remove("jwks");
            c["jwks_uri"] = json!(JWKS_URI);
        };
        bad(
            &|c| {
                remote(c);
                c["discovery"] = json!(true);
            },
            one_of,
        );
        bad(
            &|c| {
                remote(c);
                c["jwks_uri"] = json!("https://user:pw@id.example.com/keys");
            },
            "jwks_uri: invalid URL",
        );
        bad(
            &|c| {
                remote(c);
                c["jwks_refetch_secs"] = json!(0);
            },
            "jwks_refetch_secs",
        );
        bad(
            &|c| c["jwks_refetch_secs"] = json!(5),
            "apply only to jwks_uri",
        );
    }
}

#[cfg(not(feature = "remote"))]
#[test]
fn without_http_a_key_url_names_the_component_that_fetches() {
    let mut c: Value = serde_json::from_str(&config()).unwrap();
    c.as_object_mut().unwrap().remove("jwks");
    c["jwks_uri"] = json!("https://id.example.com/keys");
    let err = Oidc::configure(&c.to_string()).err().expect("must fail");
    assert!(err.contains("oidc_http_auth.wasm"), "{err}");
}
