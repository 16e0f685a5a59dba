//! `GET /events` on the worker: find what a new subscriber must be sent before live
//! events, and hand its connection (already detached from its task) to the data plane.

use bytes::Bytes;

use super::Worker;
use crate::broadcast::frame::Body;
use crate::broadcast::sequencer::Replay;
use crate::cluster::Fetched;
use crate::conn::subscribe::{fetched_frames, first_frames, RemoteResume, Subscribe};
use crate::conn::{flags, Phase};
use crate::tls::session::Session;

impl Worker {
    /// Subscribes connection `key`. In cluster mode a resume that reaches back past local
    /// history returns what to fetch; until it is served ([`Worker::resume_from_cluster`])
    /// the connection collects live events but writes nothing.
    pub(super) fn subscribe(
        &mut self,
        key: u32,
        request: &Subscribe,
        tls: Option<Box<Session>>,
    ) -> Option<RemoteResume> {
        if let Some(session) = tls {
            self.writes
                .adopt(&mut self.conns[key as usize], key, session);
        }
        let topics: Vec<&str> = request.topics.iter().map(String::as_str).collect();
        let sequencer = &self.shared.sequencer;
        // Topics new to this worker start being handed to it before the stream's start
        // is read (see `broadcast::sequencer::interest`).
        let new_here: Vec<&str> = topics
            .iter()
            .copied()
            .filter(|t| self.hub.subscribers(t).is_empty())
            .collect();
        let upto = sequencer.watch(self.index, &new_here);
        let replay = match (&request.last_event_id, request.replay) {
            (Some(id), _) => sequencer.resume(&topics, id),
            (None, 0) => Replay {
                upto,
                ..Replay::default()
            },
            (None, n) => sequencer.recent(&topics, n),
        };
        let ends_in = request.expires_in.map(std::time::Duration::from_secs);
        if request.body == Body::Close {
            self.conns[key as usize].set(flags::CLOSE_DELIMITED);
        }
        if let Some(start) = replay.remote {
            self.conns[key as usize].set(flags::HELD);
            self.start_stream(key, &topics, replay.upto, [], ends_in);
            self.watch_stats(key, &topics);
            self.joined(key, &topics, request.user.as_deref());
            let gen = self.conns[key as usize].gen;
            return Some(RemoteResume {
                start,
                upto: replay.upto,
                gen,
            });
        }
        let upto = replay.upto;
        let first = first_frames(self.preamble(request), request, replay, self.stats());
        self.start_stream(key, &topics, upto, first, ends_in);
        self.watch_stats(key, &topics);
        self.joined(key, &topics, request.user.as_deref());
        None
    }

    /// A subscriber of `sys:stats` starts the snapshots once it is counted, so that the
    /// first snapshot it gets counts it (counted after, a snapshot taken by worker 0 in
    /// between said `"subscribers":0` to its only watcher).
    fn watch_stats(&mut self, key: u32, topics: &[&str]) {
        if crate::page::stats::watch(&self.shared, topics) {
            self.conns[key as usize].set(flags::STATS);
        }
    }

    /// Serves a held resume with what the cluster's stream returned, ahead of the live
    /// events collected meanwhile.
    pub(super) fn resume_from_cluster(
        &mut self,
        key: u32,
        request: &Subscribe,
        pending: &RemoteResume,
        fetched: Result<Fetched, String>,
    ) {
        match self.conns.get(key as usize) {
            Some(c) if c.gen == pending.gen && c.phase() == Phase::Stream => {}
            _ => return, // closed while waiting
        }
        let first = fetched_frames(
            self.preamble(request),
            request,
            pending,
            fetched,
            self.stats(),
        );
        let conn = &mut self.conns[key as usize];
        // A held connection has never started a write, so no iovec points into its queue.
        debug_assert!(!conn.has(flags::WRITING), "prepend behind a write");
        conn.out.prepend(first);
        conn.clear(flags::HELD);
        self.writes.dirty().mark_first(conn, key);
        self.kick.now();
    }

    fn preamble(&self, request: &Subscribe) -> Bytes {
        request
            .head
            .clone()
            .unwrap_or_else(|| self.shared.stream_preamble[request.body as usize].clone())
    }
}
