//! Hostile bytes in the request head (issue 7): control bytes and non-ASCII where they do
//! not belong, heads and lines at and past their caps, and garbage pipelined behind a
//! valid publish. Each is answered with its status and a close, and publishes nothing.

mod common;
mod hostile_kit;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{status_of, Server};
use hostile_kit::{assert_silent, published, read_until_close, refused, watch};

const QUIET: Duration = Duration::from_millis(300);

/// A publish of `x` to topic `ctl` with `method`, `target` and one extra field line
/// `name: value` spliced in as raw bytes.
fn publish_parts(method: &[u8], target: &[u8], name: &[u8], value: &[u8]) -> Vec<u8> {
    let mut r = Vec::new();
    for part in [
        method,
        b" ",
        target,
        b" HTTP/1.1\r\nHost: t\r\n",
        name,
        b": ",
        value,
    ] {
        r.extend_from_slice(part);
    }
    r.extend_from_slice(b"\r\nContent-Length: 1\r\nConnection: close\r\n\r\nx");
    r
}

fn with_byte(prefix: &[u8], b: u8, suffix: &[u8]) -> Vec<u8> {
    [prefix, &[b], suffix].concat()
}

/// NUL, the other controls and DEL are refused in the method, the target, a field name
/// and a field value; HTAB only where the grammar allows whitespace (a field value).
#[test]
fn control_bytes_anywhere_in_the_head_are_refused() {
    let server = Server::start(&["--workers", "2"]);
    let mut sub = watch(&server, "ctl");
    let (m, t, n, v) = (
        &b"POST"[..],
        &b"/publish?topic=ctl"[..],
        &b"X-Probe"[..],
        &b"ok"[..],
    );
    let controls = (0u8..0x20).chain([0x7f]);
    let mut requests = Vec::new();
    for b in controls {
        requests.push(publish_parts(&with_byte(b"PO", b, b"ST"), t, n, v));
        requests.push(publish_parts(&with_byte(b"", b, b"POST"), t, n, v));
        requests.push(publish_parts(
            m,
            &with_byte(b"/publish?topic=c", b, b"tl"),
            n,
            v,
        ));
        requests.push(publish_parts(
            m,
            &with_byte(b"/publish?topic=ctl", b, b""),
            n,
            v,
        ));
        requests.push(publish_parts(m, t, &with_byte(b"X-Pr", b, b"obe"), v));
        requests.push(publish_parts(m, t, &with_byte(b"X-Probe", b, b""), v));
        if b != b'\t' {
            requests.push(publish_parts(m, t, n, &with_byte(b"o", b, b"k")));
            requests.push(publish_parts(m, t, n, &with_byte(b"ok", b, b"")));
        }
    }
    for request in &requests {
        refused(&server, request, 400);
    }
    // Whitespace where the grammar has none.
    for request in [
        &b"POST\t/publish?topic=ctl HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\nx"[..],
        b"POST /publish?topic=ctl\tHTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\nx",
        b"POST  /publish?topic=ctl HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\nx",
        b"POST /publish?topic=ctl  HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\nx",
        b" POST /publish?topic=ctl HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\nx",
        b"POST /publish?topic=ctl HTTP/1.1 \r\nHost: t\r\nContent-Length: 1\r\n\r\nx",
    ] {
        refused(&server, request, 400);
    }
    assert_silent(&mut sub, QUIET, "after the control bytes");
    assert_eq!(published(&server), 0);
    // The controls: HTAB inside and around a value, and obs-text, are field-value bytes.
    for value in [&b"o\tk"[..], b"\tok\t", b"caf\xc3\xa9", b"\x80\xff"] {
        let raw = common::exchange(server.addr, &publish_parts(m, t, n, value));
        assert_eq!(status_of(&raw), 202, "{value:?}: {raw}");
        assert_eq!(sub.next().data, "x");
    }
    assert_eq!(published(&server), 4);
}

/// Bytes above 0x7F are refused in the target (raw or as UTF-8), the method and a field
/// name; percent-encoded, the same bytes are just a topic name that is not allowed.
#[test]
fn non_ascii_in_the_target_method_or_name_is_refused() {
    let server = Server::start(&["--workers", "1"]);
    let mut sub = watch(&server, "na");
    let (m, t, n, v) = (
        &b"POST"[..],
        &b"/publish?topic=na"[..],
        &b"X-Probe"[..],
        &b"ok"[..],
    );
    for b in [0x80u8, 0xa0, 0xc3, 0xe9, 0xfe, 0xff] {
        for request in [
            publish_parts(m, &with_byte(b"/publish?topic=na", b, b""), n, v),
            publish_parts(m, &with_byte(b"/pub", b, b"lish?topic=na"), n, v),
            publish_parts(&with_byte(b"POS", b, b"T"), t, n, v),
            publish_parts(m, t, &with_byte(b"X-", b, b"Probe"), v),
        ] {
            refused(&server, &request, 400);
        }
    }
    refused(
        &server,
        &publish_parts(m, "/publish?topic=caf\u{e9}".as_bytes(), n, v),
        400,
    );
    refused(
        &server,
        &publish_parts(m, "/publish?topic=\u{65e5}".as_bytes(), n, v),
        400,
    );
    refused(
        &server,
        &publish_parts(m, b"/publish?topic=caf%C3%A9", n, v),
        400,
    );
    assert_silent(&mut sub, QUIET, "after the non-ASCII");
    assert_eq!(published(&server), 0);
}

/// A GET /healthz head padded with one header to exactly `len` bytes.
fn head_of_len(len: usize) -> Vec<u8> {
    let start = "GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\nX-Pad: ";
    let end = "\r\n\r\n";
    let pad = len - start.len() - end.len();
    format!("{start}{}{end}", "p".repeat(pad)).into_bytes()
}

/// The caps, rung at the edge: a head of exactly 8 KiB passes and one byte more is 431;
/// a target of exactly 4 KiB passes and one more is 414; a request line that never ends
/// is 414 and a head that never ends 431, once 8 KiB have arrived; 100 field lines pass
/// and 101 are 431.
#[test]
fn head_and_line_caps_hold_at_their_edges() {
    let server = Server::start(&["--workers", "2"]);
    let ok = |request: &[u8]| {
        let raw = common::exchange(server.addr, request);
        assert_eq!(status_of(&raw), 200, "{} bytes: {raw:.200}", request.len());
    };
    ok(&head_of_len(8192));
    refused(&server, &head_of_len(8193), 431);
    refused(&server, &head_of_len(20_000), 431);
    // One field line of almost 8 KiB is fine; the cap is on the head.
    ok(&head_of_len(8000));

    let target = |len: usize| format!("/healthz?pad={}", "q".repeat(len - 13));
    let line = |len: usize| {
        format!(
            "GET {} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
            target(len)
        )
    };
    ok(line(4096).as_bytes());
    refused(&server, line(4097).as_bytes(), 414);
    refused(&server, line(8000).as_bytes(), 414);

    // Never-ending request line, and never-ending field line: the cap answers, not a
    // timeout (the default handshake timeout is 10 s; these must be much quicker).
    let mut endless_line = b"GET /healthz?pad=".to_vec();
    endless_line.resize(20_000, b'q');
    let mut endless_field = b"GET /healthz HTTP/1.1\r\nHost: t\r\nX-Pad: ".to_vec();
    endless_field.resize(20_000, b'p');
    let mut endless_fields = b"GET /healthz HTTP/1.1\r\nHost: t\r\n".to_vec();
    while endless_fields.len() < 20_000 {
        endless_fields.extend_from_slice(b"X-A: b\r\n");
    }
    for (request, status) in [
        (endless_line, 414),
        (endless_field, 431),
        (endless_fields, 431),
    ] {
        let started = Instant::now();
        let mut s = TcpStream::connect(server.addr).unwrap();
        // The server may close while we still write: only its answer matters.
        let _ = s.write_all(&request);
        let (raw, _) = read_until_close(&mut s, common::PATIENCE);
        let raw = String::from_utf8_lossy(&raw);
        assert_eq!(status_of(&raw), status, "{raw}");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
    }

    let fields = |n: usize| {
        let extra: String = (0..n - 2).map(|i| format!("X-{i}: v\r\n")).collect();
        format!("GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n{extra}\r\n")
    };
    ok(fields(100).as_bytes());
    refused(&server, fields(101).as_bytes(), 431);
    refused(&server, fields(1000).as_bytes(), 431);
}

/// A valid publish, then garbage on the same keep-alive connection (in the same write, or
/// a later one): the publish is answered 202 and published once, the garbage 400 and a
/// close.
#[test]
fn garbage_pipelined_after_a_publish_gets_400_after_the_202() {
    let server = Server::start(&["--workers", "2"]);
    let mut sub = watch(&server, "pipe");
    let publish = b"POST /publish?topic=pipe HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\ndata";
    let garbage: [&[u8]; 8] = [
        b"\x00\x01\x02\x03\r\n\r\n",
        b"GARBAGE\r\n\r\n",
        b"GET /events?topic=pipe HTTP/9.9\r\nHost: t\r\n\r\n",
        b"POST /publish?topic=pipe HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nxx",
        b"POST /publish?topic=pipe HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n\r\n0\r\n\r\n",
        b"POST /publish?topic=pipe HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"\xff\xfe\xfd GET / HTTP/1.1\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\nHost: t\r\n Folded: yes\r\n\r\n",
    ];
    let mut ids = Vec::new();
    for (i, junk) in garbage.iter().enumerate() {
        let mut s = TcpStream::connect(server.addr).unwrap();
        if i % 2 == 0 {
            s.write_all(&[&publish[..], junk].concat()).unwrap();
        } else {
            s.write_all(publish).unwrap();
            std::thread::sleep(Duration::from_millis(20));
            s.write_all(junk).unwrap();
        }
        let (raw, _) = read_until_close(&mut s, common::PATIENCE);
        let parsed = hostile_kit::parse_responses(&raw, false).unwrap();
        let statuses: Vec<u16> = parsed.responses.iter().map(|r| r.status).collect();
        assert_eq!(
            statuses,
            [202, 400],
            "{junk:?}: {:?}",
            String::from_utf8_lossy(&raw)
        );
        assert_eq!(parsed.rest, 0);
        let answer = String::from_utf8_lossy(&parsed.responses[0].body).into_owned();
        ids.push(common::id_of(&answer).to_string());
        assert!(parsed.responses[1].head.contains("Connection: close"));
    }
    let got: Vec<String> = sub.take(garbage.len()).into_iter().map(|e| e.id).collect();
    assert_eq!(got, ids, "each valid publish delivered once, in order");
    assert_silent(&mut sub, QUIET, "only the valid publishes");
    assert_eq!(published(&server), garbage.len() as u64);
}

/// The parser rejects a head at its first bad byte, however much of it is still missing
/// (see `http::parse`), and the limits table answers a bare CR or a syntax error with 400.
/// So a head that is wrong from its first bytes is refused at once, without waiting for
/// a blank line that a broken or hostile client may never send, and the connection is
/// not held until the handshake (or keep-alive) timeout and answered 408.
#[test]
fn a_head_bad_from_its_first_bytes_is_refused_without_waiting_for_its_end() {
    let server = Server::start(&[
        "--workers",
        "1",
        "--handshake-timeout",
        "3s",
        "--keepalive-timeout",
        "3s",
    ]);
    let publish =
        &b"POST /publish?topic=early HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\nx"[..];
    let cases: [(&str, Vec<u8>); 4] = [
        ("binary garbage", b"\x00\x01\x02garbage".to_vec()),
        (
            "bare CRs as line ends",
            b"GET /healthz HTTP/1.1\rHost: t\r\r".to_vec(),
        ),
        (
            "a bad method",
            b"G\x00T /healthz HTTP/1.1\r\nHost: t\r\n".to_vec(),
        ),
        (
            "garbage after a keep-alive publish",
            [publish, b"\x00\x01\x02garbage"].concat(),
        ),
    ];
    let mut late = Vec::new();
    for (what, request) in cases {
        let started = Instant::now();
        let mut s = TcpStream::connect(server.addr).unwrap();
        s.write_all(&request).unwrap();
        let (raw, _) = read_until_close(&mut s, common::PATIENCE);
        let took = started.elapsed();
        let raw = String::from_utf8_lossy(&raw).into_owned();
        let last = raw.rfind("HTTP/1.1 ").map(|i| status_of(&raw[i..]));
        if last != Some(400) || took > Duration::from_millis(1500) {
            late.push(format!("{what}: {last:?} after {took:?}: {raw:?}"));
        }
    }
    assert!(late.is_empty(), "not refused at once:\n{}", late.join("\n"));
}

/// A resume id is echoed back in the `gap` event: whatever bytes it holds (quotes,
/// backslashes, obs-text, and — through the query's percent-decoding — CR, LF and NUL)
/// must not break out of that one event or its JSON, so a client cannot be fed a forged
/// event, id or retry through it.
#[test]
fn a_hostile_resume_id_cannot_inject_into_the_stream() {
    let server = Server::start(&["--workers", "1"]);
    let forged =
        "1%0D%0A%0Adata:%20forged%0Aid:%20999999999999999999%0Aretry:%201%0A%0Aevent:%20x%00";
    let cases: [(&str, &[(&str, &str)]); 3] = [
        (&*format!("topic=inj0&last_event_id={forged}"), &[]),
        (
            "topic=inj1",
            &[("Last-Event-ID", "\"},\"oldest_id\":\"0\\\"x")],
        ),
        ("topic=inj2", &[("Last-Event-ID", "caf\u{e9} \t\"\\")]),
    ];
    // Each case on its own topic, so that no replay comes between the gap and the event.
    for (i, (query, headers)) in cases.into_iter().enumerate() {
        let mut sub = common::Sse::open(server.addr, query, headers);
        assert_eq!(sub.status(), 200);
        let gap = sub.next();
        assert_eq!(gap.event, "gap", "{query} {headers:?}");
        let json: serde_json::Value = serde_json::from_str(&gap.data)
            .unwrap_or_else(|e| panic!("gap data is not JSON ({e}): {:?}", gap.data));
        assert!(json["last_event_id"].is_string(), "{json}");
        assert_eq!(json.as_object().map(|o| o.len()), Some(2), "{json}");
        assert_eq!(gap.id, "", "no id was set by the echo");
        assert_eq!(sub.retry, Some(3000), "no retry was set by the echo");
        let (status, body) = server.publish(&format!("topic=inj{i}"), b"real");
        assert_eq!(status, 202);
        let ev = sub.next();
        assert_eq!((ev.event.as_str(), ev.data.as_str()), ("message", "real"));
        assert_eq!(ev.id, common::id_of(&body).to_string());
    }
}
