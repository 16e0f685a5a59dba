//! The publisher: keep-alive connections on one monoio runtime, each owning a set of
//! topics and sending that set's events one at a time, in seq order, on an open-loop
//! schedule (event m of a connection is due at t0 + m / rate). Every event's data
//! carries its seq and its send time. A seq counts as published only on a 2xx answer.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpStream;

use crate::hist::{self, Hist};
use crate::plan::{Plan, Publish};
use crate::response::{self, Body};
use crate::stats::{io_kind, Failures};
use crate::sys::mono_ns;
use crate::{payload, Status};

/// Pause after a failed publisher connect, so a refusing server is not hammered.
const RETRY_PAUSE: Duration = Duration::from_millis(50);
/// Longest a publish exchange may take before the connection is dropped.
const EXCHANGE_TIMEOUT: Duration = Duration::from_secs(5);

/// Shared with the parent's main thread while publishing.
#[derive(Debug, Default)]
pub struct Live {
    /// Events accepted so far (for the progress line).
    pub sent: AtomicU64,
    /// Set to end publishing early.
    pub stop: AtomicBool,
}

/// What publishing did.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// Events the server accepted (2xx).
    pub sent: u64,
    /// Last accepted seq per topic (0: none).
    pub final_seq: Vec<u64>,
    /// Failed publishes by kind (`http_<status>`, `refused`, `timeout`, ...).
    pub errors: Failures,
    /// From t0 to the last answer.
    pub elapsed_s: f64,
    /// Request-to-answer time of accepted publishes (µs).
    pub response: Hist,
}

struct Ctx {
    plan: Arc<Plan>,
    publish: Publish,
    t0_ns: u64,
    end_ns: u64,
    live: Arc<Live>,
    final_seq: RefCell<Vec<u64>>,
    errors: RefCell<Failures>,
    response: RefCell<Hist>,
    last_answer_ns: std::cell::Cell<u64>,
}

/// Publishes from `t0_ns` until `end_ns` (CLOCK_MONOTONIC) or until told to stop.
pub fn run(plan: Arc<Plan>, t0_ns: u64, end_ns: u64, live: Arc<Live>) -> Result<Outcome, String> {
    let publish = plan
        .publish
        .clone()
        .ok_or("this scenario does not publish")?;
    let mut rt = monoio::RuntimeBuilder::<monoio::FusionDriver>::new()
        .enable_timer()
        .build()
        .map_err(|e| format!("cannot start the publisher runtime: {e}"))?;
    let ctx = Rc::new(Ctx {
        final_seq: RefCell::new(vec![0; plan.topics as usize]),
        plan,
        publish,
        t0_ns,
        end_ns,
        live,
        errors: RefCell::new(Failures::default()),
        response: RefCell::new(hist::new_hist()),
        last_answer_ns: std::cell::Cell::new(t0_ns),
    });
    rt.block_on(async {
        let tasks: Vec<_> = (0..ctx.publish.conns)
            .map(|j| monoio::spawn(connection(ctx.clone(), j)))
            .collect();
        for t in tasks {
            t.await;
        }
    });
    let final_seq = ctx.final_seq.borrow().clone();
    let errors = ctx.errors.borrow().clone();
    let response = ctx.response.borrow().clone();
    Ok(Outcome {
        sent: final_seq.iter().sum(),
        final_seq,
        errors,
        elapsed_s: (ctx.last_answer_ns.get().saturating_sub(t0_ns)) as f64 / 1e9,
        response,
    })
}

/// One publisher connection: its topics are `j, j + conns, j + 2 * conns, ...`.
async fn connection(ctx: Rc<Ctx>, j: u32) {
    let topics: Vec<u32> = (j..ctx.plan.topics)
        .step_by(ctx.publish.conns as usize)
        .collect();
    let names: Vec<String> = topics.iter().map(|&t| ctx.plan.topic_name(t)).collect();
    let rate = ctx.publish.rate * topics.len() as f64 / f64::from(ctx.plan.topics);
    let mut conn: Option<Conn> = None;
    let mut attempts = 0u64;
    loop {
        let now = mono_ns();
        if now >= ctx.end_ns || ctx.live.stop.load(Relaxed) || topics.is_empty() {
            return;
        }
        if let Some(wait) = ahead_of_schedule(ctx.t0_ns, now, rate, attempts) {
            monoio::time::sleep(wait).await;
            continue;
        }
        let Some(c) = conn.as_mut() else {
            match TcpStream::connect_addr(ctx.publish.endpoint.addr).await {
                Ok(s) => conn = Some(Conn::new(s)),
                Err(e) => {
                    ctx.errors.borrow_mut().add_io(&e);
                    monoio::time::sleep(RETRY_PAUSE).await;
                }
            }
            continue;
        };
        let k = (attempts % topics.len() as u64) as usize;
        attempts += 1;
        if !publish_one(&ctx, c, topics[k], &names[k]).await {
            conn = None;
        }
    }
}

/// `Some(wait)` when the next event is not due yet (rate 0: never ahead).
fn ahead_of_schedule(t0_ns: u64, now: u64, rate: f64, sent: u64) -> Option<Duration> {
    if rate <= 0.0 {
        return None;
    }
    let due_at = t0_ns + (sent as f64 * 1e9 / rate) as u64;
    (due_at > now).then(|| Duration::from_nanos(due_at - now).max(Duration::from_micros(200)))
}

/// Publishes the next seq of `topic`; returns whether the connection is still usable.
async fn publish_one(ctx: &Ctx, c: &mut Conn, topic: u32, name: &str) -> bool {
    let seq = ctx.final_seq.borrow()[topic as usize] + 1;
    let sent_ns = mono_ns();
    c.build(&ctx.publish, name, seq, sent_ns);
    let answer = monoio::time::timeout(EXCHANGE_TIMEOUT, c.exchange()).await;
    let now = mono_ns();
    let (status, keep_alive) = match answer {
        Err(_) => {
            ctx.errors.borrow_mut().add("timeout");
            return false;
        }
        Ok(Err(kind)) => {
            ctx.errors.borrow_mut().add(&kind);
            return false;
        }
        Ok(Ok(a)) => a,
    };
    ctx.last_answer_ns.set(now);
    if (200..300).contains(&status) {
        ctx.final_seq.borrow_mut()[topic as usize] = seq;
        ctx.live.sent.fetch_add(1, Relaxed);
        hist::record_ns(&mut ctx.response.borrow_mut(), now - sent_ns);
    } else {
        ctx.errors.borrow_mut().add(&format!("http_{status}"));
    }
    keep_alive
}

/// A keep-alive publisher connection with its reused buffers.
struct Conn {
    stream: TcpStream,
    /// The request being sent (reused).
    req: Vec<u8>,
    /// Scratch for event data and body expansion (reused).
    data: Vec<u8>,
    body: Vec<u8>,
    /// Read target; monoio reads into an owned buffer from its start.
    rbuf: Vec<u8>,
    /// Response bytes not yet consumed.
    acc: Vec<u8>,
}

impl Conn {
    fn new(stream: TcpStream) -> Conn {
        let _ = stream.set_nodelay(true);
        Conn {
            stream,
            req: Vec::new(),
            data: Vec::new(),
            body: Vec::new(),
            rbuf: Vec::with_capacity(8192),
            acc: Vec::new(),
        }
    }

    fn build(&mut self, p: &Publish, topic: &str, seq: u64, sent_ns: u64) {
        payload::encode(seq, sent_ns, p.payload, &mut self.data);
        self.req.clear();
        write_request(
            p,
            topic.as_bytes(),
            &self.data,
            &mut self.body,
            &mut self.req,
        );
    }

    /// Sends the built request and reads one response: `(status, keep_alive)`.
    async fn exchange(&mut self) -> Result<(u16, bool), String> {
        let (res, req) = self.stream.write_all(std::mem::take(&mut self.req)).await;
        self.req = req;
        res.map_err(|e| io_kind(&e))?;
        loop {
            if let Some(done) = complete(&mut self.acc, false)? {
                return Ok(done);
            }
            let (res, buf) = self.stream.read(std::mem::take(&mut self.rbuf)).await;
            self.rbuf = buf;
            match res.map_err(|e| io_kind(&e))? {
                0 => return complete(&mut self.acc, true)?.ok_or_else(|| "closed".to_owned()),
                n => self.acc.extend_from_slice(&self.rbuf[..n]),
            }
        }
    }
}

/// Appends the publish request for `topic` carrying `data` to `out`; `body` is scratch
/// for the expanded body template. The admission prober sends the same request.
pub fn write_request(
    p: &Publish,
    topic: &[u8],
    data: &[u8],
    body: &mut Vec<u8>,
    out: &mut Vec<u8>,
) {
    body.clear();
    p.body.expand(topic, data, body);
    out.extend_from_slice(p.method.as_bytes());
    out.push(b' ');
    p.endpoint.path.expand(topic, data, out);
    out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    out.extend_from_slice(p.endpoint.host.as_bytes());
    out.extend_from_slice(format!("\r\nContent-Length: {}\r\n", body.len()).as_bytes());
    for h in &p.headers {
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedule_is_open_loop() {
        assert_eq!(
            ahead_of_schedule(0, 5, 0.0, 1000),
            None,
            "rate 0 never waits"
        );
        // 1000/s: event 10 is due at 10 ms.
        assert_eq!(
            ahead_of_schedule(0, 9_000_000, 1000.0, 10),
            Some(Duration::from_millis(1))
        );
        assert_eq!(
            ahead_of_schedule(0, 11_000_000, 1000.0, 10),
            None,
            "behind: send at once"
        );
    }

    #[test]
    fn responses_are_framed() {
        let mut acc =
            b"HTTP/1.1 202 Accepted\r\nContent-Length: 8\r\n\r\n{\"id\":1}HTTP/1.1 5".to_vec();
        assert_eq!(complete(&mut acc, false), Ok(Some((202, true))));
        assert_eq!(acc, b"HTTP/1.1 5");
        let mut acc =
            b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n".to_vec();
        assert_eq!(complete(&mut acc, false), Ok(None));
        acc.extend_from_slice(b"0\r\n\r\n");
        assert_eq!(complete(&mut acc, false), Ok(Some((201, false))));
        let mut acc = b"HTTP/1.0 200 OK\r\n\r\nqueued".to_vec();
        assert_eq!(complete(&mut acc, false), Ok(None));
        assert_eq!(complete(&mut acc, true), Ok(Some((200, false))));
        assert_eq!(
            complete(&mut b"HTTP/9 200\r\n\r\n".to_vec(), false),
            Err("bad_response".into())
        );
    }
}
