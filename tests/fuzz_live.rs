//! A property test against one live server: random and mutated requests, written in
//! random pieces with small delays. For every connection the server either answers with
//! well-formed HTTP/1.1 responses or closes, within a bounded time; a subscribe that
//! succeeds gets an event-stream head. Afterwards the server is alive, serves a normal
//! round trip, holds no leftover connection, and never panicked.

mod common;
mod hostile_kit;

use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::sample::Index;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};

use common::Server;
use hostile_kit::{parse_responses, round_trip};

/// Short, so that incomplete requests and idle keep-alive connections end quickly.
const TIMEOUT_FLAGS: [&str; 4] = [
    "--handshake-timeout",
    "250ms",
    "--keepalive-timeout",
    "250ms",
];
/// How long one connection may take after its last byte was written: each request on it
/// is answered or times out within 250 ms; the rest is room for a loaded machine.
const CONNECTION_LIMIT: Duration = Duration::from_secs(5);
/// Statuses the server has reasons to send; anything else (a 500) is a bug.
const KNOWN: [u16; 15] = [
    100, 200, 202, 204, 400, 401, 403, 404, 405, 408, 413, 414, 415, 431, 503,
];

fn corpus() -> Vec<Vec<u8>> {
    let ndjson = "{\"topic\":\"fz\",\"data\":\"a\"}\n{\"topic\":[\"fz\",\"b\"],\"event\":\"e\",\"data\":\"b\"}";
    [
        "GET /events?topic=fz HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n".to_string(),
        "GET /events?topic=fz&topic=b&last_event_id=5 HTTP/1.1\r\nHost: t\r\nLast-Event-ID: 3\r\nOrigin: http://x\r\n\r\n".to_string(),
        "POST /publish?topic=fz&event=e HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello".to_string(),
        "POST /publish?topic=fz HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n".to_string(),
        format!(
            "POST /publish HTTP/1.1\r\nHost: t\r\nContent-Type: application/x-ndjson\r\nContent-Length: {}\r\n\r\n{ndjson}",
            ndjson.len()
        ),
        "POST /publish?topic=fz HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc".to_string(),
        "POST /publish?topic=fz HTTP/1.0\r\nConnection: keep-alive\r\nContent-Length: 1\r\n\r\nx".to_string(),
        "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n".to_string(),
        "GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n".to_string(),
        "HEAD /healthz HTTP/1.1\r\nHost: t\r\n\r\n".to_string(),
        "OPTIONS /publish HTTP/1.1\r\nHost: t\r\nOrigin: http://x\r\nAccess-Control-Request-Method: POST\r\n\r\n".to_string(),
    ]
    .into_iter()
    .map(String::into_bytes)
    .collect()
}

/// Pieces of HTTP that matter to a parser, for insertion.
const TOKENS: &[&[u8]] = &[
    b"\r\n",
    b"\n",
    b"\r",
    b"\0",
    b" ",
    b"\t",
    b":",
    b"\r\n\r\n",
    b"\x7f",
    b"\xff",
    b"%",
    b"%00",
    b"?",
    b"&topic=",
    b"HTTP/1.0",
    b"0\r\n\r\n",
    b"Transfer-Encoding: chunked\r\n",
    b"Content-Length: 0\r\n",
    b"Content-Length: 3\r\n",
    b"Content-Length: 99999\r\n",
    b"Expect: 100-continue\r\n",
    b"Connection: close\r\n",
    b"Connection: keep-alive\r\n",
    b"Content-Type: application/x-ndjson\r\n",
    b"Last-Event-ID: 1\r\n",
    b"Host: u\r\n",
    b"GET /events?topic=fz HTTP/1.1\r\nHost: t\r\n\r\n",
    b"POST /publish?topic=fz HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\nx",
];

#[derive(Clone, Debug)]
enum Mutation {
    FlipBit(Index, u8),
    SetByte(Index, u8),
    Insert(Index, Vec<u8>),
    InsertToken(Index, Index),
    Delete(Index, usize),
    Duplicate(Index, usize),
    Truncate(Index),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        2 => (any::<Index>(), 0u8..8).prop_map(|(i, b)| Mutation::FlipBit(i, b)),
        2 => (any::<Index>(), any::<u8>()).prop_map(|(i, b)| Mutation::SetByte(i, b)),
        2 => (any::<Index>(), prop::collection::vec(any::<u8>(), 1..8)).prop_map(|(i, v)| Mutation::Insert(i, v)),
        3 => (any::<Index>(), any::<Index>()).prop_map(|(i, t)| Mutation::InsertToken(i, t)),
        2 => (any::<Index>(), 1usize..16).prop_map(|(i, n)| Mutation::Delete(i, n)),
        1 => (any::<Index>(), 1usize..64).prop_map(|(i, n)| Mutation::Duplicate(i, n)),
        2 => (any::<Index>()).prop_map(Mutation::Truncate),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    let at = |i: &Index, len: usize| if len == 0 { 0 } else { i.index(len) };
    let len = bytes.len();
    match m {
        Mutation::FlipBit(i, bit) if len > 0 => bytes[at(i, len)] ^= 1 << bit,
        Mutation::SetByte(i, b) if len > 0 => bytes[at(i, len)] = *b,
        Mutation::Insert(i, v) => {
            let p = at(i, len + 1);
            bytes.splice(p..p, v.iter().copied());
        }
        Mutation::InsertToken(i, t) => {
            let p = at(i, len + 1);
            bytes.splice(p..p, t.get(TOKENS).iter().copied());
        }
        Mutation::Delete(i, n) if len > 0 => {
            let p = at(i, len);
            bytes.drain(p..(p + n).min(len));
        }
        Mutation::Duplicate(i, n) if len > 0 => {
            let p = at(i, len);
            let piece = bytes[p..(p + n).min(len)].to_vec();
            bytes.splice(p..p, piece);
        }
        Mutation::Truncate(i) => bytes.truncate(at(i, len + 1)),
        _ => {}
    }
}

/// One connection's worth of input.
#[derive(Clone, Debug)]
struct Case {
    bytes: Vec<u8>,
    /// Where to split the bytes into separate writes, and how long to wait after each.
    splits: Vec<(Index, u8)>,
    /// Shut down our write side after the last byte.
    half_close: bool,
}

fn case() -> impl Strategy<Value = Case> {
    let seeds = corpus();
    let n = seeds.len();
    let base = prop_oneof![
        8 => (0..n).prop_map(move |i| corpus()[i].clone()),
        2 => (0..n, 0..n).prop_map(|(a, b)| [corpus()[a].clone(), corpus()[b].clone()].concat()),
        1 => prop::collection::vec(any::<u8>(), 0..256),
    ];
    (
        base,
        prop::collection::vec(mutation(), 0..6),
        prop::collection::vec((any::<Index>(), 0u8..40), 0..4),
        prop::bool::weighted(0.25),
    )
        .prop_map(|(mut bytes, mutations, splits, half_close)| {
            for m in &mutations {
                apply(&mut bytes, m);
            }
            Case {
                bytes,
                splits,
                half_close,
            }
        })
}

/// Runs one case against the server and checks what came back; returns a label of the
/// outcome (the statuses, and how it ended) for the coverage summary.
fn check(server: &Server, case: &Case) -> Result<String, TestCaseError> {
    let mut s = TcpStream::connect(server.addr)
        .map_err(|e| TestCaseError::fail(format!("connect: {e}")))?;
    s.set_nodelay(true).unwrap();
    let mut cuts: Vec<(usize, u8)> = case
        .splits
        .iter()
        .map(|(i, d)| (i.index(case.bytes.len() + 1), *d))
        .collect();
    cuts.sort();
    let mut from = 0;
    for (cut, delay) in cuts.into_iter().chain([(case.bytes.len(), 0)]) {
        // A server that refused early may have closed already: its answer is checked below.
        if s.write_all(&case.bytes[from..cut]).is_err() {
            break;
        }
        from = cut;
        std::thread::sleep(Duration::from_millis(delay.into()));
    }
    if case.half_close {
        let _ = s.shutdown(Shutdown::Write);
    }
    let started = Instant::now();
    let bodiless = case.bytes.windows(5).any(|w| w == b"HEAD ");
    let mut got = Vec::new();
    let mut chunk = [0u8; 16384];
    let mut reset = false;
    // Read until the close, or until an event stream's head: that one stays open.
    loop {
        s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
        match std::io::Read::read(&mut s, &mut chunk) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                reset = true;
                break;
            }
            Err(_) => {}
        }
        let parsed = parse_responses(&got, bodiless).map_err(TestCaseError::fail)?;
        if parsed.streaming {
            check_responses(&parsed.responses)?;
            return Ok(label(&parsed.responses, "stream"));
        }
        prop_assert!(
            started.elapsed() < CONNECTION_LIMIT,
            "no close after {:?}; got {:?}",
            started.elapsed(),
            String::from_utf8_lossy(&got)
        );
    }
    let parsed = parse_responses(&got, bodiless).map_err(TestCaseError::fail)?;
    prop_assert_eq!(
        parsed.rest,
        0,
        "a response cut short: {:?}",
        String::from_utf8_lossy(&got)
    );
    check_responses(&parsed.responses)?;
    Ok(label(
        &parsed.responses,
        if reset { "reset" } else { "close" },
    ))
}

fn label(responses: &[hostile_kit::Response], end: &str) -> String {
    let statuses: Vec<String> = responses.iter().map(|r| r.status.to_string()).collect();
    format!("{} {end}", statuses.join(","))
}

/// Statuses the server can mean, and nothing after a `Connection: close`.
fn check_responses(responses: &[hostile_kit::Response]) -> Result<(), TestCaseError> {
    for (i, r) in responses.iter().enumerate() {
        prop_assert!(
            KNOWN.contains(&r.status),
            "unexpected status in {:?}",
            r.head
        );
        let closing =
            common::header(&r.head, "connection").is_some_and(|v| v.eq_ignore_ascii_case("close"));
        prop_assert!(
            !closing || i + 1 == responses.len() || r.is_event_stream(),
            "a response after Connection: close: {responses:?}"
        );
        if r.is_event_stream() {
            prop_assert_eq!(i + 1, responses.len(), "the stream is the last response");
        }
    }
    Ok(())
}

#[test]
fn random_and_mutated_requests_get_well_formed_answers_or_a_close() {
    let mut args = vec!["--workers", "2"];
    args.extend(TIMEOUT_FLAGS);
    let server = Server::start(&args);
    let config = Config {
        cases: 300,
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(0x7269_6e67_6361_7374),
        max_shrink_iters: 200,
        max_shrink_time: 60_000,
        ..Config::default()
    };
    let started = Instant::now();
    let mut runner = TestRunner::new(config);
    let outcomes = std::sync::Mutex::new(std::collections::BTreeMap::<String, usize>::new());
    let result = runner.run(&case(), |case| {
        let outcome = check(&server, &case)?;
        *outcomes.lock().unwrap().entry(outcome).or_default() += 1;
        Ok(())
    });
    eprintln!(
        "fuzz_live: {:?}; outcomes {:?}",
        started.elapsed(),
        outcomes.lock().unwrap()
    );
    if let Err(e) = result {
        panic!("{e}\nserver log:\n{}", server.log());
    }

    // Still alive, still serving, nothing left over, never panicked.
    assert!(server_alive(&server), "the server exited: {}", server.log());
    round_trip(&server, "after-fuzz", "still here");
    common::eventually("every fuzz connection released", || {
        server.metric("ringcast_connections") == 1
    });
    let log = server.log();
    assert!(!log.contains("panicked"), "{log}");
}

fn server_alive(server: &Server) -> bool {
    let status =
        std::fs::read_to_string(format!("/proc/{}/stat", server.pid())).unwrap_or_default();
    // The state follows the command name in parentheses; Z is a zombie (exited).
    status
        .rsplit_once(") ")
        .is_some_and(|(_, rest)| !rest.starts_with('Z') && !rest.starts_with('X'))
}

/// The checker above is only as good as its response reader: it must refuse what a
/// broken server could send, so that the property can fail.
#[test]
fn the_response_reader_refuses_malformed_answers() {
    let ok: [&[u8]; 5] = [
        b"HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\n{}",
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\nretry: 3000\n\n",
        b"HTTP/1.1 204 No Content\r\nAllow: POST\r\n\r\n",
        b"",
    ];
    for bytes in ok {
        let parsed = parse_responses(bytes, false).unwrap();
        assert!(parsed.rest == 0 || parsed.streaming, "{bytes:?}");
    }
    let bad: [&[u8]; 10] = [
        b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 2000 OK\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nBad Name: x\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nX: a\0b\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\nx",
        b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n",
        b"HTTP/1.1 400 Bad Request\r\n\r\nno length",
        b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nxy",
        b"garbage",
    ];
    for bytes in bad {
        let refused = match parse_responses(bytes, false) {
            Err(_) => true,
            Ok(parsed) => parsed.rest != 0 && !parsed.streaming,
        };
        assert!(refused, "accepted {:?}", String::from_utf8_lossy(bytes));
    }
    // A cut-short body is left over, not accepted.
    let parsed = parse_responses(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab", false).unwrap();
    assert!(parsed.responses.is_empty() && parsed.rest > 0);
}
