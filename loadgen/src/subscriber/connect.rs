//! Opening a subscriber connection: a non-blocking socket bound to its source address,
//! connect, the TLS handshake (https), the GET request (with Last-Event-ID when
//! resuming), and the response head, all within the connect timeout. Any outcome but
//! `200` is a failure kind.

use std::os::fd::AsRawFd;
use std::time::Duration;

use monoio::net::TcpStream;

use crate::plan::Plan;
use crate::response::{self, Body};
use crate::stats::io_kind;
use crate::sys;
use crate::tls::Stream;
use crate::worker::Worker;
use crate::Status;

/// Bytes read per call while waiting for the response head.
const HEAD_READ: usize = 4096;

/// An established stream, with the body bytes that came with the head.
pub struct Conn {
    pub stream: Stream,
    pub body: Body,
    /// Raw body bytes read along with the head (still chunk-framed if chunked).
    pub pending: Vec<u8>,
}

/// Connects subscriber `i` of the worker; `Err` is the failure kind.
pub async fn open(w: &Worker, i: usize) -> Result<Conn, String> {
    let plan = &w.plan;
    let global = w.first as usize + i;
    let (request, slow) = {
        let subs = w.subs.borrow();
        let s = &subs[i];
        (request(w, s.topic, &s.last_id), s.slow)
    };
    let src = (!plan.src_ips.is_empty()).then(|| plan.src_ips[global % plan.src_ips.len()]);
    let rcvbuf = plan.slow.as_ref().filter(|_| slow).map(|s| s.rcvbuf);
    let (sock, in_progress) =
        sys::start_connect(src, plan.subscribe.addr, rcvbuf).map_err(|e| io_kind(&e))?;
    let tcp = TcpStream::from_std(sock.into()).map_err(|e| io_kind(&e))?;
    let limit = Duration::from_millis(plan.connect_timeout_ms);
    let (stream, head, pending) =
        match monoio::time::timeout(limit, handshake(w, tcp, in_progress, &request)).await {
            Err(_) => return Err("timeout".into()),
            Ok(r) => r?,
        };
    if head.status != 200 {
        return Err(format!("http_{}", head.status));
    }
    Ok(Conn {
        stream,
        body: head.body,
        pending,
    })
}

/// The subscribe request. Built per connect (not per event), so a fresh Vec is fine.
fn request(w: &Worker, topic: u32, last_id: &[u8]) -> Vec<u8> {
    subscribe_request(&w.plan, w.plan.topic_name(topic).as_bytes(), last_id)
}

/// The GET of the subscribe template for `topic`, with the plan's extra headers and,
/// when resuming, `Last-Event-ID`. The admission prober sends the same request.
pub fn subscribe_request(plan: &Plan, topic: &[u8], last_id: &[u8]) -> Vec<u8> {
    let mut r = Vec::with_capacity(256);
    r.extend_from_slice(b"GET ");
    plan.subscribe.path.expand(topic, b"", &mut r);
    r.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    r.extend_from_slice(plan.subscribe.host.as_bytes());
    r.extend_from_slice(b"\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n");
    if !last_id.is_empty() {
        r.extend_from_slice(b"Last-Event-ID: ");
        r.extend_from_slice(last_id);
        r.extend_from_slice(b"\r\n");
    }
    for h in &plan.sub_headers {
        r.extend_from_slice(h.as_bytes());
        r.extend_from_slice(b"\r\n");
    }
    r.extend_from_slice(b"\r\n");
    r
}

/// Finishes the connect and the TLS handshake (https), sends the request, reads the
/// response head.
async fn handshake(
    w: &Worker,
    tcp: TcpStream,
    in_progress: bool,
    request: &[u8],
) -> Result<(Stream, response::Head, Vec<u8>), String> {
    if in_progress {
        tcp.writable(false).await.map_err(|e| io_kind(&e))?;
        if let Some(e) = sys::socket_error(tcp.as_raw_fd()) {
            return Err(io_kind(&e));
        }
    }
    let mut stream = Stream::open(tcp, w.tls.as_ref())
        .await
        .map_err(|e| io_kind(&e))?;
    w.note_tls(&stream);
    stream.send_all(request).await.map_err(|e| io_kind(&e))?;
    let mut head = Vec::with_capacity(512);
    loop {
        stream.readable().await.map_err(|e| io_kind(&e))?;
        match recv_append(w, &mut stream, &mut head) {
            Ok(0) => return Err("closed".into()),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(io_kind(&e)),
        }
        match response::parse_head(&head) {
            Ok(Status::Complete(h)) => {
                let pending = head.split_off(h.len);
                return Ok((stream, h, pending));
            }
            Ok(Status::Partial) => {}
            Err(_) => return Err("bad_response".into()),
        }
    }
}

/// Reads through the thread's shared buffer and appends to `out`.
fn recv_append(w: &Worker, stream: &mut Stream, out: &mut Vec<u8>) -> std::io::Result<usize> {
    let mut buf = w.buf.borrow_mut();
    if buf.len() < HEAD_READ {
        buf.resize(HEAD_READ, 0);
    }
    let n = stream.recv_nowait(&mut buf[..HEAD_READ])?;
    out.extend_from_slice(&buf[..n]);
    Ok(n)
}
