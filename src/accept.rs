//! Accepting connections: one SO_REUSEPORT listener per worker (the kernel spreads new
//! connections over the workers), and the process-wide connection limit.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::{TcpListener, TcpStream};

use crate::conn::{handshake, CloseReason};
use crate::http::response;
use crate::shared::Shared;
use crate::sys;
use crate::worker::{Port, Worker};

/// After the process runs out of descriptors, wait this long before accepting again
/// rather than spinning on EMFILE.
const EMFILE_PAUSE: Duration = Duration::from_millis(20);
/// How long a refused connection may take to read our 503 before it is closed.
const REFUSE_LINGER: Duration = Duration::from_secs(1);

/// Connections taken straight from the listen queue after each accept the runtime
/// completes. The runtime's accept returns one connection per I/O pass, and a worker
/// busy with fan-out makes a pass every few milliseconds: under a saturated 1 KiB topic
/// the workers accepted about 400 connections a second between them, the listen queue
/// held 250, and a publisher's new connection waited 0.4-1.6 s behind it (BENCHMARKS.md,
/// "Admission under load").
const QUEUED_PER_PASS: usize = 128;

/// Accepts on `listener` until the server drains; its connections begin with a TLS
/// handshake when `tls`. `uring` says which runtime runs the worker: the sockets taken
/// from the queue get the blocking mode that runtime's own accept gives (io_uring:
/// blocking; epoll: nonblocking).
pub async fn run(listener: TcpListener, worker: Rc<RefCell<Worker>>, uring: bool, tls: bool) {
    let shared = worker.borrow().shared().clone();
    let listener_fd = listener.as_raw_fd();
    loop {
        let accepted = listener.accept().await;
        if shared.is_draining() {
            return;
        }
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(e) => {
                pause_after(e).await;
                continue;
            }
        };
        admit(&worker, &shared, stream, peer, tls);
        for _ in 0..QUEUED_PER_PASS {
            if shared.is_draining() {
                return;
            }
            match sys::accept_queued(listener_fd, !uring) {
                Ok(Some((stream, peer))) => match TcpStream::from_std(stream) {
                    Ok(stream) => admit(&worker, &shared, stream, peer, tls),
                    Err(e) => log::warn!(error:% = e; "accept: cannot adopt a connection"),
                },
                Ok(None) => break,
                Err(e) => {
                    pause_after(e).await;
                    break;
                }
            }
        }
    }
}

/// Serves an accepted connection, or refuses it when the process is at its limit.
fn admit(
    worker: &Rc<RefCell<Worker>>,
    shared: &Shared,
    stream: TcpStream,
    peer: SocketAddr,
    tls: bool,
) {
    if shared.open.fetch_add(1, Ordering::Relaxed) >= shared.max_connections {
        shared.open.fetch_sub(1, Ordering::Relaxed);
        let w = worker.borrow();
        w.stats().count_status(503);
        w.stats().closes[CloseReason::Rejected.index()].add(1);
        // A TLS client could not read a plaintext 503; it sees the connection close.
        if !tls {
            monoio::spawn(refuse(stream));
        }
        return;
    }
    let port = Port::admit(worker, stream.as_raw_fd());
    monoio::spawn(handshake::serve(port, stream, peer, tls));
}

/// After a failed accept: waits out a shortage of descriptors or memory rather than
/// spinning on it; a connection the peer gave up on is no reason to wait.
async fn pause_after(e: std::io::Error) {
    match e.raw_os_error() {
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => {
            log::warn!(error:% = e; "accept: out of resources, pausing");
            monoio::time::sleep(EMFILE_PAUSE).await;
        }
        Some(libc::ECONNABORTED | libc::EINTR | libc::EPROTO | libc::EPERM) => {}
        _ => {
            log::error!(error:% = e; "accept failed");
            monoio::time::sleep(EMFILE_PAUSE).await;
        }
    }
}

/// Over the connection limit: answer 503 with Retry-After, let the client read it, close.
async fn refuse(mut stream: TcpStream) {
    let (res, _) = stream
        .write_all(response::unavailable("too many connections"))
        .await;
    if res.is_err() {
        return;
    }
    sys::shutdown(stream.as_raw_fd(), sys::Shut::Write);
    let _ = monoio::time::timeout(REFUSE_LINGER, async {
        let mut buf = vec![0u8; 4096];
        loop {
            let (res, b) = stream.read(buf).await;
            buf = b;
            if !matches!(res, Ok(n) if n > 0) {
                break;
            }
            buf.clear();
        }
    })
    .await;
}
