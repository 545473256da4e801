//! static-users reading its users from a JetStream KV bucket the
//! operator granted: `config = { kv_bucket = "users" }` with `grants = {
//! kv = ["users"] }`. One key per user, its value that user's `users.json`
//! entry as JSON (`nats kv put users dave '{"pass": "...", "account":
//! "APP1"}'`). Every login reads the user's key from the host's watched
//! copy of the bucket (no network round trip), so a put admits and a
//! delete refuses on the next login, without a reload. A read that fails
//! (bucket not granted, the host's copy not current, an entry over the
//! host's size cap or not valid) denies with the reason.
//!
//! The plugin code is static-users' own (compiled from its sources); this
//! build only adds the reads. Kept apart so that `static_users.wasm`
//! imports no `wasi:keyvalue` and loads without a grant.

#[path = "../../static-users/src/directory.rs"]
mod directory;
#[path = "../../static-users/src/plugin.rs"]
mod plugin;

pub use plugin::StaticUsers;
use portcullis_sdk::kv;
use std::cell::RefCell;

/// This build reads `kv_bucket`.
const READS_KV: bool = true;

thread_local! {
    /// The bucket, opened on the first login that reads it and kept for
    /// the instance's life (an open that fails is retried by the next
    /// login: the operator may grant it meanwhile).
    static BUCKET: RefCell<Option<(String, kv::Bucket)>> = const { RefCell::new(None) };
}

/// The value of `key` in `bucket`, from the host's copy.
fn kv_get(bucket: &str, key: &str) -> Result<Option<Vec<u8>>, String> {
    BUCKET.with(|cell| {
        let mut open = cell.borrow_mut();
        if open.as_ref().is_none_or(|(name, _)| name != bucket) {
            *open = Some((
                bucket.to_owned(),
                kv::open(bucket).map_err(|e| e.to_string())?,
            ));
        }
        let (_, handle) = open.as_ref().expect("opened above");
        handle.get(key).map_err(|e| e.to_string())
    })
}

portcullis_sdk::export!(StaticUsers);

#[cfg(test)]
mod tests {
    use super::*;
    use portcullis_sdk::{AuthRequest, Authenticator, Decision};

    #[test]
    fn users_from_a_kv_bucket_follow_its_keys() {
        use portcullis_sdk::kv::testing;
        let plugin = StaticUsers::configure(r#"{"kv_bucket": "users-unit"}"#).unwrap();
        testing::grant("users-unit");
        assert!(
            matches!(plugin.authenticate(&AuthRequest::with_password("dave", "d")), Decision::Deny(r) if r.contains("unknown user"))
        );
        testing::put("users-unit", "dave", br#"{"pass": "d", "account": "APP1"}"#);
        let Decision::Allow(dave) = plugin.authenticate(&AuthRequest::with_password("dave", "d"))
        else {
            panic!("dave must be admitted once his key exists");
        };
        assert_eq!(dave.account, "APP1");
        assert!(matches!(
            plugin.authenticate(&AuthRequest::with_password("dave", "x")),
            Decision::Deny(_)
        ));
        testing::put("users-unit", "dave", br#"{"pass": "d", "account": ""}"#);
        assert!(
            matches!(plugin.authenticate(&AuthRequest::with_password("dave", "d")), Decision::Deny(r) if r.contains("empty account"))
        );
        testing::put("users-unit", "dave", b"not json");
        assert!(
            matches!(plugin.authenticate(&AuthRequest::with_password("dave", "d")), Decision::Deny(r) if r.contains("not valid"))
        );
        testing::delete("users-unit", "dave");
        assert!(matches!(
            plugin.authenticate(&AuthRequest::with_password("dave", "d")),
            Decision::Deny(_)
        ));
    }

    #[test]
    fn an_ungranted_bucket_denies_with_the_reason() {
        let plugin = StaticUsers::configure(r#"{"kv_bucket": "never-granted"}"#).unwrap();
        let Decision::Deny(reason) = plugin.authenticate(&AuthRequest::with_password("a", "a"))
        else {
            panic!("no bucket, no login");
        };
        assert!(reason.contains("never-granted"), "{reason}");
    }

    #[test]
    fn kv_bucket_excludes_users_in_the_configuration() {
        for bad in [
            r#"{"kv_bucket": "users", "alice": {"pass": "a", "account": "A"}}"#,
            r#"{"kv_bucket": ""}"#,
            r#"{"kv_bucket": 3}"#,
        ] {
            assert!(StaticUsers::configure(bad).is_err(), "{bad}");
        }
    }
}
