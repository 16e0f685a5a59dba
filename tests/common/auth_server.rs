//! An HTTP auth server for forward-auth tests: a std::net server on a loopback port
//! that records every request, counts its connections and requests in flight, and
//! answers by a rule each test scripts.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A request the auth server received.
#[derive(Clone, Debug)]
pub struct Seen {
    pub target: String,
    /// Names lowercased, in the order sent.
    pub headers: Vec<(String, String)>,
}

impl Seen {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// How the auth server answers one request.
pub struct Reply {
    pub status: u16,
    pub body: String,
    /// Waits this long before answering.
    pub delay: Duration,
}

pub fn reply(status: u16) -> Reply {
    Reply {
        status,
        body: String::new(),
        delay: Duration::ZERO,
    }
}

pub fn json_reply(body: serde_json::Value) -> Reply {
    Reply {
        status: 200,
        body: body.to_string(),
        delay: Duration::ZERO,
    }
}

pub type Rule = dyn Fn(&Seen) -> Reply + Send + Sync;

#[derive(Default)]
pub struct Record {
    pub seen: Mutex<Vec<Seen>>,
    /// Connections accepted, in all.
    pub accepted: AtomicUsize,
    /// Requests being answered now, and the most there ever were.
    pub in_flight: AtomicUsize,
    pub max_in_flight: AtomicUsize,
    /// Connections open now, and the most there ever were.
    pub open: AtomicUsize,
    pub max_open: AtomicUsize,
}

/// The auth server: a thread that accepts, and a thread per connection (keep-alive).
pub struct AuthServer {
    pub addr: SocketAddr,
    pub record: Arc<Record>,
}

impl AuthServer {
    pub fn start(rule: impl Fn(&Seen) -> Reply + Send + Sync + 'static) -> AuthServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let record = Arc::new(Record::default());
        let rule: Arc<Rule> = Arc::new(rule);
        let r = record.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(stream) = stream else { return };
                r.accepted.fetch_add(1, Ordering::SeqCst);
                let now = r.open.fetch_add(1, Ordering::SeqCst) + 1;
                r.max_open.fetch_max(now, Ordering::SeqCst);
                let (r, rule) = (r.clone(), rule.clone());
                std::thread::spawn(move || {
                    serve(stream, &r, &*rule);
                    r.open.fetch_sub(1, Ordering::SeqCst);
                });
            }
        });
        AuthServer { addr, record }
    }

    pub fn url(&self) -> String {
        format!("http://{}/check", self.addr)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.record.seen.lock().unwrap().clone()
    }

    pub fn asked(&self) -> usize {
        self.record.seen.lock().unwrap().len()
    }
}

pub fn serve(mut stream: TcpStream, r: &Record, rule: &Rule) {
    let mut buf = Vec::new();
    loop {
        let end = loop {
            if let Some(i) = super::find(&buf, b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 4096];
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..end - 4]).into_owned();
        buf.drain(..end);
        let mut lines = head.split("\r\n");
        let line = lines.next().unwrap_or_default();
        let target = line.split(' ').nth(1).unwrap_or_default().to_string();
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        let seen = Seen { target, headers };
        r.seen.lock().unwrap().push(seen.clone());
        let now = r.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
        r.max_in_flight.fetch_max(now, Ordering::SeqCst);
        let answer = rule(&seen);
        std::thread::sleep(answer.delay);
        r.in_flight.fetch_sub(1, Ordering::SeqCst);
        let bytes = format!(
            "HTTP/1.1 {} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{}",
            answer.status,
            answer.body.len(),
            answer.body
        );
        if stream.write_all(bytes.as_bytes()).is_err() {
            return;
        }
    }
}
