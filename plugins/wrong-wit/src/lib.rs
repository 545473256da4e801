//! Test fixture: a plugin built against `portcullis:authenticator@9.0.0`,
//! a version this host does not serve. The host must refuse it at load
//! with a message naming both versions.

// Component exports exist only in WebAssembly; natively there is nothing
// to build (its export names are not valid native symbols).
#![cfg(target_arch = "wasm32")]

wit_bindgen::generate!({ path: "wit", world: "authenticator" });

use exports::portcullis::authenticator::plugin::Guest;
use portcullis::authenticator::types::{AuthRequest, Decision};

struct WrongWit;

impl Guest for WrongWit {
    fn configure(_config: String) -> Result<(), String> {
        Ok(())
    }

    fn authenticate(_request: AuthRequest) -> Decision {
        Decision::Abstain
    }
}

export!(WrongWit);
