//! `oci://REGISTRY[:PORT]/REPO:TAG` and `oci://REGISTRY/REPO@sha256:HEX`
//! references, and the rule for when plain HTTP is allowed.

use portcullis_protocol::digest::Digest;
use std::fmt;

/// URL scheme of plugins pulled from an OCI registry.
pub const OCI_SCHEME: &str = "oci://";

/// A component in an OCI registry: by tag (re-resolved on reload) or
/// pinned by manifest digest (never changes).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OciRef {
    /// `host[:port]`.
    pub registry: String,
    pub repository: String,
    pub tag: Option<String>,
    /// The manifest's digest.
    pub digest: Option<Digest>,
}

impl OciRef {
    /// Parse `oci://...`; the scheme is required.
    pub fn parse(text: &str) -> Result<OciRef, String> {
        let bad = |why: &str| {
            format!(
                "{text:?} is not {OCI_SCHEME}REGISTRY[:PORT]/REPO:TAG or ...@sha256:DIGEST: {why}"
            )
        };
        let rest = text
            .strip_prefix(OCI_SCHEME)
            .ok_or_else(|| bad("missing oci://"))?;
        let (registry, path) = rest.split_once('/').ok_or_else(|| bad("no repository"))?;
        if registry.is_empty()
            || !registry
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-.:[]".contains(c))
        {
            return Err(bad("bad registry host"));
        }
        let (path, digest) = match path.split_once('@') {
            Some((path, digest)) => {
                // The whole reference is quoted already: say only what is wrong.
                let digest = Digest::parse(digest)
                    .map_err(|_| bad("a digest is sha256: and 64 lowercase hex digits"))?;
                (path, Some(digest))
            }
            None => (path, None),
        };
        // A tag follows the last ':' of the last path segment.
        let (repository, tag) = match path.rsplit_once(':') {
            Some((repo, tag)) if !tag.contains('/') => (repo, Some(tag.to_owned())),
            _ => (path, None),
        };
        if repository.is_empty()
            || repository.split('/').any(|segment| {
                segment.is_empty()
                    || !segment
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c))
            })
        {
            return Err(bad(
                "a repository is lowercase letters, digits, '-', '_', '.' and '/'",
            ));
        }
        if let Some(tag) = &tag {
            let valid = !tag.is_empty()
                && tag.len() <= 128
                && tag
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
            if !valid {
                return Err(bad("a tag is up to 128 letters, digits, '-', '_', '.'"));
            }
        }
        if tag.is_none() && digest.is_none() {
            return Err(bad("name a tag (:TAG) or a digest (@sha256:...)"));
        }
        Ok(OciRef {
            registry: registry.to_owned(),
            repository: repository.to_owned(),
            tag,
            digest,
        })
    }

    /// The host part without the port, brackets removed.
    pub fn host(&self) -> &str {
        match self.registry.strip_prefix('[') {
            Some(v6) => v6.split(']').next().unwrap_or(v6),
            None => self
                .registry
                .rsplit_once(':')
                .map_or(&*self.registry, |(h, _)| h),
        }
    }

    /// Loopback registries may be reached over plain HTTP; others only
    /// with an explicit `insecure = true`.
    pub fn is_loopback(&self) -> bool {
        let host = self.host();
        host == "localhost"
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback())
    }

    /// What a signature names as the repository of a release:
    /// `REGISTRY/REPOSITORY`. The registry is part of it, so a mirror
    /// serves releases signed for the mirror.
    pub fn signed_repository(&self) -> String {
        format!("{}/{}", self.registry, self.repository)
    }

    /// The name under which hosts remember the newest release accepted
    /// from this reference: the tag's, `None` for a reference pinned by
    /// digest (the operator chose that release, whatever its age).
    pub fn release_source(&self) -> Option<String> {
        match (&self.tag, &self.digest) {
            (Some(tag), None) => Some(format!(
                "{OCI_SCHEME}{}/{}:{tag}",
                self.registry, self.repository
            )),
            _ => None,
        }
    }

    /// The same repository, pinned to `digest`.
    pub fn pinned(&self, digest: &Digest) -> OciRef {
        OciRef {
            digest: Some(digest.clone()),
            ..self.clone()
        }
    }

    /// The same repository at another tag.
    pub fn with_tag(&self, tag: &str) -> OciRef {
        OciRef {
            tag: Some(tag.to_owned()),
            digest: None,
            ..self.clone()
        }
    }

    pub(crate) fn client_ref(&self) -> oci_client::Reference {
        match (&self.tag, &self.digest) {
            (Some(tag), Some(digest)) => oci_client::Reference::with_tag_and_digest(
                self.registry.clone(),
                self.repository.clone(),
                tag.clone(),
                digest.to_string(),
            ),
            (_, Some(digest)) => oci_client::Reference::with_digest(
                self.registry.clone(),
                self.repository.clone(),
                digest.to_string(),
            ),
            (tag, None) => oci_client::Reference::with_tag(
                self.registry.clone(),
                self.repository.clone(),
                tag.clone().unwrap_or_default(),
            ),
        }
    }
}

impl fmt::Display for OciRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{OCI_SCHEME}{}/{}", self.registry, self.repository)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_name_a_tag_or_a_digest() {
        let r = OciRef::parse("oci://127.0.0.1:5000/auth/static-users:1").unwrap();
        assert_eq!(r.registry, "127.0.0.1:5000");
        assert_eq!(r.repository, "auth/static-users");
        assert_eq!(r.tag.as_deref(), Some("1"));
        assert!(r.is_loopback());
        assert_eq!(r.to_string(), "oci://127.0.0.1:5000/auth/static-users:1");
        assert_eq!(r.signed_repository(), "127.0.0.1:5000/auth/static-users");
        assert_eq!(
            r.release_source().as_deref(),
            Some("oci://127.0.0.1:5000/auth/static-users:1")
        );

        let digest = format!("sha256:{}", "a".repeat(64));
        let r = OciRef::parse(&format!("oci://ghcr.io/acme/auth@{digest}")).unwrap();
        assert_eq!(r.tag, None);
        assert_eq!(r.digest.as_ref().map(|d| d.as_str()), Some(&*digest));
        assert_eq!(r.release_source(), None, "pinned: no release order");
        assert_eq!(
            r.with_tag("2")
                .pinned(r.digest.as_ref().unwrap())
                .release_source(),
            None
        );
        assert!(!r.is_loopback());
        assert_eq!(r.host(), "ghcr.io");

        let r = OciRef::parse("oci://[::1]:5000/a:v2").unwrap();
        assert!(r.is_loopback());
        assert!(OciRef::parse("oci://localhost/a:v2").unwrap().is_loopback());
        assert!(
            !OciRef::parse("oci://10.0.0.1:5000/a:v2")
                .unwrap()
                .is_loopback()
        );

        for bad in [
            "oci://",
            "oci://host",
            "oci://host/repo",
            "oci://host/Repo:1",
            "oci:///repo:1",
            "oci://host/repo:",
            "oci://host/repo@sha512:00",
            "oci://host/repo@sha256:abc",
            "oci://host/repo@sha256:../../../../etc/passwd",
            "https://host/repo:1",
        ] {
            assert!(OciRef::parse(bad).is_err(), "{bad}");
        }
    }

    /// The parser on generated references (bounded cases, no persistence
    /// file): never a panic, and a parsed reference prints back to the text
    /// it came from, since the cache and the pull use the printed form.
    mod properties {
        use super::*;
        use proptest::prelude::*;

        fn reference() -> impl Strategy<Value = String> {
            let registry = prop_oneof![
                "[a-z0-9.-]{1,20}(:[0-9]{1,5})?",
                Just("[::1]:5000".to_owned()),
                Just("127.0.0.1:5000".to_owned()),
            ];
            let repo = "[a-z0-9._-]{1,12}(/[a-z0-9._-]{1,12}){0,3}";
            let tag = proptest::option::of("[A-Za-z0-9._-]{1,128}");
            let digest = proptest::option::of("[0-9a-f]{64}");
            (registry, repo, tag, digest).prop_filter_map(
                "a reference names a tag or a digest",
                |(registry, repo, tag, digest)| {
                    if tag.is_none() && digest.is_none() {
                        return None;
                    }
                    let mut text = format!("oci://{registry}/{repo}");
                    if let Some(tag) = tag {
                        text.push(':');
                        text.push_str(&tag);
                    }
                    if let Some(digest) = digest {
                        text.push_str("@sha256:");
                        text.push_str(&digest);
                    }
                    Some(text)
                },
            )
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

            #[test]
            fn arbitrary_text_never_panics_and_what_parses_round_trips(text in any::<String>()) {
                let text = format!("oci://{text}");
                if let Ok(r) = OciRef::parse(&text) {
                    prop_assert_eq!(r.to_string(), text);
                    let _ = r.is_loopback();
                }
            }

            #[test]
            fn well_formed_references_parse_and_print_back(text in reference()) {
                let r = OciRef::parse(&text).unwrap();
                prop_assert_eq!(r.to_string(), text.clone());
                prop_assert_eq!(OciRef::parse(&r.to_string()).unwrap(), r);
            }

            #[test]
            fn one_changed_character_never_panics(text in reference(), pos in any::<prop::sample::Index>(), ch in any::<char>()) {
                let mut chars: Vec<char> = text.chars().collect();
                let i = pos.index(chars.len());
                chars[i] = ch;
                let edited: String = chars.into_iter().collect();
                if let Ok(r) = OciRef::parse(&edited) {
                    prop_assert_eq!(r.to_string(), edited);
                }
            }
        }
    }
}
