//! What the subscribers count: plain counters per runtime thread (no atomics on the
//! receive path), summed across threads and processes; failures keyed by kind; the
//! latency histograms that go with them.

use std::collections::BTreeMap;
use std::io;

use serde::{Deserialize, Serialize};

use crate::hist::{self, Hist, HistDump};

/// Counts of failed connection attempts (or publishes) by kind: `refused`, `reset`,
/// `timeout`, `closed` (before a response), `bad_response`, `http_<status>`, or
/// `os: <message>` for anything else.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failures(pub BTreeMap<String, u64>);

impl Failures {
    pub fn add(&mut self, kind: &str) {
        self.add_n(kind, 1);
    }

    /// Counts `n` failures of `kind` (none: no entry).
    pub fn add_n(&mut self, kind: &str, n: u64) {
        if n > 0 {
            *self.0.entry(kind.to_owned()).or_default() += n;
        }
    }

    pub fn add_io(&mut self, e: &io::Error) {
        self.add(&io_kind(e));
    }

    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }

    pub fn merge(&mut self, other: &Failures) {
        for (k, v) in &other.0 {
            *self.0.entry(k.clone()).or_default() += v;
        }
    }
}

/// The failure kind of an I/O error; a TLS failure is `tls: <rustls's error>`.
pub fn io_kind(e: &io::Error) -> String {
    if let Some(tls) = e.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) {
        return format!("tls: {tls}");
    }
    match e.raw_os_error() {
        Some(libc::ECONNREFUSED) => "refused".into(),
        Some(libc::ECONNRESET | libc::EPIPE | libc::ECONNABORTED) => "reset".into(),
        Some(libc::ETIMEDOUT) => "timeout".into(),
        Some(libc::EADDRNOTAVAIL) => "no_source_port".into(),
        Some(libc::EMFILE | libc::ENFILE) => "fd_limit".into(),
        _ if e.kind() == io::ErrorKind::TimedOut => "timeout".into(),
        // Only TLS raises it: the server closed during the handshake.
        _ if e.kind() == io::ErrorKind::UnexpectedEof => "closed".into(),
        _ => format!("os: {e}"),
    }
}

/// Declares the counter struct and its merge: every field is a sum, except those
/// listed in the `max` group, which keep the largest value.
macro_rules! counters {
    ($(#[$m:meta])* pub struct $name:ident { $($(#[$fm:meta])* $f:ident,)* } max { $($(#[$xm:meta])* $x:ident,)* }) => {
        $(#[$m])*
        pub struct $name {
            $($(#[$fm])* pub $f: u64,)*
            $($(#[$xm])* pub $x: u64,)*
        }
        impl $name {
            pub fn merge(&mut self, o: &$name) {
                $(self.$f += o.$f;)*
                $(self.$x = self.$x.max(o.$x);)*
            }
        }
    };
}

counters! {
    /// Subscriber-side counters of one thread, one process, or the whole run.
    #[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
    pub struct Counters {
        /// First connection attempts (one per subscriber).
        attempted,
        /// Subscribers whose first attempt got `200` and a stream.
        established,
        /// Of those, subscribers first connected after publishing began (the connect
        /// phase ran out of time): losses count only from their first event.
        late_joiners,
        /// Live connections the server closed or reset without loadgen asking, slow
        /// subscribers excepted (those are `evicted`).
        dropped_by_server,
        /// Events carrying loadgen's payload, received by non-slow subscribers.
        events,
        /// Body bytes received (after chunked decoding).
        bytes,
        /// Comment lines (heartbeats).
        heartbeats,
        /// `retry:` hints.
        retry_hints,
        /// `event: gap` notices (ringcast: history did not reach back).
        gap_frames,
        /// Events whose data loadgen did not write (not counted as events).
        foreign_events,
        /// Events whose seq was not above the last one seen on that subscriber.
        duplicates,
        /// Events non-slow subscribers should have received: for each, the last seq
        /// published on its topic.
        expected,
        /// Seqs never received: holes, plus the tail missing at the end (non-slow).
        lost,
        /// Non-slow subscribers with at least one lost event.
        subs_with_loss,
        /// Re-established connections (reconnect scenario).
        reconnects,
        /// Resumed connections whose first event skipped seqs.
        resumes_with_gap,
        /// Seqs skipped at those resumes.
        resume_gap_events,
        /// Slow subscribers (slow scenario).
        slow_subs,
        /// Slow subscribers the server closed (evicted).
        evicted,
        /// Events slow subscribers received.
        slow_events,
        /// Seqs slow subscribers never received.
        slow_lost,
    }
    max {
        /// Most events lost by one non-slow subscriber.
        max_lost_per_sub,
        /// CLOCK_MONOTONIC time of the last event received.
        last_event_ns,
    }
}

/// Latency histograms of one thread (µs).
#[derive(Debug, Clone)]
pub struct Hists {
    /// Publish-to-receive latency. In `slow`, only of the other subscribers and only
    /// for events sent before the slow ones stop reading.
    pub latency: Hist,
    /// `slow` only: the other subscribers' latency once the slow ones stopped reading.
    pub latency_slow_phase: Hist,
    /// First connect: from starting the connect to a complete response head.
    pub connect: Hist,
    /// Re-connect with Last-Event-ID: from dropping to a complete response head.
    pub reconnect: Hist,
}

impl Default for Hists {
    fn default() -> Self {
        Hists {
            latency: hist::new_hist(),
            latency_slow_phase: hist::new_hist(),
            connect: hist::new_hist(),
            reconnect: hist::new_hist(),
        }
    }
}

/// [`Hists`] as they travel between processes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct HistDumps {
    pub latency: HistDump,
    pub latency_slow_phase: HistDump,
    pub connect: HistDump,
    pub reconnect: HistDump,
}

impl Hists {
    pub fn add(&mut self, o: &Hists) {
        for (a, b) in self.pairs_mut(o) {
            // Same bounds by construction; a mismatch cannot happen.
            let _ = a.add(b);
        }
    }

    fn pairs_mut<'a>(&'a mut self, o: &'a Hists) -> [(&'a mut Hist, &'a Hist); 4] {
        [
            (&mut self.latency, &o.latency),
            (&mut self.latency_slow_phase, &o.latency_slow_phase),
            (&mut self.connect, &o.connect),
            (&mut self.reconnect, &o.reconnect),
        ]
    }

    pub fn dump(&self) -> HistDumps {
        HistDumps {
            latency: hist::dump(&self.latency),
            latency_slow_phase: hist::dump(&self.latency_slow_phase),
            connect: hist::dump(&self.connect),
            reconnect: hist::dump(&self.reconnect),
        }
    }

    pub fn merge_dumps(&mut self, d: &HistDumps) {
        hist::merge(&mut self.latency, &d.latency);
        hist::merge(&mut self.latency_slow_phase, &d.latency_slow_phase);
        hist::merge(&mut self.connect, &d.connect);
        hist::merge(&mut self.reconnect, &d.reconnect);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_sum_and_max() {
        let mut a = Counters {
            events: 5,
            max_lost_per_sub: 3,
            last_event_ns: 10,
            ..Default::default()
        };
        let b = Counters {
            events: 7,
            lost: 2,
            max_lost_per_sub: 1,
            last_event_ns: 20,
            ..Default::default()
        };
        a.merge(&b);
        assert_eq!(
            (a.events, a.lost, a.max_lost_per_sub, a.last_event_ns),
            (12, 2, 3, 20)
        );
    }

    #[test]
    fn failure_kinds() {
        let mut f = Failures::default();
        f.add_io(&io::Error::from_raw_os_error(libc::ECONNREFUSED));
        f.add_io(&io::Error::from_raw_os_error(libc::ECONNRESET));
        f.add_io(&io::Error::from_raw_os_error(libc::ECONNREFUSED));
        f.add("http_503");
        let mut g = Failures::default();
        g.add("http_503");
        f.merge(&g);
        assert_eq!(f.0.get("refused"), Some(&2));
        assert_eq!(f.0.get("reset"), Some(&1));
        assert_eq!(f.0.get("http_503"), Some(&2));
        assert_eq!(f.total(), 5);
    }

    #[test]
    fn tls_failure_kinds() {
        let bad_cert = rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer);
        let e = io::Error::new(io::ErrorKind::InvalidData, bad_cert);
        assert_eq!(io_kind(&e), "tls: invalid peer certificate: UnknownIssuer");
        let eof = io::Error::new(io::ErrorKind::UnexpectedEof, "closed during the handshake");
        assert_eq!(io_kind(&eof), "closed");
    }
}
