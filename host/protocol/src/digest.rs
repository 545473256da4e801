//! The digest that names a component everywhere: logs, the compile cache,
//! fleet manifests, OCI layers and `plugin inspect`.
//!
//! A digest read from anywhere outside this process (a registry manifest,
//! a cache record, a fleet manifest) is parsed into a [`Digest`] before it
//! is used: digests name files in caches, and the only text that may become
//! part of a path is 64 lowercase hex digits, never `/`, `..` or an empty
//! name.

use sha2::{Digest as _, Sha256};
use std::fmt;
use std::str::FromStr;

/// SHA-256 of `bytes`, lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

const SHA256_PREFIX: &str = "sha256:";
const SHA256_HEX_LEN: usize = 64;
/// How much of a refused digest an error quotes: enough to recognise it,
/// not a registry's megabyte of junk in a log line.
const SHOWN_CHARS: usize = 80;

/// `sha256:` and exactly 64 lowercase hex digits: the only digests the
/// host accepts, so [`Digest::hex`] is always safe as a file name.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Digest(String);

/// A digest that is not `sha256:` and 64 lowercase hex digits.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{shown} is not \"sha256:\" followed by 64 lowercase hex digits")]
pub struct DigestError {
    /// The refused text, quoted and shortened.
    shown: String,
}

impl Digest {
    /// Parse `text`, refusing anything but `sha256:` and 64 lowercase hex
    /// digits (uppercase hex too: one content has one name, and a second
    /// spelling would be a second cache entry).
    pub fn parse(text: &str) -> Result<Digest, DigestError> {
        let valid = text.strip_prefix(SHA256_PREFIX).is_some_and(|hex| {
            hex.len() == SHA256_HEX_LEN
                && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
        });
        if valid {
            Ok(Digest(text.to_owned()))
        } else {
            let mut shown: String = text.chars().take(SHOWN_CHARS).collect();
            let cut = shown.len() < text.len();
            shown = format!("{shown:?}");
            if cut {
                shown.push_str("...");
            }
            Err(DigestError { shown })
        }
    }

    /// The SHA-256 digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest(format!("{SHA256_PREFIX}{}", sha256_hex(bytes)))
    }

    /// `sha256:HEX`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The 64 hex digits: a file name that cannot leave its directory.
    pub fn hex(&self) -> &str {
        &self.0[SHA256_PREFIX.len()..]
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Digest {
    type Err = DigestError;
    fn from_str(text: &str) -> Result<Digest, DigestError> {
        Digest::parse(text)
    }
}

impl TryFrom<String> for Digest {
    type Error = DigestError;
    fn try_from(text: String) -> Result<Digest, DigestError> {
        Digest::parse(&text)
    }
}

impl From<Digest> for String {
    fn from(digest: Digest) -> String {
        digest.0
    }
}

impl PartialEq<str> for Digest {
    fn eq(&self, other: &str) -> bool {
        self.0 == other
    }
}

impl PartialEq<&str> for Digest {
    fn eq(&self, other: &&str) -> bool {
        self.0 == *other
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_known_bytes() {
        assert_eq!(
            super::sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    const ABC: &str = "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

    #[test]
    fn a_digest_is_sha256_and_64_lowercase_hex_digits() {
        let digest = Digest::parse(ABC).unwrap();
        assert_eq!(digest, Digest::of(b"abc"));
        assert_eq!(digest.to_string(), ABC);
        assert_eq!(digest.hex(), &ABC[7..]);
        let json = serde_json::to_string(&digest).unwrap();
        assert_eq!(json, format!("\"{ABC}\""));
        assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), digest);
    }

    #[test]
    fn digests_that_could_name_another_path_or_content_are_refused() {
        let hex = &ABC[7..];
        for bad in [
            String::new(),
            "sha256:".into(),
            hex.into(),
            ABC.to_uppercase(),
            format!("sha256:{}", hex.to_uppercase()),
            format!("SHA256:{hex}"),
            format!("sha256:{}", &hex[..63]),
            format!("sha256:{hex}0"),
            format!("sha512:{hex}{hex}"),
            format!("sha256:{}/{}", &hex[..31], &hex[32..]),
            "sha256:/etc/passwd".into(),
            format!("sha256:../../{}", &hex[6..]),
            format!("sha256:{}..", &hex[..62]),
            format!("sha256:{hex}\n"),
            format!(" sha256:{hex}"),
            format!("sha256:{}\u{e9}", &hex[..62]),
        ] {
            let refused = Digest::parse(&bad).expect_err(&bad);
            assert!(
                refused.to_string().contains("64 lowercase hex digits"),
                "{refused}"
            );
            assert!(
                serde_json::from_value::<Digest>(bad.clone().into()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn a_refused_digest_is_quoted_and_shortened() {
        let long = format!("sha256:{}", "/x".repeat(10_000));
        let message = Digest::parse(&long).unwrap_err().to_string();
        assert!(message.len() < 200, "{message}");
        assert!(message.starts_with("\"sha256:/x/x"), "{message}");
        let message = Digest::parse("sha256:a\nb").unwrap_err().to_string();
        assert!(
            message.contains("\\n") && !message.contains('\n'),
            "{message}"
        );
    }

    /// The parser on generated text (bounded cases, no persistence file):
    /// never a panic, only canonical digests parse, and they print back to
    /// themselves, so one content has exactly one name.
    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        proptest! {
            #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

            #[test]
            fn arbitrary_text_parses_only_when_canonical(text in any::<String>()) {
                match Digest::parse(&text) {
                    Ok(d) => {
                        prop_assert_eq!(d.as_str(), &*text);
                        prop_assert_eq!(d.hex().len(), 64);
                    }
                    Err(e) => prop_assert!(e.to_string().len() < 1200),
                }
            }

            #[test]
            fn digest_shaped_text_parses_only_when_lowercase_hex(hex in "[0-9a-fA-F/.]{60,68}") {
                let text = format!("sha256:{hex}");
                let canonical = hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
                prop_assert_eq!(Digest::parse(&text).is_ok(), canonical);
            }

            #[test]
            fn digest_display_parse_round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
                let d = Digest::of(&bytes);
                prop_assert_eq!(Digest::parse(&d.to_string()).unwrap(), d.clone());
                let json = serde_json::to_string(&d).unwrap();
                prop_assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), d);
            }
        }
    }
}
