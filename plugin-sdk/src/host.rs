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

/// Highest bcrypt cost the host verifies (see [`verify_password`]).
pub const MAX_BCRYPT_COST: u32 = 14;

/// True when `password` matches `hash`, a bcrypt hash (`$2a$`, `$2b$`,
/// `$2y$`). Anything else, including a plaintext "hash", is false, and so
/// is a hash with a cost above [`MAX_BCRYPT_COST`]. In a plugin the host
/// runs bcrypt natively (several times faster than bcrypt compiled to Wasm)
/// and the time counts against the login's deadline; natively, for unit
/// tests, this crate runs bcrypt itself with the same answers.
pub fn verify_password(password: &str, hash: &str) -> bool {
    #[cfg(target_arch = "wasm32")]
    return imports::verify_password(password, hash);
    #[cfg(not(target_arch = "wasm32"))]
    {
        let prefixed = ["$2a$", "$2b$", "$2y$"].iter().any(|p| hash.starts_with(p));
        let cost = hash.get(4..6).and_then(|c| c.parse::<u32>().ok());
        match cost {
            Some(cost) if prefixed && (4..=MAX_BCRYPT_COST).contains(&cost) => {
                bcrypt::verify(password, hash).unwrap_or(false)
            }
            _ => false,
        }
    }
}

/// Compare two secrets in time that depends only on their lengths, so
/// response time does not tell how many leading bytes of a guess were right.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
