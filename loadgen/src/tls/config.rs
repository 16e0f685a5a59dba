//! The client side of TLS, built once per process from the plan's [`Trust`]: the
//! aws-lc-rs provider (the server's) with X25519 first, the CA certificates of `--ca` (or, with `--insecure`, a
//! verifier that accepts any certificate), ALPN `http/1.1`, and no session resumption.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::Resumption;
use rustls::crypto::aws_lc_rs::kx_group;
use rustls::crypto::{self, CryptoProvider, SupportedKxGroup};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::SupportedCipherSuite;
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};

use crate::plan::Trust;

/// The protocol offered by ALPN: loadgen speaks HTTP/1.1 only.
const ALPN_HTTP11: &[u8] = b"http/1.1";

/// Key exchange groups offered, in order (the key share sent is the first one's).
const KX_GROUPS: [&dyn SupportedKxGroup; 3] =
    [kx_group::X25519, kx_group::SECP256R1, kx_group::SECP384R1];

/// Cipher suites offered, in the order Chrome offers them: AES-128-GCM first. A
/// server that follows the client's order (rustls, nginx) then pays for what browsers
/// make it pay for: 10 AES rounds rather than 14, and a SHA-256 key schedule rather
/// than SHA-384 (rustls's own list starts with AES-256-GCM-SHA384, whose SHA-512
/// blocks were the largest part of a ringcast handshake's profile, 18%).
const CIPHER_SUITES: [SupportedCipherSuite; 9] = {
    use rustls::crypto::aws_lc_rs::cipher_suite::*;
    [
        TLS13_AES_128_GCM_SHA256,
        TLS13_AES_256_GCM_SHA384,
        TLS13_CHACHA20_POLY1305_SHA256,
        TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
        TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
        TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
        TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
        TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
        TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
    ]
};

/// The client config every https connection of the process shares.
///
/// Resumption is off, so every connect (first ones, reconnects, probes) is a full
/// handshake: the same cost for every connection, and the server's worst case, which
/// is what sizing wants. It also keeps the threads from sharing a session cache's lock.
pub fn client_config(trust: &Trust) -> Result<Arc<ClientConfig>, String> {
    let mut provider = crypto::aws_lc_rs::default_provider();
    // Classical X25519 first: the server takes the client's first group, and the
    // peers measured against (nginx with OpenSSL 3.0) have no post-quantum group, so
    // every server pays for the same key exchange. (rustls's ring provider listed
    // P-384 first, about 1 ms of CPU per handshake on each side.)
    provider.kx_groups = KX_GROUPS.to_vec();
    provider.cipher_suites = CIPHER_SUITES.to_vec();
    let provider = Arc::new(provider);
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS set-up: {e}"))?;
    let mut config = match trust {
        Trust::Ca(path) => builder
            .with_root_certificates(roots(path)?)
            .with_no_client_auth(),
        Trust::Insecure => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth(),
    };
    config.alpn_protocols = vec![ALPN_HTTP11.to_vec()];
    config.resumption = Resumption::disabled();
    Ok(Arc::new(config))
}

/// The CA certificates of the PEM file `path` (every `CERTIFICATE` block; other blocks,
/// such as keys, are skipped), or why there are none.
fn roots(path: &Path) -> Result<RootCertStore, String> {
    let name = path.display();
    let pem = std::fs::read(path).map_err(|e| format!("--ca {name}: cannot read it: {e}"))?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| format!("--ca {name}: bad PEM: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("--ca {name}: not a usable CA certificate: {e}"))?;
    }
    if roots.is_empty() {
        return Err(format!(
            "--ca {name}: holds no certificate (expected PEM \"BEGIN CERTIFICATE\" blocks)"
        ));
    }
    Ok(roots)
}

/// `--insecure`: any certificate chain and name pass, but the server must still prove,
/// by the handshake's signature, that it holds the key of the certificate it sent.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

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
        let algorithms = &self.0.signature_verification_algorithms;
        crypto::verify_tls12_signature(message, cert, dss, algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = &self.0.signature_verification_algorithms;
        crypto::verify_tls13_signature(message, cert, dss, algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_file(name: &str, text: &str) -> std::path::PathBuf {
        let path = std::env::temp_dir().join(format!("loadgen-{}-{name}", std::process::id()));
        std::fs::write(&path, text).expect("write a temp file");
        path
    }

    #[test]
    fn ca_errors_name_the_file() {
        let missing = Path::new("/nonexistent/ca.pem");
        let err = client_config(&Trust::Ca(missing.into())).unwrap_err();
        assert!(
            err.contains("--ca /nonexistent/ca.pem: cannot read it"),
            "{err}"
        );
        let empty = temp_file("empty.pem", "no PEM here\n");
        let err = client_config(&Trust::Ca(empty.clone())).unwrap_err();
        assert!(
            err.contains(&format!("--ca {}: holds no certificate", empty.display())),
            "{err}"
        );
        let _ = std::fs::remove_file(empty);
    }

    #[test]
    fn insecure_offers_http11_and_x25519_first() {
        let config = client_config(&Trust::Insecure).expect("a config");
        assert_eq!(config.alpn_protocols, vec![b"http/1.1".to_vec()]);
        let first = config.crypto_provider().kx_groups[0].name();
        assert_eq!(first, rustls::NamedGroup::X25519);
    }
}
