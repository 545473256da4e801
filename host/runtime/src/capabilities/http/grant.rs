//! What an `http` grant entry means: an origin (scheme, host, port) and an
//! optional path prefix, parsed once at config load so the same rules
//! answer `check` and every request; and which IP addresses a request may
//! reach.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// One `grants = { http = [...] }` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// `https://` (the default everywhere) or `http://` (loopback tests).
    pub https: bool,
    /// Lower case; an IPv6 address without its brackets.
    pub host: String,
    pub port: u16,
    /// Path prefix a request must stay under; empty = any path.
    pub path: String,
    /// The address the host names, when it is an IP literal: the only way
    /// a private, loopback or metadata address can be granted.
    pub address: Option<IpAddr>,
}

impl Origin {
    /// Parse a grant entry, with a message for the operator on error.
    pub fn parse(entry: &str) -> Result<Origin, String> {
        let (https, rest) = if let Some(rest) = strip_prefix_ci(entry, "https://") {
            (true, rest)
        } else if let Some(rest) = strip_prefix_ci(entry, "http://") {
            (false, rest)
        } else {
            return Err("start with https:// (or http:// for a test server on loopback)".into());
        };
        if rest.contains(['?', '#']) {
            return Err(
                "no query or fragment: a grant is an origin and an optional path prefix".into(),
            );
        }
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        if authority.contains('@') {
            return Err(
                "no user name or password in a grant (credentials belong in the plugin's configuration)"
                    .into(),
            );
        }
        let (host, port) = split_host_port(authority)?;
        let port = match port {
            Some(port) => port,
            None if https => 443,
            None => 80,
        };
        let address = host.parse::<IpAddr>().ok();
        if address.is_none() && !valid_hostname(&host) {
            return Err(format!(
                "{host:?} is not a host name (letters, digits, '-' and '.'; no wildcards: list each host)"
            ));
        }
        if unsafe_path(path) {
            return Err(
                "the path prefix must not contain '.' or '..' segments, '\\' or encoded '.', '/' or '\\'"
                    .into(),
            );
        }
        Ok(Origin {
            https,
            host,
            port,
            path: if path == "/" {
                String::new()
            } else {
                path.to_owned()
            },
            address,
        })
    }

    /// Whether a request for `path` on (`https`, `host`, `port`) is under
    /// this grant. `host` is lower case, without IPv6 brackets.
    pub fn allows(&self, https: bool, host: &str, port: u16, path: &str) -> bool {
        self.https == https && self.host == host && self.port == port && self.covers(path)
    }

    fn covers(&self, path: &str) -> bool {
        if self.path.is_empty() {
            return true;
        }
        let Some(rest) = path.strip_prefix(self.path.as_str()) else {
            return false;
        };
        // "/users" grants "/users" and "/users/..", not "/users-admin".
        self.path.ends_with('/') || rest.is_empty() || rest.starts_with('/')
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        match self.address {
            Some(IpAddr::V6(_)) => {
                write!(f, "{scheme}://[{}]:{}{}", self.host, self.port, self.path)
            }
            _ => write!(f, "{scheme}://{}:{}{}", self.host, self.port, self.path),
        }
    }
}

/// `url` with any user info (`user:password@`) replaced by `***@`, for
/// errors and logs: a password never leaves in a message.
pub fn redacted(url: &str) -> String {
    let start = url.find("://").map_or(0, |i| i + 3);
    let end = url[start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |i| start + i);
    match url[start..end].rfind('@') {
        Some(at) => format!("{}***{}", &url[..start], &url[start + at..]),
        None => url.to_owned(),
    }
}

fn strip_prefix_ci<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// Host (lower case, IPv6 unbracketed) and port of an authority.
pub(crate) fn split_host_port(authority: &str) -> Result<(String, Option<u16>), String> {
    let (host, port) = if let Some(rest) = authority.strip_prefix('[') {
        let end = rest
            .find(']')
            .ok_or("an IPv6 address needs its closing ']'")?;
        let host = &rest[..end];
        if host.parse::<Ipv6Addr>().is_err() {
            return Err(format!("{host:?} is not an IPv6 address"));
        }
        let after = &rest[end + 1..];
        let port = match after {
            "" => None,
            _ => Some(
                after
                    .strip_prefix(':')
                    .ok_or("junk after the IPv6 address")?,
            ),
        };
        (host, port)
    } else {
        match authority.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err("name a host".into());
    }
    let port = match port {
        None => None,
        Some(text) => match text.parse::<u16>() {
            Ok(port) if port != 0 && text.bytes().all(|b| b.is_ascii_digit()) => Some(port),
            _ => return Err(format!("{text:?} is not a port (1-65535)")),
        },
    };
    Ok((host.to_ascii_lowercase(), port))
}

fn valid_hostname(host: &str) -> bool {
    host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// A path a server could read as another path than the one the grant
/// checked: dot segments (normalised away by servers and proxies), a
/// backslash (a separator to some servers) or their percent-encodings.
pub(crate) fn unsafe_path(path: &str) -> bool {
    let lower = path.to_ascii_lowercase();
    lower.contains('\\')
        || lower.contains("%2e")
        || lower.contains("%2f")
        || lower.contains("%5c")
        || path
            .split('/')
            .any(|segment| segment == "." || segment == "..")
}

/// Addresses a plugin reaches only through a grant that names the address
/// itself: loopback, private, link-local (cloud metadata at
/// 169.254.169.254), shared, multicast, unspecified and reserved ranges,
/// IPv6 unique-local (AWS metadata at fd00:ec2::254) and link-local, and
/// IPv4 embedded in IPv6 (mapped, compatible, NAT64, 6to4) by the IPv4
/// rule. A name that resolves to one of them is refused, so DNS cannot
/// point a granted name at the host's own network.
pub fn restricted(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => restricted_v4(v4),
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return restricted_v4(v4);
            }
            let s = v6.segments();
            let embedded = |hi: u16, lo: u16| Ipv4Addr::from(((hi as u32) << 16) | lo as u32);
            // ::a.b.c.d (deprecated IPv4-compatible), 64:ff9b::/96 (NAT64)
            if s[..6] == [0; 6] && !v6.is_unspecified() && !v6.is_loopback() {
                return restricted_v4(embedded(s[6], s[7]));
            }
            if s[0] == 0x64 && s[1] == 0xff9b && s[2..6] == [0; 4] {
                return restricted_v4(embedded(s[6], s[7]));
            }
            if s[0] == 0x2002 {
                return restricted_v4(embedded(s[1], s[2]));
            }
            v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00 // unique local fc00::/7
                || (s[0] & 0xffc0) == 0xfe80 // link-local fe80::/10
                || (s[0] & 0xffc0) == 0xfec0 // site-local fec0::/10
                || (s[0] == 0x2001 && s[1] == 0x0db8) // documentation
        }
    }
}

fn restricted_v4(ip: Ipv4Addr) -> bool {
    let o = ip.octets();
    ip.is_private()
        || ip.is_loopback()
        || ip.is_link_local()
        || ip.is_multicast()
        || ip.is_broadcast()
        || ip.is_unspecified()
        || ip.is_documentation()
        || o[0] == 0 // "this network"
        || (o[0] == 100 && (o[1] & 0xc0) == 64) // shared 100.64/10 (CGNAT)
        || (o[0] == 192 && o[1] == 0 && o[2] == 0) // IETF protocol assignments
        || (o[0] == 198 && (o[1] & 0xfe) == 18) // benchmarking 198.18/15
        || o[0] >= 240 // reserved
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_parse_into_origin_and_prefix() {
        let o = Origin::parse("https://API.example.com:8443/users/").unwrap();
        assert_eq!(
            (o.https, o.host.as_str(), o.port, o.path.as_str()),
            (true, "api.example.com", 8443, "/users/")
        );
        let o = Origin::parse("http://127.0.0.1:9000").unwrap();
        assert_eq!(o.address, Some("127.0.0.1".parse().unwrap()));
        assert_eq!(o.port, 9000);
        let o = Origin::parse("https://[::1]/").unwrap();
        assert_eq!((o.host.as_str(), o.port, o.path.as_str()), ("::1", 443, ""));
    }

    #[test]
    fn rejects_userinfo_query_fragment_and_other_schemes() {
        for (entry, needle) in [
            ("https://user:pw@id.example.com", "user name"),
            ("https://id.example.com/?a=1", "query"),
            ("https://id.example.com/#x", "fragment"),
            ("ftp://id.example.com", "https://"),
            ("id.example.com", "https://"),
            ("https://*.example.com", "wildcards"),
            ("https://id.example.com:0", "port"),
            ("https://id.example.com:99999", "port"),
            ("https://", "host"),
            ("https://id.example.com/a/../b", "'..'"),
        ] {
            let err = Origin::parse(entry).unwrap_err();
            assert!(err.contains(needle), "{entry}: {err}");
        }
    }

    #[test]
    fn user_info_is_redacted_from_messages() {
        assert_eq!(
            redacted("https://u:pw@id.example.com/x@y"),
            "https://***@id.example.com/x@y"
        );
        assert_eq!(
            redacted("https://id.example.com/a@b"),
            "https://id.example.com/a@b"
        );
    }

    #[test]
    fn rejects_a_path_that_escapes_its_prefix() {
        let o = Origin::parse("https://api.example.com/users").unwrap();
        assert!(o.allows(true, "api.example.com", 443, "/users"));
        assert!(o.allows(true, "api.example.com", 443, "/users/alice"));
        assert!(!o.allows(true, "api.example.com", 443, "/users-admin"));
        assert!(!o.allows(true, "api.example.com", 443, "/admin"));
        assert!(!o.allows(false, "api.example.com", 443, "/users"));
        assert!(!o.allows(true, "api.example.com", 80, "/users"));
        assert!(!o.allows(true, "evil.example.com", 443, "/users"));
        for path in [
            "/users/../admin",
            "/users/%2e%2e/admin",
            "/users/..%2Fadmin",
            "/users\\..\\admin",
        ] {
            assert!(unsafe_path(path), "{path}");
        }
    }

    #[test]
    fn rejects_private_loopback_and_metadata_addresses() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "2002:7f00:1::1",
            "ff02::1",
        ] {
            assert!(restricted(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["93.184.216.34", "1.1.1.1", "2606:4700::1111"] {
            assert!(!restricted(ip.parse().unwrap()), "{ip}");
        }
    }
}
