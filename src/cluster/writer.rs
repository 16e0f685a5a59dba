//! The thread that writes to Redis for the workers: publishes (one `MULTI`/`EXEC` of
//! `XADD`s per request, so a batch is all or nothing) and the range reads of resumes
//! that reach back past a process's own history.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use redis::streams::StreamRangeReply;
use redis::{Connection, RedisResult};

use super::entry::{connect, decode};
use super::{ids, Fetched, Request, Settings, Stats, WireEvent};
use crate::broadcast::sequencer::Start;

/// A connection unused this long is PINGed before its next request.
const IDLE_CHECK: Duration = Duration::from_millis(100);
/// Entries read per `XRANGE` page while collecting a resume.
const PAGE: usize = 5_000;
/// Entries a single resume may scan in the shared stream (it holds every topic).
const MAX_SCAN: usize = 500_000;

pub struct Writer {
    client: redis::Client,
    settings: Settings,
    stats: Arc<Stats>,
    /// The connection, and the reader's reconnect count when it was made: once the reader
    /// has had to reconnect (Redis went away), this one is presumed dead too.
    con: Option<(Connection, u64)>,
    /// When the connection was last used: one idle for a while is checked with a PING
    /// first (Redis may have restarted meanwhile), so that a publish is never sent down a
    /// dead connection and left in doubt.
    used: Instant,
}

impl Writer {
    pub fn new(client: redis::Client, settings: Settings, stats: Arc<Stats>) -> Writer {
        Writer {
            client,
            settings,
            stats,
            con: None,
            used: Instant::now(),
        }
    }

    /// Serves requests until the process ends.
    pub fn serve(mut self, incoming: flume::Receiver<Request>) {
        while let Ok(request) = incoming.recv() {
            match request {
                Request::Publish { events, reply } => {
                    let settings = self.settings.clone();
                    let _ = reply.send(self.with(|con| publish(con, &settings, &events)));
                }
                Request::Fetch {
                    start,
                    upto,
                    topics,
                    reply,
                } => {
                    let settings = self.settings.clone();
                    let _ = reply.send(self.with(|con| match start {
                        Start::After(after) => fetch_after(con, &settings, after, upto, &topics),
                        Start::Last(n) => fetch_last(con, &settings, n, upto, &topics),
                    }));
                }
            }
        }
    }

    /// Runs `f` on the connection, connecting first if needed; a failure drops the
    /// connection so the next request reconnects.
    fn with<T>(&mut self, f: impl FnOnce(&mut Connection) -> RedisResult<T>) -> Result<T, String> {
        let epoch = self.stats.reconnects.load(Ordering::Acquire);
        let idle = self.used.elapsed() > IDLE_CHECK;
        self.used = Instant::now();
        let alive = match &mut self.con {
            Some((con, made)) if *made == epoch => {
                !idle || redis::cmd("PING").query::<String>(con).is_ok()
            }
            _ => false,
        };
        if !alive {
            let con = connect(&self.client).map_err(|e| self.failed(e))?;
            self.con = Some((con, epoch));
        }
        let (con, _) = self.con.as_mut().expect("connected above");
        f(con).map_err(|e| {
            self.con = None;
            self.failed(e)
        })
    }

    fn failed(&self, e: redis::RedisError) -> String {
        self.stats.errors.fetch_add(1, Ordering::Relaxed);
        log::debug!(error:% = e; "redis request failed");
        format!("Redis unavailable: {e}")
    }
}

fn publish(
    con: &mut Connection,
    settings: &Settings,
    events: &[WireEvent],
) -> RedisResult<Vec<u64>> {
    let mut pipe = redis::pipe();
    pipe.atomic();
    for e in events {
        let cmd = pipe
            .cmd("XADD")
            .arg(&settings.stream)
            .arg("MAXLEN")
            .arg("~")
            .arg(settings.retention)
            .arg("*");
        cmd.arg("t").arg(e.topics.join(","));
        if let Some(name) = &e.event {
            cmd.arg("e").arg(name);
        }
        cmd.arg("d").arg(&e.data);
    }
    let stream_ids: Vec<String> = pipe.query(con)?;
    stream_ids
        .iter()
        .map(|id| ids::from_stream(id))
        .collect::<Option<Vec<u64>>>()
        .ok_or_else(|| {
            (
                redis::ErrorKind::Client,
                "stream id beyond what ringcast can number",
            )
                .into()
        })
}

/// The entries of `topics` in (`after`, `upto`], and whether `after` is still there.
fn fetch_after(
    con: &mut Connection,
    settings: &Settings,
    after: u64,
    upto: u64,
    topics: &[String],
) -> RedisResult<Fetched> {
    let key = &settings.stream;
    let at = ids::to_stream(after);
    let here: StreamRangeReply = redis::cmd("XRANGE").arg(key).arg(&at).arg(&at).query(con)?;
    let first: StreamRangeReply = redis::cmd("XRANGE")
        .arg(key)
        .arg("-")
        .arg("+")
        .arg("COUNT")
        .arg(1)
        .query(con)?;
    let mut fetched = Fetched {
        contiguous: !here.ids.is_empty(),
        oldest: first.ids.first().and_then(|e| ids::from_stream(&e.id)),
        events: Vec::new(),
    };
    let end = ids::to_stream(upto);
    let mut start = format!("({at}");
    let mut scanned = 0;
    while scanned < MAX_SCAN {
        let page: StreamRangeReply = redis::cmd("XRANGE")
            .arg(key)
            .arg(&start)
            .arg(&end)
            .arg("COUNT")
            .arg(PAGE)
            .query(con)?;
        let Some(last) = page.ids.last() else { break };
        start = format!("({}", last.id);
        scanned += page.ids.len();
        for entry in &page.ids {
            let Some((id, event)) = decode(entry, settings.max_event_bytes) else {
                continue;
            };
            if event.topics.iter().any(|t| topics.contains(t)) {
                fetched.events.push((id, event.event, event.data));
            }
        }
        if page.ids.len() < PAGE {
            break;
        }
    }
    if scanned >= MAX_SCAN {
        // The resume reaches back further than one request may read: report a gap and
        // serve what was read.
        fetched.contiguous = false;
    }
    Ok(fetched)
}

/// The last `n` entries of `topics` up to `upto`, ascending, read backwards from `upto`
/// (within the same scan bound as a resume).
fn fetch_last(
    con: &mut Connection,
    settings: &Settings,
    n: usize,
    upto: u64,
    topics: &[String],
) -> RedisResult<Fetched> {
    let key = &settings.stream;
    let mut fetched = Fetched {
        contiguous: true,
        ..Fetched::default()
    };
    let mut end = ids::to_stream(upto);
    let mut scanned = 0;
    while scanned < MAX_SCAN && fetched.events.len() < n {
        let page: StreamRangeReply = redis::cmd("XREVRANGE")
            .arg(key)
            .arg(&end)
            .arg("-")
            .arg("COUNT")
            .arg(PAGE)
            .query(con)?;
        let Some(last) = page.ids.last() else { break };
        end = format!("({}", last.id);
        scanned += page.ids.len();
        for entry in &page.ids {
            let Some((id, event)) = decode(entry, settings.max_event_bytes) else {
                continue;
            };
            if event.topics.iter().any(|t| topics.contains(t)) && fetched.events.len() < n {
                fetched.events.push((id, event.event, event.data));
            }
        }
        if page.ids.len() < PAGE {
            break;
        }
    }
    fetched.events.reverse();
    Ok(fetched)
}
