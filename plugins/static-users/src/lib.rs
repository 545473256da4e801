//! The static-users plugin: the user directory of the nats-by-example
//! auth-callout examples (`users.json`), as a Portcullis plugin.
//!
//! Configuration: `{"alice": {"pass": "alice", "account": "APP1"}, "bob":
//! {"pass": "$2b$...", "account": "APP2", "permissions": {"pub": {"allow":
//! ["bob.>"]}, "sub": {"allow": ["bob.>"]}, "resp": {"max": 1}}}}`.
//! `pass` is plaintext, a bcrypt hash or an argon2 PHC string. An unknown
//! user or a wrong password is denied.
//!
//! Shared tokens: `"tokens": {"sha256:HEX": {"account": "APP1",
//! "permissions": {...}}}` (the name `tokens` is that section, never a
//! user). A login with `auth_token` and no user name gets the grant of the
//! entry whose hash is the token's, and is denied if there is none. A
//! login with neither a user name nor a token, or with a token where the
//! configuration lists no tokens, is not this plugin's to decide
//! (abstain).
//!
//! Users from a JetStream KV bucket (the `static_users_kv.wasm` build,
//! plugins/static-users-kv): `{"kv_bucket": "users"}` instead of
//! the users (the plugin's `[[plugins]]` entry needs `grants = { kv =
//! ["users"] }`). One key per user, its value that user's entry as JSON
//! (`nats kv put users dave '{"pass": "...", "account": "APP1"}'`); each
//! login reads the user's key from the host's watched copy, so a put
//! admits and a delete refuses on the next login, without a reload. A read
//! that fails (bucket not granted, copy not current) denies with the
//! reason.

mod directory;
mod plugin;

pub use plugin::StaticUsers;

/// This build reads no KV: `kv_bucket` is refused at configure.
const READS_KV: bool = false;

/// Never called (configure refuses `kv_bucket` first); here so the shared
/// plugin code compiles without importing `wasi:keyvalue`.
fn kv_get(_bucket: &str, _key: &str) -> Result<Option<Vec<u8>>, String> {
    Err("this build reads no KV".into())
}

portcullis_sdk::export!(StaticUsers);
