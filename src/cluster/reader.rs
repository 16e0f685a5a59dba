//! The thread that reads the shared stream and feeds every worker, exactly as local
//! publishes do. It reconnects with backoff; on reconnecting it checks that the last
//! entry it read is still in the stream, and if not (Redis lost or trimmed data while
//! it was away), every local subscriber is told in-band with a `gap` frame.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use redis::streams::{StreamRangeReply, StreamReadReply};
use redis::{Connection, RedisResult};

use super::entry::{connect, decode};
use super::{ids, Settings, Stats};
use crate::broadcast::frame::gap_frame;
use crate::broadcast::frame::Draft;
use crate::broadcast::sequencer::{Sequencer, Stamped};

/// Retry delays after Redis becomes unreachable: quick at first, then capped.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// `XREAD BLOCK` time (ms) and batch size.
const BLOCK_MS: usize = 1000;
const READ_COUNT: usize = 1000;

pub struct Reader {
    client: redis::Client,
    settings: Settings,
    stats: Arc<Stats>,
    sequencer: Arc<Sequencer>,
}

impl Reader {
    pub fn new(
        client: redis::Client,
        settings: Settings,
        stats: Arc<Stats>,
        sequencer: Arc<Sequencer>,
    ) -> Reader {
        Reader {
            client,
            settings,
            stats,
            sequencer,
        }
    }

    /// Reads until the process ends.
    pub fn run(self) {
        let mut last: Option<String> = None;
        // The last entry read when a loss after it was told: a reconnect before anything
        // newer is read must not tell the same loss again.
        let mut told: Option<String> = None;
        let mut backoff = MIN_BACKOFF;
        loop {
            let result = connect(&self.client).and_then(|mut con| {
                let start = self.resume_point(&mut con, last.as_deref(), &mut told)?;
                last = Some(start);
                if !self.stats.up.swap(true, Ordering::AcqRel) {
                    log::info!(stream:% = self.settings.stream; "reading the cluster stream");
                }
                backoff = MIN_BACKOFF;
                self.read(&mut con, &mut last)
            });
            if let Err(e) = result {
                self.stats.errors.fetch_add(1, Ordering::Relaxed);
                if self.stats.up.swap(false, Ordering::AcqRel) || backoff == MIN_BACKOFF {
                    log::warn!(error:% = e, retry_in:? = backoff; "Redis unreachable; retrying");
                }
                std::thread::sleep(backoff);
                backoff = (backoff * 2).min(MAX_BACKOFF);
                self.stats.reconnects.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Where to read from: the stream's end on the first connect; after a reconnect, the
    /// last entry read, once it is known whether anything after it may be gone.
    fn resume_point(
        &self,
        con: &mut Connection,
        last: Option<&str>,
        told: &mut Option<String>,
    ) -> RedisResult<String> {
        let key = &self.settings.stream;
        let Some(last) = last else {
            let newest: StreamRangeReply = redis::cmd("XREVRANGE")
                .arg(key)
                .arg("+")
                .arg("-")
                .arg("COUNT")
                .arg(1)
                .query(con)?;
            let start = newest
                .ids
                .first()
                .map_or_else(|| "0-0".to_string(), |e| e.id.clone());
            self.sequencer
                .publish_ordered(Vec::new(), ids::from_stream(&start).unwrap_or(0));
            return Ok(start);
        };
        let here: StreamRangeReply = redis::cmd("XRANGE")
            .arg(key)
            .arg(last)
            .arg(last)
            .query(con)?;
        if here.ids.is_empty() && last != "0-0" && told.as_deref() != Some(last) {
            let first: StreamRangeReply = redis::cmd("XRANGE")
                .arg(key)
                .arg("-")
                .arg("+")
                .arg("COUNT")
                .arg(1)
                .query(con)?;
            let oldest = first.ids.first().and_then(|e| ids::from_stream(&e.id));
            let sent = ids::from_stream(last).unwrap_or(0).to_string();
            log::warn!(last_read = sent, oldest:? = oldest; "the cluster stream lost entries while Redis was unreachable");
            self.sequencer
                .broadcast_notice(None, gap_frame(sent.as_bytes(), oldest));
            self.stats.gaps.fetch_add(1, Ordering::Relaxed);
            *told = Some(last.to_string());
        }
        Ok(last.to_string())
    }

    fn read(&self, con: &mut Connection, last: &mut Option<String>) -> RedisResult<()> {
        con.set_read_timeout(Some(Duration::from_millis(BLOCK_MS as u64 + 2000)))?;
        loop {
            let from = last.clone().unwrap_or_else(|| "0-0".into());
            let reply: Option<StreamReadReply> = redis::cmd("XREAD")
                .arg("COUNT")
                .arg(READ_COUNT)
                .arg("BLOCK")
                .arg(BLOCK_MS)
                .arg("STREAMS")
                .arg(&self.settings.stream)
                .arg(&from)
                .query(con)?;
            let entries = reply.into_iter().flat_map(|r| r.keys).flat_map(|k| k.ids);
            let mut events = Vec::new();
            let mut newest = None;
            for entry in entries {
                self.stats.read.fetch_add(1, Ordering::Relaxed);
                match decode(&entry, self.settings.max_event_bytes) {
                    Some((id, e)) => {
                        let draft =
                            Draft::new(e.event.as_deref().map(str::as_bytes), e.data.as_bytes());
                        events.push(Stamped {
                            id,
                            topics: e.topics,
                            draft,
                        });
                        newest = Some(id);
                    }
                    None => {
                        self.stats.invalid.fetch_add(1, Ordering::Relaxed);
                    }
                }
                *last = Some(entry.id);
            }
            if let Some(processed) = newest {
                self.sequencer.publish_ordered(events, processed);
            }
        }
    }
}
