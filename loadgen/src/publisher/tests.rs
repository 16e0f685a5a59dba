use super::answer::{complete, settle, Tally};
use super::request::{batch_path, push_json_str, push_line, Builder};
use super::window::Window;
use super::*;
use crate::payload;
use crate::plan::Template;

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
    assert_eq!(due_ns(7, 0.0, 99), 7, "rate 0: everything is due");
}

#[test]
fn responses_are_framed() {
    let mut acc =
        b"HTTP/1.1 202 Accepted\r\nContent-Length: 8\r\n\r\n{\"id\":1}HTTP/1.1 5".to_vec();
    assert_eq!(complete(&mut acc, false), Ok(Some((202, true))));
    assert_eq!(acc, b"HTTP/1.1 5");
    let mut acc = b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n".to_vec();
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

macro_rules! json_str_tests {
    ($($name:ident: $input:expr => $want:expr;)*) => {$(
        #[test]
        fn $name() {
            let mut out = Vec::new();
            push_json_str($input, &mut out);
            assert_eq!(String::from_utf8(out).unwrap(), $want);
            let quoted = format!("\"{}\"", $want);
            let back: String = serde_json::from_str(&quoted).expect("valid JSON string");
            assert_eq!(back.as_bytes(), $input);
        }
    )*};
}

json_str_tests! {
    json_payload_is_copied: b"12 345 xxxx" => "12 345 xxxx";
    json_quote_and_backslash: b"a\"b\\c" => r#"a\"b\\c"#;
    json_controls: b"l1\nl2\r\t\x01\x1f" => r"l1\nl2\r\t\u0001\u001f";
    json_utf8_passes: "é/ü".as_bytes() => "é/ü";
    json_empty: b"" => "";
}

#[test]
fn batch_line_is_one_json_object() {
    let mut out = Vec::new();
    push_line(b"lg1-0", b"7 99 xx", &mut out);
    assert_eq!(out, b"{\"topic\":\"lg1-0\",\"data\":\"7 99 xx\"}\n");
}

#[test]
fn batch_path_drops_the_query() {
    for (template, want) in [
        ("/publish?topic={topic}", "/publish"),
        ("/api/publish?topic={topic}&x=1", "/api/publish"),
        ("/publish", "/publish"),
    ] {
        assert_eq!(batch_path(&Template::parse(template)), want.as_bytes());
    }
}

/// Splits a request into head lines and body.
fn split_request(req: &[u8]) -> (Vec<String>, &[u8]) {
    let end = req
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("head end")
        + 4;
    let head = String::from_utf8(req[..end - 4].to_vec()).unwrap();
    (head.split("\r\n").map(str::to_owned).collect(), &req[end..])
}

#[test]
fn batch_request_carries_n_lines_round_robin() {
    let plan = crate::cli::tests::plan_of(&[
        "fanout",
        "--server",
        "http://127.0.0.1:9",
        "-t",
        "4",
        "--pub-conns",
        "2",
        "--pub-batch",
        "5",
        "--topic-prefix",
        "b-",
        "-p",
        "40",
        "--pub-header",
        "Authorization: Bearer t",
    ]);
    let p = plan.publish.clone().unwrap();
    // Connection 1 of 2 owns topics 1 and 3.
    let (mut build, mut w) = (Builder::new(&plan, &[1, 3]), Window::new(vec![1, 3]));
    let mut out = Vec::new();
    build.push(&p, &mut w, 1234, &mut out);
    let (head, body) = split_request(&out);
    assert_eq!(
        head,
        [
            "POST /publish HTTP/1.1",
            "Host: 127.0.0.1:9",
            "Content-Type: application/x-ndjson",
            &format!("Content-Length: {}", body.len()),
            "Authorization: Bearer t",
        ]
    );
    let lines: Vec<serde_json::Value> = body
        .split_inclusive(|&b| b == b'\n')
        .map(|l| serde_json::from_slice(l).expect("a JSON line"))
        .collect();
    let got: Vec<(String, Option<(u64, u64)>)> = lines
        .iter()
        .map(|l| {
            let data = l["data"].as_str().unwrap();
            assert_eq!(data.len(), 40);
            let topic = l["topic"].as_str().unwrap().to_owned();
            (topic, payload::decode(data.as_bytes()))
        })
        .collect();
    let want = [("b-1", 1), ("b-3", 1), ("b-1", 2), ("b-3", 2), ("b-1", 3)];
    let want: Vec<_> = want
        .iter()
        .map(|&(t, seq)| (t.to_owned(), Some((seq, 1234))))
        .collect();
    assert_eq!(got, want);
    assert!(body.ends_with(b"\n"));
    assert_eq!((w.len(), w.events()), (1, 5));
}

#[test]
fn single_requests_are_unchanged() {
    let plan = crate::cli::tests::plan_of(&["fanout", "--topic-prefix", "s-", "-p", "8"]);
    let p = plan.publish.clone().unwrap();
    let (mut build, mut w) = (Builder::new(&plan, &[0]), Window::new(vec![0]));
    let mut out = Vec::new();
    build.push(&p, &mut w, 5, &mut out);
    build.push(&p, &mut w, 5, &mut out);
    let one =
        "POST /publish?topic=s-0 HTTP/1.1\r\nHost: 127.0.0.1:8080\r\nContent-Length: 8\r\n\r\n";
    assert_eq!(
        String::from_utf8(out).unwrap(),
        format!("{one}1 5 xxxx{one}2 5 xxxx")
    );
}

const OK: &[u8] = b"HTTP/1.1 202 Accepted\r\nContent-Length: 12\r\n\r\n{\"ids\":[1]}\n";

/// A window over topics 0 and 1 with `requests` requests of `batch` events in flight,
/// sent at 1_000, 2_000, ... ns.
fn in_flight(requests: u64, batch: u32) -> Window {
    let mut w = Window::new(vec![0, 1]);
    for i in 1..=requests {
        w.send(batch, i * 1000, |_, _| {});
    }
    w
}

#[test]
fn pipelined_answers_match_in_order_at_every_split() {
    let stream = [OK, OK, OK].concat();
    for a in 0..=stream.len() {
        for b in [a, (a + 7).min(stream.len()), stream.len()] {
            let (mut w, mut t, mut acc) = (in_flight(3, 3), Tally::new(0), Vec::new());
            for (i, piece) in [&stream[..a], &stream[a..b], &stream[b..]]
                .iter()
                .enumerate()
            {
                acc.extend_from_slice(piece);
                let now = 10_000 * (i as u64 + 1);
                assert!(
                    settle(&mut acc, false, &mut w, &mut t, now),
                    "split {a}/{b}"
                );
            }
            assert!(w.is_empty() && acc.is_empty(), "split {a}/{b}");
            assert_eq!((t.events, t.requests_accepted), (9, 3));
            // Events 0..9 alternate topics: 5 for topic 0, 4 for topic 1.
            assert_eq!(w.acked().collect::<Vec<_>>(), [(0, 5), (1, 4)]);
            assert_eq!(t.response.len(), 3);
            assert!(t.errors.0.is_empty(), "{:?}", t.errors);
        }
    }
}

#[test]
fn a_partial_answer_waits_for_more() {
    let (mut w, mut t) = (in_flight(2, 1), Tally::new(0));
    let mut acc = [OK, &OK[..20]].concat();
    assert!(settle(&mut acc, false, &mut w, &mut t, 5_000));
    assert_eq!((w.len(), t.requests_accepted, acc.len()), (1, 1, 20));
    // Request 1 was sent at 1 µs and answered at 5 µs.
    assert_eq!(t.response.max(), 4);
}

#[test]
fn a_failed_answer_drops_what_is_behind_it_once() {
    let (mut w, mut t) = (in_flight(4, 1), Tally::new(0));
    let failed = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n";
    let mut acc = [OK, failed, OK].concat();
    assert!(!settle(&mut acc, false, &mut w, &mut t, 9_000));
    assert!(w.is_empty());
    assert_eq!(t.requests_accepted, 1);
    let errors: Vec<_> = t.errors.0.iter().map(|(k, &v)| (k.as_str(), v)).collect();
    assert_eq!(errors, [("abandoned", 2), ("http_503", 1)]);
    assert_eq!(
        t.requests_accepted + t.errors.total(),
        4,
        "each request once"
    );
    // Topic 0 had seq 1 accepted, topic 1 nothing: the next events resume there.
    assert_eq!(w.acked().collect::<Vec<_>>(), [(0, 1), (1, 0)]);
    let mut next = Vec::new();
    w.send(3, 0, |k, seq| next.push((k, seq)));
    assert_eq!(next, [(0, 2), (1, 1), (0, 3)], "round-robin goes on");
}

#[test]
fn a_failed_answer_with_nothing_behind_keeps_the_connection() {
    let (mut w, mut t) = (in_flight(2, 1), Tally::new(0));
    let failed = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n";
    let mut acc = [OK, failed].concat();
    assert!(settle(&mut acc, false, &mut w, &mut t, 9_000));
    assert_eq!((t.requests_accepted, t.errors.0["http_503"]), (1, 1));
    // Topic 1's seq 1 failed: it is sent again.
    let mut next = Vec::new();
    w.send(1, 0, |k, seq| next.push((k, seq)));
    assert_eq!(
        next,
        [(0, 2)],
        "round-robin goes on; topic 1 resumes at 1 next"
    );
    w.send(1, 0, |k, seq| next.push((k, seq)));
    assert_eq!(next[1], (1, 1));
}

#[test]
fn close_and_garbage_fail_what_is_in_flight() {
    // The server closes after one answer: the other two were not answered.
    let (mut w, mut t) = (in_flight(3, 2), Tally::new(0));
    assert!(!settle(&mut OK.to_vec(), true, &mut w, &mut t, 1));
    assert_eq!((t.events, t.errors.0["closed"]), (2, 2));
    // An answer saying it will close, with more in flight behind it.
    let (mut w, mut t) = (in_flight(2, 1), Tally::new(0));
    let closing = b"HTTP/1.1 202 Accepted\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
    assert!(!settle(&mut closing.to_vec(), false, &mut w, &mut t, 1));
    assert_eq!((t.events, t.errors.0["closed"]), (1, 1));
    // Not HTTP at all.
    let (mut w, mut t) = (in_flight(2, 1), Tally::new(0));
    assert!(!settle(
        &mut b"HTTP/9 202\r\n\r\n".to_vec(),
        false,
        &mut w,
        &mut t,
        1
    ));
    assert_eq!(t.errors.0["bad_response"], 2);
    // Bytes nobody asked for: the connection is dropped, no request is failed.
    let (mut w, mut t) = (in_flight(1, 1), Tally::new(0));
    assert!(!settle(&mut [OK, OK].concat(), false, &mut w, &mut t, 1));
    assert_eq!((t.requests_accepted, t.errors.total()), (1, 0));
}
