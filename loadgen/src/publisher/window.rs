//! One connection's requests in flight, oldest first, and the seqs behind them.
//! HTTP/1.1 answers come back in request order, so an answer always belongs to the
//! oldest request; a topic lives on one connection, so its seqs are sent and accepted
//! in order, and a topic's last accepted seq is its count of accepted events.

use std::collections::VecDeque;

/// A request sent and not yet answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sent {
    /// Round-robin position of its first event (its topics follow from it).
    first: u64,
    /// Events it carries.
    pub events: u32,
    pub sent_ns: u64,
}

#[derive(Debug)]
pub struct Window {
    /// The connection's topics (global indexes), in round-robin order.
    topics: Vec<u32>,
    /// Last seq answered 2xx, per topic (indexed like `topics`).
    acked: Vec<u64>,
    /// Next seq to send, per topic: `acked` + 1 + that topic's events in flight.
    next: Vec<u64>,
    /// Events sent on this connection so far, failed ones too: the round-robin
    /// position of the next event, and the open-loop schedule's count.
    events: u64,
    /// Requests sent and not answered, oldest first.
    inflight: VecDeque<Sent>,
}

impl Window {
    pub fn new(topics: Vec<u32>) -> Window {
        assert!(!topics.is_empty(), "a publisher connection owns a topic");
        Window {
            acked: vec![0; topics.len()],
            next: vec![1; topics.len()],
            topics,
            events: 0,
            inflight: VecDeque::new(),
        }
    }

    pub fn len(&self) -> usize {
        self.inflight.len()
    }

    pub fn is_empty(&self) -> bool {
        self.inflight.is_empty()
    }

    /// Events sent so far (the schedule's count).
    pub fn events(&self) -> u64 {
        self.events
    }

    pub fn oldest_sent_ns(&self) -> Option<u64> {
        self.inflight.front().map(|s| s.sent_ns)
    }

    /// Records a request of the next `events` events as sent, calling `each` with every
    /// event's topic (index into the connection's topics) and seq, in order.
    pub fn send(&mut self, events: u32, sent_ns: u64, mut each: impl FnMut(usize, u64)) {
        let first = self.events;
        for pos in first..first + u64::from(events) {
            let k = self.slot(pos);
            each(k, self.next[k]);
            self.next[k] += 1;
        }
        self.events += u64::from(events);
        self.inflight.push_back(Sent {
            first,
            events,
            sent_ns,
        });
    }

    /// The oldest request was answered 2xx: its events are published.
    pub fn accept(&mut self) -> Option<Sent> {
        let s = self.inflight.pop_front()?;
        for pos in s.first..s.first + u64::from(s.events) {
            let k = self.slot(pos);
            self.acked[k] += 1;
            debug_assert!(
                self.acked[k] < self.next[k],
                "topic {} accepted seq {} not below next {}",
                self.topics[k],
                self.acked[k],
                self.next[k]
            );
        }
        Some(s)
    }

    /// Forgets every request in flight (the connection is gone); each topic resumes at
    /// its last accepted seq + 1. Returns how many requests were dropped.
    pub fn drop_all(&mut self) -> u64 {
        let n = self.inflight.len() as u64;
        self.inflight.clear();
        for (next, acked) in self.next.iter_mut().zip(&self.acked) {
            *next = acked + 1;
        }
        n
    }

    /// `(topic, last accepted seq)` of every topic of the connection.
    pub fn acked(&self) -> impl Iterator<Item = (u32, u64)> + '_ {
        self.topics.iter().copied().zip(self.acked.iter().copied())
    }

    fn slot(&self, pos: u64) -> usize {
        (pos % self.topics.len() as u64) as usize
    }
}
