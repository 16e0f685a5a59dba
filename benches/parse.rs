//! Our request-head parser against httparse, one criterion group per request.
//!
//! Both sides do the server's whole job: parse the head and extract the headers the
//! server acts on (Host, Content-Length, Transfer-Encoding, Connection, Expect,
//! Last-Event-ID, Authorization, Cookie, Origin, Content-Type, the two CORS preflight
//! headers). httparse gets its fastest set-up: uninitialised header slots (as hyper uses
//! it), run-time SIMD detection, and the same length-then-name dispatch we use. Each
//! timed closure asserts the parse is complete with the expected head length.

use std::hint::black_box;
use std::mem::MaybeUninit;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use ringcast::http::{parse, Limits, Status};

// Shared with the differential test; the bench uses four of its requests.
#[allow(dead_code)]
#[path = "../tests/parser_corpus/requests.rs"]
mod requests;

/// What the server needs from a head, as the httparse side extracts it.
#[derive(Default)]
struct Known<'a> {
    host: Option<&'a [u8]>,
    content_length: Option<u64>,
    chunked: bool,
    connection_close: bool,
    connection_keep_alive: bool,
    expect_continue: bool,
    last_event_id: Option<&'a [u8]>,
    authorization: Option<&'a [u8]>,
    cookie: Option<&'a [u8]>,
    origin: Option<&'a [u8]>,
    content_type: Option<&'a [u8]>,
    access_control_request_method: Option<&'a [u8]>,
    access_control_request_headers: Option<&'a [u8]>,
}

/// httparse, then a pass over its header slice for the known headers.
fn with_httparse(buf: &[u8]) -> Option<(usize, Known<'_>)> {
    let mut slots = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; 100];
    let mut req = httparse::Request::new(&mut []);
    let head_len = match req.parse_with_uninit_headers(buf, &mut slots) {
        Ok(httparse::Status::Complete(n)) => n,
        _ => return None,
    };
    let mut k = Known::default();
    for h in req.headers.iter() {
        let (name, value) = (h.name.as_bytes(), h.value);
        let is = |known: &str| name.eq_ignore_ascii_case(known.as_bytes());
        match name.len() {
            4 if is("host") => k.host = Some(value),
            6 if is("cookie") => k.cookie = k.cookie.or(Some(value)),
            6 if is("origin") => k.origin = k.origin.or(Some(value)),
            6 if is("expect") => k.expect_continue |= value.eq_ignore_ascii_case(b"100-continue"),
            10 if is("connection") => {
                for token in value.split(|&b| b == b',') {
                    let token = token.trim_ascii();
                    k.connection_close |= token.eq_ignore_ascii_case(b"close");
                    k.connection_keep_alive |= token.eq_ignore_ascii_case(b"keep-alive");
                }
            }
            12 if is("content-type") => k.content_type = k.content_type.or(Some(value)),
            13 if is("last-event-id") => k.last_event_id = k.last_event_id.or(Some(value)),
            13 if is("authorization") => k.authorization = k.authorization.or(Some(value)),
            14 if is("content-length") => {
                k.content_length = Some(std::str::from_utf8(value).ok()?.parse().ok()?);
            }
            17 if is("transfer-encoding") => k.chunked = value.eq_ignore_ascii_case(b"chunked"),
            29 if is("access-control-request-method") => {
                k.access_control_request_method = Some(value);
            }
            30 if is("access-control-request-headers") => {
                k.access_control_request_headers = Some(value);
            }
            _ => {}
        }
    }
    Some((head_len, k))
}

fn bench_request(c: &mut Criterion, name: &str, buf: &[u8]) {
    let limits = Limits::new();
    let head_len = buf.len();
    // Outside the timed part: both sides agree on what this request is.
    let Ok(Status::Complete(ours)) = parse(buf, &limits) else {
        panic!("{name}: ours did not parse");
    };
    let (theirs_len, theirs) = with_httparse(buf).expect("httparse did not parse");
    assert_eq!((ours.head_len, theirs_len), (head_len, head_len), "{name}");
    assert_eq!(ours.headers.host, theirs.host, "{name}");
    assert_eq!(ours.headers.content_length, theirs.content_length, "{name}");
    assert_eq!(ours.headers.cookie, theirs.cookie, "{name}");
    assert_eq!(ours.headers.last_event_id, theirs.last_event_id, "{name}");

    let mut group = c.benchmark_group(format!("parse/{name}"));
    group.throughput(Throughput::Bytes(buf.len() as u64));
    group.bench_function("ringcast", |b| {
        b.iter(|| {
            let Ok(Status::Complete(h)) = parse(black_box(buf), &limits) else {
                panic!("not complete");
            };
            assert_eq!(h.head_len, head_len);
            let k = h.headers;
            black_box((k.host, k.content_length, k.last_event_id, k.cookie))
        })
    });
    group.bench_function("httparse", |b| {
        b.iter(|| {
            let (len, known) = with_httparse(black_box(buf)).expect("not complete");
            assert_eq!(len, head_len);
            black_box((
                known.host,
                known.content_length,
                known.last_event_id,
                known.cookie,
            ))
        })
    });
    group.finish();
}

fn benches(c: &mut Criterion) {
    bench_request(c, "subscribe_min", requests::SUBSCRIBE_MIN);
    bench_request(c, "eventsource_chromium", requests::CHROMIUM_EVENTSOURCE);
    bench_request(c, "publish_content_length", requests::CURL_PUBLISH);
    bench_request(c, "forty_headers", &requests::forty_headers());
}

criterion_group!(parse_benches, benches);
criterion_main!(parse_benches);
