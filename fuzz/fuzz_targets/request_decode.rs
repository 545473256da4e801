//! Request decoding as the callout subscriber sees it: whatever arrives on
//! the subject (random bytes, a box under a header, a real request with
//! bytes changed) goes through xkey open, JWT decode and the claims checks.
//! Nothing may panic, and a changed request must not verify as a different
//! one: the first byte picks the path so one corpus covers all four.
#![no_main]

use base64::Engine as _;
use libfuzzer_sys::fuzz_target;
use portcullis_protocol::claims::RequestClaims;
use portcullis_protocol::keys::{SeedSource, Xkey, xkey};
use portcullis_protocol::verify::{Verifier, verify_request};
use std::sync::OnceLock;

/// The real nats-server request the protocol unit tests decode.
const CAPTURED: &str =
    include_str!("../../host/protocol/src/verify/testdata/request-2.15.1-xkey.json");

struct Real {
    sealed: Vec<u8>,
    server_xkey: String,
    xkey: Xkey,
    verifier: Verifier,
    token: String,
    claims: RequestClaims,
}

fn real() -> &'static Real {
    static REAL: OnceLock<Real> = OnceLock::new();
    REAL.get_or_init(|| {
        let v: serde_json::Value = serde_json::from_str(CAPTURED).unwrap();
        let xkey = load_xkey(v["xkey_seed"].as_str().unwrap());
        let verifier = Verifier {
            xkey: Some(load_xkey(v["xkey_seed"].as_str().unwrap())),
            ..Verifier::default()
        };
        let sealed = base64::engine::general_purpose::STANDARD
            .decode(v["sealed_base64"].as_str().unwrap())
            .unwrap();
        let server_xkey = v["server_xkey"].as_str().unwrap().to_owned();
        let opened = xkey.open(&sealed, &server_xkey).unwrap();
        let token = String::from_utf8(opened).unwrap();
        let claims = verify_request(token.as_bytes(), None, None, 0)
            .unwrap()
            .claims;
        Real {
            sealed,
            server_xkey,
            xkey,
            verifier,
            token,
            claims,
        }
    })
}

/// The key loader reads seeds from files or the environment only, never
/// inline text.
fn load_xkey(seed: &str) -> Xkey {
    let path = std::env::temp_dir().join(format!("portcullis-fuzz-xkey-{}.nk", std::process::id()));
    std::fs::write(&path, seed).unwrap();
    let key = xkey(&SeedSource::File(path.clone())).unwrap();
    let _ = std::fs::remove_file(&path);
    key
}

/// Apply `edits` as (position, xor) pairs: a mutated request that keeps
/// most of a real one's structure, which random bytes rarely reach.
fn mutate(original: &[u8], edits: &[u8]) -> Vec<u8> {
    let mut out = original.to_vec();
    for pair in edits.chunks_exact(3) {
        let pos = usize::from(u16::from_le_bytes([pair[0], pair[1]])) % out.len();
        out[pos] ^= pair[2];
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let r = real();
    let now = r.claims.iat;
    match mode % 4 {
        0 => {
            let _ = verify_request(rest, None, None, now);
        }
        1 => {
            assert!(verify_request(rest, Some(&r.server_xkey), Some(&r.xkey), now).is_err());
        }
        2 => {
            let sealed = mutate(&r.sealed, rest);
            if let Ok(v) = r.verifier.verify(&sealed, Some(&r.server_xkey), now) {
                assert_eq!(sealed, r.sealed, "a changed box opened");
                assert_eq!(v.claims, r.claims);
            }
        }
        _ => {
            let token = mutate(r.token.as_bytes(), rest);
            // base64 has slack bits: an edit may decode to the same bytes,
            // and then it must be exactly the original claims.
            if let Ok(v) = verify_request(&token, None, None, now) {
                assert_eq!(v.claims, r.claims, "an edited JWT verified as other claims");
            }
        }
    }
});
