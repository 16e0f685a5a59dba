//! A publisher connection's socket and buffers: one write carries every request due,
//! and a read waits for answers only until the next request is due, so the open-loop
//! schedule holds while answers are outstanding.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use monoio::io::{AsyncWriteRentExt, CancelableAsyncReadRent, Canceller};
use monoio::net::TcpStream;

use crate::stats::io_kind;
use crate::sys::mono_ns;

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
    stream: TcpStream,
    /// Requests built and not yet written.
    pub out: Vec<u8>,
    /// Read target; monoio reads into an owned buffer from its start.
    rbuf: Vec<u8>,
    /// Answer bytes not yet matched to their requests.
    pub acc: Vec<u8>,
}

impl Conn {
    pub async fn connect(addr: SocketAddr) -> io::Result<Conn> {
        let stream = TcpStream::connect_addr(addr).await?;
        let _ = stream.set_nodelay(true);
        Ok(Conn {
            stream,
            out: Vec::new(),
            rbuf: Vec::with_capacity(READ_BYTES),
            acc: Vec::new(),
        })
    }

    /// Writes `out` whole (then clears it), or fails with the kind of failure.
    pub async fn write(&mut self, timeout: Duration) -> Result<(), String> {
        let out = std::mem::take(&mut self.out);
        let (res, mut out) = monoio::time::timeout(timeout, self.stream.write_all(out))
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
        let canceller = Canceller::new();
        let buf = std::mem::take(&mut self.rbuf);
        let read = self.stream.cancelable_read(buf, canceller.handle());
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
