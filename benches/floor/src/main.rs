//! `floor`: the least an SSE fan-out server can do. A reference, not a product.
//!
//! The kernel sets the floor for fan-out: every delivery is one TCP send. This
//! server does little else, so BENCHMARKS.md can show ringcast's overhead over the
//! kernel's own cost:
//!
//! ```text
//!  POST /publish?topic=T (keep-alive) ─► id + "id: <n>\ndata: <body>\n\n" as one chunk, built once as Bytes
//!        ─► pushed to the inbox of each worker that holds a subscriber of T, one wake each
//!        ─► that worker: one write_all of that Bytes per subscriber of T, no coalescing
//!  GET /events?topic=T ─► read to the blank line, answer the head + the chunk "retry: 3000\n", then only writes
//! ```
//!
//! Thread-per-core on monoio's io_uring driver, one SO_REUSEPORT listener per worker.
//! A topic is the raw value of `topic=` in the request target (none: the empty topic);
//! a worker's bit is set in the topic's mask at its first subscriber and never cleared.
//! Deliberately absent: other URL parsing (any `GET` subscribes, any `POST` publishes),
//! percent-decoding, history, heartbeats, multi-line payloads (400), chunked bodies,
//! timeouts, limits beyond a head and body cap, noticing an idle subscriber's close
//! before a write to it fails, and graceful shutdown.

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod fanout;

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::task::Poll;

use atomic_waker::AtomicWaker;
use bytes::Bytes;
use clap::Parser;
use crossbeam_queue::SegQueue;
use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::{TcpListener, TcpStream};

use crate::fanout::Subscribers;

/// What a subscriber gets before any event: the response head and a reconnect hint.
const SUBSCRIBE_HEAD: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\
Cache-Control: no-cache\r\nTransfer-Encoding: chunked\r\n\r\nc\r\nretry: 3000\n\r\n";
const BAD_REQUEST: &[u8] =
    b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
/// A request head larger than this is refused (as ringcast's default `--max-head-bytes`).
const MAX_HEAD_BYTES: usize = 8 * 1024;
/// A publish body larger than this is refused (as ringcast's default `--max-event-bytes`).
const MAX_BODY_BYTES: usize = 64 * 1024;

#[derive(Parser, Debug)]
#[command(name = "floor", about = "bare monoio SSE fan-out floor")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8083")]
    listen: SocketAddr,
    /// Worker threads, one io_uring each (default: the CPUs this process may use).
    #[arg(long)]
    workers: Option<usize>,
    /// Submission queue entries per ring.
    #[arg(long, default_value_t = 1024)]
    ring_entries: u32,
}

/// One published event as a worker receives it.
struct Frame {
    topic: Bytes,
    bytes: Bytes,
}

/// A worker's inbox: frames pushed by any thread, drained by the owning worker.
struct Inbox {
    frames: SegQueue<Frame>,
    waker: AtomicWaker,
}

impl Inbox {
    /// Waits until the inbox holds a frame; the owning worker then pops them.
    async fn ready(&self) {
        std::future::poll_fn(|cx| {
            self.waker.register(cx.waker());
            if self.frames.is_empty() {
                Poll::Pending
            } else {
                Poll::Ready(())
            }
        })
        .await
    }
}

/// What publishers share: the last id and, per topic, a bit for each worker that holds
/// one of its subscribers. Held while pushing, so every worker sees ids in order.
#[derive(Default)]
struct Routes {
    last_id: u64,
    watchers: HashMap<Bytes, u64>,
}

/// State shared by all workers.
struct Shared {
    /// One inbox per worker, indexed by worker number.
    inboxes: Vec<Inbox>,
    routes: Mutex<Routes>,
}

impl Shared {
    /// Encodes the event once and hands the same `Bytes` to every worker watching
    /// `topic`.
    fn publish(&self, topic: &[u8], data: &[u8]) -> u64 {
        let mut routes = self.routes.lock().expect("routes lock poisoned");
        routes.last_id += 1;
        let id = routes.last_id;
        let watchers = routes.watchers.get(topic).copied().unwrap_or(0);
        if watchers != 0 {
            // One chunk, as ringcast sends it: `<hex size>\r\n` block `\r\n`.
            let lines = format!("id: {id}\ndata: ");
            let size = lines.len() + data.len() + 2;
            let mut frame = Vec::with_capacity(size + 16);
            frame.extend_from_slice(format!("{size:x}\r\n{lines}").as_bytes());
            frame.extend_from_slice(data);
            frame.extend_from_slice(b"\n\n\r\n");
            let (topic, frame) = (Bytes::copy_from_slice(topic), Bytes::from(frame));
            for worker in workers_of(watchers) {
                self.inboxes[worker].frames.push(Frame {
                    topic: topic.clone(),
                    bytes: frame.clone(),
                });
            }
        }
        drop(routes);
        for worker in workers_of(watchers) {
            self.inboxes[worker].waker.wake();
        }
        id
    }

    /// Marks `worker` as holding a subscriber of `topic`.
    fn watch(&self, topic: &Bytes, worker: usize) {
        let mut routes = self.routes.lock().expect("routes lock poisoned");
        *routes.watchers.entry(topic.clone()).or_default() |= 1 << worker;
    }
}

/// The worker numbers whose bits are set in `mask`.
fn workers_of(mask: u64) -> impl Iterator<Item = usize> {
    (0..64).filter(move |w| mask & (1 << w) != 0)
}

fn main() -> io::Result<()> {
    let args = Args::parse();
    let nofile = raise_nofile_limit();
    let workers = args
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
        .clamp(1, 64); // a bit per worker in a topic's mask

    // Bind every listener before any worker starts, so port 0 resolves once.
    let first = bind_reuseport(args.listen)?;
    let addr = first.local_addr()?;
    let mut listeners = vec![first];
    for _ in 1..workers {
        listeners.push(bind_reuseport(addr)?);
    }
    eprintln!(
        "floor listen={addr} pid={} workers={workers} nofile={nofile}",
        std::process::id()
    );

    let shared = Arc::new(Shared {
        inboxes: (0..workers)
            .map(|_| Inbox {
                frames: SegQueue::new(),
                waker: AtomicWaker::new(),
            })
            .collect(),
        routes: Mutex::default(),
    });
    let threads: Vec<_> = listeners
        .into_iter()
        .enumerate()
        .map(|(index, listener)| {
            let shared = shared.clone();
            let entries = args.ring_entries;
            std::thread::Builder::new()
                .name(format!("floor-{index}"))
                .spawn(move || run_worker(index, listener, shared, entries))
        })
        .collect::<io::Result<_>>()?;
    for thread in threads {
        thread.join().expect("worker panicked")?;
    }
    Ok(())
}

fn bind_reuseport(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::STREAM,
        None,
    )?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(4096)?;
    Ok(socket.into())
}

/// One worker: its own ring, its own listener, its own subscribers.
fn run_worker(
    index: usize,
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    entries: u32,
) -> io::Result<()> {
    let mut runtime = monoio::RuntimeBuilder::<monoio::IoUringDriver>::new()
        .with_entries(entries)
        .enable_timer()
        .build()?;
    runtime.block_on(async move {
        let listener = TcpListener::from_std(listener)?;
        let subscribers = Rc::new(Subscribers::default());
        monoio::spawn(fanout::drain_inbox(
            shared.clone(),
            index,
            subscribers.clone(),
        ));
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(accepted) => accepted,
                // Out of descriptors or similar: keep serving those we have.
                Err(_) => {
                    monoio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            monoio::spawn(serve(stream, index, shared.clone(), subscribers.clone()));
        }
    })
}

/// Reads the first head, then becomes a subscriber (`GET`) or a publisher (`POST`).
async fn serve(
    mut stream: TcpStream,
    worker: usize,
    shared: Arc<Shared>,
    subscribers: Rc<Subscribers>,
) {
    let buf = Vec::with_capacity(1024);
    let Ok((buf, Some(head_len))) = read_head(&mut stream, buf, 0).await else {
        return;
    };
    if buf.starts_with(b"GET ") {
        let topic = Bytes::copy_from_slice(topic_of(&buf));
        drop(buf); // an idle subscriber holds no read buffer
        let (res, _) = stream.write_all(SUBSCRIBE_HEAD).await;
        if res.is_ok() {
            shared.watch(&topic, worker);
            subscribers.add(topic, stream);
        }
    } else if buf.starts_with(b"POST ") {
        let _ = publisher(stream, shared, buf, head_len).await;
    } else {
        let _ = stream.write_all(BAD_REQUEST).await;
    }
}

/// Serves publish requests on one keep-alive connection until it closes or errs.
async fn publisher(
    mut stream: TcpStream,
    shared: Arc<Shared>,
    mut buf: Vec<u8>,
    mut head_len: usize,
) -> io::Result<()> {
    loop {
        let body_len = match content_length(&buf[..head_len]) {
            Some(len) if len <= MAX_BODY_BYTES => len,
            _ => return reject(stream).await,
        };
        let end = head_len + body_len;
        while buf.len() < end {
            let (read, more) = read_more(&mut stream, buf).await;
            buf = more;
            if read? == 0 {
                return Ok(());
            }
        }
        let body = &buf[head_len..end];
        if body.iter().any(|&b| b == b'\n' || b == b'\r') {
            return reject(stream).await;
        }
        let id = shared.publish(topic_of(&buf), body);
        let json = format!("{{\"id\":\"{id}\"}}");
        let response = format!(
            "HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\n\
             Content-Length: {}\r\n\r\n{json}",
            json.len()
        );
        let (res, _) = stream.write_all(response.into_bytes()).await;
        res?;
        // Keep what the client already sent of its next request.
        buf.drain(..end);
        let (read, next) = read_head(&mut stream, buf, 0).await?;
        match next {
            Some(len) => (buf, head_len) = (read, len),
            None => return Ok(()),
        }
    }
}

async fn reject(mut stream: TcpStream) -> io::Result<()> {
    let (res, _) = stream.write_all(BAD_REQUEST).await;
    res.map(drop)
}

/// Reads until `buf` holds a whole head; returns the head's length (through the
/// blank line), or `None` if the peer closed first or the head is too large.
async fn read_head(
    stream: &mut TcpStream,
    mut buf: Vec<u8>,
    mut scanned: usize,
) -> io::Result<(Vec<u8>, Option<usize>)> {
    loop {
        // Scan only the new bytes, backing up 3 in case the blank line straddles reads.
        if let Some(pos) = buf[scanned..].windows(4).position(|w| w == b"\r\n\r\n") {
            return Ok((buf, Some(scanned + pos + 4)));
        }
        if buf.len() >= MAX_HEAD_BYTES {
            return Ok((buf, None));
        }
        scanned = buf.len().saturating_sub(3);
        let (read, more) = read_more(stream, buf).await;
        buf = more;
        if read? == 0 {
            return Ok((buf, None));
        }
    }
}

/// Appends one read's worth of bytes to `buf`.
async fn read_more(stream: &mut TcpStream, mut buf: Vec<u8>) -> (io::Result<usize>, Vec<u8>) {
    if buf.capacity() - buf.len() < 512 {
        buf.reserve(4096);
    }
    let len = buf.len();
    let (res, slice) = stream.read(buf.slice_mut(len..)).await;
    (res, slice.into_inner())
}

/// The raw value of `topic=` in the request target of `head` (empty when absent).
fn topic_of(head: &[u8]) -> &[u8] {
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let target = line.split(|&b| b == b' ').nth(1).unwrap_or_default();
    let Some(query) = target.splitn(2, |&b| b == b'?').nth(1) else {
        return &[];
    };
    query
        .split(|&b| b == b'&')
        .find_map(|pair| pair.strip_prefix(b"topic="))
        .unwrap_or_default()
}

/// The Content-Length of a request head (0 when absent), or `None` when malformed
/// or when the body is chunked (not supported here).
fn content_length(head: &[u8]) -> Option<usize> {
    let mut length = 0;
    for line in head.split(|&b| b == b'\n').skip(1) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        if name.eq_ignore_ascii_case(b"transfer-encoding") {
            return None;
        }
        if name.eq_ignore_ascii_case(b"content-length") {
            length = std::str::from_utf8(value).ok()?.parse().ok()?;
        }
    }
    Some(length)
}

/// Raises the soft open-file limit to the hard limit; returns the resulting soft limit.
fn raise_nofile_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid, writable `rlimit` for the duration of the call.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return 0;
    }
    if limit.rlim_cur < limit.rlim_max {
        let raised = libc::rlimit {
            rlim_cur: limit.rlim_max,
            rlim_max: limit.rlim_max,
        };
        // SAFETY: `raised` is a valid `rlimit` that outlives the call.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit = raised;
        }
    }
    limit.rlim_cur
}
