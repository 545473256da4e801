//! What the plugin reads from a client certificate: the subject as an
//! RFC 4514 string (`CN=alice,O=Acme`, the order nats-server's own
//! `verify_and_map` and Go's `pkix.Name.String()` use), its CN/O/OU values,
//! the SANs by kind, the issuer, the serial, the SHA-256 fingerprint and
//! the end of validity.

use sha2::{Digest, Sha256};
use std::net::IpAddr;
use x509_cert::Certificate;
use x509_cert::der::asn1::{Ia5StringRef, PrintableStringRef, TeletexStringRef, Utf8StringRef};
use x509_cert::der::oid::ObjectIdentifier;
use x509_cert::der::oid::db::rfc4519;
use x509_cert::der::{DecodePem, Encode, Tag, Tagged};
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::name::Name;

/// The fields of one certificate, as text.
#[derive(Debug, Default, Clone)]
pub struct CertInfo {
    pub subject: String,
    pub issuer: String,
    /// Attribute values in RFC 4514 order (most specific first).
    pub cn: Vec<String>,
    pub o: Vec<String>,
    pub ou: Vec<String>,
    pub san_dns: Vec<String>,
    pub san_email: Vec<String>,
    pub san_uri: Vec<String>,
    pub san_ip: Vec<String>,
    /// Serial number, lowercase hex.
    pub serial: String,
    /// SHA-256 of the DER certificate, lowercase hex.
    pub sha256: String,
    /// notAfter, Unix seconds.
    pub not_after: u64,
}

fn text_of(value: &x509_cert::der::Any) -> Option<String> {
    let s = match value.tag() {
        Tag::Utf8String => Utf8StringRef::try_from(value).ok()?.as_str().to_owned(),
        Tag::PrintableString => PrintableStringRef::try_from(value)
            .ok()?
            .as_str()
            .to_owned(),
        Tag::Ia5String => Ia5StringRef::try_from(value).ok()?.as_str().to_owned(),
        Tag::TeletexString => TeletexStringRef::try_from(value).ok()?.as_str().to_owned(),
        _ => return None,
    };
    Some(s)
}

fn values(name: &Name, oid: ObjectIdentifier) -> Vec<String> {
    name.0
        .iter()
        .rev()
        .flat_map(|rdn| rdn.0.iter())
        .filter(|atv| atv.oid == oid)
        .filter_map(|atv| text_of(&atv.value))
        .collect()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl CertInfo {
    /// Parse one PEM certificate as nats-server sends it.
    pub fn from_pem(pem: &str) -> Result<CertInfo, String> {
        let cert = Certificate::from_pem(pem.trim().as_bytes())
            .map_err(|e| format!("client certificate does not parse: {e}"))?;
        CertInfo::from_cert(&cert)
    }

    fn from_cert(cert: &Certificate) -> Result<CertInfo, String> {
        let tbs = &cert.tbs_certificate;
        let der = cert
            .to_der()
            .map_err(|e| format!("client certificate does not encode: {e}"))?;
        let mut info = CertInfo {
            subject: tbs.subject.to_string(),
            issuer: tbs.issuer.to_string(),
            cn: values(&tbs.subject, rfc4519::CN),
            o: values(&tbs.subject, rfc4519::O),
            ou: values(&tbs.subject, rfc4519::OU),
            serial: hex(tbs.serial_number.as_bytes()),
            sha256: hex(&Sha256::digest(&der)),
            not_after: tbs.validity.not_after.to_unix_duration().as_secs(),
            ..CertInfo::default()
        };
        let sans = tbs
            .get::<SubjectAltName>()
            .map_err(|e| format!("client certificate has a malformed subjectAltName: {e}"))?;
        for name in sans.map(|(_, san)| san.0).unwrap_or_default() {
            match name {
                GeneralName::DnsName(s) => info.san_dns.push(s.to_string()),
                GeneralName::Rfc822Name(s) => info.san_email.push(s.to_string()),
                GeneralName::UniformResourceIdentifier(s) => info.san_uri.push(s.to_string()),
                GeneralName::IpAddress(bytes) => {
                    let b = bytes.as_bytes();
                    let ip = match b.len() {
                        4 => <[u8; 4]>::try_from(b).ok().map(IpAddr::from),
                        16 => <[u8; 16]>::try_from(b).ok().map(IpAddr::from),
                        _ => None,
                    };
                    if let Some(ip) = ip {
                        info.san_ip.push(ip.to_string());
                    }
                }
                _ => {}
            }
        }
        Ok(info)
    }

    /// A field by the name rules and templates use.
    pub fn field(&self, name: &str) -> Option<Vec<&str>> {
        let list: &[String] = match name {
            "subject" => std::slice::from_ref(&self.subject),
            "issuer" => std::slice::from_ref(&self.issuer),
            "serial" => std::slice::from_ref(&self.serial),
            "sha256" => std::slice::from_ref(&self.sha256),
            "cn" => &self.cn,
            "o" => &self.o,
            "ou" => &self.ou,
            "san_dns" => &self.san_dns,
            "san_email" => &self.san_email,
            "san_uri" => &self.san_uri,
            "san_ip" => &self.san_ip,
            _ => return None,
        };
        Some(list.iter().map(String::as_str).collect())
    }
}

/// Every field name [`CertInfo::field`] knows.
pub const FIELDS: &[&str] = &[
    "subject",
    "issuer",
    "serial",
    "sha256",
    "cn",
    "o",
    "ou",
    "san_dns",
    "san_email",
    "san_uri",
    "san_ip",
];
