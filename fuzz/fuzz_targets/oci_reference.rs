//! `oci://` references come from operators' config and from fleet release
//! records other parties may write: parsing must never panic, and what
//! parses must print back to itself (the cache and the pull use the
//! printed form, so two spellings of one reference would be two things).
#![no_main]

use libfuzzer_sys::fuzz_target;
use portcullis_sources::oci::reference::OciRef;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(r) = OciRef::parse(text) {
        assert_eq!(r.to_string(), text);
        assert_eq!(OciRef::parse(&r.to_string()).as_ref(), Ok(&r));
        let _ = r.is_loopback();
        assert!(r.tag.is_some() || r.digest.is_some());
    }
});
