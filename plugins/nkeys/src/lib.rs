//! The nkeys plugin: NKey challenge-response logins (the NATS 2.0 NKeys
//! scheme), with each user public key mapped to an account and permissions.
//!
//! The client signs the nonce the server sent it; the server passes the
//! nonce (`client_info.nonce`), the key (`connect_opts.nkey`) and the
//! signature (`connect_opts.sig`) on, and the plugin checks the signature
//! with the host's `verify-nkey-signature` (the plugin holds no crypto).
//!
//! Configuration:
//!
//! ```json
//! { "users": {
//!     "UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4": {
//!       "account": "APP1", "name": "sensor-7",
//!       "permissions": { "pub": { "allow": ["sensors.{nkey}.>"] } } } } }
//! ```
//!
//! A login without an nkey is not this plugin's (abstain); an unknown key,
//! a missing nonce or a signature that does not verify is denied.

use plugin_support::GrantSpec;
use portcullis_sdk::{AuthRequest, Authenticator, Decision, host};
use serde::Deserialize;
use std::collections::HashMap;

/// Variables templates may use: the user's public key.
const VARIABLES: &[&str] = &["nkey"];

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Config {
    users: HashMap<String, serde_json::Value>,
}

/// User public key -> what it is granted.
pub struct NKeys {
    users: HashMap<String, GrantSpec>,
}

/// `verify(public_key, nonce, signature)`: the host import in WebAssembly,
/// a stand-in in unit tests.
type Verify<'a> = &'a dyn Fn(&str, &str, &str) -> bool;

impl NKeys {
    /// Decide with `verify` checking signatures.
    pub fn decide(&self, request: &AuthRequest, verify: Verify<'_>) -> Decision {
        let Some(nkey) = request.connect.nkey.as_deref().filter(|k| !k.is_empty()) else {
            return Decision::Abstain;
        };
        let Some(spec) = self.users.get(nkey) else {
            return Decision::Deny(format!("unknown nkey {nkey}"));
        };
        let Some(sig) = request.connect.sig.as_deref().filter(|s| !s.is_empty()) else {
            return Decision::Deny(format!("nkey {nkey} sent no signature"));
        };
        let nonce = &request.client.nonce;
        if nonce.is_empty() {
            // nats-server sends a nonce only when it knows NKey users (or
            // runs in operator mode); without one there is no challenge,
            // and a signature over nothing proves nothing.
            return Decision::Deny(
                "the server sent no nonce to sign: give nats-server at least one nkey user".into(),
            );
        }
        if !verify(nkey, nonce, sig) {
            return Decision::Deny(format!("signature of nkey {nkey} does not verify"));
        }
        match spec.grant(&|var| (var == "nkey").then(|| nkey.to_owned())) {
            Ok(grant) => Decision::Allow(grant),
            Err(e) => Decision::Deny(format!("nkey {nkey}: {e}")),
        }
    }
}

/// A user public key: 'U' plus 55 more base32 characters (the host checks
/// the checksum when it verifies a signature).
fn is_user_key(key: &str) -> bool {
    key.len() == 56
        && key.starts_with('U')
        && key
            .bytes()
            .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b))
}

impl Authenticator for NKeys {
    fn configure(config: &str) -> Result<Self, String> {
        let config: Config = portcullis_sdk::parse_config(config)?;
        let mut users = HashMap::with_capacity(config.users.len());
        for (key, value) in config.users {
            let what = format!("users.{key}");
            if !is_user_key(&key) {
                return Err(format!(
                    "{what}: not a user public key (U..., 56 characters)"
                ));
            }
            let spec = GrantSpec::from_value(value, &what)?;
            spec.validate(&what, Some(VARIABLES))?;
            users.insert(key, spec);
        }
        Ok(NKeys { users })
    }

    fn authenticate(&self, request: &AuthRequest) -> Decision {
        self.decide(request, &host::verify_nkey_signature)
    }
}

portcullis_sdk::export!(NKeys);

#[cfg(test)]
mod tests {
    use super::*;

    const ALICE: &str = "UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4";
    const BOB: &str = "UAL7QDKWSXDBDJAXF3RXYMCKJEPBQBRH2IMTSVGLYIU6KPGJBW4J4MWR";

    fn plugin() -> NKeys {
        NKeys::configure(&format!(
            r#"{{"users": {{
                "{ALICE}": {{"account": "APP1", "name": "alice",
                             "permissions": {{"pub": {{"allow": ["keys.{{nkey}}.>"]}}}}}}
            }}}}"#
        ))
        .unwrap()
    }

    fn login(nkey: &str, sig: Option<&str>, nonce: &str) -> AuthRequest {
        let mut r = AuthRequest::empty();
        r.connect.nkey = Some(nkey.into());
        r.connect.sig = sig.map(Into::into);
        r.client.nonce = nonce.into();
        r
    }

    // Stands in for the host: the "signature" is valid when it spells
    // key and nonce.
    fn verify(key: &str, nonce: &str, sig: &str) -> bool {
        sig == format!("{key}/{nonce}")
    }

    #[test]
    fn signed_known_key_gets_its_grant() {
        let sig = format!("{ALICE}/n0nce");
        let Decision::Allow(g) = plugin().decide(&login(ALICE, Some(&sig), "n0nce"), &verify)
        else {
            panic!("alice must be allowed");
        };
        assert_eq!(g.account, "APP1");
        assert_eq!(g.display_name.as_deref(), Some("alice"));
        assert_eq!(g.publish.allow, [format!("keys.{ALICE}.>")]);
    }

    #[test]
    fn unknown_key_bad_or_missing_signature_and_no_nonce_are_denied() {
        let p = plugin();
        let deny = |r: AuthRequest, needle: &str| match p.decide(&r, &verify) {
            Decision::Deny(reason) => assert!(reason.contains(needle), "{reason}"),
            _ => panic!("expected a deny with {needle:?}"),
        };
        deny(login(BOB, Some(&format!("{BOB}/n")), "n"), "unknown nkey");
        deny(login(ALICE, Some("forged"), "n"), "does not verify");
        deny(login(ALICE, None, "n"), "no signature");
        deny(login(ALICE, Some(&format!("{ALICE}/")), ""), "no nonce");
        assert!(matches!(
            p.decide(&AuthRequest::empty(), &verify),
            Decision::Abstain
        ));
        // Natively there is no host: the real entry point refuses signatures.
        assert!(matches!(
            p.authenticate(&login(ALICE, Some(&format!("{ALICE}/n")), "n")),
            Decision::Deny(_)
        ));
    }

    #[test]
    fn configuration_errors_name_the_entry() {
        let err = NKeys::configure(r#"{"users": {"SUABC": {"account": "A"}}}"#)
            .err()
            .unwrap();
        assert!(err.contains("users.SUABC"), "{err}");
        let err = NKeys::configure(&format!(r#"{{"users": {{"{ALICE}": {{"acount": "A"}}}}}}"#))
            .err()
            .unwrap();
        assert!(err.contains(ALICE) && err.contains("acount"), "{err}");
        let err = NKeys::configure(&format!(
            r#"{{"users": {{"{ALICE}": {{"account": "A", "permissions": {{"pub": {{"allow": ["{{sub}}"]}}}}}}}}}}"#
        ))
        .err()
        .unwrap();
        assert!(err.contains("unknown variable"), "{err}");
        assert!(NKeys::configure(r#"{"user": {}}"#).is_err());
    }
}
