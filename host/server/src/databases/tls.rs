//! TLS from the host to PostgreSQL (`tls = "require"` and
//! `"verify-full"`), on the rustls/ring stack the rest of the host uses,
//! as the driver's `MakeTlsConnect`.
//!
//! The two modes mean what libpq's `sslmode` of the same name means:
//! `verify-full` checks the chain (system roots plus `ca_file`) and that
//! the certificate names the host of the URL; `require` encrypts and
//! checks nothing about who answers, so it keeps out a passive listener
//! only. The host warns about that at start. With `cert_file` and
//! `key_file` the host presents a client certificate to a server that
//! asks for one (pg_hba.conf's `cert`, or `clientcert=verify-full`).
//!
//! The connection offers SCRAM channel binding (`tls-server-end-point`,
//! RFC 5929: a hash of the certificate the server showed), so with the
//! driver's default `channel_binding = prefer` the password exchange is
//! bound to this TLS session when the server supports it: a machine in
//! the middle, which `require` lets through, cannot relay the exchange
//! to the real server. Posing as the server, it could still ask for the
//! password in clear; a URL with `channel_binding=require` refuses any
//! server that does not bind. A certificate whose signature names no
//! single hash (Ed25519, RSA-PSS) offers none, as PostgreSQL computes
//! none for it.

use crate::config::DatabaseTls;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::future::Future;
use std::io;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect};

/// A connector for one database's pool.
#[derive(Clone)]
pub struct RustlsConnect(Arc<rustls::ClientConfig>);

impl RustlsConnect {
    /// The client configuration for `mode` (not `Disable`), trusting the
    /// system's roots and `ca_file` for `VerifyFull`, and presenting the
    /// certificate and key of `client` (files) when given.
    pub fn new(
        mode: DatabaseTls,
        ca_file: Option<&Path>,
        client: Option<(&Path, &Path)>,
    ) -> Result<RustlsConnect, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?;
        let builder = match mode {
            DatabaseTls::VerifyFull => {
                let mut roots = portcullis_runtime::tls_roots::system_roots().clone();
                if let Some(path) = ca_file {
                    for cert in read_certs("ca_file", path)? {
                        roots
                            .add(cert)
                            .map_err(|e| format!("ca_file {}: {e}", path.display()))?;
                    }
                }
                if roots.is_empty() {
                    return Err(
                        "tls = \"verify-full\" but no CA certificate to trust: set ca_file".into(),
                    );
                }
                builder.with_root_certificates(roots)
            }
            DatabaseTls::Require | DatabaseTls::Disable => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider))),
        };
        let config = match client {
            None => builder.with_no_client_auth(),
            Some((cert_file, key_file)) => {
                let chain = read_certs("cert_file", cert_file)?;
                builder
                    .with_client_auth_cert(chain, read_key_file(key_file)?)
                    .map_err(|e| format!("cert_file and key_file: {e}"))?
            }
        };
        Ok(RustlsConnect(Arc::new(config)))
    }
}

/// Read the client certificate's private key, refused as libpq refuses
/// it when others may read it: group or others may have no access, or,
/// for a file root owns, no more than group read. The reason never quotes
/// the file.
fn read_key_file(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    use rustls::pki_types::pem::PemObject as _;
    use std::os::unix::fs::MetadataExt as _;
    let refused = |reason: String| format!("key_file {}: {reason}", path.display());
    // The mode judged is the mode of the file read.
    let mut file = std::fs::File::open(path).map_err(|e| refused(e.to_string()))?;
    let meta = file.metadata().map_err(|e| refused(e.to_string()))?;
    let mode = meta.mode() & 0o777;
    if too_open(mode, meta.uid() == 0) {
        return Err(refused(format!(
            "mode {mode:04o} lets others read it: chmod 600 (or 640 owned by root)"
        )));
    }
    let mut pem = zeroize::Zeroizing::new(Vec::new());
    std::io::Read::read_to_end(&mut file, &mut pem).map_err(|e| refused(e.to_string()))?;
    PrivateKeyDer::from_pem_slice(&pem)
        .map_err(|_| refused("no PEM private key (PKCS#8, PKCS#1 or SEC1) in it".into()))
}

/// libpq's rule for a client key: no access for group or others, except
/// group read of a file root owns (so a group of services can share it).
fn too_open(mode: u32, owned_by_root: bool) -> bool {
    let forbidden = if owned_by_root { 0o037 } else { 0o077 };
    mode & forbidden != 0
}

/// Read the PEM certificates of the setting `key` (`ca_file`,
/// `cert_file`), naming it and the file in the reason.
fn read_certs(key: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    portcullis_runtime::tls_roots::read_ca_file(path)
        .map_err(|reason| format!("{key} {}: {reason}", path.display()))
}

/// `tls = "require"`: any certificate is accepted (libpq's `require`), but
/// the handshake must still be signed by the key of the certificate shown,
/// so the session keys are the server's and not a bystander's.
#[derive(Debug)]
struct AnyCertificate(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

impl<S> MakeTlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type TlsConnect = RustlsConnector;
    type Error = rustls::pki_types::InvalidDnsNameError;

    fn make_tls_connect(&mut self, host: &str) -> Result<RustlsConnector, Self::Error> {
        // An IP address is checked against the certificate's IP SANs and
        // sends no SNI; a name is checked against its DNS SANs.
        let name = ServerName::try_from(host.trim_matches(['[', ']']))?.to_owned();
        Ok(RustlsConnector {
            config: self.0.clone(),
            name,
        })
    }
}

pub struct RustlsConnector {
    config: Arc<rustls::ClientConfig>,
    name: ServerName<'static>,
}

impl<S> TlsConnect<S> for RustlsConnector
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<RustlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let stream = tokio_rustls::TlsConnector::from(self.config)
                .connect(self.name, stream)
                .await?;
            Ok(RustlsStream(Box::new(stream)))
        })
    }
}

/// An established TLS connection to the database.
pub struct RustlsStream<S>(Box<tokio_rustls::client::TlsStream<S>>);

impl<S: AsyncRead + AsyncWrite + Unpin> tokio_postgres::tls::TlsStream for RustlsStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        let (_, session) = self.0.get_ref();
        session
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(|cert| server_end_point(cert))
            .map_or_else(ChannelBinding::none, ChannelBinding::tls_server_end_point)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_shutdown(cx)
    }
}

/// RFC 5929's `tls-server-end-point` of `cert`: its hash with the hash
/// function of its signature algorithm, SHA-256 for MD5 and SHA-1. `None`
/// for an algorithm without one fixed hash, or a certificate that does
/// not parse (rustls has already checked what it must of it).
fn server_end_point(cert: &CertificateDer<'_>) -> Option<Vec<u8>> {
    use sha2::Digest as _;
    use x509_cert::der::Decode as _;
    let der = cert.as_ref();
    let algorithm = x509_cert::Certificate::from_der(der)
        .ok()?
        .signature_algorithm
        .oid;
    Some(match end_point_hash(&algorithm.to_string())? {
        EndPointHash::Sha224 => sha2::Sha224::digest(der).to_vec(),
        EndPointHash::Sha256 => sha2::Sha256::digest(der).to_vec(),
        EndPointHash::Sha384 => sha2::Sha384::digest(der).to_vec(),
        EndPointHash::Sha512 => sha2::Sha512::digest(der).to_vec(),
    })
}

#[derive(Debug, PartialEq, Eq)]
enum EndPointHash {
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

/// The hash `tls-server-end-point` uses for a certificate signed with the
/// algorithm `oid` (dotted), as PostgreSQL picks it.
fn end_point_hash(oid: &str) -> Option<EndPointHash> {
    Some(match oid {
        // md5, sha1, sha256 WithRSAEncryption; ecdsa-with-SHA1, -SHA256
        "1.2.840.113549.1.1.4"
        | "1.2.840.113549.1.1.5"
        | "1.2.840.113549.1.1.11"
        | "1.2.840.10045.4.1"
        | "1.2.840.10045.4.3.2" => EndPointHash::Sha256,
        // sha224WithRSAEncryption, ecdsa-with-SHA224
        "1.2.840.113549.1.1.14" | "1.2.840.10045.4.3.1" => EndPointHash::Sha224,
        // sha384WithRSAEncryption, ecdsa-with-SHA384
        "1.2.840.113549.1.1.12" | "1.2.840.10045.4.3.3" => EndPointHash::Sha384,
        // sha512WithRSAEncryption, ecdsa-with-SHA512
        "1.2.840.113549.1.1.13" | "1.2.840.10045.4.3.4" => EndPointHash::Sha512,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_end_point_hash_follows_the_signature_algorithm() {
        assert_eq!(
            end_point_hash("1.2.840.10045.4.3.2"),
            Some(EndPointHash::Sha256)
        );
        assert_eq!(
            end_point_hash("1.2.840.113549.1.1.5"),
            Some(EndPointHash::Sha256),
            "SHA-1 is replaced by SHA-256"
        );
        assert_eq!(
            end_point_hash("1.2.840.113549.1.1.12"),
            Some(EndPointHash::Sha384)
        );
        assert_eq!(
            end_point_hash("1.2.840.10045.4.3.4"),
            Some(EndPointHash::Sha512)
        );
        // Ed25519 and RSA-PSS: no one hash, so no binding.
        assert_eq!(end_point_hash("1.3.101.112"), None);
        assert_eq!(end_point_hash("1.2.840.113549.1.1.10"), None);
    }

    #[test]
    fn a_client_key_is_refused_as_libpq_refuses_it() {
        for (mode, root, refused) in [
            (0o600, false, false),
            (0o400, false, false),
            (0o700, true, false),
            (0o640, true, false),
            (0o640, false, true),
            (0o660, true, true),
            (0o604, false, true),
            (0o644, true, true),
        ] {
            assert_eq!(too_open(mode, root), refused, "{mode:o} root={root}");
        }
    }

    #[test]
    fn a_certificate_that_does_not_parse_offers_no_binding() {
        assert_eq!(
            server_end_point(&CertificateDer::from(&b"not DER"[..])),
            None
        );
    }
}
