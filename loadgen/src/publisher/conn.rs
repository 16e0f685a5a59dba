//! A publisher connection's socket and buffers: one write carries every request due,
//! and a read waits for answers only until the next request is due, so the open-loop
//! schedule holds while answers are outstanding. Over TLS the same, by readiness: the
//! wait for the next due request drops a poll, never a read holding bytes.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use monoio::io::{AsyncWriteRentExt, CancelableAsyncReadRent, Canceller};
use monoio::net::TcpStream;

use crate::stats::io_kind;
use crate::sys::mono_ns;
use crate::tls::{Connector, Stream, TlsStream};

/// Most request bytes gathered into one write: bounds the buffer when pipelined batches
/// are large, while small requests still go out many to a write.
pub const WRITE_BYTES: usize = 256 << 10;
/// Read size: a few hundred pipelined answers of ringcast's (under 100 bytes each).
const READ_BYTES: usize = 16 << 10;

/// What a read ended with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// Bytes were appended to `acc`.
    Bytes,
    /// The server closed its side.
    Eof,
    /// The wake-up time came first; nothing was read.
    Woken,
}

/// A keep-alive publisher connection with its reused buffers.
pub struct Conn {
    stream: Stream,
    /// Requests built and not yet written.
    pub out: Vec<u8>,
    /// Read target; monoio reads into an owned buffer from its start (TLS decrypts
    /// into it).
    rbuf: Vec<u8>,
    /// Answer bytes not yet matched to their requests.
    pub acc: Vec<u8>,
}

impl Conn {
    /// Connects, and with `tls` runs the handshake within `handshake_timeout`.
    pub async fn connect(
        addr: SocketAddr,
        tls: Option<&Connector>,
        handshake_timeout: Duration,
    ) -> io::Result<Conn> {
        let tcp = TcpStream::connect_addr(addr).await?;
        let _ = tcp.set_nodelay(true);
        let stream = match tls {
            None => Stream::Plain(tcp),
            Some(c) => monoio::time::timeout(handshake_timeout, Stream::open(tcp, Some(c)))
                .await
                .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??,
        };
        Ok(Conn {
            stream,
            out: Vec::new(),
            rbuf: Vec::with_capacity(READ_BYTES),
            acc: Vec::new(),
        })
    }

    /// Writes `out` whole (then clears it), or fails with the kind of failure.
    pub async fn write(&mut self, timeout: Duration) -> Result<(), String> {
        let tcp = match &mut self.stream {
            Stream::Plain(tcp) => tcp,
            Stream::Tls(t) => {
                let res = monoio::time::timeout(timeout, t.send_all(&self.out))
                    .await
                    .map_err(|_| "timeout".to_owned())?;
                self.out.clear();
                return res.map_err(|e| io_kind(&e));
            }
        };
        let out = std::mem::take(&mut self.out);
        let (res, mut out) = monoio::time::timeout(timeout, tcp.write_all(out))
            .await
            .map_err(|_| "timeout".to_owned())?;
        out.clear();
        self.out = out;
        res.map(drop).map_err(|e| io_kind(&e))
    }

    /// Reads once, waiting at most until `wake_ns` (CLOCK_MONOTONIC). The read is
    /// cancelled, not dropped, at the wake-up: bytes it took from the socket before the
    /// cancel landed are still returned, so none is lost from the answer stream.
    pub async fn read_until(&mut self, wake_ns: u64) -> Result<Read, String> {
        let tcp = match &mut self.stream {
            Stream::Plain(tcp) => tcp,
            Stream::Tls(t) => {
                return read_tls_until(t, wake_ns, &mut self.rbuf, &mut self.acc).await
            }
        };
        let canceller = Canceller::new();
        let buf = std::mem::take(&mut self.rbuf);
        let read = tcp.cancelable_read(buf, canceller.handle());
        let mut read = std::pin::pin!(read);
        let wait = Duration::from_nanos(wake_ns.saturating_sub(mono_ns()));
        let (res, buf) = match monoio::time::timeout(wait, &mut read).await {
            Ok(done) => done,
            Err(_) => {
                let _ = canceller.cancel();
                read.await
            }
        };
        self.rbuf = buf;
        match res {
            Ok(0) => Ok(Read::Eof),
            Ok(n) => {
                self.acc.extend_from_slice(&self.rbuf[..n]);
                Ok(Read::Bytes)
            }
            Err(e) if e.raw_os_error() == Some(libc::ECANCELED) => Ok(Read::Woken),
            Err(e) => Err(io_kind(&e)),
        }
    }
}

/// [`Conn::read_until`] over TLS: everything rustls and the socket have now, else one
/// wait for readiness until `wake_ns`. Appends to `acc` what was read.
async fn read_tls_until(
    t: &mut TlsStream,
    wake_ns: u64,
    rbuf: &mut Vec<u8>,
    acc: &mut Vec<u8>,
) -> Result<Read, String> {
    rbuf.resize(READ_BYTES, 0);
    loop {
        let mut got = false;
        loop {
            match t.recv_nowait(rbuf) {
                // Bytes first; the end shows again on the next read.
                Ok(0) if got => return Ok(Read::Bytes),
                Ok(0) => return Ok(Read::Eof),
                Ok(n) => {
                    acc.extend_from_slice(&rbuf[..n]);
                    got = true;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(io_kind(&e)),
            }
        }
        if got {
            return Ok(Read::Bytes);
        }
        let wait = Duration::from_nanos(wake_ns.saturating_sub(mono_ns()));
        match monoio::time::timeout(wait, t.readable()).await {
            Err(_) => return Ok(Read::Woken),
            Ok(res) => res.map_err(|e| io_kind(&e))?,
        }
    }
}
