//! Conformance vector files are plugin authors' input to `portcullis
//! test`: a malformed one must be an error that names the file, never a
//! panic that hides which vector was wrong.
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis::vectors;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let dir_config = text.get(..text.len().min(16));
    let _ = vectors::parse_file(text, Path::new("vectors/fuzz.json"), dir_config);
});
