//! A subscriber over a raw socket, with an event-stream parser that follows the WHATWG
//! HTML rules ("Interpreting an event stream") to the letter, so tests check what a
//! conforming client sees, not what we meant to send. A chunked body is decoded strictly
//! (a framing error fails the test), so every test also checks the chunk framing.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::PATIENCE;

/// A dispatched event, as an `EventSource` would report it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// The `type` (`message` when no `event:` field).
    pub event: String,
    pub data: String,
    /// The last event id buffer at dispatch time.
    pub id: String,
}

/// Over a plain socket, or any other byte stream (a TLS client's, in tests/tls.rs).
pub struct Sse<S = TcpStream> {
    pub stream: S,
    /// Every byte received so far, head included, chunk framing and all.
    pub raw: Vec<u8>,
    /// Where the body starts in `raw`.
    body_start: usize,
    /// The body without its chunk framing (the event stream a client parses).
    decoded: Vec<u8>,
    /// Whether the response is `Transfer-Encoding: chunked`; None until the head is in.
    chunked: Option<bool>,
    /// How far the chunk decoder has consumed `raw`.
    unframed: usize,
    /// The last chunk (`0\r\n\r\n`) came: a planned close.
    pub ended: bool,
    /// How far the parser has consumed `decoded`.
    pos: usize,
    data: String,
    event_type: String,
    last_id: String,
    pub retry: Option<u64>,
    /// Comment lines seen (heartbeats).
    pub comments: usize,
    pub closed: bool,
    /// How the stream ended, when a read failed (over TLS, an end without close_notify
    /// is `UnexpectedEof`).
    pub error: Option<std::io::ErrorKind>,
}

impl Sse {
    /// Connects, sends `GET /events?<query>` with extra headers, and reads the head.
    pub fn open(addr: SocketAddr, query: &str, headers: &[(&str, &str)]) -> Sse {
        Sse::on(TcpStream::connect(addr).expect("connect"), query, headers)
    }

    /// The same over a socket the caller connected (e.g. with a small receive buffer).
    pub fn on(stream: TcpStream, query: &str, headers: &[(&str, &str)]) -> Sse {
        stream
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        Sse::over(stream, query, headers)
    }
}

impl<S: Read + Write> Sse<S> {
    /// Sends the request over `stream`, whose reads must time out (shortly) rather
    /// than block.
    pub fn over(stream: S, query: &str, headers: &[(&str, &str)]) -> Sse<S> {
        let mut req =
            format!("GET /events?{query} HTTP/1.1\r\nHost: test\r\nAccept: text/event-stream\r\n");
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        let mut sse = Sse {
            stream,
            raw: Vec::new(),
            body_start: 0,
            decoded: Vec::new(),
            chunked: None,
            unframed: 0,
            ended: false,
            pos: 0,
            data: String::new(),
            event_type: String::new(),
            last_id: String::new(),
            retry: None,
            comments: 0,
            closed: false,
            error: None,
        };
        sse.stream.write_all(req.as_bytes()).unwrap();
        sse.stream.flush().unwrap();
        sse
    }

    /// Reads until the response head is complete; returns it.
    pub fn head(&mut self) -> String {
        let deadline = Instant::now() + PATIENCE;
        while self.body_start == 0 {
            if let Some(i) = super::find(&self.raw, b"\r\n\r\n") {
                self.body_start = i + 4;
                self.unframed = self.body_start;
                let head = String::from_utf8_lossy(&self.raw[..i]).to_ascii_lowercase();
                self.chunked = Some(head.contains("\r\ntransfer-encoding: chunked"));
                self.unframe();
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no response head: {:?}",
                String::from_utf8_lossy(&self.raw)
            );
            assert!(
                self.read_some(),
                "closed before the head: {:?}",
                String::from_utf8_lossy(&self.raw)
            );
        }
        String::from_utf8_lossy(&self.raw[..self.body_start]).into_owned()
    }

    /// The status code of the response.
    pub fn status(&mut self) -> u16 {
        super::status_of(&self.head())
    }

    /// Body bytes received so far, without chunk framing.
    pub fn body(&mut self) -> &[u8] {
        self.head();
        &self.decoded
    }

    /// Body bytes received so far as they came on the wire (chunk framing included).
    pub fn wire_body(&mut self) -> &[u8] {
        self.head();
        &self.raw[self.body_start..]
    }

    /// Moves complete chunks from `raw` to `decoded`; fails the test on bad framing.
    fn unframe(&mut self) {
        let Some(chunked) = self.chunked else { return };
        if !chunked {
            self.decoded.extend_from_slice(&self.raw[self.unframed..]);
            self.unframed = self.raw.len();
            return;
        }
        loop {
            let rest = &self.raw[self.unframed..];
            let Some(eol) = super::find(rest, b"\r\n") else {
                return;
            };
            let size = std::str::from_utf8(&rest[..eol])
                .ok()
                .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_hexdigit()))
                .and_then(|s| usize::from_str_radix(s, 16).ok())
                .unwrap_or_else(|| {
                    panic!("bad chunk-size line: {:?}", String::from_utf8_lossy(rest))
                });
            assert!(
                !self.ended,
                "bytes after the last chunk: {:?}",
                String::from_utf8_lossy(rest)
            );
            if rest.len() < eol + 2 + size + 2 {
                return;
            }
            let data = &rest[eol + 2..eol + 2 + size];
            assert_eq!(
                &rest[eol + 2 + size..eol + 4 + size],
                b"\r\n",
                "a chunk must end in CRLF: {:?}",
                String::from_utf8_lossy(rest)
            );
            if size == 0 {
                self.ended = true;
            } else {
                self.decoded.extend_from_slice(data);
            }
            self.unframed += eol + 4 + size;
        }
    }

    /// Reads once (up to the short socket timeout); false on close.
    fn read_some(&mut self) -> bool {
        let mut chunk = [0u8; 16384];
        match self.stream.read(&mut chunk) {
            Ok(0) => {
                self.closed = true;
                false
            }
            Ok(n) => {
                self.raw.extend_from_slice(&chunk[..n]);
                self.unframe();
                true
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                true
            }
            Err(e) => {
                self.closed = true;
                self.error = Some(e.kind());
                false
            }
        }
    }

    /// The next dispatched event, or None if the stream closed or `limit` passed.
    pub fn next_within(&mut self, limit: Duration) -> Option<Event> {
        self.head();
        let deadline = Instant::now() + limit;
        loop {
            if let Some(ev) = self.parse_one() {
                return Some(ev);
            }
            if self.closed || Instant::now() >= deadline {
                return None;
            }
            self.read_some();
        }
    }

    /// The next event; fails the test if none arrives in time.
    pub fn next(&mut self) -> Event {
        self.next_within(PATIENCE).unwrap_or_else(|| {
            let body = &self.decoded;
            let tail = &body[body.len().saturating_sub(600)..];
            panic!(
                "no event (closed: {}); {} bytes so far, ending {:?}",
                self.closed,
                body.len(),
                String::from_utf8_lossy(tail)
            )
        })
    }

    /// Collects `n` events.
    pub fn take(&mut self, n: usize) -> Vec<Event> {
        (0..n).map(|_| self.next()).collect()
    }

    /// Reads until the server closes; returns the events dispatched on the way.
    pub fn until_closed(&mut self, limit: Duration) -> Vec<Event> {
        let mut events = Vec::new();
        let deadline = Instant::now() + limit;
        while !self.closed {
            assert!(Instant::now() < deadline, "server did not close the stream");
            if let Some(ev) = self.next_within(Duration::from_millis(100)) {
                events.push(ev);
            }
        }
        while let Some(ev) = self.parse_one() {
            events.push(ev);
        }
        events
    }

    /// Processes complete lines; returns at the first dispatch.
    fn parse_one(&mut self) -> Option<Event> {
        if self.pos == 0 && self.decoded.starts_with(b"\xEF\xBB\xBF") {
            self.pos += 3;
        }
        loop {
            let rest = &self.decoded[self.pos..];
            let end = rest.iter().position(|&b| b == b'\n' || b == b'\r')?;
            // A CR at the very end may be the first half of CRLF: wait for more.
            if rest[end] == b'\r' && end + 1 == rest.len() && !self.closed {
                return None;
            }
            let skip = if rest[end] == b'\r' && rest.get(end + 1) == Some(&b'\n') {
                2
            } else {
                1
            };
            let line = String::from_utf8_lossy(&rest[..end]).into_owned();
            self.pos += end + skip;
            if let Some(ev) = self.line(&line) {
                return Some(ev);
            }
        }
    }

    fn line(&mut self, line: &str) -> Option<Event> {
        if line.is_empty() {
            return self.dispatch();
        }
        if line.starts_with(':') {
            self.comments += 1;
            return None;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line, ""),
        };
        match field {
            "event" => self.event_type = value.to_string(),
            "data" => {
                self.data.push_str(value);
                self.data.push('\n');
            }
            "id" if !value.contains('\0') => self.last_id = value.to_string(),
            "retry" if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) => {
                self.retry = value.parse().ok();
            }
            _ => {}
        }
        None
    }

    fn dispatch(&mut self) -> Option<Event> {
        if self.data.is_empty() {
            self.event_type.clear();
            return None;
        }
        let mut data = std::mem::take(&mut self.data);
        data.pop();
        let event = match std::mem::take(&mut self.event_type) {
            t if t.is_empty() => "message".to_string(),
            t => t,
        };
        Some(Event {
            event,
            data,
            id: self.last_id.clone(),
        })
    }
}
