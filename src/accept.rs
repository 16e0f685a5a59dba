//! Accepting connections: one SO_REUSEPORT listener per worker (the kernel spreads new
//! connections over the workers), and the process-wide connection limit.

use std::cell::RefCell;
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::{TcpListener, TcpStream};

use crate::conn::{handshake, CloseReason};
use crate::http::response;
use crate::sys;
use crate::worker::{Port, Worker};

/// After the process runs out of descriptors, wait this long before accepting again
/// rather than spinning on EMFILE.
const EMFILE_PAUSE: Duration = Duration::from_millis(20);
/// How long a refused connection may take to read our 503 before it is closed.
const REFUSE_LINGER: Duration = Duration::from_secs(1);

pub async fn run(listener: TcpListener, worker: Rc<RefCell<Worker>>) {
    let shared = worker.borrow().shared().clone();
    loop {
        let accepted = listener.accept().await;
        if shared.is_draining() {
            return;
        }
        match accepted {
            Ok((stream, peer)) => {
                if shared.open.fetch_add(1, Ordering::Relaxed) >= shared.max_connections {
                    shared.open.fetch_sub(1, Ordering::Relaxed);
                    let w = worker.borrow();
                    w.stats().count_status(503);
                    w.stats().closes[CloseReason::Rejected.index()].add(1);
                    monoio::spawn(refuse(stream));
                    continue;
                }
                let port = Port::admit(&worker, stream.as_raw_fd());
                monoio::spawn(handshake::serve(port, stream, peer));
            }
            Err(e) => match e.raw_os_error() {
                Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM) => {
                    log::warn!(error:% = e; "accept: out of resources, pausing");
                    monoio::time::sleep(EMFILE_PAUSE).await;
                }
                Some(libc::ECONNABORTED | libc::EINTR | libc::EPROTO | libc::EPERM) => {}
                _ => {
                    log::error!(error:% = e; "accept failed");
                    monoio::time::sleep(EMFILE_PAUSE).await;
                }
            },
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
