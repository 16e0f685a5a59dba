//! A small TLS SSE server for loadgen's https tests: rustls on std threads, one thread
//! per connection, and a certificate for `127.0.0.1` and `localhost` signed by a CA
//! made for the test. It speaks just enough of ringcast's HTTP for loadgen's checks:
//!
//! - `GET /events?topic=T`: `200`, then an SSE body until close (as ringcast sends it):
//!   `id: N\ndata: D\n\n`, N counting per topic from 1. With `Last-Event-ID: K`, the
//!   topic's events after K come first, so a resume has no gap.
//! - `POST /publish?topic=T` with the event data as the body, or `POST /publish` with
//!   NDJSON lines `{"topic":T,"data":D}`: `202` with `Content-Length`, keep-alive.
//!   Requests are read in order off one buffer, so pipelining works.
//! - `GET /healthz`: `200`; anything else: `404`.
//!
//! A subscriber more than [`QUEUE`] events behind is evicted: it gets what is queued,
//! then its connection closes.

#![allow(dead_code)] // each test binary uses part of it

use std::collections::{BTreeSet, HashMap};
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use rustls::{ServerConfig, ServerConnection, StreamOwned};

/// Events a subscriber may lag behind before it is evicted.
const QUEUE: usize = 256;
/// How often the accept loop looks at the stop flag.
const ACCEPT_POLL: Duration = Duration::from_millis(10);
/// A connection silent this long is dropped, so no thread outlives a test by much.
const IDLE_LIMIT: Duration = Duration::from_secs(30);

/// A CA made for one test, and its certificate as a PEM file for `--ca`.
pub struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pub pem_file: PathBuf,
}

impl Ca {
    pub fn new(name: &str) -> Ca {
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("loadgen test CA {name}"));
        let key = KeyPair::generate().expect("CA key");
        let cert = params.self_signed(&key).expect("CA certificate");
        let pem_file =
            std::env::temp_dir().join(format!("loadgen-test-{}-{name}-ca.pem", std::process::id()));
        std::fs::write(&pem_file, cert.pem()).expect("write the CA file");
        Ca {
            issuer: Issuer::new(params, key),
            pem_file,
        }
    }

    pub fn path(&self) -> &str {
        self.pem_file.to_str().expect("a UTF-8 temp path")
    }

    /// A server certificate for `127.0.0.1` (an IP name) and `localhost`.
    fn leaf(&self) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
        let names = vec!["127.0.0.1".to_owned(), "localhost".to_owned()];
        let params = CertificateParams::new(names).expect("leaf params");
        let key = KeyPair::generate().expect("leaf key");
        let cert = params
            .signed_by(&key, &self.issuer)
            .expect("leaf certificate");
        let key = PrivatePkcs8KeyDer::from(key.serialize_der());
        (cert.der().clone(), PrivateKeyDer::from(key))
    }
}

impl Drop for Ca {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.pem_file);
    }
}

/// The server, stopped on drop: no new connection, and every subscriber stream ends.
pub struct TlsServer {
    pub port: u16,
    stop: Arc<AtomicBool>,
    accept: Option<JoinHandle<()>>,
    hub: Arc<Hub>,
    /// The SNI of every handshake (`None`: the client sent none).
    sni: Arc<Mutex<BTreeSet<Option<String>>>>,
}

impl TlsServer {
    /// Listens on a free loopback port with a certificate signed by `ca`.
    pub fn start(ca: &Ca) -> TlsServer {
        let (cert, key) = ca.leaf();
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .with_no_client_auth()
            .with_single_cert(vec![cert], key)
            .expect("server certificate");
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let config = Arc::new(config);
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let port = listener.local_addr().expect("local address").port();
        let stop = Arc::new(AtomicBool::new(false));
        let hub = Arc::new(Hub::default());
        let sni = Arc::new(Mutex::new(BTreeSet::new()));
        let ctx = Ctx {
            config,
            hub: hub.clone(),
            sni: sni.clone(),
        };
        let flag = stop.clone();
        let accept = std::thread::spawn(move || accept_loop(&listener, &flag, &ctx));
        TlsServer {
            port,
            stop,
            accept: Some(accept),
            hub,
            sni,
        }
    }

    /// The base URL with the host as given (`127.0.0.1` or `localhost`).
    pub fn url(&self, host: &str) -> String {
        format!("https://{host}:{}", self.port)
    }

    /// The SNI values the server has seen so far.
    pub fn sni_seen(&self) -> BTreeSet<Option<String>> {
        self.sni.lock().expect("sni lock").clone()
    }
}

impl Drop for TlsServer {
    fn drop(&mut self) {
        self.stop.store(true, Relaxed);
        if let Some(h) = self.accept.take() {
            let _ = h.join();
        }
        self.hub.close_all();
    }
}

/// What every connection thread shares.
#[derive(Clone)]
struct Ctx {
    config: Arc<ServerConfig>,
    hub: Arc<Hub>,
    sni: Arc<Mutex<BTreeSet<Option<String>>>>,
}

fn accept_loop(listener: &TcpListener, stop: &AtomicBool, ctx: &Ctx) {
    while !stop.load(Relaxed) {
        match listener.accept() {
            Ok((tcp, _)) => {
                let ctx = ctx.clone();
                std::thread::spawn(move || {
                    let _ = serve(tcp, &ctx);
                });
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => std::thread::sleep(ACCEPT_POLL),
            Err(_) => std::thread::sleep(ACCEPT_POLL),
        }
    }
}

type Tls = StreamOwned<ServerConnection, TcpStream>;

/// One connection: requests in order until it closes, or becomes an event stream.
fn serve(tcp: TcpStream, ctx: &Ctx) -> io::Result<()> {
    tcp.set_nonblocking(false)?;
    tcp.set_nodelay(true)?;
    tcp.set_read_timeout(Some(IDLE_LIMIT))?;
    let session = ServerConnection::new(ctx.config.clone()).map_err(io::Error::other)?;
    let mut tls = StreamOwned::new(session, tcp);
    let mut buf = Vec::new();
    loop {
        let Some(req) = next_request(&mut tls, &mut buf)? else {
            return Ok(());
        };
        let sni = tls.conn.server_name().map(str::to_owned);
        ctx.sni.lock().expect("sni lock").insert(sni);
        match (req.method.as_str(), req.path.as_str()) {
            ("GET", "/events") => return stream_events(tls, &ctx.hub, &req),
            ("POST", "/publish") => {
                publish(&ctx.hub, &req);
                tls.write_all(b"HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\n{}")?;
            }
            ("GET", "/healthz") => {
                tls.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n")?
            }
            _ => tls.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")?,
        }
        tls.flush()?;
    }
}

/// The parts of a request this server acts on.
struct Request {
    method: String,
    path: String,
    topic: Option<String>,
    last_event_id: Option<u64>,
    body: Vec<u8>,
}

/// Reads the next request off `buf` (refilled from `tls`); `None` at a clean end.
fn next_request(tls: &mut Tls, buf: &mut Vec<u8>) -> io::Result<Option<Request>> {
    let head_len = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if !fill(tls, buf)? {
            return Ok(None);
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_len]).into_owned();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or("").split(' ');
    let method = first.next().unwrap_or("").to_owned();
    let target = first.next().unwrap_or("");
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let topic = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("topic="))
        .map(str::to_owned);
    let header = |name: &str| {
        head.split("\r\n").find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    };
    let length: usize = header("content-length").map_or(0, |v| v.parse().unwrap_or(0));
    let last_event_id = header("last-event-id").and_then(|v| v.parse().ok());
    while buf.len() < head_len + length {
        if !fill(tls, buf)? {
            return Ok(None);
        }
    }
    let body = buf[head_len..head_len + length].to_vec();
    buf.drain(..head_len + length);
    Ok(Some(Request {
        method,
        path: path.to_owned(),
        topic,
        last_event_id,
        body,
    }))
}

/// Appends one read; false at the end of the stream.
fn fill(tls: &mut Tls, buf: &mut Vec<u8>) -> io::Result<bool> {
    let mut chunk = [0u8; 16 << 10];
    match tls.read(&mut chunk) {
        Ok(0) => Ok(false),
        Ok(n) => {
            buf.extend_from_slice(&chunk[..n]);
            Ok(true)
        }
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(false),
        Err(e) => Err(e),
    }
}

/// Publishes the single event (`?topic=`) or every NDJSON line of the body.
fn publish(hub: &Hub, req: &Request) {
    if let Some(topic) = &req.topic {
        hub.publish(topic, &req.body);
        return;
    }
    for line in req.body.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let v: serde_json::Value = serde_json::from_slice(line).expect("an NDJSON line");
        let (Some(topic), Some(data)) = (v["topic"].as_str(), v["data"].as_str()) else {
            panic!("NDJSON line without topic or data: {v}");
        };
        hub.publish(topic, data.as_bytes());
    }
}

/// The SSE response: the head, the backlog after `Last-Event-ID`, then each event as
/// it is published, until the client goes or the subscriber is evicted.
fn stream_events(mut tls: Tls, hub: &Hub, req: &Request) -> io::Result<()> {
    let head =
        "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\r\n";
    tls.write_all(head.as_bytes())?;
    tls.flush()?;
    let topic = req.topic.clone().unwrap_or_default();
    let (backlog, rx) = hub.subscribe(&topic, req.last_event_id.unwrap_or(0));
    for frame in backlog {
        tls.write_all(&frame)?;
    }
    tls.flush()?;
    for frame in rx {
        tls.write_all(&frame)?;
        tls.flush()?;
    }
    tls.conn.send_close_notify();
    let _ = tls.flush();
    let _ = tls.sock.shutdown(Shutdown::Both);
    Ok(())
}

/// The topics: each one's history (frame k is event k + 1) and its subscribers.
#[derive(Default)]
struct Hub {
    topics: Mutex<HashMap<String, Topic>>,
}

/// One event's bytes on the wire, shared by every subscriber it goes to.
type Frame = Arc<[u8]>;

#[derive(Default)]
struct Topic {
    history: Vec<Frame>,
    subscribers: Vec<SyncSender<Frame>>,
}

impl Hub {
    fn publish(&self, topic: &str, data: &[u8]) {
        let mut topics = self.topics.lock().expect("hub lock");
        let t = topics.entry(topic.to_owned()).or_default();
        let id = t.history.len() + 1;
        let mut frame = format!("id: {id}\ndata: ").into_bytes();
        frame.extend_from_slice(data);
        frame.extend_from_slice(b"\n\n");
        let frame: Frame = frame.into();
        t.history.push(frame.clone());
        // A full queue evicts; a gone subscriber is forgotten.
        t.subscribers.retain(|s| match s.try_send(frame.clone()) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => false,
        });
    }

    /// The events after `last_id`, and the queue of those to come; atomic with
    /// publishing, so nothing falls between them.
    fn subscribe(&self, topic: &str, last_id: u64) -> (Vec<Frame>, Receiver<Frame>) {
        let mut topics = self.topics.lock().expect("hub lock");
        let t = topics.entry(topic.to_owned()).or_default();
        let from = (last_id as usize).min(t.history.len());
        let (tx, rx) = mpsc::sync_channel(QUEUE);
        t.subscribers.push(tx);
        (t.history[from..].to_vec(), rx)
    }

    /// Ends every event stream.
    fn close_all(&self) {
        self.topics.lock().expect("hub lock").clear();
    }
}
