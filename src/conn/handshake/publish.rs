//! A publish on the handshake task: read its body within the size cap and the
//! handshake timeout, check it, ask forward auth when it is on, wait while fan-out
//! runs behind, and publish.

use super::{End, Http, CAPACITY_POLL, INITIAL_BUF};
use crate::conn::forward;
use crate::conn::publish::{self, Refusal, Target};
use crate::conn::route::Framing;
use crate::conn::CloseReason;
use crate::forward_auth::Credentials;
use crate::http::body::ChunkedDecoder;
use crate::http::response::Response;
use crate::shared::Capacity;

impl Http {
    /// Reads a publish body and publishes it; the answer to write, or how to end.
    pub(super) async fn publish(
        &mut self,
        target: Target,
        batch: bool,
        framing: Framing,
        expect: bool,
        keep_alive: bool,
        forward: Option<Box<Credentials>>,
    ) -> Result<Vec<u8>, End> {
        let shared = self.shared.clone();
        let cfg = &shared.config;
        let limit = if batch {
            cfg.max_batch_bytes
        } else {
            cfg.max_event_bytes
        };
        let body_timeout = cfg.handshake_timeout;
        self.port.deadline(body_timeout);
        if let Framing::Length(n) = framing {
            if n > limit as u64 {
                return Err(self.refuse(413, format!("body over {limit} bytes")));
            }
        }
        if expect && self.buf.is_empty() && !matches!(framing, Framing::None) {
            let interim = b"HTTP/1.1 100 Continue\r\n\r\n".to_vec();
            if self.send_all(interim).await.is_err() {
                return Err(End::Quiet(CloseReason::Peer));
            }
        }
        let body = self.read_body(framing, limit).await?;
        let checked = match batch {
            true => publish::batch(&target, &body, cfg.max_event_bytes),
            false => publish::single(&target, &body, cfg.max_event_bytes),
        };
        let valid = match checked {
            Ok(valid) => valid,
            Err(Refusal { status, why }) => return Err(self.refuse(status, why)),
        };
        let topics: Vec<&str> = valid
            .iter()
            .flat_map(|v| v.topics.iter().map(|t| &**t))
            .collect();
        if let (Some(who), Some(settings)) = (forward, &cfg.forward_auth) {
            let mut distinct = topics.clone();
            distinct.sort_unstable();
            distinct.dedup();
            if let Err(Refusal { status, why }) =
                forward::publish(&self.port, settings, &who, &distinct).await
            {
                return Err(self.refuse(status, why));
            }
        }
        self.wait_for_capacity(&topics).await?;
        let ids = match &shared.cluster {
            None => {
                let first = publish::locally(&shared.sequencer, &valid);
                (first..first + valid.len() as u64).collect()
            }
            // The events come back to this process's subscribers through the stream,
            // in the order every process sees.
            Some(cluster) => match cluster.publish(publish::to_wire(&valid)).await {
                Ok(ids) => ids,
                Err(why) => return Err(self.refuse(503, why)),
            },
        };
        let json = crate::json::publish_answer(&ids, batch);
        self.port.stats().published.add(ids.len() as u64);
        self.port.stats().count_status(202);
        let mut r = self.with_cors(Response::new(202));
        if !keep_alive || shared.is_draining() {
            r = r.close();
        }
        Ok(r.body("application/json", json.as_bytes()))
    }

    /// Holds a publish to `topics` back while fan-out runs behind (see [`Capacity`]):
    /// while a worker lags, for at most the handshake timeout (then 503, and the
    /// publisher may retry); while the subscribers of its topics are saturated, for at
    /// most `--max-lag`.
    async fn wait_for_capacity(&mut self, topics: &[&str]) -> Result<(), End> {
        let heavy = self
            .shared
            .sequencer
            .heavy_topics()
            .any(topics.iter().copied());
        self.heavy = heavy;
        let mut capacity = self.shared.publish_capacity(heavy, topics.iter().copied());
        if capacity == Capacity::Free {
            return Ok(());
        }
        let cfg = &self.shared.config;
        let (patience, pace) = (cfg.handshake_timeout, cfg.max_lag);
        // The request timer must not end the wait before the wait ends itself.
        self.port.deadline(patience * 2);
        self.port.stats().publish_waits.add(1);
        let (started, first) = (std::time::Instant::now(), capacity);
        loop {
            let waited = started.elapsed();
            let done = || {
                log::debug!(first:? = first, waited_ms = waited.as_millis() as u64,
                    topic = topics.first().copied().unwrap_or_default(); "publish held");
                Ok(())
            };
            match capacity {
                Capacity::Free => return done(),
                Capacity::Saturated if waited >= pace => return done(),
                Capacity::Lagging if waited >= patience => {
                    return Err(self.refuse(
                        503,
                        "subscribers are too far behind; publish again shortly".into(),
                    ))
                }
                _ => {}
            }
            monoio::time::sleep(CAPACITY_POLL).await;
            capacity = self.shared.publish_capacity(heavy, topics.iter().copied());
        }
    }

    async fn read_body(&mut self, framing: Framing, limit: usize) -> Result<Vec<u8>, End> {
        match framing {
            Framing::None => Ok(Vec::new()),
            Framing::Length(n) => {
                let n = n as usize;
                while self.buf.len() < n {
                    self.fill_body(n).await?;
                }
                let rest = self.buf.split_off(n);
                Ok(std::mem::replace(&mut self.buf, rest))
            }
            Framing::Chunked => {
                let mut decoder = ChunkedDecoder::new(limit);
                let mut body = Vec::new();
                loop {
                    match decoder.decode(&self.buf, &mut body) {
                        Ok(d) => {
                            self.buf.drain(..d.consumed);
                            if d.done {
                                return Ok(body);
                            }
                        }
                        Err(e) => return Err(self.refuse(e.status(), e.reason().into())),
                    }
                    self.fill_body(self.buf.len() + (16 << 10)).await?;
                }
            }
        }
    }

    async fn fill_body(&mut self, limit: usize) -> Result<(), End> {
        match self.fill(limit.max(INITIAL_BUF)).await {
            Ok(0) if self.timed_out() => {
                Err(self.refuse(408, "request body not complete in time".into()))
            }
            // The client half-closed mid-body: it may still read why.
            Ok(0) => Err(self.refuse(400, "request body ended early".into())),
            Err(e) => Err(End::Quiet(super::read_failed(&e))),
            Ok(_) => Ok(()),
        }
    }
}
