//! The task that serves a connection until it becomes a stream or closes: read a request
//! head (scanning only new bytes for its end, within the size cap and the handshake
//! timeout), parse it, route it, answer it; keep-alive for publishers.
//!
//! Timeouts come from the worker's wheel, not from a sleep per connection: when a
//! connection's request deadline passes, the wheel marks it and shuts down its read
//! side, which ends the pending read with end-of-file.

use std::net::SocketAddr;
use std::os::fd::{AsRawFd, IntoRawFd};
use std::sync::Arc;
use std::time::Duration;

use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpStream;

use super::forward;
use super::publish::Refusal;
use super::route::{self, route, Route};
use super::subscribe::Subscribe;
use super::CloseReason;
use crate::forward_auth::Credentials;
use crate::http::parse;
use crate::http::response::{self, Response};
use crate::shared::Shared;
use crate::sys;
use crate::tls::session::Session;
use crate::worker::Port;

mod publish;
mod tls;

/// First read buffer: a browser's EventSource request is about 500 bytes.
const INITIAL_BUF: usize = 1024;
/// After an error answer, how long and how much we keep reading (and discarding) so the
/// client sees the answer instead of a reset caused by its unread request bytes.
const LINGER: Duration = Duration::from_secs(2);
const LINGER_BYTES: usize = 64 << 10;
/// How often a publish held back by a lagging fan-out looks again.
const CAPACITY_POLL: Duration = Duration::from_millis(1);

/// How a read reports a TLS record that does not open (or another TLS protocol error).
const TLS_ERROR: std::io::ErrorKind = std::io::ErrorKind::InvalidData;

/// Why a connection whose read failed is closed.
fn read_failed(e: &std::io::Error) -> CloseReason {
    match e.kind() {
        TLS_ERROR => CloseReason::Tls,
        _ => CloseReason::Peer,
    }
}

/// How a connection's task ends.
enum End {
    /// Hand the connection to the data plane as a subscriber (boxed: once per stream, and
    /// it keeps every `Result<_, End>` of the request path small).
    Stream(Box<Subscribe>),
    /// Write this last answer, linger, close.
    Answer(Vec<u8>, CloseReason),
    /// Close without a word.
    Quiet(CloseReason),
}

struct Http {
    stream: TcpStream,
    buf: Vec<u8>,
    /// The connection's entry on its worker.
    port: Port,
    shared: Arc<Shared>,
    peer: SocketAddr,
    /// The `Access-Control-Allow-Origin` of the request being answered, if any.
    cors: Option<String>,
    /// Requests answered on this connection so far.
    served: u32,
    /// Its last publish went to a heavy topic (a wide fan-out's own publisher).
    heavy: bool,
    /// On the TLS listener: the connection's keys, once its handshake is done. `buf`
    /// then holds what its records carried.
    tls: Option<Box<Session>>,
    /// On the TLS listener: bytes of records not yet opened.
    raw: Vec<u8>,
}

/// Serves an accepted connection registered on its worker as `port`; on the TLS
/// listener (`tls`), after its handshake.
pub async fn serve(port: Port, stream: TcpStream, peer: SocketAddr, tls: bool) {
    let shared = port.shared().clone();
    let mut http = Http {
        stream,
        buf: Vec::new(),
        port,
        shared,
        peer,
        served: 0,
        cors: None,
        heavy: false,
        tls: None,
        raw: Vec::new(),
    };
    if tls {
        if let Err(end) = http.handshake().await {
            return http.end(end).await;
        }
    }
    http.buf.reserve(INITIAL_BUF);
    let end = http.requests().await;
    http.end(end).await;
}

impl Http {
    /// Answers requests until one ends the connection.
    async fn requests(&mut self) -> End {
        loop {
            // A kept-alive connection may idle for the keep-alive timeout; a request,
            // from its first byte, has the handshake timeout (see `read_head`).
            let cfg = &self.shared.config;
            let timeout = if self.served == 0 || !self.buf.is_empty() {
                cfg.handshake_timeout
            } else {
                cfg.keepalive_timeout
            };
            self.port.deadline(timeout);
            let head_len = match self.read_head().await {
                Ok(n) => n,
                Err(end) => return end,
            };
            let routed = route(&self.buf[..head_len], self.peer, &self.shared);
            let (next, mut keep_alive) = (routed.route, routed.keep_alive);
            self.cors = routed.cors;
            let forward = routed.forward;
            self.buf.drain(..head_len);
            let answer = match next {
                Route::Subscribe(sub) if self.shared.is_draining() => {
                    let _ = sub;
                    return self.refuse(503, "shutting down".into());
                }
                Route::Subscribe(sub) => return self.forward_auth(sub, forward).await,
                Route::Refuse(status, why) => return self.refuse(status, why),
                Route::Answer {
                    status,
                    bytes,
                    close,
                } => {
                    keep_alive &= !close;
                    self.port.stats().count_status(status);
                    bytes
                }
                Route::Topics(request) => {
                    let shared = self.shared.clone();
                    match super::topics::answer(request, &shared).await {
                        Ok(json) => {
                            self.port.stats().count_status(200);
                            let mut r = Response::new(200).header("Cache-Control", "no-store");
                            if !keep_alive {
                                r = r.close();
                            }
                            r.body("application/json", json.as_bytes())
                        }
                        Err((status, why)) => return self.refuse(status, why),
                    }
                }
                Route::Publish {
                    target,
                    batch,
                    body,
                    expect_continue,
                } => match self
                    .publish(target, batch, body, expect_continue, keep_alive, forward)
                    .await
                {
                    Ok(bytes) => bytes,
                    Err(end) => return end,
                },
            };
            self.served += 1;
            if self.answer(answer).await.is_err() {
                let slow = self.timed_out();
                return End::Quiet(if slow {
                    CloseReason::Slow
                } else {
                    CloseReason::Peer
                });
            }
            if self.shared.is_draining() {
                return End::Quiet(CloseReason::Shutdown);
            }
            if !keep_alive {
                return End::Quiet(CloseReason::Peer);
            }
        }
    }

    /// Writes an answer. It goes out at once with a plain nonblocking send: through the
    /// runtime's ring it would wait until the worker parks, which after a publish is after
    /// this worker's whole fan-out of it (tens of milliseconds at 10,000 subscribers).
    async fn answer(&mut self, bytes: Vec<u8>) -> std::io::Result<()> {
        let mut bytes = self.sealed(bytes)?;
        let sent = sys::send_now(self.stream.as_raw_fd(), &bytes);
        if sent == bytes.len() {
            return Ok(());
        }
        // The client is not taking it all now: bound the wait by the write timeout.
        self.port.answering();
        bytes.drain(..sent);
        self.stream.write_all(bytes).await.0.map(drop)
    }

    /// Reads until the buffer holds a whole head; returns its length.
    async fn read_head(&mut self) -> Result<usize, End> {
        let max = self.shared.config.max_head_bytes;
        let mut scanned = 0;
        let mut progress = parse::Progress::default();
        let limits = route::limits(&self.shared.config);
        loop {
            if let Some(end) = parse::find_head_end(&self.buf, scanned) {
                // Complete, even if the timer fired just after the last bytes came in.
                return Ok(end);
            }
            // Not complete yet: a head that is already wrong is refused now, not when its
            // end arrives (which it may never do).
            if let Err(e) = parse::check_partial(&self.buf, &limits, &mut progress) {
                return Err(self.refuse(e.status(), e.reason().into()));
            }
            if self.buf.len() >= max {
                return Err(if self.buf.contains(&b'\n') {
                    self.refuse(431, format!("request head over {max} bytes"))
                } else {
                    self.refuse(414, format!("request line over {max} bytes"))
                });
            }
            scanned = self.buf.len();
            let idle = self.buf.is_empty() && self.served > 0;
            match self.fill(max).await {
                // The first byte of a request on a kept-alive connection: from now on
                // its head is held to the handshake timeout, not the idle one (a head
                // trickled in a byte at a time would otherwise have the keep-alive
                // timeout, 60 s by default).
                Ok(n) if n > 0 && idle => {
                    self.port.deadline(self.shared.config.handshake_timeout);
                }
                Ok(0) if self.timed_out() => {
                    return Err(if self.served == 0 || !self.buf.is_empty() {
                        self.refuse(408, "request head not complete in time".into())
                    } else {
                        End::Quiet(CloseReason::Idle)
                    });
                }
                Ok(0) => return Err(End::Quiet(CloseReason::Peer)),
                Ok(_) => {}
                Err(e) => return Err(End::Quiet(read_failed(&e))),
            }
        }
    }

    /// Reads more bytes into the buffer, growing it up to `limit`; on TLS, reads records
    /// until one carries data. 0 is the end of the stream (on TLS also a close_notify).
    async fn fill(&mut self, limit: usize) -> std::io::Result<usize> {
        // A kept-alive connection waiting for its next request.
        let waiting = self.buf.is_empty() && self.raw.is_empty() && self.served > 0;
        if self.tls.is_none() {
            let buf = std::mem::take(&mut self.buf);
            let (res, buf) = self.read_into(buf, limit, waiting).await;
            self.buf = buf;
            return res;
        }
        self.fill_tls(waiting).await
    }

    /// Reads more bytes into `buf`, growing it up to `limit`.
    async fn read_into(
        &mut self,
        mut buf: Vec<u8>,
        limit: usize,
        waiting: bool,
    ) -> (std::io::Result<usize>, Vec<u8>) {
        let len = buf.len();
        if len == buf.capacity() {
            let target = (buf.capacity() * 2).clamp(INITIAL_BUF, limit.max(len + 1));
            buf.reserve_exact(target - len);
        }
        // A kept-alive connection waiting for its next request is listed while its
        // worker's flushes are long, and waits for readiness first: a pending read
        // would take the request out of the socket before the flush could see it. What
        // is there is then read at once, without another pass of the runtime. The
        // publisher of the wide fan-out itself is not listed: answering it sooner
        // only deepens the queues that make the flushes long.
        let fd = self.stream.as_raw_fd();
        let reading = match waiting && !self.heavy {
            true => self.port.reading(fd),
            false => None,
        };
        if reading.is_some() {
            if let Err(e) = self.stream.readable(false).await {
                return (Err(e), buf);
            }
            drop(reading);
            if let Some(n) = sys::recv_now(fd, &mut buf) {
                return (Ok(n), buf);
            }
        }
        let (res, slice) = self.stream.read(buf.slice_mut(len..)).await;
        (res, slice.into_inner())
    }

    fn timed_out(&self) -> bool {
        self.port.timed_out()
    }

    /// A subscribe, asked about when forward auth is on: narrowed, or refused.
    async fn forward_auth(&mut self, mut sub: Subscribe, who: Option<Box<Credentials>>) -> End {
        let settings = self.shared.config.forward_auth.clone();
        if let (Some(who), Some(settings)) = (who, settings) {
            if let Err(Refusal { status, why }) =
                forward::subscribe(&self.port, &settings, &who, &mut sub).await
            {
                return self.refuse(status, why);
            }
            // The answer may have taken long enough for a shutdown to begin.
            if self.shared.is_draining() {
                return self.refuse(503, "shutting down".into());
            }
        }
        End::Stream(Box::new(sub))
    }

    fn refuse(&self, status: u16, why: String) -> End {
        let reason = if status == 408 {
            CloseReason::HandshakeTimeout
        } else {
            CloseReason::Rejected
        };
        log::debug!(peer:% = self.peer, status = status, why:% = why; "request refused");
        let head = self.with_cors(response::refusal(status));
        let bytes = head.body(
            "text/plain; charset=utf-8",
            response::refusal_text(status, &why).as_bytes(),
        );
        End::Answer(bytes, reason)
    }

    /// Adds the CORS headers of an allowed cross-origin request, so a browser page can
    /// read our answer (refusals included).
    fn with_cors(&self, response: Response) -> Response {
        match (&self.cors, &self.shared.config.cors) {
            (Some(allowed), Some(cors)) => cors.apply(response, allowed),
            _ => response,
        }
    }

    /// Carries out the end: hand the stream over, or answer and close.
    async fn end(self, end: End) {
        match end {
            End::Stream(sub) => {
                self.port.stats().count_status(200);
                // What the client sent after its request, not yet opened, goes with the
                // keys (a subscriber may yet send an alert or a key update).
                let raw = self.raw;
                let tls = self.tls.map(|mut session| {
                    session.keep_unread(raw);
                    session
                });
                let pending = self.port.subscribe(self.stream.into_raw_fd(), &sub, tls);
                // Cluster mode, resuming from further back than this process's history:
                // the shared stream serves it while the connection collects live events.
                if let (Some(pending), Some(cluster)) = (pending, self.shared.cluster.clone()) {
                    let fetched = cluster
                        .fetch(pending.start, pending.upto, sub.topics.clone())
                        .await;
                    self.port.resume(&sub, &pending, fetched);
                }
            }
            End::Answer(bytes, reason) => {
                let status = std::str::from_utf8(&bytes[9..12])
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .unwrap_or(0);
                self.port.stats().count_status(status);
                self.answer_and_linger(bytes, reason).await;
            }
            End::Quiet(reason) => self.release(reason),
        }
    }

    async fn answer_and_linger(mut self, bytes: Vec<u8>, reason: CloseReason) {
        if self.answer(bytes).await.is_ok() {
            if let Some(session) = &mut self.tls {
                let mut alert = Vec::new();
                session.close_notify(&mut alert);
                sys::send_now(self.stream.as_raw_fd(), &alert);
            }
            sys::shutdown(self.stream.as_raw_fd(), sys::Shut::Write);
            self.port.deadline(LINGER);
            let mut discarded = 0;
            while discarded < LINGER_BYTES && !self.timed_out() {
                self.buf.clear();
                match self.fill(INITIAL_BUF * 4).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => discarded += n,
                }
            }
        }
        self.release(reason);
    }

    /// Frees the slab entry before the stream (and so the descriptor) is dropped, so the
    /// wheel can never act on a descriptor number reused by a newer connection.
    fn release(self, reason: CloseReason) {
        self.port.release(reason);
        drop(self.stream);
    }
}
