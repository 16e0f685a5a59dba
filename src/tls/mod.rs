//! TLS on the listeners (`--tls-cert`, `--tls-key`): the handshake runs on the
//! connection's task with rustls, and what is left of a connection afterwards is a
//! [`session::Session`]: keys and sequence numbers, sealing frames at write time into
//! the worker's scratch memory and opening what the client sends.
//!
//! - [`handshake`]: rustls's unbuffered server connection, driven over the socket.
//! - [`session`]: a connection's record state after the handshake.
//! - [`record`]: sealing and opening records.
//! - [`secret`]: TLS 1.3 traffic secrets, and the next keys at a KeyUpdate.
//!
//! The crypto provider is rustls's default, aws-lc-rs: it offers the post-quantum hybrid
//! key exchange X25519MLKEM768 that current browsers send first (rustls deprecated its
//! `ring` provider, which has none), its AES-GCM and ChaCha20-Poly1305 use the CPU's AES
//! and vector instructions, and the same crate seals our records, so one
//! implementation of each AEAD is linked. It builds with a C compiler alone here (no
//! cmake), in about a minute.

pub mod handshake;
pub mod record;
pub mod secret;
pub mod session;

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::crypto::aws_lc_rs::Ticketer;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ProducesTickets, ServerSessionMemoryCache, StoresServerSessions};
use rustls::ServerConfig;

/// TLS 1.2 sessions remembered by id, for clients that take no tickets: a client that
/// reconnects within the cache's reach skips the certificate and the signature. Every
/// other resumption is by ticket, which the server keeps nothing of (an idle TLS
/// subscriber must cost little; a cached TLS 1.3 session is a few hundred bytes).
const SESSION_CACHE: usize = 4 << 10;

/// Where the certificate chain and its key are read from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Files {
    pub cert: PathBuf,
    pub key: PathBuf,
}

/// The server's TLS configuration: read at start, read again on SIGHUP. A handshake
/// takes the configuration current when it starts; live connections keep their keys.
pub struct Acceptor {
    files: Files,
    /// Kept across reloads, so that sessions and tickets stay valid.
    sessions: Arc<dyn StoresServerSessions>,
    tickets: Arc<dyn ProducesTickets>,
    current: RwLock<Arc<ServerConfig>>,
}

impl Acceptor {
    /// Reads the files; an error names the file and what is wrong with it.
    pub fn new(files: Files) -> Result<Acceptor, String> {
        let sessions: Arc<dyn StoresServerSessions> = ServerSessionMemoryCache::new(SESSION_CACHE);
        let tickets = Ticketer::new().map_err(|e| format!("TLS tickets: {e}"))?;
        let config = server_config(&files, sessions.clone(), tickets.clone())?;
        Ok(Acceptor {
            files,
            sessions,
            tickets,
            current: RwLock::new(config),
        })
    }

    pub fn config(&self) -> Arc<ServerConfig> {
        self.current.read().expect("not poisoned").clone()
    }

    /// Reads the files again. New handshakes use them; on an error the configuration in
    /// use stays, and the error says why.
    pub fn reload(&self) -> Result<(), String> {
        let config = server_config(&self.files, self.sessions.clone(), self.tickets.clone())?;
        *self.current.write().expect("not poisoned") = config;
        Ok(())
    }

    pub fn files(&self) -> &Files {
        &self.files
    }
}

impl std::fmt::Debug for Acceptor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Acceptor")
            .field("files", &self.files)
            .finish()
    }
}

/// TLS 1.3 and 1.2 with rustls's default suites (AEADs only), ALPN `http/1.1` (and
/// `http/1.0`), and the
/// secrets extractable, since the connection is reduced to its keys after the handshake.
fn server_config(
    files: &Files,
    sessions: Arc<dyn StoresServerSessions>,
    tickets: Arc<dyn ProducesTickets>,
) -> Result<Arc<ServerConfig>, String> {
    let certs = read_certs(&files.cert)?;
    let key = read_key(&files.key)?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            format!(
                "--tls-cert {} and --tls-key {}: {e}",
                files.cert.display(),
                files.key.display()
            )
        })?;
    // HTTP/1.0 clients that send ALPN offer only `http/1.0` (curl --http1.0 does): with
    // `http/1.1` alone rustls refused their handshakes.
    config.alpn_protocols = vec![b"http/1.1".to_vec(), b"http/1.0".to_vec()];
    config.enable_secret_extraction = true;
    config.key_log = Arc::new(secret::Capture);
    config.session_storage = sessions;
    config.ticketer = tickets;
    // One ticket is enough for one reconnect; rustls's default sends two.
    config.send_tls13_tickets = 1;
    Ok(Arc::new(config))
}

fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("--tls-cert {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "--tls-cert {}: no CERTIFICATE in the file",
            path.display()
        ));
    }
    Ok(certs)
}

fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, String> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| format!("--tls-key {}: {e}", path.display()))
}
