//! TLS from Gatehouse towards a backend: the `ClientConfig`.
//!
//! A backend is verified against a CA bundle ([`Verify::Roots`], webpki: chain and name), or,
//! for the homelab box with a self-signed certificate, not at all ([`Verify::Insecure`]).
//! Even then the handshake signatures are checked, so the session is still bound to the key
//! in whatever certificate the backend sent: no verification of *who*, but no downgrade of
//! the handshake itself.

use std::sync::Arc;

use rustls::DigitallySignedStruct;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};

use crate::provider;

/// How a backend's certificate is checked.
#[derive(Debug, Clone)]
pub enum Verify {
    /// The chain must lead to one of these roots and name the server (webpki).
    Roots(Arc<rustls::RootCertStore>),
    /// Any certificate is accepted; handshake signatures are still verified.
    Insecure,
}

/// A `ClientConfig`: aws-lc-rs, TLS 1.2 and 1.3, ALPN `alpn` in preference order, SNI on, no
/// client certificate; the server's certificate checked as `verify` says.
pub fn client_config(
    verify: Verify,
    alpn: Vec<Vec<u8>>,
) -> Result<Arc<rustls::ClientConfig>, rustls::Error> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?;
    let mut config = match verify {
        // Uses the builder's provider for the signature algorithms.
        Verify::Roots(roots) => builder.with_root_certificates(roots).with_no_client_auth(),
        Verify::Insecure => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate::new()))
            .with_no_client_auth(),
    };
    config.alpn_protocols = alpn;
    Ok(Arc::new(config))
}

/// Accepts any server certificate, but verifies the handshake signatures with the provider's
/// algorithms (so the peer must hold the key of the certificate it sent).
#[derive(Debug)]
struct AcceptAnyCertificate {
    algorithms: rustls::crypto::WebPkiSupportedAlgorithms,
}

impl AcceptAnyCertificate {
    fn new() -> AcceptAnyCertificate {
        AcceptAnyCertificate {
            algorithms: provider().signature_verification_algorithms,
        }
    }
}

impl ServerCertVerifier for AcceptAnyCertificate {
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
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
