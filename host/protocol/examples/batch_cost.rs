//! What batch verification saves, for `valgrind --tool=callgrind`: signs
//! TOTAL request-sized tokens with one server key, then verifies them in
//! batches of N (N = 0: sign only, the baseline to subtract).
//!
//! ```sh
//! cargo build --release -p portcullis-protocol --example batch_cost
//! for n in 0 1 2 4 8; do valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!     target/release/examples/batch_cost $n 64 2>&1 | grep refs; done
//! ```
//!
//! (Ir(N) - Ir(0)) / TOTAL is the cost of one signature check in a batch of N.

use nkeys::KeyPair;
use portcullis_protocol::batch;
use portcullis_protocol::claims::RequestClaims;
use portcullis_protocol::jwt::{self, JwtError};

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("N and TOTAL are numbers"))
        .collect();
    let (n, total) = (args[0], args[1]);
    let server = KeyPair::new_server();
    let tokens: Vec<String> = (0..total)
        .map(|i| {
            let mut claims = RequestClaims::new(
                &server.public_key(),
                &KeyPair::new_user().public_key(),
                1_000,
                2_000,
            );
            // About the size of a real request (client info, CONNECT options).
            claims.nats.connect_opts.name = format!("client {i} {}", "x".repeat(1500));
            jwt::encode(&mut claims, |c| &mut c.jti, &server).expect("signs")
        })
        .collect();
    if n == 0 {
        return;
    }
    let mut ok = 0;
    for chunk in tokens.chunks(n) {
        let items: Vec<Result<_, JwtError>> = chunk
            .iter()
            .map(|t| {
                Ok((
                    jwt::decode_unverified(t.clone(), |c: &RequestClaims| &c.iss)?,
                    (),
                ))
            })
            .collect();
        ok += batch::verify(items)
            .into_iter()
            .filter(Result::is_ok)
            .count();
    }
    assert_eq!(ok, total);
}
