//! Scale-out through Redis: several ringcast processes (on one host or many) share
//! publishes through one Redis Stream, so a subscriber on any of them receives every
//! event published on any of them, with the same ids.
//!
//! ```text
//!  POST /publish ──► writer thread ──XADD (MULTI/EXEC)──► Redis stream "ringcast:events"
//!                                                                  │ XREAD BLOCK
//!  every process: reader thread ──► Sequencer::publish_ordered ──► inboxes ──► fan-out
//! ```
//!
//! One stream for all topics, not one per topic: the stream's order is the one total
//! order of ids a multi-topic subscriber needs, and every process sees it the same way.
//! Entries are `t` (topics, comma-separated), `e` (event name, optional) and `d` (data),
//! so any Redis client can publish with a plain `XADD`. Each process keeps only the
//! topics its subscribers follow; the Redis connections live on their own threads and
//! talk to the workers through channels, so Redis never blocks an event loop.

mod census;
mod entry;
pub mod ids;
mod reader;
mod writer;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use crate::broadcast::sequencer::{Sequencer, Start};
use crate::census::Census;

/// Where the shared stream lives and how much of it Redis keeps.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `redis://[:password@]host:port[/db]`.
    pub url: String,
    /// The stream key.
    pub stream: String,
    /// Entries Redis keeps (`XADD MAXLEN ~`): how far back a resume can be served from
    /// Redis when a process's own history does not reach.
    pub retention: usize,
    /// Largest event accepted from the stream (entries written by other clients).
    pub max_event_bytes: usize,
}

/// An event on its way to the stream.
#[derive(Debug)]
pub struct WireEvent {
    pub topics: Vec<String>,
    pub event: Option<String>,
    pub data: String,
}

/// Stream entries after a resume point, for the requested topics.
#[derive(Debug, Default)]
pub struct Fetched {
    /// Whether the resume point itself is still in the stream: if not, events after it
    /// may have been trimmed or lost.
    pub contiguous: bool,
    /// The oldest entry still in the stream.
    pub oldest: Option<u64>,
    /// Matching entries, ascending: id, event name, data.
    pub events: Vec<(u64, Option<String>, String)>,
}

enum Request {
    Publish {
        events: Vec<WireEvent>,
        reply: flume::Sender<Result<Vec<u64>, String>>,
    },
    Fetch {
        start: Start,
        upto: u64,
        topics: Vec<String>,
        reply: flume::Sender<Result<Fetched, String>>,
    },
}

/// Counters of the Redis link, for `/metrics`.
#[derive(Default)]
pub struct Stats {
    /// Whether the reader is connected and reading.
    pub up: AtomicBool,
    pub errors: AtomicU64,
    pub reconnects: AtomicU64,
    /// Stream entries read (all topics).
    pub read: AtomicU64,
    /// Entries read that were not ringcast events (skipped).
    pub invalid: AtomicU64,
    /// Publishes refused because Redis could not take them.
    pub refused: AtomicU64,
    /// Times a reconnect found events may have been lost (a gap notice went out).
    pub gaps: AtomicU64,
}

/// The handle workers use.
pub struct Cluster {
    requests: flume::Sender<Request>,
    census: flume::Sender<census::Query>,
    pub settings: Settings,
    pub stats: Arc<Stats>,
}

impl Cluster {
    /// Checks the URL, then starts the reader and writer threads. Redis need not be up
    /// yet: the threads connect, and reconnect, by themselves.
    pub fn start(
        settings: Settings,
        sequencer: Arc<Sequencer>,
        counts: Arc<Census>,
    ) -> Result<Arc<Cluster>, String> {
        let client = redis::Client::open(settings.url.as_str())
            .map_err(|e| format!("--cluster {}: {e}", settings.url))?;
        let stats = Arc::new(Stats::default());
        let (requests, incoming) = flume::unbounded();
        let spawn = |name: &str| std::thread::Builder::new().name(name.to_string());
        let writer = writer::Writer::new(client.clone(), settings.clone(), stats.clone());
        spawn("ringcast-redis-w")
            .spawn(move || writer.serve(incoming))
            .map_err(|e| e.to_string())?;
        let (census, queries) = flume::unbounded();
        let reporter = census::Reporter::new(client.clone(), &settings, stats.clone(), counts);
        spawn("ringcast-redis-c")
            .spawn(move || reporter.serve(queries))
            .map_err(|e| e.to_string())?;
        let reader = reader::Reader::new(client, settings.clone(), stats.clone(), sequencer);
        spawn("ringcast-redis-r")
            .spawn(move || reader.run())
            .map_err(|e| e.to_string())?;
        Ok(Arc::new(Cluster {
            requests,
            census,
            settings,
            stats,
        }))
    }

    /// Appends events to the stream (all or none); returns their ids.
    pub async fn publish(&self, events: Vec<WireEvent>) -> Result<Vec<u64>, String> {
        let (reply, answer) = flume::bounded(1);
        self.ask(Request::Publish { events, reply }, answer)
            .await
            .inspect_err(|_| {
                self.stats.refused.fetch_add(1, Ordering::Relaxed);
            })
    }

    /// The entries of `topics` from `start` up to `upto`, for a resume or a replay.
    pub async fn fetch(
        &self,
        start: Start,
        upto: u64,
        topics: Vec<String>,
    ) -> Result<Fetched, String> {
        let (reply, answer) = flume::bounded(1);
        self.ask(
            Request::Fetch {
                start,
                upto,
                topics,
                reply,
            },
            answer,
        )
        .await
    }

    /// Subscribers of `topic` on every live process.
    pub async fn count(&self, topic: String) -> Result<u64, String> {
        self.ask_census(|reply| census::Query::Count { topic, reply })
            .await
    }

    /// Up to `limit` topics with subscribers on any live process, under `prefix` and
    /// after `after`, in name order, with their summed counts.
    pub async fn list(
        &self,
        prefix: String,
        after: Option<String>,
        limit: usize,
    ) -> Result<Vec<(String, u64)>, String> {
        self.ask_census(|reply| census::Query::List {
            prefix,
            after,
            limit,
            reply,
        })
        .await
    }

    /// Up to `limit` users following `topic` on any live process, after `after`, in
    /// name order, with their summed stream counts.
    pub async fn users(
        &self,
        topic: String,
        after: Option<String>,
        limit: usize,
    ) -> Result<Vec<(String, u64)>, String> {
        self.ask_census(|reply| census::Query::Users {
            topic,
            after,
            limit,
            reply,
        })
        .await
    }

    /// Asks the census thread the query `make` builds around its reply channel.
    async fn ask_census<T>(
        &self,
        make: impl FnOnce(flume::Sender<Result<T, String>>) -> census::Query,
    ) -> Result<T, String> {
        let (reply, answer) = flume::bounded(1);
        self.census.send(make(reply)).map_err(|_| stopped())?;
        answer.recv_async().await.map_err(|_| stopped())?
    }

    async fn ask<T>(
        &self,
        request: Request,
        answer: flume::Receiver<Result<T, String>>,
    ) -> Result<T, String> {
        self.requests.send(request).map_err(|_| stopped())?;
        answer.recv_async().await.map_err(|_| stopped())?
    }
}

fn stopped() -> String {
    "the Redis thread stopped".to_string()
}
