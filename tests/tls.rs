//! A test CA per deployment, for servers that demand client certificates:
//! the x509 plugin and Portcullis' own TLS login need real certificates.

use crate::WAIT;
use anyhow::Result;
use std::path::{Path, PathBuf};

/// A test CA and the certificates of a server with `tls { verify: true }`.
pub struct Tls {
    ca: rcgen::Issuer<'static, rcgen::KeyPair>,
    pub ca_file: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// Portcullis' own client certificate: with `verify: true` the callout
    /// service needs one too.
    pub portcullis_cert: PathBuf,
    pub portcullis_key: PathBuf,
    dir: PathBuf,
}

impl Tls {
    pub fn new(dir: &Path) -> Result<Tls> {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair as Key};
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name = rcgen::DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, "Portcullis Test CA");
        let key = Key::generate()?;
        let ca_file = dir.join("ca.pem");
        std::fs::write(&ca_file, params.self_signed(&key)?.pem())?;
        let mut tls = Tls {
            ca: rcgen::Issuer::new(params, key),
            ca_file,
            server_cert: PathBuf::new(),
            server_key: PathBuf::new(),
            portcullis_cert: PathBuf::new(),
            portcullis_key: PathBuf::new(),
            dir: dir.to_owned(),
        };
        (tls.server_cert, tls.server_key) = tls.issue("server", |p| {
            p.subject_alt_names = vec![
                rcgen::SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()),
                rcgen::SanType::DnsName("localhost".try_into().expect("DNS name")),
            ];
        })?;
        (tls.portcullis_cert, tls.portcullis_key) = tls.issue("portcullis", |_| {})?;
        Ok(tls)
    }

    /// Issue a certificate signed by the test CA, with what `edit` sets and
    /// CN = `name`; its PEM certificate and key files.
    pub fn issue(
        &self,
        name: &str,
        edit: impl FnOnce(&mut rcgen::CertificateParams),
    ) -> Result<(PathBuf, PathBuf)> {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        edit(&mut params);
        // CN last, as CAs write it, so the subject reads `CN=...,OU=...`.
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        let key = rcgen::KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.ca)?;
        let file: String = name
            .chars()
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
            .collect();
        let cert_file = self.dir.join(format!("{file}.pem"));
        let key_file = self.dir.join(format!("{file}-key.pem"));
        std::fs::write(&cert_file, cert.pem())?;
        std::fs::write(&key_file, key.serialize_pem())?;
        Ok((cert_file, key_file))
    }

    /// Client options that trust the test CA and present `cert` (files
    /// from [`Tls::issue`]), if given.
    pub fn client(&self, cert: Option<&(PathBuf, PathBuf)>) -> async_nats::ConnectOptions {
        let options = async_nats::ConnectOptions::new()
            .require_tls(true)
            .add_root_certificates(self.ca_file.clone())
            .connection_timeout(WAIT);
        match cert {
            Some((c, k)) => options.add_client_certificate(c.clone(), k.clone()),
            None => options,
        }
    }
}
