//! `axum-ref`: the SSE broadcast server a Rust user would otherwise write.
//!
//! A reference peer for ringcast's benchmarks, written the idiomatic way and not
//! tuned beyond what a competent user would do: tokio's multi-threaded runtime,
//! axum's `Sse` response, one `tokio::sync::broadcast` channel per topic in a
//! mutex-guarded registry. It speaks ringcast's URL scheme so that the load
//! generator drives both identically:
//!
//! - `GET /events?topic=T` → `text/event-stream`: `retry: 3000`, then each event as
//!   `id: <n>` and one `data:` line per payload line; a `:` comment every 15 s.
//! - `POST /publish?topic=T`, body = data → `202 {"id":"<n>"}`, `n` a global counter.
//!
//! Deliberately absent: history and `Last-Event-ID` replay, several topics per
//! subscriber, event names, auth, metrics, graceful drain. A subscriber that falls
//! more than `--capacity` events behind skips ahead silently, as tokio's broadcast
//! channel does.

// The system allocator by default, as a typical axum server runs; mimalloc only with
// `--features mimalloc` (it holds about 1.5x the memory per idle connection here).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use axum::Router;
use clap::Parser;
use serde::Deserialize;
use tokio::sync::broadcast;
use tokio_stream::wrappers::BroadcastStream;
use tokio_stream::{Stream, StreamExt};

/// The reconnect delay announced in the first frame, as ringcast's default.
const RETRY: Duration = Duration::from_millis(3000);
/// Keep-alive comment interval: below common proxy idle timeouts (axum's default too).
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// Largest publish body, as ringcast's default `--max-event-bytes`.
const MAX_EVENT_BYTES: usize = 64 * 1024;

#[derive(Parser, Debug)]
#[command(
    name = "axum-ref",
    about = "tokio + axum SSE broadcast reference server"
)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8082")]
    listen: SocketAddr,
    /// Tokio worker threads (default: the CPUs this process may use).
    #[arg(long)]
    workers: Option<usize>,
    /// Capacity of each topic's broadcast channel; a slower receiver skips ahead.
    #[arg(long, default_value_t = 1024)]
    capacity: usize,
}

/// One published event, cloned (two words and a refcount) into every receiver.
#[derive(Clone, Debug)]
struct Published {
    id: u64,
    data: Arc<str>,
}

/// Shared state of all handlers.
struct App {
    /// One broadcast sender per topic; receivers are made from it on subscribe.
    topics: Mutex<HashMap<String, broadcast::Sender<Published>>>,
    /// The last id handed out; ids increase across all topics.
    last_id: AtomicU64,
    /// Capacity of newly created channels.
    capacity: usize,
}

#[derive(Deserialize)]
struct TopicQuery {
    topic: Option<String>,
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let nofile = raise_nofile_limit();
    let workers = args
        .workers
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()?
        .block_on(serve(args, workers, nofile))
}

async fn serve(args: Args, workers: usize, nofile: u64) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    eprintln!(
        "axum-ref listen={} pid={} workers={workers} capacity={} nofile={nofile} allocator={}",
        listener.local_addr()?,
        std::process::id(),
        args.capacity,
        if cfg!(feature = "mimalloc") {
            "mimalloc"
        } else {
            "system"
        },
    );
    let app = Arc::new(App {
        topics: Mutex::new(HashMap::new()),
        last_id: AtomicU64::new(0),
        capacity: args.capacity.max(1),
    });
    let router = Router::new()
        .route("/events", get(subscribe))
        .route("/publish", post(publish))
        .layer(DefaultBodyLimit::max(MAX_EVENT_BYTES))
        .with_state(app);
    // Nagle off: an SSE event should leave at once, not wait for the previous ACK.
    let listener = listener.tap_io(|stream| {
        let _ = stream.set_nodelay(true);
    });
    axum::serve(listener, router).await
}

async fn subscribe(
    State(app): State<Arc<App>>,
    Query(query): Query<TopicQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, StatusCode> {
    let topic = valid_topic(query.topic)?;
    let receiver = app
        .topics
        .lock()
        .expect("topic registry poisoned")
        .entry(topic)
        .or_insert_with(|| broadcast::channel(app.capacity).0)
        .subscribe();
    let events = BroadcastStream::new(receiver).filter_map(|received| {
        // Err is `Lagged(n)`: the receiver skipped n events and goes on from the oldest kept.
        let event = received.ok()?;
        Some(Ok(Event::default()
            .id(event.id.to_string())
            .data(&*event.data)))
    });
    let retry = tokio_stream::once(Ok(Event::default().retry(RETRY)));
    Ok(Sse::new(retry.chain(events)).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}

async fn publish(
    State(app): State<Arc<App>>,
    Query(query): Query<TopicQuery>,
    body: String,
) -> Result<impl IntoResponse, StatusCode> {
    let topic = valid_topic(query.topic)?;
    let id = app.last_id.fetch_add(1, Ordering::Relaxed) + 1;
    let sender = {
        let mut topics = app.topics.lock().expect("topic registry poisoned");
        match topics.get(&topic) {
            // Nobody listens any more: forget the topic instead of keeping it forever.
            Some(sender) if sender.receiver_count() == 0 => {
                topics.remove(&topic);
                None
            }
            sender => sender.cloned(),
        }
    };
    // Send outside the registry lock: waking every receiver is the slow part.
    if let Some(sender) = sender {
        // An error only means the last receiver left in the meantime.
        let _ = sender.send(Published {
            id,
            data: body.into(),
        });
    }
    let json = [(header::CONTENT_TYPE, "application/json")];
    Ok((StatusCode::ACCEPTED, json, format!("{{\"id\":\"{id}\"}}")))
}

/// The topic rule of ringcast's wire contract: 1 to 128 bytes of `A-Za-z0-9-_.~:/`.
fn valid_topic(topic: Option<String>) -> Result<String, StatusCode> {
    let topic = topic.ok_or(StatusCode::BAD_REQUEST)?;
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b"-_.~:/".contains(&b);
    if topic.is_empty() || topic.len() > 128 || !topic.bytes().all(allowed) {
        return Err(StatusCode::BAD_REQUEST);
    }
    Ok(topic)
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
