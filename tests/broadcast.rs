//! Subscribe, publish and fan-out over real sockets, asserting exact bytes.

mod common;

use std::collections::HashSet;
use std::io::Write;
use std::time::Duration;

use common::{id_of, Client, Server, Sse};

const HEAD: &str =
    "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\
                    X-Accel-Buffering: no\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";

#[test]
fn the_stream_starts_with_the_exact_head_and_retry() {
    let server = Server::start(&["--workers", "1", "--retry", "2500ms"]);
    let mut sub = server.subscribe("topic=a");
    assert_eq!(sub.head(), HEAD);
    common::eventually("the retry frame", || {
        sub.next_within(Duration::from_millis(10));
        sub.wire_body() == b"c\r\nretry: 2500\n\r\n"
    });
    assert_eq!(sub.retry, Some(2500));
}

/// Every byte of a stream's life, chunk framing included: head, `retry:` (no blank line),
/// an event, a heartbeat (`:` and no blank line), and the planned close at the stream's
/// maximum lifetime (a jittered `retry:` hint, then the last chunk).
#[test]
fn a_whole_stream_on_the_wire_is_exact_chunks() {
    let server = Server::start(&[
        "--workers",
        "1",
        "--retry",
        "1000ms",
        "--heartbeat",
        "300ms",
        "--max-lifetime",
        "1500ms",
    ]);
    let mut sub = server.subscribe("topic=w");
    assert_eq!(sub.head(), HEAD);
    common::eventually("subscribed", || server.metric("ringcast_subscribers") == 1);
    let (status, body) = server.publish("topic=w&event=e", b"hi");
    assert_eq!(status, 202);
    let id = id_of(&body);
    assert_eq!(sub.next().data, "hi");
    let events = sub.until_closed(Duration::from_secs(10));
    assert!(events.is_empty(), "nothing but the one event: {events:?}");
    assert!(sub.ended, "a planned close ends with the last chunk");
    let wire = String::from_utf8(sub.wire_body().to_vec()).unwrap();
    let block = format!("id: {id}\nevent: e\ndata: hi\n\n");
    let start = format!("c\r\nretry: 1000\n\r\n{:x}\r\n{block}\r\n", block.len());
    let rest = wire
        .strip_prefix(&start)
        .unwrap_or_else(|| panic!("{wire:?}"));
    let beats = rest.matches("2\r\n:\n\r\n").count();
    let close = rest.trim_start_matches("2\r\n:\n\r\n");
    assert!(
        beats >= 2,
        "heartbeats every 300 ms of a 1.5 s stream: {wire:?}"
    );
    // `retry: 1xxx\n` is 12 bytes: one chunk of size c.
    let hint = close
        .strip_prefix("c\r\nretry: 1")
        .and_then(|r| r.strip_suffix("\n\r\n0\r\n\r\n"))
        .unwrap_or_else(|| panic!("the close: {close:?}"));
    assert!(
        hint.len() == 3 && hint.bytes().all(|b| b.is_ascii_digit()),
        "{close:?}"
    );
}

/// An HTTP/1.0 request has no chunked encoding: the same stream, delimited by the close.
#[test]
fn an_http_1_0_stream_is_the_same_bytes_without_chunks() {
    let server = Server::start(&["--workers", "1", "--retry", "2000ms"]);
    let mut s = std::net::TcpStream::connect(server.addr).unwrap();
    s.write_all(b"GET /events?topic=old HTTP/1.0\r\n\r\n")
        .unwrap();
    common::eventually("subscribed", || server.metric("ringcast_subscribers") == 1);
    let (_, body) = server.publish("topic=old", b"a\nb");
    let id = id_of(&body);
    server.signal(libc::SIGTERM);
    let raw = common::read_to_close(&mut s);
    let (head, body) = raw.split_once("\r\n\r\n").unwrap();
    assert!(!head.contains("Transfer-Encoding"), "{head}");
    let hint = body
        .strip_prefix(&format!(
            "retry: 2000\nid: {id}\ndata: a\ndata: b\n\nretry: "
        ))
        .and_then(|r| r.strip_suffix('\n'))
        .unwrap_or_else(|| panic!("{body:?}"));
    assert!(
        hint.parse::<u64>()
            .is_ok_and(|ms| (2000..4000).contains(&ms)),
        "{body:?}"
    );
}

#[test]
fn a_published_event_arrives_as_the_exact_frame() {
    let server = Server::start(&["--workers", "2"]);
    let mut sub = server.subscribe("topic=news");
    sub.head();
    common::eventually("subscribed", || server.metric("ringcast_subscribers") == 1);
    let (status, body) = server.publish("topic=news&event=update", b"hello");
    assert_eq!(status, 202);
    let id = id_of(&body);
    let ev = sub.next();
    assert_eq!(
        ev,
        common::Event {
            event: "update".into(),
            data: "hello".into(),
            id: id.to_string()
        }
    );
    let expected = format!("retry: 3000\nid: {id}\nevent: update\ndata: hello\n\n");
    assert_eq!(String::from_utf8_lossy(sub.body()), expected);
}

#[test]
fn payload_shapes_round_trip_through_a_spec_parser() {
    let server = Server::start(&["--workers", "1"]);
    let mut sub = server.subscribe("topic=t");
    sub.head();
    common::eventually("subscribed", || server.metric("ringcast_subscribers") == 1);
    let cases: [(&[u8], &str); 8] = [
        (b"one\ntwo\nthree", "one\ntwo\nthree"),
        (b"", ""),
        (b" leading space", " leading space"),
        (b"crlf\r\nsplit", "crlf\nsplit"),
        (b"cr\rsplit", "cr\nsplit"),
        (b"trailing\n", "trailing\n"),
        ("unicode ✓ é 日本".as_bytes(), "unicode ✓ é 日本"),
        (
            b"data: looks like a field\n\nid: 5",
            "data: looks like a field\n\nid: 5",
        ),
    ];
    for (payload, _) in &cases {
        assert_eq!(server.publish("topic=t", payload).0, 202);
    }
    for (payload, want) in cases {
        let ev = sub.next();
        assert_eq!(
            ev.data,
            want,
            "payload {:?}",
            String::from_utf8_lossy(payload)
        );
        assert_eq!(ev.event, "message");
    }
}

#[test]
fn one_event_reaches_a_thousand_subscribers_on_two_workers_once_each() {
    let server = Server::start(&["--workers", "2"]);
    let mut subs: Vec<Sse> = (0..1000).map(|_| server.subscribe("topic=wide")).collect();
    for s in &mut subs {
        s.head();
    }
    common::eventually("all subscribed", || {
        server.metric("ringcast_subscribers") == 1000
    });
    let (text_status, text) = common::get(server.addr, "/metrics");
    assert_eq!(text_status, 200);
    for worker in 0..2 {
        let line = format!("ringcast_subscribers{{worker=\"{worker}\"}} 0");
        assert!(
            !text.contains(&line),
            "worker {worker} got no subscribers: SO_REUSEPORT spread failed"
        );
    }
    let id = id_of(&server.publish("topic=wide", b"to all").1);
    server.publish("topic=wide", b"second");
    for s in &mut subs {
        let first = s.next();
        assert_eq!(
            (first.id.as_str(), first.data.as_str()),
            (id.to_string().as_str(), "to all")
        );
        assert_eq!(
            s.next().data,
            "second",
            "the first event came once, then the second"
        );
    }
}

#[test]
fn a_multi_topic_event_reaches_a_multi_topic_subscriber_once() {
    let server = Server::start(&["--workers", "2"]);
    let mut both = server.subscribe("topic=a&topic=b&topic=c");
    let mut only_b = server.subscribe("topic=b");
    both.head();
    only_b.head();
    common::eventually("subscribed", || server.metric("ringcast_subscribers") == 2);
    server.publish("topic=a&topic=b", b"ab");
    server.publish("topic=c", b"c");
    assert_eq!(both.next().data, "ab");
    assert_eq!(both.next().data, "c", "ab was not delivered twice");
    assert_eq!(only_b.next().data, "ab");
    assert!(
        only_b.next_within(Duration::from_millis(200)).is_none(),
        "c is not b's"
    );
}

#[test]
fn concurrent_publishers_are_seen_in_one_id_order_by_everyone() {
    let server = Server::start(&["--workers", "2"]);
    let mut subs: Vec<Sse> = (0..20).map(|_| server.subscribe("topic=o")).collect();
    for s in &mut subs {
        s.head();
    }
    common::eventually("subscribed", || server.metric("ringcast_subscribers") == 20);
    const PUBLISHERS: usize = 4;
    const EACH: usize = 250;
    let addr = server.addr;
    let threads: Vec<_> = (0..PUBLISHERS)
        .map(|p| {
            std::thread::spawn(move || {
                let mut c = Client::connect(addr);
                (0..EACH)
                    .map(|i| id_of(&c.publish("topic=o", format!("{p}:{i}").as_bytes(), &[]).1))
                    .collect::<Vec<u64>>()
            })
        })
        .collect();
    let mut issued: Vec<u64> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    issued.sort_unstable();
    for s in &mut subs {
        let got = s.take(PUBLISHERS * EACH);
        let ids: Vec<u64> = got.iter().map(|e| e.id.parse().unwrap()).collect();
        assert_eq!(
            ids, issued,
            "every subscriber sees every id once, in increasing order"
        );
        let mut next = [0usize; PUBLISHERS];
        for e in &got {
            let (p, i) = e.data.split_once(':').unwrap();
            let p: usize = p.parse().unwrap();
            assert_eq!(
                i.parse::<usize>().unwrap(),
                next[p],
                "publisher {p}'s events stay in its order"
            );
            next[p] += 1;
        }
    }
}

#[test]
fn a_publisher_keeps_one_connection_for_a_thousand_publishes() {
    let server = Server::start(&["--workers", "2"]);
    let mut sub = server.subscribe("topic=k");
    sub.head();
    common::eventually("subscribed", || server.metric("ringcast_subscribers") == 1);
    let mut c = Client::connect(server.addr);
    let local = c.stream.local_addr().unwrap();
    let mut ids = Vec::new();
    for i in 0..1000 {
        let (status, body) = c.publish("topic=k", i.to_string().as_bytes(), &[]);
        assert_eq!(status, 202);
        ids.push(id_of(&body));
    }
    assert_eq!(c.stream.local_addr().unwrap(), local);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "ids strictly increase");
    let got: Vec<String> = sub.take(1000).into_iter().map(|e| e.data).collect();
    assert_eq!(got, (0..1000).map(|i| i.to_string()).collect::<Vec<_>>());
    // Pipelined: several requests in one write, answered in order.
    let mut pipelined = Vec::new();
    for i in 0..5 {
        pipelined.extend_from_slice(
            format!("POST /publish?topic=k HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\n{i}")
                .as_bytes(),
        );
    }
    c.stream.write_all(&pipelined).unwrap();
    let answers: HashSet<u64> = (0..5).map(|_| id_of(&c.response().1)).collect();
    assert_eq!(answers.len(), 5);
}

#[test]
fn an_ndjson_batch_publishes_every_line_in_order() {
    let server = Server::start(&["--workers", "2"]);
    let mut sub = server.subscribe("topic=x&topic=y");
    sub.head();
    common::eventually("subscribed", || server.metric("ringcast_subscribers") == 1);
    let body = b"{\"topic\":\"x\",\"data\":\"1\"}\n{\"topic\":[\"x\",\"y\"],\"event\":\"e\",\"data\":\"2\\nlines\"}\n\n{\"topic\":\"y\",\"data\":\"\"}\n";
    let mut c = Client::connect(server.addr);
    let (status, answer) = c.publish("", body, &[("Content-Type", "application/x-ndjson")]);
    assert_eq!(status, 202, "{answer}");
    let ids: Vec<String> = answer
        .trim_start_matches("{\"ids\":[")
        .trim_end_matches("]}")
        .split(',')
        .map(|s| s.trim_matches('"').to_string())
        .collect();
    assert_eq!(ids.len(), 3);
    let got = sub.take(3);
    assert_eq!(
        got.iter()
            .map(|e| (e.id.as_str(), e.event.as_str(), e.data.as_str()))
            .collect::<Vec<_>>(),
        [
            (ids[0].as_str(), "message", "1"),
            (ids[1].as_str(), "e", "2\nlines"),
            (ids[2].as_str(), "message", "")
        ]
    );
    let (status, answer) = c.publish(
        "",
        b"{\"topic\":\"x\",\"data\":\"ok\"}\n{\"topic\":\"x\"}\n",
        &[("Content-Type", "application/x-ndjson")],
    );
    assert_eq!(status, 400);
    assert!(answer.contains("line 2"), "{answer}");
    assert!(
        sub.next_within(Duration::from_millis(200)).is_none(),
        "a bad batch publishes nothing"
    );
}

#[test]
fn chunked_and_expect_continue_publishes_work() {
    let server = Server::start(&["--workers", "1"]);
    let mut sub = server.subscribe("topic=c");
    sub.head();
    common::eventually("subscribed", || server.metric("ringcast_subscribers") == 1);
    let mut c = Client::connect(server.addr);
    c.stream
        .write_all(b"POST /publish?topic=c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\n\r\n")
        .unwrap();
    assert_eq!(c.response().0, 202);
    assert_eq!(sub.next().data, "hello world");
    c.stream
        .write_all(b"POST /publish?topic=c HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nExpect: 100-continue\r\n\r\n")
        .unwrap();
    assert_eq!(c.response().0, 100);
    c.stream.write_all(b"abc").unwrap();
    assert_eq!(c.response().0, 202);
    assert_eq!(sub.next().data, "abc");
}
