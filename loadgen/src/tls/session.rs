//! One TLS connection: a rustls client session over a monoio socket, driven by
//! readiness. rustls pulls ciphertext straight off the socket and pushes records
//! straight onto it (`recv`/`send` with `MSG_DONTWAIT`), so no read is ever in flight
//! holding a buffer, and a connection keeps no buffer of its own besides rustls's.

use std::io::{self, Read as _, Write as _};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::Arc;

use monoio::net::TcpStream;
use rustls::pki_types::ServerName;
use rustls::{ClientConfig, ClientConnection};

use super::Negotiated;
use crate::sys;

/// Most unsent bytes a session holds (`set_buffer_limit`): one full TLS record. A
/// large publish goes out a record at a time, so a connection never holds more, and
/// a subscriber, which writes one small request, never comes near it.
const SEND_BUFFER_LIMIT: usize = 16 << 10;

/// A socket under a rustls client session.
pub struct TlsStream {
    tcp: TcpStream,
    session: ClientConnection,
    /// The last [`TlsStream::recv_nowait`] filled the caller's buffer, so rustls may
    /// still hold plaintext that no socket readiness will announce.
    buffered: bool,
}

impl TlsStream {
    /// Runs the handshake on a connected socket; the caller bounds it in time.
    pub async fn handshake(
        tcp: TcpStream,
        config: Arc<ClientConfig>,
        name: ServerName<'static>,
    ) -> io::Result<TlsStream> {
        let mut session = ClientConnection::new(config, name).map_err(tls_error)?;
        session.set_buffer_limit(Some(SEND_BUFFER_LIMIT));
        let mut s = TlsStream {
            tcp,
            session,
            buffered: false,
        };
        loop {
            s.flush().await?;
            if !s.session.is_handshaking() {
                // Records that came with the server's last flight may hold plaintext.
                s.buffered = true;
                return Ok(s);
            }
            s.tcp.readable(false).await?;
            match s.pull() {
                Ok(0) => {
                    let msg = "closed during the TLS handshake";
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, msg));
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
        }
    }

    pub fn fd(&self) -> RawFd {
        self.tcp.as_raw_fd()
    }

    /// What the handshake settled on.
    pub fn negotiated(&self) -> Negotiated {
        let s = &self.session;
        Negotiated {
            version: s
                .protocol_version()
                .map(|v| name(v.as_str(), v))
                .unwrap_or_default(),
            cipher_suite: s
                .negotiated_cipher_suite()
                .map(|c| name(c.suite().as_str(), c.suite()))
                .unwrap_or_default(),
            key_exchange: s
                .negotiated_key_exchange_group()
                .map(|g| name(g.name().as_str(), g.name()))
                .unwrap_or_default(),
            alpn: s
                .alpn_protocol()
                .map(|p| String::from_utf8_lossy(p).into_owned()),
        }
    }

    /// Waits until [`TlsStream::recv_nowait`] may have something: at once when rustls
    /// may still hold plaintext, else when the socket is readable.
    pub async fn readable(&self) -> io::Result<()> {
        if self.buffered {
            return Ok(());
        }
        self.tcp.readable(false).await
    }

    /// Reads plaintext without waiting, as much as `buf` takes or is there: from
    /// rustls, then from the socket. `WouldBlock` when there is nothing; `Ok(0)` at the
    /// end of the stream (with or without the server's `close_notify`). A short read
    /// means the socket had no more, so waiting for readiness is then safe.
    pub fn recv_nowait(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut n = 0;
        self.buffered = false;
        while n < buf.len() {
            match self.session.reader().read(&mut buf[n..]) {
                Ok(0) => return Ok(n), // close_notify: the end
                Ok(k) => {
                    n += k;
                    continue;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(n),
                Err(e) => return Err(e),
            }
            // rustls holds no plaintext: decrypt what the socket has.
            match self.pull() {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock && n > 0 => return Ok(n),
                Err(e) => return Err(e),
            }
        }
        self.buffered = true;
        Ok(n)
    }

    /// Reads plaintext, waiting for the socket when there is none; `Ok(0)` at the end.
    pub async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            match self.recv_nowait(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.readable().await?,
                done => return done,
            }
        }
    }

    /// Writes `bytes` whole, a record's worth at a time, waiting for the socket.
    pub async fn send_all(&mut self, mut bytes: &[u8]) -> io::Result<()> {
        while !bytes.is_empty() {
            let n = self.session.writer().write(bytes)?;
            debug_assert!(n > 0, "rustls took nothing with its send buffer empty");
            bytes = &bytes[n..];
            self.flush().await?;
        }
        Ok(())
    }

    /// Sends every record rustls holds, waiting for the socket as needed.
    async fn flush(&mut self) -> io::Result<()> {
        let fd = self.fd();
        while self.session.wants_write() {
            match self.session.write_tls(&mut Nowait(fd)) {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.tcp.writable(false).await?;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Moves what the socket has into rustls and decrypts every complete record.
    /// Returns the bytes read (0: the socket's end of stream), `WouldBlock` when the
    /// socket had nothing. A session error is sent to the server as its alert.
    fn pull(&mut self) -> io::Result<usize> {
        let fd = self.fd();
        let n = self.session.read_tls(&mut Nowait(fd))?;
        if let Err(e) = self.session.process_new_packets() {
            let _ = self.session.write_tls(&mut Nowait(fd));
            return Err(tls_error(e));
        }
        if self.session.wants_write() {
            // A post-handshake answer (a key update): best effort, without waiting.
            let _ = self.session.write_tls(&mut Nowait(fd));
        }
        Ok(n)
    }
}

impl Drop for TlsStream {
    /// Ends the session with `close_notify`, best effort and without waiting, so the
    /// server sees a clean end rather than a truncation.
    fn drop(&mut self) {
        let fd = self.fd();
        self.session.send_close_notify();
        let _ = self.session.write_tls(&mut Nowait(fd));
    }
}

/// The registry name of a TLS code point, or its debug form when it has none.
fn name(known: Option<&'static str>, id: impl std::fmt::Debug) -> String {
    known.map_or_else(|| format!("{id:?}"), str::to_owned)
}

/// A rustls error as an I/O error; `stats::io_kind` names it `tls: <error>`.
fn tls_error(e: rustls::Error) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e)
}

/// The socket as `io::Read`/`io::Write` that never waits, for rustls to read
/// ciphertext from and write records to.
struct Nowait(RawFd);

impl io::Read for Nowait {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        sys::recv_nowait(self.0, buf)
    }
}

impl io::Write for Nowait {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        sys::send_nowait(self.0, buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
