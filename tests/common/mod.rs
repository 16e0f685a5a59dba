//! What every integration test needs: a real `ringcast` process on a loopback port
//! chosen by the kernel, raw HTTP over `std::net`, and a spec-following SSE reader.
#![allow(dead_code)]

pub mod auth_server;
pub mod clients;
pub mod redis;
pub mod sse;
pub mod tls;
pub mod transport;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[allow(unused_imports)]
pub use sse::{Event, Sse};

/// How long any single wait in a test may take before it fails (generous: the machine
/// is shared and slow; tests assert outcomes, not speed).
pub const PATIENCE: Duration = Duration::from_secs(20);

/// A server process, killed when dropped.
pub struct Server {
    child: Child,
    pub addr: SocketAddr,
    log: Arc<Mutex<String>>,
}

impl Server {
    /// Starts `ringcast --listen 127.0.0.1:0 <args>` and waits for its start-up line.
    pub fn start(args: &[&str]) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_ringcast"))
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ringcast");
        let stderr = child.stderr.take().expect("stderr piped");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let sink = log.clone();
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                // Store the line before announcing the address, so a test that starts
                // right away finds the start-up line in the log.
                {
                    let mut log = sink.lock().unwrap();
                    log.push_str(&line);
                    log.push('\n');
                }
                if let Some(addr) = line
                    .split_whitespace()
                    .find_map(|f| f.strip_prefix("listen="))
                {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(addr.parse::<SocketAddr>().expect("listen= address"));
                    }
                }
            }
        });
        let addr = rx.recv_timeout(PATIENCE).unwrap_or_else(|_| {
            let _ = child.kill();
            panic!("ringcast did not start: {}", log.lock().unwrap())
        });
        Server { child, addr, log }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill on the pid of a child we started and have not reaped.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// Stops the process (SIGSTOP) and waits until the kernel reports it stopped, so
    /// nothing of it runs after this returns.
    pub fn pause(&self) {
        self.signal(libc::SIGSTOP);
        let stat = format!("/proc/{}/stat", self.child.id());
        eventually("the process to stop", || {
            std::fs::read_to_string(&stat)
                .ok()
                .and_then(|s| s.rsplit_once(") ").map(|(_, rest)| rest.starts_with('T')))
                .unwrap_or(false)
        });
    }

    /// Waits for the process to exit, up to `limit`.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    pub fn subscribe(&self, query: &str) -> Sse {
        Sse::open(self.addr, query, &[])
    }

    /// Publishes `body` to `/publish?<query>`; returns the status and the body.
    pub fn publish(&self, query: &str, body: &[u8]) -> (u16, String) {
        let mut c = Client::connect(self.addr);
        c.publish(query, body, &[])
    }

    /// The value of a metric (summed over its label sets, or one exact label set).
    pub fn metric(&self, name: &str) -> u64 {
        metric_at(self.addr, name)
    }
}

/// The value of a metric at the plaintext `addr` (summed over its label sets, or one
/// exact label set).
pub fn metric_at(addr: SocketAddr, name: &str) -> u64 {
    let (status, text) = get(addr, "/metrics");
    assert_eq!(status, 200);
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter(|(k, _)| {
            *k == name
                || k.strip_prefix(name)
                    .is_some_and(|rest| rest.starts_with('{'))
        })
        .map(|(_, v)| v.parse::<f64>().unwrap_or(0.0) as u64)
        .sum()
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A keep-alive HTTP/1.1 client connection.
pub struct Client {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        stream.set_nodelay(true).unwrap();
        Client {
            stream,
            buf: Vec::new(),
        }
    }

    pub fn publish(&mut self, query: &str, body: &[u8], headers: &[(&str, &str)]) -> (u16, String) {
        let mut req = format!(
            "POST /publish?{query} HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        let mut bytes = req.into_bytes();
        bytes.extend_from_slice(body);
        self.stream.write_all(&bytes).unwrap();
        self.response()
    }

    /// Reads one response with a Content-Length body.
    pub fn response(&mut self) -> (u16, String) {
        let head_end = loop {
            if let Some(i) = find(&self.buf, b"\r\n\r\n") {
                break i + 4;
            }
            self.fill();
        };
        let head = String::from_utf8_lossy(&self.buf[..head_end]).into_owned();
        let status = status_of(&head);
        let len: usize = header(&head, "content-length").map_or(0, |v| v.parse().unwrap());
        while self.buf.len() < head_end + len {
            self.fill();
        }
        let body = String::from_utf8_lossy(&self.buf[head_end..head_end + len]).into_owned();
        self.buf.drain(..head_end + len);
        (status, body)
    }

    fn fill(&mut self) {
        let mut chunk = [0u8; 8192];
        let n = self.stream.read(&mut chunk).expect("read response");
        assert!(
            n > 0,
            "connection closed mid-response; got {:?}",
            String::from_utf8_lossy(&self.buf)
        );
        self.buf.extend_from_slice(&chunk[..n]);
    }
}

/// Sends raw bytes on a fresh connection and reads everything until the server closes.
pub fn exchange(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s.write_all(request).unwrap();
    read_to_close(&mut s)
}

/// Reads until EOF (or a reset after the answer was read); panics on a timeout, which
/// would mean the server left the connection hanging.
pub fn read_to_close(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!(
                "no close from the server ({e}); got {:?}",
                String::from_utf8_lossy(&out)
            ),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// GET on a fresh connection that asks to be closed; returns status and body.
pub fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let raw = exchange(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    (status_of(head), body.to_string())
}

pub fn status_of(head: &str) -> u16 {
    head.split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"))
}

pub fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Publishes twelve events `e0`..`e11` spread over topics a, b and c (every fourth on a
/// and c at once), then one on another topic; returns the twelve ids.
pub fn publish_over_three_topics(addr: SocketAddr) -> Vec<u64> {
    let mut c = Client::connect(addr);
    let mut issued = Vec::new();
    for i in 0..12 {
        let query = match i % 4 {
            0 => "topic=a",
            1 => "topic=b",
            2 => "topic=c",
            _ => "topic=a&topic=c",
        };
        issued.push(id_of(&c.publish(query, format!("e{i}").as_bytes(), &[]).1));
    }
    c.publish("topic=other", b"not ours", &[]);
    issued
}

/// The id from a publish answer `{"id":"123"}`.
pub fn id_of(body: &str) -> u64 {
    body.trim_start_matches("{\"id\":\"")
        .trim_end_matches("\"}")
        .parse()
        .unwrap_or_else(|_| panic!("no id in {body:?}"))
}

/// One read into `into`, on a stream whose reads time out: `Some(n)` bytes read (0 at
/// the end of the stream), `None` when the read timed out first.
pub fn read_once(stream: &mut impl Read, into: &mut Vec<u8>) -> std::io::Result<Option<usize>> {
    let mut buf = [0u8; 4096];
    match stream.read(&mut buf) {
        Ok(n) => {
            into.extend_from_slice(&buf[..n]);
            Ok(Some(n))
        }
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Polls `f` until it returns true or PATIENCE runs out.
pub fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + PATIENCE;
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("timed out waiting for {what}");
}
