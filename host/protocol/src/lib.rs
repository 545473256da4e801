//! The NATS auth-callout protocol, as Portcullis speaks it: the claims
//! nats-server sends and expects, the JWT codec, request verification
//! (xkey box, signature, issuer, audience, expiry), response and user-JWT
//! issuing, the keys that sign and seal, and operator-mode account JWTs.
//!
//! Owns: everything between raw request bytes and raw response bytes that
//! is not a decision. Must never depend on wasmtime (how plugins run) or
//! async-nats (how bytes travel): both the runtime and the transport change
//! for their own reasons, and the whole protocol stays testable and
//! benchmarkable in-process. No seed ever reaches a log line or an error
//! message from this crate.
//!
//! Also the lowest crate of the host, so the few utilities every other
//! crate needs live here once: the Unix clock ([`time`]), the digest that
//! names components ([`digest`]), the atomic file write ([`files`]) and
//! the escaping of untrusted text for logs ([`logsafe`]) and the one-line
//! error chain ([`errors`]).

pub mod accounts;
pub mod batch;
pub mod claims;
pub mod digest;
pub mod errors;
pub mod files;
pub mod issue;
pub mod jwt;
pub mod keys;
pub mod logsafe;
pub mod response;
pub mod time;
pub mod verify;

pub use issue::{AccountSigner, Approved, IssueError, UserIssuer};
pub use response::{ResponseError, Signers};
pub use verify::{RequestError, VerifiedRequest, Verifier, verify_request};

/// Header in which nats-server sends its xkey when it sealed the request.
pub const SERVER_XKEY_HEADER: &str = "Nats-Server-Xkey";
/// Subject the server sends authorization requests to.
pub const CALLOUT_SUBJECT: &str = "$SYS.REQ.USER.AUTH";
