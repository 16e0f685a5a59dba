//! A test CA and server certificate made on the spot (rcgen), written to files the
//! server reads, and a rustls client that trusts that CA.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, PublicKeyData};
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use super::{Server, Sse};

pub type TlsStream = StreamOwned<ClientConnection, TcpStream>;

/// A CA, and a certificate for `localhost` and 127.0.0.1 that it signed, in a directory
/// of their own (removed on drop).
pub struct Pki {
    pub dir: PathBuf,
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The CA certificate, PEM (for clients given a CA file).
    pub ca: PathBuf,
    issuer: Issuer<'static, KeyPair>,
    roots: Arc<RootCertStore>,
    /// The server key's pin (see [`Pki::spki_sha256`]), for the certificate last issued.
    spki_sha256: Mutex<String>,
}

impl Pki {
    pub fn new(name: &str) -> Pki {
        let dir = std::env::temp_dir().join(format!("ringcast-tls-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let ca_key = KeyPair::generate().expect("CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "ringcast test CA");
        let ca_cert = params.self_signed(&ca_key).expect("CA certificate");
        let mut roots = RootCertStore::empty();
        roots
            .add(ca_cert.der().clone())
            .expect("CA in the root store");
        let ca = dir.join("ca.pem");
        std::fs::write(&ca, ca_cert.pem()).expect("write CA");
        let pki = Pki {
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
            dir,
            ca,
            issuer: Issuer::new(params, ca_key),
            roots: Arc::new(roots),
            spki_sha256: Mutex::new(String::new()),
        };
        pki.issue();
        pki
    }

    /// Issues a new server certificate (and key) into the files; returns its DER.
    pub fn issue(&self) -> CertificateDer<'static> {
        let key = KeyPair::generate().expect("server key");
        let params = CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
            .expect("server params");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("server certificate");
        std::fs::write(&self.cert, cert.pem()).expect("write certificate");
        std::fs::write(&self.key, key.serialize_pem()).expect("write key");
        let spki = key.subject_public_key_info();
        let digest = aws_lc_rs::digest::digest(&aws_lc_rs::digest::SHA256, &spki);
        *self.spki_sha256.lock().unwrap() = base64(digest.as_ref());
        cert.der().clone()
    }

    /// The base64 SHA-256 of the server certificate's SubjectPublicKeyInfo: what
    /// Chromium's `--ignore-certificate-errors-spki-list` takes, as it has no flag for a
    /// CA file.
    pub fn spki_sha256(&self) -> String {
        self.spki_sha256.lock().unwrap().clone()
    }

    /// `--tls-cert FILE --tls-key FILE`.
    pub fn args(&self) -> Vec<String> {
        vec![
            "--tls-cert".into(),
            self.cert.display().to_string(),
            "--tls-key".into(),
            self.key.display().to_string(),
        ]
    }

    /// A client that trusts this CA, with the default suites and versions.
    pub fn client(&self) -> Arc<ClientConfig> {
        self.client_with(
            rustls::crypto::aws_lc_rs::default_provider(),
            &[&rustls::version::TLS13, &rustls::version::TLS12],
        )
    }

    pub fn client_with(
        &self,
        provider: rustls::crypto::CryptoProvider,
        versions: &[&'static rustls::SupportedProtocolVersion],
    ) -> Arc<ClientConfig> {
        let mut config = ClientConfig::builder_with_provider(Arc::new(provider))
            .with_protocol_versions(versions)
            .expect("versions")
            .with_root_certificates(self.roots.clone())
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }

    /// Connects to `addr` and finishes the handshake; reads time out after 50 ms.
    pub fn connect(&self, addr: SocketAddr, config: &Arc<ClientConfig>) -> TlsStream {
        let sock = TcpStream::connect(addr).expect("connect");
        sock.set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let name = ServerName::try_from("localhost").unwrap();
        let conn = ClientConnection::new(config.clone(), name).expect("client connection");
        let mut stream = StreamOwned::new(conn, sock);
        let deadline = std::time::Instant::now() + super::PATIENCE;
        while stream.conn.is_handshaking() {
            assert!(
                std::time::Instant::now() < deadline,
                "handshake not done in time"
            );
            match stream.conn.complete_io(&mut stream.sock) {
                Ok(_) => {}
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => panic!("handshake failed: {e}"),
            }
        }
        stream.flush().unwrap();
        stream
    }
}

/// Standard base64 (RFC 4648, padded).
fn base64(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n =
            (chunk.iter().enumerate()).fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            out.push(if i <= chunk.len() {
                DIGITS[(n >> (18 - 6 * i) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    out
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One request over a TLS stream, answered with `Content-Length`: the status and body.
pub fn exchange(stream: &mut TlsStream, request: &[u8]) -> (u16, String) {
    stream.write_all(request).unwrap();
    stream.flush().unwrap();
    let mut got = Vec::new();
    let deadline = std::time::Instant::now() + super::PATIENCE;
    loop {
        if let Some(end) = super::find(&got, b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&got[..end]).to_string();
            let len: usize = super::header(&head, "content-length")
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if got.len() >= end + 4 + len {
                let body = String::from_utf8_lossy(&got[end + 4..end + 4 + len]).to_string();
                return (super::status_of(&head), body);
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no answer: {:?}",
            String::from_utf8_lossy(&got)
        );
        match super::read_once(stream, &mut got) {
            Ok(Some(0)) => panic!(
                "closed before the answer: {:?}",
                String::from_utf8_lossy(&got)
            ),
            Ok(_) => {}
            Err(e) => panic!("read failed: {e}"),
        }
    }
}

/// `POST /publish?<query>` on a kept-alive TLS connection.
pub fn publish(stream: &mut TlsStream, query: &str, body: &str) -> (u16, String) {
    let request = format!(
        "POST /publish?{query} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    exchange(stream, request.as_bytes())
}

/// Starts `ringcast` with `pki`'s certificate and `extra` flags.
pub fn start(pki: &Pki, extra: &[&str]) -> Server {
    let mut args: Vec<String> = pki.args();
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Server::start(&args)
}

/// A TLS subscriber of `GET /events?<query>`, its head read (200).
pub fn subscribe(
    pki: &Pki,
    server: &Server,
    query: &str,
    headers: &[(&str, &str)],
) -> Sse<TlsStream> {
    let stream = pki.connect(server.addr, &pki.client());
    let mut sse = Sse::over(stream, query, headers);
    assert_eq!(sse.status(), 200);
    sse
}

/// The `--plain-listen` address, from the server's log. It is logged before the start
/// line that `Server::start` waits for, so it is there as soon as the server is.
pub fn plain_addr(server: &Server) -> SocketAddr {
    let log = server.log();
    let plain = log.find("plain_listen=");
    let started = log.find("ringcast started");
    assert!(
        plain.is_some() && plain < started,
        "plain_listen= must be logged before the start line: {log}"
    );
    log.split_whitespace()
        .find_map(|f| f.strip_prefix("plain_listen="))
        .expect("found above")
        .parse()
        .expect("an address")
}

/// A metric summed over workers, read over the plaintext listener.
pub fn metric(server: &Server, name: &str) -> u64 {
    super::metric_at(plain_addr(server), name)
}

/// Connections closed for `reason`.
pub fn closes(server: &Server, reason: &str) -> u64 {
    metric(
        server,
        &format!("ringcast_closes_total{{reason=\"{reason}\"}}"),
    )
}
