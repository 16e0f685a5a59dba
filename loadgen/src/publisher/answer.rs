//! Answers to publishes: one response framed off the front of the bytes read
//! ([`complete`]), matched to the oldest request in flight ([`settle`]), and counted
//! ([`Tally`]).

use crate::hist::{self, Hist};
use crate::response::{self, Body};
use crate::stats::Failures;
use crate::Status;

use super::window::Window;

/// What the publisher's connections did, summed over them.
#[derive(Debug, Clone)]
pub struct Tally {
    /// Events in requests answered 2xx.
    pub events: u64,
    /// Requests written, whatever became of them.
    pub requests_sent: u64,
    /// Requests answered 2xx.
    pub requests_accepted: u64,
    /// Failed requests (and connects) by kind.
    pub errors: Failures,
    /// Send-to-answer time of accepted requests (µs).
    pub response: Hist,
    /// From a request's stamp to its write returning (µs): how long loadgen itself, or
    /// the kernel's send, held the requests before the server could see them.
    pub write: Hist,
    /// When the last answer arrived, for the achieved rate.
    pub last_answer_ns: u64,
}

impl Tally {
    pub fn new(t0_ns: u64) -> Tally {
        Tally {
            events: 0,
            requests_sent: 0,
            requests_accepted: 0,
            errors: Failures::default(),
            response: hist::new_hist(),
            write: hist::new_hist(),
            last_answer_ns: t0_ns,
        }
    }

    /// The connection is gone: every request in flight failed with `kind`.
    pub fn fail(&mut self, window: &mut Window, kind: &str) {
        self.errors.add_n(kind, window.drop_all());
    }
}

/// Matches every complete answer at the front of `acc` to the oldest request in flight,
/// at time `now`; `eof`: the server has closed its side. Returns whether the
/// connection can carry more requests. A failed answer (not 2xx) with requests behind
/// it ends the connection, so that every topic resumes at its last accepted seq + 1.
/// When the connection ends, every request still in flight has been counted as failed:
/// `abandoned` behind a failed answer, else `closed` (or `bad_response`), so each
/// request is counted exactly once.
pub fn settle(acc: &mut Vec<u8>, eof: bool, w: &mut Window, t: &mut Tally, now: u64) -> bool {
    loop {
        if w.is_empty() {
            // Bytes nobody asked for: the answer stream is out of step.
            return acc.is_empty() && !eof;
        }
        let (status, keep_alive) = match complete(acc, eof) {
            Ok(Some(answer)) => answer,
            Ok(None) if eof => {
                t.fail(w, "closed");
                return false;
            }
            Ok(None) => return true,
            Err(kind) => {
                t.fail(w, &kind);
                return false;
            }
        };
        t.last_answer_ns = now;
        if !(200..300).contains(&status) {
            // Its seqs are sent again, in order; any later seqs of its topics in flight
            // behind it must go again too, so they are dropped with the connection (the
            // server may have published them already).
            t.errors.add(&format!("http_{status}"));
            let behind = w.drop_all() - 1;
            if behind == 0 && keep_alive {
                continue; // nothing behind it: keep the connection, no reconnect churn
            }
            t.errors.add_n("abandoned", behind);
            return false;
        }
        if let Some(s) = w.accept() {
            t.events += u64::from(s.events);
            t.requests_accepted += 1;
            hist::record_ns(&mut t.response, now.saturating_sub(s.sent_ns));
        }
        if !keep_alive {
            t.fail(w, "closed");
            return false;
        }
    }
}

/// A complete response at the front of `acc`, consumed: `(status, keep_alive)`.
pub fn complete(acc: &mut Vec<u8>, eof: bool) -> Result<Option<(u16, bool)>, String> {
    let head = match response::parse_head(acc) {
        Ok(Status::Complete(h)) => h,
        Ok(Status::Partial) => return Ok(None),
        Err(_) => return Err("bad_response".into()),
    };
    let body = &acc[head.len..];
    let done = match head.body {
        Body::Length(n) => {
            (body.len() as u64 >= n).then_some((head.len + n as usize, head.keep_alive))
        }
        // Chunked answers are decoded only to find their end; the connection is then
        // re-opened rather than tracking where the next response starts.
        Body::Chunked => {
            let mut copy = body.to_vec();
            let mut d = response::Dechunker::new();
            d.decode(&mut copy).map_err(|_| "bad_response".to_owned())?;
            d.is_done().then_some((acc.len(), false))
        }
        Body::UntilClose => eof.then_some((acc.len(), false)),
    };
    Ok(done.map(|(used, keep)| {
        acc.drain(..used);
        (head.status, keep)
    }))
}
