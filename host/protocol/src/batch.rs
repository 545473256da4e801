//! Ed25519 batch verification of request signatures that arrived together.
//!
//! One signature check is a double scalar multiplication, ~250 point
//! doublings plus the additions; it was ~40% of the instructions of a
//! login. nats-server signs every request with one key (its server id), so
//! the requests of one server that arrive together are checked with one
//! equation, for random 128-bit `z_i`:
//!
//! `[8]([-Σ z_i·s_i]B + Σ [z_i]R_i + [Σ z_i·k_i]A) = 0`
//!
//! The doublings are shared by the whole batch and the key's term is added
//! once. A random linear combination of bad signatures cancels only with
//! probability 2^-128 (the `z_i` are drawn after the signatures are fixed).
//!
//! A batch that fails says only that some signature in it is bad, so each
//! is then verified alone, exactly as a lone request is: one forged request
//! never makes another fail, it only costs its batch a second pass. The
//! batch equation is the cofactored one; it accepts what single
//! verification accepts, and differs only for signatures built with a
//! small-order component, which takes the signer's private key to make.

use crate::jwt::{IssuerKey, JwtError, Unverified, challenge};
use crypto_box::aead::OsRng;
use crypto_box::aead::rand_core::RngCore as _;
use curve25519_dalek::constants::ED25519_BASEPOINT_POINT;
use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::{IsIdentity as _, VartimeMultiscalarMul as _};
use std::sync::Arc;

/// Verify the signatures of `items` (each with whatever `X` its caller
/// carries along, or the error that already stopped it), answers in order.
/// Items signed by the same key are verified in one batch when there are
/// two or more; the rest, and every item of a batch that fails, one by one.
pub fn verify<T, X, E: From<JwtError>>(
    items: Vec<Result<(Unverified<T>, X), E>>,
) -> Vec<Result<(T, X), E>> {
    let vouched = batches_that_hold(&items);
    items
        .into_iter()
        .zip(vouched)
        .map(|(item, vouched)| {
            let (token, extra) = item?;
            let claims = if vouched {
                token.into_verified_claims()
            } else {
                token.verify()?
            };
            Ok((claims, extra))
        })
        .collect()
}

/// For each item: whether a batch it was in verified.
fn batches_that_hold<T, X, E>(items: &[Result<(Unverified<T>, X), E>]) -> Vec<bool> {
    let tokens: Vec<Option<&Unverified<T>>> = items
        .iter()
        .map(|i| i.as_ref().ok().map(|(t, _)| t))
        .collect();
    let mut vouched = vec![false; items.len()];
    let mut grouped = vec![false; items.len()];
    for first in 0..tokens.len() {
        let Some(key) = tokens[first].map(Unverified::key) else {
            continue;
        };
        if grouped[first] {
            continue;
        }
        let group: Vec<usize> = (first..tokens.len())
            .filter(|&i| !grouped[i] && tokens[i].is_some_and(|t| same_key(t.key(), key)))
            .collect();
        for &i in &group {
            grouped[i] = true;
        }
        if group.len() > 1 && holds(key, group.iter().filter_map(|&i| tokens[i])) {
            for &i in &group {
                vouched[i] = true;
            }
        }
    }
    vouched
}

fn same_key(a: &Arc<IssuerKey>, b: &Arc<IssuerKey>) -> bool {
    Arc::ptr_eq(a, b) || a.verifying == b.verifying
}

/// Whether the batch equation holds for signatures by `key`. False as soon
/// as one signature is malformed (R not a point, s not canonical): single
/// verification then says which.
fn holds<'a, T: 'a>(key: &IssuerKey, tokens: impl Iterator<Item = &'a Unverified<T>>) -> bool {
    let tokens: Vec<&Unverified<T>> = tokens.collect();
    let mut random = vec![0u8; 16 * tokens.len()];
    OsRng.fill_bytes(&mut random);
    let mut scalars = Vec::with_capacity(tokens.len() + 2);
    let mut points = Vec::with_capacity(tokens.len() + 2);
    let mut base = Scalar::ZERO;
    let mut issuer = Scalar::ZERO;
    for (token, z) in tokens.iter().zip(random.chunks_exact(16)) {
        let signature = token.signature();
        let (r_bytes, s_bytes) = signature.split_at(32);
        let Ok(r_bytes) = <[u8; 32]>::try_from(r_bytes) else {
            return false;
        };
        let Ok(s_bytes) = <[u8; 32]>::try_from(s_bytes) else {
            return false;
        };
        let Some(r) = CompressedEdwardsY(r_bytes).decompress() else {
            return false;
        };
        let Some(s) = Option::<Scalar>::from(Scalar::from_canonical_bytes(s_bytes)) else {
            return false;
        };
        let k = challenge(&r_bytes, &key.verifying, token.signed());
        let mut wide = [0u8; 32];
        wide[..16].copy_from_slice(z);
        let z = Scalar::from_bytes_mod_order(wide);
        base -= z * s;
        issuer += z * k;
        scalars.push(z);
        points.push(r);
    }
    scalars.push(base);
    points.push(ED25519_BASEPOINT_POINT);
    scalars.push(issuer);
    points.push(key.point);
    EdwardsPoint::vartime_multiscalar_mul(scalars, points)
        .mul_by_cofactor()
        .is_identity()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwt::{self, decode_unverified};
    use nkeys::KeyPair;
    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize, Debug, PartialEq, Default)]
    struct Claims {
        jti: String,
        iss: String,
        sub: String,
    }

    fn token(signer: &KeyPair, sub: &str) -> String {
        let mut claims = Claims {
            iss: signer.public_key(),
            sub: sub.into(),
            ..Default::default()
        };
        jwt::encode(&mut claims, |c| &mut c.jti, signer).unwrap()
    }

    fn decoded(token: String) -> Result<(Unverified<Claims>, usize), JwtError> {
        Ok((decode_unverified(token, |c: &Claims| &c.iss)?, 0))
    }

    /// The same token with another `sub` but the original signature.
    fn forged(token: &str) -> String {
        use base64::Engine as _;
        use base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let parts: Vec<&str> = token.split('.').collect();
        let mut claims: Claims =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        claims.sub = "root".into();
        let body = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).unwrap());
        format!("{}.{body}.{}", parts[0], parts[2])
    }

    #[test]
    fn a_batch_of_good_signatures_verifies_in_one_equation() {
        let server = KeyPair::new_server();
        let tokens: Vec<_> = (0..5)
            .map(|i| decoded(token(&server, &format!("u{i}"))))
            .collect();
        assert_eq!(batches_that_hold(&tokens), vec![true; 5]);
        let subs: Vec<String> = verify(tokens)
            .into_iter()
            .map(|r| r.unwrap().0.sub)
            .collect();
        assert_eq!(subs, ["u0", "u1", "u2", "u3", "u4"]);
    }

    #[test]
    fn one_forged_request_in_a_batch_fails_alone() {
        let server = KeyPair::new_server();
        let good = token(&server, "alice");
        let items = vec![
            decoded(good.clone()),
            decoded(forged(&token(&server, "mallory"))),
            decoded(token(&server, "bob")),
        ];
        assert_eq!(
            batches_that_hold(&items),
            vec![false; 3],
            "the forged signature spoils the batch equation"
        );
        let results = verify(items);
        assert_eq!(results[0].as_ref().unwrap().0.sub, "alice");
        assert_eq!(results[1].as_ref().unwrap_err(), &JwtError::Signature);
        assert_eq!(results[2].as_ref().unwrap().0.sub, "bob");
    }

    #[test]
    fn a_signature_by_another_key_claiming_the_server_fails_alone() {
        let server = KeyPair::new_server();
        let impostor = KeyPair::new_server();
        // Signed by the impostor, naming the server as issuer.
        let mut claims = Claims {
            iss: server.public_key(),
            sub: "root".into(),
            ..Default::default()
        };
        let stolen_name = jwt::encode(&mut claims, |c| &mut c.jti, &impostor).unwrap();
        let results = verify(vec![
            decoded(token(&server, "alice")),
            decoded(stolen_name),
            decoded(token(&impostor, "its own")),
            decoded(token(&server, "bob")),
        ]);
        assert_eq!(results[0].as_ref().unwrap().0.sub, "alice");
        assert_eq!(results[1].as_ref().unwrap_err(), &JwtError::Signature);
        assert_eq!(results[2].as_ref().unwrap().0.sub, "its own");
        assert_eq!(results[3].as_ref().unwrap().0.sub, "bob");
    }

    #[test]
    fn malformed_signatures_fail_the_batch_and_then_alone() {
        let server = KeyPair::new_server();
        let good = token(&server, "alice");
        let (signed, _) = good.rsplit_once('.').unwrap();
        use base64::Engine as _;
        let b64 = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
        // s = 2^256 - 1 is not canonical; R = all 0xff is no point.
        let not_canonical = format!("{signed}.{}", b64(&[[0u8; 32], [0xff; 32]].concat()));
        let not_a_point = format!("{signed}.{}", b64(&[0xff; 64]));
        let results = verify(vec![
            decoded(good.clone()),
            decoded(not_canonical),
            decoded(not_a_point),
            Err(JwtError::Shape),
            decoded(token(&server, "bob")),
        ]);
        assert_eq!(results[0].as_ref().unwrap().0.sub, "alice");
        assert_eq!(results[1].as_ref().unwrap_err(), &JwtError::Signature);
        assert_eq!(results[2].as_ref().unwrap_err(), &JwtError::Signature);
        assert_eq!(results[3].as_ref().unwrap_err(), &JwtError::Shape);
        assert_eq!(results[4].as_ref().unwrap().0.sub, "bob");
    }
}
