//! Digests name cache files and are compared against signed release
//! records: only `sha256:` and 64 lowercase hex digits may parse, the hex
//! must be a safe file name, and the error must quote a bounded prefix.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_protocol::digest::Digest;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match Digest::parse(text) {
        Ok(d) => {
            assert_eq!(d.to_string(), text);
            assert_eq!(d.hex().len(), 64);
            assert!(
                d.hex()
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
            );
        }
        // Quoted (escapes at most ~10x) and cut to 80 characters.
        Err(e) => assert!(e.to_string().len() < 1200),
    }
});
