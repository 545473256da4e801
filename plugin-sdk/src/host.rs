//! Host functions, with native stand-ins so plugin logic unit-tests outside
//! of WebAssembly (where the WIT imports do not exist).

#[cfg(target_arch = "wasm32")]
use crate::bindings::portcullis::authenticator::host as imports;

pub use crate::bindings::portcullis::authenticator::host::Level;

/// Write a line to the host log (tagged with the plugin name by the host).
pub fn log(level: Level, message: &str) {
    #[cfg(target_arch = "wasm32")]
    imports::log(level, message);
    #[cfg(not(target_arch = "wasm32"))]
    eprintln!("[{level:?}] {message}");
}

/// Wall-clock time in milliseconds since the Unix epoch.
pub fn now_unix_ms() -> u64 {
    #[cfg(target_arch = "wasm32")]
    return imports::now_unix_ms();
    #[cfg(not(target_arch = "wasm32"))]
    return std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
}

/// True when `signature` (base64url) is `public_key`'s ed25519 signature over
/// `nonce`. Outside WebAssembly there is no host to ask, so this refuses.
pub fn verify_nkey_signature(public_key: &str, nonce: &str, signature: &str) -> bool {
    #[cfg(target_arch = "wasm32")]
    return imports::verify_nkey_signature(public_key, nonce, signature);
    #[cfg(not(target_arch = "wasm32"))]
    {
        let _ = (public_key, nonce, signature);
        false
    }
}
