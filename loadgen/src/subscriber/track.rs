//! Per-subscriber bookkeeping: the state that outlives one connection (last seq, last
//! id, losses), and the accounting of each received block against it.

use std::os::fd::RawFd;

use crate::hist;
use crate::payload;
use crate::sse::Block;
use crate::stats::{Counters, Hists};

/// Where a subscriber is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Life {
    /// Not started yet by the connector.
    Waiting,
    /// First connect in progress.
    Connecting,
    /// Streaming (or re-connecting after a drop loadgen asked for).
    Live,
    /// The first connect failed.
    Failed,
    /// The server ended a live connection (for a slow subscriber: evicted).
    ClosedByServer,
    /// Ended by loadgen at the end of the run.
    Done,
}

/// Why loadgen itself is ending a subscriber's current connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndRequest {
    None,
    /// Drop it and resume with Last-Event-ID (reconnect scenario).
    Reconnect,
    /// The run is over.
    Stop,
}

/// One subscriber, across its connections.
#[derive(Debug)]
pub struct Sub {
    pub topic: u32,
    pub slow: bool,
    pub life: Life,
    /// Socket of the current connection, -1 when none; lets the thread's control task
    /// end a connection that a parked task owns.
    pub fd: RawFd,
    pub end: EndRequest,
    /// Highest seq received (0: none yet; seqs start at 1).
    pub last_seq: u64,
    /// Seqs skipped so far (holes only; the tail is added at the end).
    pub lost: u64,
    pub received: u64,
    /// Set at a resume until the first event after it, to attribute a hole to it.
    pub resuming: bool,
    /// First connected after publishing began: what was published before its first
    /// event is neither expected nor lost (it had no connection to receive it on).
    pub late: bool,
    /// For a late subscriber, the seq just before its first event.
    pub base_seq: u64,
    /// Last SSE `id:` seen, sent back as Last-Event-ID. Reused, so not an allocation
    /// per event; left empty unless the scenario reconnects.
    pub last_id: Vec<u8>,
}

impl Sub {
    pub fn new(topic: u32, slow: bool) -> Sub {
        Sub {
            topic,
            slow,
            life: Life::Waiting,
            fd: -1,
            end: EndRequest::None,
            last_seq: 0,
            lost: 0,
            received: 0,
            resuming: false,
            late: false,
            base_seq: 0,
            last_id: Vec::new(),
        }
    }
}

/// Fixed facts the accounting needs, copied once per read.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    /// When this read completed (CLOCK_MONOTONIC ns).
    pub now_ns: u64,
    /// Events sent at or after this time go to the slow-phase histogram (u64::MAX: never).
    pub slow_phase_ns: u64,
    /// Whether to remember `id:` values (only reconnect needs them).
    pub keep_ids: bool,
}

/// Accounts one block received by `sub`.
#[inline]
pub fn on_block(sub: &mut Sub, b: &Block<'_>, clock: Clock, c: &mut Counters, h: &mut Hists) {
    c.heartbeats += u64::from(b.comments);
    c.retry_hints += u64::from(b.retry);
    if b.event == Some(b"gap") {
        c.gap_frames += 1;
        return;
    }
    let Some(data) = b.data else { return };
    if clock.keep_ids {
        if let Some(id) = b.id {
            sub.last_id.clear();
            sub.last_id.extend_from_slice(id);
        }
    }
    let Some((seq, sent_ns)) = payload::decode(data) else {
        c.foreign_events += 1;
        return;
    };
    if seq <= sub.last_seq {
        c.duplicates += 1;
        return;
    }
    if sub.late && sub.received == 0 {
        sub.base_seq = seq - 1;
        sub.last_seq = seq - 1;
    }
    let hole = seq - sub.last_seq - 1;
    sub.lost += hole;
    if sub.resuming && hole > 0 {
        c.resumes_with_gap += 1;
        c.resume_gap_events += hole;
    }
    sub.resuming = false;
    sub.last_seq = seq;
    sub.received += 1;
    c.last_event_ns = c.last_event_ns.max(clock.now_ns);
    if sub.slow {
        c.slow_events += 1;
        return;
    }
    c.events += 1;
    let latency = clock.now_ns.saturating_sub(sent_ns);
    let h = if sent_ns >= clock.slow_phase_ns {
        &mut h.latency_slow_phase
    } else {
        &mut h.latency
    };
    hist::record_ns(h, latency);
}

/// Adds a subscriber's final figures to the counters: holes plus the tail it never
/// got (`final_seq` is the last seq published on its topic, 0 when nothing was).
pub fn finish(sub: &Sub, final_seq: u64, c: &mut Counters) {
    if matches!(sub.life, Life::Waiting | Life::Connecting | Life::Failed) {
        return;
    }
    if sub.late && sub.received == 0 {
        // Joined after publishing began and got nothing: it may well have joined after
        // the last event; nothing to hold against the server.
        return;
    }
    let lost = sub.lost + final_seq.saturating_sub(sub.last_seq);
    if sub.slow {
        c.slow_subs += 1;
        c.slow_lost += lost;
        c.evicted += u64::from(sub.life == Life::ClosedByServer);
        return;
    }
    c.expected += final_seq.saturating_sub(sub.base_seq);
    c.lost += lost;
    c.subs_with_loss += u64::from(lost > 0);
    c.max_lost_per_sub = c.max_lost_per_sub.max(lost);
    c.dropped_by_server += u64::from(sub.life == Life::ClosedByServer);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(data: &'static [u8]) -> Block<'static> {
        Block {
            data: Some(data),
            data_lines: 1,
            id: Some(b"77"),
            ..Block::default()
        }
    }

    const CLOCK: Clock = Clock {
        now_ns: 5_000,
        slow_phase_ns: u64::MAX,
        keep_ids: true,
    };

    #[test]
    fn holes_duplicates_and_tail() {
        let (mut c, mut h) = (Counters::default(), Hists::default());
        let mut s = Sub::new(0, false);
        s.life = Life::Live;
        for d in [
            &b"1 1000 "[..],
            b"2 1000 ",
            b"2 1000 ",
            b"5 2000 x",
            b"hello",
        ] {
            on_block(
                &mut s,
                &Block {
                    data: Some(d),
                    data_lines: 1,
                    ..Block::default()
                },
                CLOCK,
                &mut c,
                &mut h,
            );
        }
        assert_eq!(
            (c.events, c.duplicates, c.foreign_events, s.lost, s.last_seq),
            (3, 1, 1, 2, 5)
        );
        assert_eq!(h.latency.len(), 3);
        assert_eq!(h.latency.max(), 4, "5000 ns - 1000 ns = 4 us");
        finish(&s, 7, &mut c);
        assert_eq!((c.lost, c.subs_with_loss, c.max_lost_per_sub), (4, 1, 4));
    }

    #[test]
    fn resume_gap_ids_and_gap_frames() {
        let (mut c, mut h) = (Counters::default(), Hists::default());
        let mut s = Sub::new(0, false);
        on_block(&mut s, &block(b"1 0 "), CLOCK, &mut c, &mut h);
        assert_eq!(s.last_id, b"77");
        s.resuming = true;
        on_block(&mut s, &block(b"4 0 "), CLOCK, &mut c, &mut h);
        let gap = Block {
            event: Some(b"gap"),
            data: Some(b"{}"),
            data_lines: 1,
            ..Block::default()
        };
        on_block(&mut s, &gap, CLOCK, &mut c, &mut h);
        assert_eq!(
            (
                c.resumes_with_gap,
                c.resume_gap_events,
                c.gap_frames,
                c.events
            ),
            (1, 2, 1, 2)
        );
    }

    #[test]
    fn a_late_subscriber_counts_from_its_first_event() {
        let (mut c, mut h) = (Counters::default(), Hists::default());
        let mut s = Sub::new(0, false);
        (s.life, s.late) = (Life::Live, true);
        for d in [&b"4 0 "[..], b"5 0 ", b"7 0 "] {
            on_block(&mut s, &block(d), CLOCK, &mut c, &mut h);
        }
        finish(&s, 8, &mut c);
        // 6 is a hole and 8 the missing tail; 1..3 came before it connected.
        assert_eq!((c.expected, c.lost, c.events), (5, 2, 3));
        let mut empty = Sub::new(0, false);
        (empty.life, empty.late) = (Life::Live, true);
        finish(&empty, 8, &mut c);
        assert_eq!(
            (c.expected, c.lost),
            (5, 2),
            "nothing held against a late joiner that got nothing"
        );
        let mut early = Sub::new(0, false);
        early.life = Life::Live;
        on_block(&mut early, &block(b"4 0 "), CLOCK, &mut c, &mut h);
        finish(&early, 4, &mut c);
        assert_eq!((c.expected, c.lost), (9, 5), "on time: 1..3 are lost");
    }

    #[test]
    fn slow_subscribers_count_apart() {
        let (mut c, mut h) = (Counters::default(), Hists::default());
        let mut s = Sub::new(0, true);
        s.life = Life::Live;
        on_block(&mut s, &block(b"1 0 "), CLOCK, &mut c, &mut h);
        s.life = Life::ClosedByServer;
        finish(&s, 10, &mut c);
        assert_eq!(
            (c.events, c.slow_events, c.slow_lost, c.evicted, c.lost),
            (0, 1, 9, 1, 0)
        );
        assert!(h.latency.is_empty());
        let never = Sub::new(0, false);
        finish(&never, 10, &mut c);
        assert_eq!(c.lost, 0, "a subscriber that never connected loses nothing");
    }
}
