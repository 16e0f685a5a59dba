//! TLS for `https://` endpoints (rustls, aws-lc-rs provider), and [`Stream`], the socket
//! every connection kind holds: plain TCP, or TCP under a TLS session. The plain
//! variant makes the same calls as before, with no indirection; the TLS variant is
//! boxed, so a plain connection's future does not grow by the size of a session.
//!
//! The handshake is part of the connect: it runs inside the connect timeout (the
//! probe timeout, the publisher's exchange timeout), and the connect figures include it.
//!
//! - [`config`]: the client config from `--ca` or `--insecure`, once per process.
//! - [`session`]: one TLS connection, driven by readiness like the subscribers.

mod config;
mod session;

use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;

use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpStream;
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use serde::{Deserialize, Serialize};

use crate::plan::{Endpoint, Plan};
use crate::sys;

pub use session::TlsStream;

/// Why an https run cannot start without `--ca` or `--insecure`.
pub const NEED_TRUST: &str = "https:// needs --ca FILE (PEM with the CA certificate(s) the \
    server's certificate chains to) or --insecure (accept any certificate): loadgen ships \
    no root store";

/// What a handshake settled on; the report shows it for the run's first TLS connection.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Negotiated {
    /// `TLSv1_3` or `TLSv1_2`.
    pub version: String,
    pub cipher_suite: String,
    /// The key exchange group, e.g. `X25519`.
    pub key_exchange: String,
    /// The protocol the server chose by ALPN (`http/1.1`), if it chose one.
    pub alpn: Option<String>,
}

/// Opens TLS sessions to one endpoint: the process's client config and the name the
/// server's certificate is checked against. A DNS name is also sent as SNI; an IP
/// address is checked against the certificate's IP names and sends no SNI (RFC 6066).
#[derive(Debug, Clone)]
pub struct Connector {
    config: Arc<ClientConfig>,
    name: ServerName<'static>,
}

impl Connector {
    /// The connector of `e`; `None` when `e` is plain http.
    pub fn for_endpoint(plan: &Plan, e: &Endpoint) -> Result<Option<Connector>, String> {
        if !e.tls {
            return Ok(None);
        }
        let trust = plan.tls_trust.as_ref().ok_or(NEED_TRUST)?;
        let host = e.host_name();
        let name = ServerName::try_from(host.to_owned())
            .map_err(|_| format!("{host:?}: not a host name or IP address TLS can check"))?;
        Ok(Some(Connector {
            config: config::client_config(trust)?,
            name,
        }))
    }

    /// Runs the handshake on a connected socket.
    pub async fn handshake(&self, tcp: TcpStream) -> io::Result<TlsStream> {
        TlsStream::handshake(tcp, self.config.clone(), self.name.clone()).await
    }
}

/// Builds, once at start, what every process will build from the plan, so that a bad
/// `--ca` or host is a bad argument rather than a failed worker.
pub fn check(plan: &Plan) -> Result<(), String> {
    let publish = plan.publish.iter().map(|p| &p.endpoint);
    let probe = plan
        .probe
        .iter()
        .flat_map(|p| &p.publish)
        .map(|p| &p.endpoint);
    for e in std::iter::once(&plan.subscribe).chain(publish).chain(probe) {
        Connector::for_endpoint(plan, e)?;
    }
    Ok(())
}

/// A connection's socket.
pub enum Stream {
    Plain(TcpStream),
    Tls(Box<TlsStream>),
}

impl Stream {
    /// `tcp` as it is, or after a TLS handshake when `tls` is given.
    pub async fn open(tcp: TcpStream, tls: Option<&Connector>) -> io::Result<Stream> {
        Ok(match tls {
            None => Stream::Plain(tcp),
            Some(c) => Stream::Tls(Box::new(c.handshake(tcp).await?)),
        })
    }

    pub fn fd(&self) -> RawFd {
        match self {
            Stream::Plain(tcp) => tcp.as_raw_fd(),
            Stream::Tls(t) => t.fd(),
        }
    }

    /// The TLS session's settings; `None` for a plain socket.
    pub fn negotiated(&self) -> Option<Negotiated> {
        match self {
            Stream::Plain(_) => None,
            Stream::Tls(t) => Some(t.negotiated()),
        }
    }

    /// Waits until [`Stream::recv_nowait`] may find something.
    pub async fn readable(&self) -> io::Result<()> {
        match self {
            Stream::Plain(tcp) => tcp.readable(false).await,
            Stream::Tls(t) => t.readable().await,
        }
    }

    /// Reads what is there without waiting: `WouldBlock` when nothing, `Ok(0)` at the
    /// end of the stream.
    #[inline]
    pub fn recv_nowait(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Plain(tcp) => sys::recv_nowait(tcp.as_raw_fd(), buf),
            Stream::Tls(t) => t.recv_nowait(buf),
        }
    }

    /// Writes `bytes` whole from a borrowed buffer, by readiness and `send`.
    pub async fn send_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        let tcp = match self {
            Stream::Plain(tcp) => tcp,
            Stream::Tls(t) => return t.send_all(bytes).await,
        };
        let mut sent = 0;
        while sent < bytes.len() {
            match sys::send_nowait(tcp.as_raw_fd(), &bytes[sent..]) {
                Ok(n) => sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => tcp.writable(false).await?,
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Writes `buf` whole, monoio's way: the buffer is handed back.
    pub async fn write_all(&mut self, buf: Vec<u8>) -> (io::Result<()>, Vec<u8>) {
        match self {
            Stream::Plain(tcp) => {
                let (res, buf) = tcp.write_all(buf).await;
                (res.map(drop), buf)
            }
            Stream::Tls(t) => (t.send_all(&buf).await, buf),
        }
    }

    /// Reads once into `buf` from its start (up to its capacity), monoio's way: the
    /// buffer comes back holding what was read. `Ok(0)` at the end of the stream.
    pub async fn read(&mut self, mut buf: Vec<u8>) -> (io::Result<usize>, Vec<u8>) {
        match self {
            Stream::Plain(tcp) => tcp.read(buf).await,
            Stream::Tls(t) => {
                buf.clear();
                buf.resize(buf.capacity(), 0);
                let res = t.read(&mut buf).await;
                buf.truncate(*res.as_ref().unwrap_or(&0));
                (res, buf)
            }
        }
    }
}
