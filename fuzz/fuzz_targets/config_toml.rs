//! The TOML configuration is parsed, path-resolved and validated before
//! anything listens: no text may panic it, whatever the operator (or a
//! config-management template gone wrong) wrote.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis::config::Config;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = Config::parse(text, Path::new("/etc/portcullis/portcullis.toml"));
});
