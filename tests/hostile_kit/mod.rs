//! Tools for the hostile-input tests: a strict reader of HTTP/1.1 responses, refusal
//! checks that also prove nothing was published, sockets bound to other loopback source
//! addresses, and a minimal epoll loop for holding thousands of connections at once.
#![allow(dead_code)]

use std::io::Read;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpStream};
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use crate::common::{self, header, status_of, Server, Sse};

/// Events published so far, summed over the workers.
pub fn published(server: &Server) -> u64 {
    server.metric("ringcast_events_published_total")
}

/// A subscriber on `topic` whose response head has arrived. The server joins the topic
/// before it queues the head (`Worker::start_stream`), and the sequence makes the seam
/// gapless, so any publish made after this returns reaches it.
pub fn watch(server: &Server, topic: &str) -> Sse {
    let mut sub = server.subscribe(&format!("topic={topic}"));
    assert_eq!(sub.status(), 200);
    sub
}

/// Fails if `sub` receives any event within `quiet`.
pub fn assert_silent(sub: &mut Sse, quiet: Duration, what: &str) {
    if let Some(ev) = sub.next_within(quiet) {
        panic!("{what}: an event was delivered that must not exist: {ev:?}");
    }
}

/// Sends `request` on a fresh connection and checks the answer: `status`, then the
/// connection closed by the server, and a well-framed short body. Returns the raw answer.
pub fn refused(server: &Server, request: &[u8], status: u16) -> String {
    let raw = common::exchange(server.addr, request);
    let shown = shorten(request);
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("request {shown:?}: no response head in {raw:?}"));
    assert_eq!(status_of(head), status, "request {shown:?} got {raw:?}");
    assert_eq!(
        header(head, "connection"),
        Some("close"),
        "request {shown:?}: {raw:?}"
    );
    let len: usize = header(head, "content-length")
        .unwrap_or_else(|| panic!("no Content-Length in {raw:?}"))
        .parse()
        .unwrap();
    assert_eq!(
        len,
        body.len(),
        "request {shown:?}: one answer only: {raw:?}"
    );
    raw
}

/// A request as text for a failure message, its middle elided when it is long.
pub fn shorten(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    if text.chars().count() <= 300 {
        return text.into_owned();
    }
    let head: String = text.chars().take(200).collect();
    let tail: String = text
        .chars()
        .rev()
        .take(80)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("{head}…({} bytes)…{tail}", bytes.len())
}

/// One parsed response.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
}

impl Response {
    pub fn is_event_stream(&self) -> bool {
        self.status == 200
            && header(&self.head, "content-type").is_some_and(|v| v == "text/event-stream")
            && header(&self.head, "content-length").is_none()
    }
}

/// What [`parse_responses`] found.
#[derive(Debug, Default)]
pub struct Parsed {
    pub responses: Vec<Response>,
    /// Bytes after the last complete response (a partial one, or an event stream's body).
    pub rest: usize,
    /// The last response is an event stream: everything after its head is its body.
    pub streaming: bool,
}

/// Reads `bytes` as a sequence of HTTP/1.1 responses, strictly: a status line
/// `HTTP/1.1 NNN Reason`, field lines `token: value` (visible ASCII, SP, HTAB), CRLF line
/// ends, then a body of exactly Content-Length bytes. A final response without
/// Content-Length must be a 1xx/204/304 (no body) or a `200 text/event-stream` (body up to
/// the close). `bodiless` accepts a Content-Length response with no body after it (the
/// answer to a HEAD). Incomplete input is not an error: `rest` says how much is left.
pub fn parse_responses(bytes: &[u8], bodiless: bool) -> Result<Parsed, String> {
    let mut parsed = Parsed::default();
    let mut at = 0;
    while at < bytes.len() {
        let Some(len) = common::find(&bytes[at..], b"\r\n\r\n") else {
            check_partial_head(&bytes[at..])?;
            break;
        };
        let head = &bytes[at..at + len + 4];
        let (status, length) = check_head(head)?;
        let head_text = String::from_utf8_lossy(head).into_owned();
        let body_start = at + head.len();
        let mut response = Response {
            status,
            head: head_text,
            body: Vec::new(),
        };
        match length {
            Some(n) => {
                let body_end = body_start + n;
                let next_is_response =
                    bytes[body_start..].starts_with(b"HTTP/1.1 ") || body_start == bytes.len();
                if bodiless && n > 0 && next_is_response {
                    at = body_start;
                } else if body_end <= bytes.len() {
                    response.body = bytes[body_start..body_end].to_vec();
                    at = body_end;
                } else {
                    break;
                }
            }
            None if response.is_event_stream() => {
                parsed.responses.push(response);
                parsed.streaming = true;
                at = body_start;
                break;
            }
            None if status < 200 || status == 204 || status == 304 => at = body_start,
            None => return Err(format!("a {status} response without Content-Length")),
        }
        parsed.responses.push(response);
    }
    parsed.rest = bytes.len() - at;
    Ok(parsed)
}

/// Checks a complete head; returns its status and Content-Length.
fn check_head(head: &[u8]) -> Result<(u16, Option<usize>), String> {
    let shown = || String::from_utf8_lossy(head).into_owned();
    let text = std::str::from_utf8(head).map_err(|_| format!("non-UTF-8 head {:?}", shown()))?;
    let mut lines = text[..text.len() - 4].split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = check_status_line(status_line)
        .ok_or_else(|| format!("bad status line in {:?}", shown()))?;
    let mut length = None;
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| format!("field line without a colon in {:?}", shown()))?;
        let name_ok = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        let value_ok = value
            .bytes()
            .all(|b| b == b'\t' || (b' '..=b'~').contains(&b));
        if !name_ok || !value_ok {
            return Err(format!("bad field line {line:?} in {:?}", shown()));
        }
        if name.eq_ignore_ascii_case("content-length") {
            if length.is_some() {
                return Err(format!("two Content-Length fields in {:?}", shown()));
            }
            let v = value.trim();
            if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("bad Content-Length in {:?}", shown()));
            }
            length = Some(
                v.parse()
                    .map_err(|_| format!("huge Content-Length in {:?}", shown()))?,
            );
        }
    }
    if (status < 200 || status == 204 || status == 304) && length.is_some_and(|n| n > 0) {
        return Err(format!("a {status} with a body in {:?}", shown()));
    }
    Ok((status, length))
}

/// `HTTP/1.1 NNN Reason`, with a non-empty reason of visible ASCII and spaces.
fn check_status_line(line: &str) -> Option<u16> {
    let rest = line.strip_prefix("HTTP/1.1 ")?;
    let (code, reason) = rest.split_at_checked(3)?;
    let reason = reason.strip_prefix(' ')?;
    let code_ok = code.bytes().all(|b| b.is_ascii_digit()) && code.as_bytes()[0] != b'0';
    let reason_ok = !reason.is_empty() && reason.bytes().all(|b| (b' '..=b'~').contains(&b));
    (code_ok && reason_ok).then(|| code.parse().unwrap())
}

/// The start of a head that has not ended yet must already look like one.
fn check_partial_head(bytes: &[u8]) -> Result<(), String> {
    let prefix = b"HTTP/1.1 ";
    let n = bytes.len().min(prefix.len());
    if bytes[..n] != prefix[..n] {
        return Err(format!(
            "bytes that are not a response: {:?}",
            String::from_utf8_lossy(bytes)
        ));
    }
    Ok(())
}

/// Reads until EOF or reset, failing the test if `limit` passes first. Returns the bytes
/// and whether the end was a reset.
pub fn read_until_close(stream: &mut TcpStream, limit: Duration) -> (Vec<u8>, bool) {
    let deadline = Instant::now() + limit;
    let mut out = Vec::new();
    let mut chunk = [0u8; 16384];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "the server did not close within {limit:?}; got {:?}",
            String::from_utf8_lossy(&out)
        );
        stream.set_read_timeout(Some(left)).unwrap();
        match stream.read(&mut chunk) {
            Ok(0) => return (out, false),
            Ok(n) => out.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return (out, true),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("read failed: {e}"),
        }
    }
}

/// A loopback source address for the `i`-th of many connections: 127.0.0.2 to 127.0.0.9,
/// so that tens of thousands of connections do not run out of ephemeral ports.
pub fn source_for(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 0, 2 + (i % 8) as u8)
}

/// A blocking connection from `source` (port chosen at connect time) to `to`.
pub fn connect_from(source: Ipv4Addr, to: SocketAddr) -> std::io::Result<TcpStream> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    let on: libc::c_int = 1;
    // SAFETY: setsockopt on a socket we own, with a pointer to a live c_int and its size.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    socket.bind(&SocketAddr::V4(SocketAddrV4::new(source, 0)).into())?;
    socket.connect_timeout(&to.into(), common::PATIENCE)?;
    socket.set_nodelay(true)?;
    Ok(socket.into())
}

/// A level-triggered epoll set over many sockets, each named by a `u64`.
pub struct Epoll {
    fd: RawFd,
    events: Vec<libc::epoll_event>,
}

impl Epoll {
    pub fn new() -> Epoll {
        // SAFETY: plain system call without pointers.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        assert!(
            fd >= 0,
            "epoll_create1: {}",
            std::io::Error::last_os_error()
        );
        Epoll {
            fd,
            events: vec![libc::epoll_event { events: 0, u64: 0 }; 1024],
        }
    }

    /// Watches `fd` for input and hang-ups.
    pub fn add(&self, fd: RawFd, id: u64) {
        let mut ev = libc::epoll_event {
            events: (libc::EPOLLIN | libc::EPOLLRDHUP) as u32,
            u64: id,
        };
        // SAFETY: both descriptors are open; `ev` lives across the call.
        let rc = unsafe { libc::epoll_ctl(self.fd, libc::EPOLL_CTL_ADD, fd, &mut ev) };
        assert_eq!(rc, 0, "epoll_ctl: {}", std::io::Error::last_os_error());
    }

    pub fn remove(&self, fd: RawFd) {
        // SAFETY: a null event is allowed for EPOLL_CTL_DEL since Linux 2.6.9.
        unsafe { libc::epoll_ctl(self.fd, libc::EPOLL_CTL_DEL, fd, std::ptr::null_mut()) };
    }

    /// The ids of sockets with something to read (or closed), waiting up to `timeout`.
    pub fn wait(&mut self, timeout: Duration) -> Vec<u64> {
        // SAFETY: the buffer holds `len` events and outlives the call.
        let n = unsafe {
            libc::epoll_wait(
                self.fd,
                self.events.as_mut_ptr(),
                self.events.len() as libc::c_int,
                timeout.as_millis() as libc::c_int,
            )
        };
        if n < 0 {
            return Vec::new(); // EINTR
        }
        self.events[..n as usize].iter().map(|e| e.u64).collect()
    }
}

impl Drop for Epoll {
    fn drop(&mut self) {
        // SAFETY: our own descriptor, closed once.
        unsafe { libc::close(self.fd) };
    }
}

/// The server's resident memory in KiB, from /proc.
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// A publish round trip while the server is under attack: a fresh subscriber, a publish,
/// and the event delivered; returns how long it took.
pub fn round_trip(server: &Server, topic: &str, data: &str) -> Duration {
    let started = Instant::now();
    let mut sub = watch(server, topic);
    let (status, body) = server.publish(&format!("topic={topic}"), data.as_bytes());
    assert_eq!(status, 202, "{body}");
    let ev = sub.next();
    assert_eq!(ev.data, data);
    assert_eq!(ev.id, common::id_of(&body).to_string());
    started.elapsed()
}
