use super::*;
use crate::jwt;
use crate::keys::SeedSource;
use base64::Engine as _;
use nkeys::KeyPair;

/// A real request, captured from nats-server 2.15.1 (config mode, xkey on,
/// client alice/alice named "capture-client"), with the keys to open it.
const CAPTURED: &str = include_str!("testdata/request-2.15.1-xkey.json");

struct Captured {
    sealed: Vec<u8>,
    server_xkey: String,
    xkey: Xkey,
    _dir: tempfile::TempDir,
}

fn captured() -> Captured {
    let v: serde_json::Value = serde_json::from_str(CAPTURED).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let seed = dir.path().join("xkey.nk");
    std::fs::write(&seed, v["xkey_seed"].as_str().unwrap()).unwrap();
    Captured {
        sealed: base64::engine::general_purpose::STANDARD
            .decode(v["sealed_base64"].as_str().unwrap())
            .unwrap(),
        server_xkey: v["server_xkey"].as_str().unwrap().to_owned(),
        xkey: crate::keys::xkey(&SeedSource::File(seed)).unwrap(),
        _dir: dir,
    }
}

/// The JWT inside the captured box, and its `iat`.
fn captured_jwt(c: &Captured) -> (String, i64) {
    let token = String::from_utf8(c.xkey.open(&c.sealed, &c.server_xkey).unwrap()).unwrap();
    let claims: RequestClaims = jwt::decode_verified(&token).unwrap();
    (token, claims.iat)
}

#[test]
fn decodes_a_real_sealed_request_from_nats_server() {
    let c = captured();
    let (_, iat) = captured_jwt(&c);
    let v = verify_request(&c.sealed, Some(&c.server_xkey), Some(&c.xkey), iat).unwrap();
    let r = &v.claims;
    assert_eq!(r.aud, "nats-authorization-request");
    assert_eq!(r.nats.claim_type, "authorization_request");
    assert_eq!(r.nats.version, 2);
    assert!(r.iss.starts_with('N'));
    assert_eq!(r.nats.server_id.id, r.iss);
    assert_eq!(r.nats.server_id.version, "2.15.1");
    assert_eq!(r.nats.server_id.xkey, c.server_xkey);
    assert!(r.nats.user_nkey.starts_with('U'));
    assert_eq!(r.nats.connect_opts.user, "alice");
    assert_eq!(r.nats.connect_opts.pass, "alice");
    assert_eq!(r.nats.connect_opts.name, "capture-client");
    assert_eq!(r.nats.connect_opts.lang, "rust");
    assert_eq!(r.nats.client_info.host, "127.0.0.1");
    assert_eq!(r.nats.client_info.kind, "Client");
    assert_eq!(r.nats.client_info.client_type, "nats");
    assert!(r.exp > r.iat, "the server sets exp = iat + auth timeout");
    assert_eq!(v.server_xkey.as_deref(), Some(c.server_xkey.as_str()));
}

#[test]
fn refuses_an_expired_request() {
    let c = captured();
    let (_, iat) = captured_jwt(&c);
    let err =
        verify_request(&c.sealed, Some(&c.server_xkey), Some(&c.xkey), iat + 3600).unwrap_err();
    assert!(matches!(err, RequestError::Expired { .. }), "{err}");
}

#[test]
fn refuses_a_box_it_cannot_open() {
    let c = captured();
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("other.nk");
    std::fs::write(&other, nkeys::XKey::new().seed().unwrap()).unwrap();
    let wrong = crate::keys::xkey(&SeedSource::File(other)).unwrap();
    let err = verify_request(&c.sealed, Some(&c.server_xkey), Some(&wrong), 0).unwrap_err();
    assert!(matches!(err, RequestError::Open(_)), "{err}");
    let err = verify_request(&c.sealed, Some(&c.server_xkey), None, 0).unwrap_err();
    assert!(matches!(err, RequestError::NoXkeyConfigured), "{err}");
    // Sealed bytes presented as if they were a plain JWT.
    let err = verify_request(&c.sealed, None, Some(&c.xkey), 0).unwrap_err();
    assert!(
        matches!(err, RequestError::NotText | RequestError::Jwt(_)),
        "{err}"
    );
}

#[test]
fn refuses_a_tampered_jwt() {
    let c = captured();
    let (token, iat) = captured_jwt(&c);
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let mut claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(&parts[1])
            .unwrap(),
    )
    .unwrap();
    claims["nats"]["connect_opts"]["user"] = "root".into();
    parts[1] = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(serde_json::to_vec(&claims).unwrap());
    let forged = parts.join(".");
    let err = verify_request(forged.as_bytes(), None, None, iat).unwrap_err();
    assert!(
        matches!(err, RequestError::Jwt(jwt::JwtError::Signature)),
        "{err}"
    );
    let err = verify_request(b"garbage", None, None, iat).unwrap_err();
    assert!(
        matches!(err, RequestError::Jwt(jwt::JwtError::Shape)),
        "{err}"
    );
}

/// A request as a server with key `signer` would send it.
fn forge(signer: &KeyPair, edit: impl FnOnce(&mut RequestClaims)) -> Vec<u8> {
    let mut claims = RequestClaims::new(
        &signer.public_key(),
        &KeyPair::new_user().public_key(),
        1_000,
        1_000,
    );
    edit(&mut claims);
    jwt::encode(&mut claims, |c| &mut c.jti, signer)
        .unwrap()
        .into_bytes()
}

#[test]
fn refuses_requests_that_are_not_authorization_requests_from_a_server() {
    let server = KeyPair::new_server();
    assert!(verify_request(&forge(&server, |_| {}), None, None, 1_500).is_ok());

    type Expect = fn(&RequestError) -> bool;
    let cases: Vec<(&str, Vec<u8>, Expect)> = vec![
        (
            "wrong audience",
            forge(&server, |c| c.aud = "nats-authorization-response".into()),
            |e| matches!(e, RequestError::Audience(_)),
        ),
        (
            "wrong type",
            forge(&server, |c| c.nats.claim_type = "user".into()),
            |e| matches!(e, RequestError::Type(_)),
        ),
        ("no expiry", forge(&server, |c| c.exp = 0), |e| {
            matches!(e, RequestError::NoExpiry)
        }),
        (
            "bad user nkey",
            forge(&server, |c| c.nats.user_nkey = "ABC".into()),
            |e| matches!(e, RequestError::UserNkey(_)),
        ),
        (
            "server id of another server",
            forge(&server, |c| {
                c.nats.server_id.id = KeyPair::new_server().public_key()
            }),
            |e| matches!(e, RequestError::ServerMismatch { .. }),
        ),
    ];
    for (name, payload, expected) in cases {
        let err = verify_request(&payload, None, None, 1_500).unwrap_err();
        assert!(expected(&err), "{name}: {err}");
    }

    // Signed by an account key (anyone with a leaked account seed), not a server.
    let account = KeyPair::new_account();
    let payload = forge(&account, |c| c.nats.server_id.id = c.iss.clone());
    let err = verify_request(&payload, None, None, 1_500).unwrap_err();
    assert!(matches!(err, RequestError::IssuerNotServer(_)), "{err}");
}

#[test]
fn pinned_servers_and_server_xkeys_refuse_everyone_else() {
    let server = KeyPair::new_server();
    let payload = forge(&server, |_| {});
    let pinned = Verifier {
        servers: vec![server.public_key()],
        ..Verifier::default()
    };
    assert!(pinned.verify(&payload, None, 1_500).is_ok());
    let other = Verifier {
        servers: vec![KeyPair::new_server().public_key()],
        ..Verifier::default()
    };
    assert!(matches!(
        other.verify(&payload, None, 1_500),
        Err(RequestError::ServerNotPinned(_))
    ));

    let c = captured();
    let (_, iat) = captured_jwt(&c);
    let xkey_pinned = |pins: Vec<String>| Verifier {
        xkey: Some(captured().xkey),
        server_xkeys: pins,
        ..Verifier::default()
    };
    assert!(
        xkey_pinned(vec![c.server_xkey.clone()])
            .verify(&c.sealed, Some(&c.server_xkey), iat)
            .is_ok()
    );
    let err = xkey_pinned(vec![nkeys::XKey::new().public_key()])
        .verify(&c.sealed, Some(&c.server_xkey), iat)
        .unwrap_err();
    assert!(matches!(err, RequestError::ServerXkeyNotPinned(_)), "{err}");
    let err = xkey_pinned(vec![c.server_xkey.clone()])
        .verify(&payload, None, iat)
        .unwrap_err();
    assert!(matches!(err, RequestError::NotSealed), "{err}");
}

#[test]
fn an_unsealed_request_to_a_host_with_an_xkey_is_refused_unless_accepted() {
    let server = KeyPair::new_server();
    let payload = forge(&server, |_| {});
    let with_xkey = |accept_unsealed| Verifier {
        xkey: Some(captured().xkey),
        accept_unsealed,
        ..Verifier::default()
    };
    let err = with_xkey(false).verify(&payload, None, 1_500).unwrap_err();
    assert!(matches!(err, RequestError::Unsealed), "{err}");
    assert!(err.to_string().contains("accept_unsealed"), "{err}");
    assert!(with_xkey(true).verify(&payload, None, 1_500).is_ok());
    // Without an xkey nothing is sealed, and nothing is asked of it.
    assert!(Verifier::default().verify(&payload, None, 1_500).is_ok());
    // Sealed requests verify either way.
    let c = captured();
    let (_, iat) = captured_jwt(&c);
    for accept_unsealed in [false, true] {
        assert!(
            with_xkey(accept_unsealed)
                .verify(&c.sealed, Some(&c.server_xkey), iat)
                .is_ok()
        );
    }
}

/// Request decoding (xkey open + JWT decode + claims parse) on hostile
/// input: a bounded number of generated cases per run, none may panic, and
/// a mutated real request never verifies as something else.
mod fuzz {
    use super::*;
    use proptest::prelude::*;
    use std::sync::OnceLock;

    fn real() -> &'static (Captured, String, i64) {
        static REAL: OnceLock<(Captured, String, i64)> = OnceLock::new();
        REAL.get_or_init(|| {
            let c = captured();
            let (token, iat) = captured_jwt(&c);
            (c, token, iat)
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 3000, failure_persistence: None, ..ProptestConfig::default() })]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..1024), sealed in any::<bool>()) {
            let (c, _, iat) = real();
            let header = sealed.then_some(c.server_xkey.as_str());
            prop_assert!(verify_request(&bytes, header, Some(&c.xkey), *iat).is_err());
        }

        #[test]
        fn flipped_bits_in_a_sealed_request_are_refused(pos in any::<prop::sample::Index>(), bit in 0u8..8) {
            let (c, _, iat) = real();
            let mut sealed = c.sealed.clone();
            let i = pos.index(sealed.len());
            sealed[i] ^= 1 << bit;
            prop_assert!(verify_request(&sealed, Some(&c.server_xkey), Some(&c.xkey), *iat).is_err());
        }

        #[test]
        fn edited_jwt_text_never_verifies_as_different_claims(pos in any::<prop::sample::Index>(), ch in any::<char>()) {
            let (_, token, iat) = real();
            let mut chars: Vec<char> = token.chars().collect();
            let i = pos.index(chars.len());
            chars[i] = ch;
            let edited: String = chars.into_iter().collect();
            // base64 has slack bits, so an edit may decode to the same
            // bytes; then it must verify as exactly the original claims.
            if let Ok(v) = verify_request(edited.as_bytes(), None, None, *iat) {
                let original: RequestClaims = jwt::decode_verified(token).unwrap();
                prop_assert_eq!(v.claims, original);
            }
        }

        #[test]
        fn jwt_shaped_garbage_never_panics(h in "[A-Za-z0-9_-]{0,64}", c in "[A-Za-z0-9_-]{0,256}", s in "[A-Za-z0-9_-]{0,100}") {
            let token = format!("{h}.{c}.{s}");
            prop_assert!(verify_request(token.as_bytes(), None, None, 0).is_err());
        }
    }
}

/// Requests verified together: each answered on its own, and one already
/// expired is dropped as expired before its signature is looked at (a
/// storm's backlog is full of those), whatever that signature is.
#[test]
fn requests_verified_together_fail_alone_and_expired_ones_before_their_signature() {
    let server = KeyPair::new_server();
    let impostor = KeyPair::new_server();
    let fresh = |user: &str| {
        forge(&server, |c| {
            c.exp = 3_000;
            c.nats.connect_opts.user = user.into();
        })
    };
    // Claims naming the server, signed by someone else: forged.
    let forged = |exp: i64| {
        let mut claims = RequestClaims::new(
            &server.public_key(),
            &KeyPair::new_user().public_key(),
            1_000,
            1_000,
        );
        claims.exp = exp;
        jwt::encode(&mut claims, |c| &mut c.jti, &impostor)
            .unwrap()
            .into_bytes()
    };
    let requests = [
        fresh("alice"),
        forged(2_000),
        fresh("bob"),
        forged(3_000),
        forge(&server, |c| c.exp = 2_000),
    ];
    let results = Verifier::default().verify_all(requests.iter().map(|r| (&r[..], None)), 2_500);
    let user = |i: usize| &results[i].as_ref().unwrap().claims.nats.connect_opts.user;
    assert_eq!(user(0), "alice");
    assert_eq!(user(2), "bob");
    assert!(
        matches!(
            results[1],
            Err(RequestError::Expired {
                exp: 2_000,
                now: 2_500
            })
        ),
        "{:?}",
        results[1]
    );
    assert!(
        matches!(results[3], Err(RequestError::Jwt(jwt::JwtError::Signature))),
        "{:?}",
        results[3]
    );
    assert!(
        matches!(results[4], Err(RequestError::Expired { .. })),
        "{:?}",
        results[4]
    );
}
