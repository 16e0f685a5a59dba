//! The bytes ringcast emits, checked against the WHATWG event-stream rules by a small
//! checker written here (and itself tested on crafted bad streams): no BOM, valid
//! UTF-8, every line ended by LF alone, only the fields `id`, `event`, `data`, `retry`
//! or a `:` comment, ids without CR, LF or NUL, `retry` values ASCII digits only,
//! `id`/`event` never without `data` (the client would fire nothing), no blank line that
//! ends a block without `data` (several client libraries report that as an empty event:
//! heartbeats are single comment lines, and `retry:` joins the next event's block), and
//! every event block ended by a blank line. Only a block of `retry:` and comments may be
//! left open at the close: a client drops it and reports nothing.
//!
//! The streams come from a server with heartbeats, named and multi-line events, a gap
//! frame, a replay, and both ways a stream ends with a `retry:` hint (maximum lifetime
//! and the SIGTERM drain).

mod common;

use common::{id_of, Server, Sse};

/// A rule of the event-stream format that a stream broke.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rule {
    /// The stream starts with U+FEFF (clients strip one, but ringcast sends none).
    Bom,
    /// Not UTF-8: a client would see U+FFFD instead.
    NotUtf8,
    /// A CR in a line: clients would end the line there, not at the LF.
    CrInLine,
    /// A field other than `id`, `event`, `data`, `retry` (clients ignore it).
    UnknownField,
    /// An `id` value with CR, LF or NUL (clients ignore or cut it).
    BadId,
    /// A `retry` value that is not ASCII digits only (clients ignore it).
    BadRetry,
    /// A block with `id` or `event` but no `data`: clients dispatch nothing for it.
    NoData,
    /// A blank line ends a block without `data` (comments or `retry:` alone): several
    /// client libraries report it as an empty event.
    EmptyBlock,
    /// Bytes after the last blank line that a client would have dispatched as an event
    /// (or a cut line): an event lost at the close.
    Unterminated,
}

/// A broken rule and the 1-based line where it broke.
#[derive(Debug, PartialEq, Eq)]
struct Violation {
    rule: Rule,
    line: usize,
}

/// What a stream that keeps the rules held, in order.
#[derive(Debug, Default, PartialEq, Eq)]
struct Blocks {
    /// Blocks that dispatch an event (they have `data`).
    events: usize,
    /// Comment lines (heartbeats).
    heartbeats: usize,
    /// Every `retry` value.
    retries: Vec<u64>,
    /// Every `id` value.
    ids: Vec<String>,
}

/// One block being read: which fields it had so far.
#[derive(Default)]
struct Open {
    lines: usize,
    comments: usize,
    data: bool,
    id_or_event: bool,
}

/// Checks a whole stream body (from the first body byte to the server's close).
fn check(stream: &[u8]) -> Result<Blocks, Violation> {
    let broke = |rule, line| Err(Violation { rule, line });
    if stream.starts_with(b"\xEF\xBB\xBF") {
        return broke(Rule::Bom, 1);
    }
    let text = match std::str::from_utf8(stream) {
        Ok(text) => text,
        Err(e) => {
            let line = 1 + stream[..e.valid_up_to()]
                .iter()
                .filter(|&&b| b == b'\n')
                .count();
            return broke(Rule::NotUtf8, line);
        }
    };
    let mut lines: Vec<&str> = text.split('\n').collect();
    // What follows the last LF: nothing, in a stream that ends properly.
    let rest = lines.pop().unwrap_or_default();
    let mut blocks = Blocks::default();
    let mut open = Open::default();
    for (i, line) in lines.iter().enumerate() {
        let n = i + 1;
        if line.is_empty() {
            if open.id_or_event && !open.data {
                return broke(Rule::NoData, n);
            }
            if open.lines > 0 && !open.data {
                return broke(Rule::EmptyBlock, n);
            }
            blocks.events += usize::from(open.data);
            open = Open::default();
            continue;
        }
        open.lines += 1;
        if line.starts_with(':') {
            open.comments += 1;
            blocks.heartbeats += 1;
        } else {
            // A line without a colon is a field name with an empty value.
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "id" if value.contains(['\r', '\0']) => return broke(Rule::BadId, n),
                "id" => blocks.ids.push(value.to_string()),
                "retry" => match value.parse() {
                    Ok(ms) if value.bytes().all(|b| b.is_ascii_digit()) => blocks.retries.push(ms),
                    _ => return broke(Rule::BadRetry, n),
                },
                "data" => open.data = true,
                "event" => {}
                _ => return broke(Rule::UnknownField, n),
            }
            open.id_or_event |= field == "id" || field == "event";
        }
        if line.contains('\r') {
            return broke(Rule::CrInLine, n);
        }
    }
    if !rest.is_empty() || open.data || open.id_or_event {
        return broke(Rule::Unterminated, lines.len() + 1);
    }
    Ok(blocks)
}

#[test]
fn the_checker_accepts_a_well_formed_stream() {
    let stream = "retry: 300\n:\nid: 7\nevent: update\ndata: a\ndata:\ndata:  x\n\n\
                  event: gap\ndata: {}\n\n: note\n:\nid: 8\ndata\n\nretry: 450\n";
    assert_eq!(
        check(stream.as_bytes()),
        Ok(Blocks {
            events: 3,
            heartbeats: 3,
            retries: vec![300, 450],
            ids: vec!["7".into(), "8".into()],
        })
    );
    assert_eq!(
        check(b""),
        Ok(Blocks::default()),
        "an empty body is no violation"
    );
}

#[test]
fn the_checker_names_each_broken_rule_and_its_line() {
    let cases: [(&[u8], Rule, usize); 20] = [
        (b"\xEF\xBB\xBFretry: 1\n", Rule::Bom, 1),
        (b"data: ok\n\ndata: \xFF\n\n", Rule::NotUtf8, 3),
        (b"data: a\r\n\r\n", Rule::CrInLine, 1),
        (b"data: a\rdata: b\n\n", Rule::CrInLine, 1),
        (b":\r\n\n", Rule::CrInLine, 1),
        (b"data: a\nfoo: b\n\n", Rule::UnknownField, 2),
        (b"Data: a\n\n", Rule::UnknownField, 1),
        (b" data: a\n\n", Rule::UnknownField, 1),
        (b"id: 1\0\ndata: a\n\n", Rule::BadId, 1),
        (b"id: 1\r\ndata: a\n\n", Rule::BadId, 1),
        (b"retry: 12a\n", Rule::BadRetry, 1),
        (b"retry: -5\nretry:\n", Rule::BadRetry, 1),
        (b"retry: 1\nretry\n", Rule::BadRetry, 2),
        (b"id: 5\nevent: e\n\n", Rule::NoData, 3),
        (b"retry: 3000\n\n", Rule::EmptyBlock, 2),
        (b"data: a\n\n:\n\n", Rule::EmptyBlock, 4),
        (b":\n: two\n\ndata: a\n\n", Rule::EmptyBlock, 3),
        (b"id: 5\ndata: a\n", Rule::Unterminated, 3),
        (b"data: a\n\ndata: b", Rule::Unterminated, 3),
        (b"retry: 1\nid: 5\n", Rule::Unterminated, 3),
    ];
    for (stream, rule, line) in cases {
        assert_eq!(
            check(stream),
            Err(Violation { rule, line }),
            "{:?}",
            String::from_utf8_lossy(stream)
        );
    }
}

/// Reads `sub` until the server closes it; checks its body; returns what it held.
fn checked(sub: &mut Sse) -> Blocks {
    sub.until_closed(common::PATIENCE);
    let body = sub.body().to_vec();
    check(&body)
        .unwrap_or_else(|v| panic!("{v:?} in the stream {:?}", String::from_utf8_lossy(&body)))
}

/// The retry hints of a stream: the configured one first, a jittered one last.
fn assert_retries(blocks: &Blocks, base: u64) {
    let [first, last] = blocks.retries[..] else {
        panic!("a retry hint at the start and at the close: {blocks:?}")
    };
    assert_eq!(first, base);
    assert!(
        (base..2 * base).contains(&last),
        "jittered close hint {last}"
    );
}

/// Ids are decimal and strictly increasing within a stream.
fn assert_ids_increase(blocks: &Blocks) {
    let ids: Vec<u64> = (blocks.ids.iter())
        .map(|id| id.parse().unwrap_or_else(|_| panic!("decimal id {id:?}")))
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
}

#[test]
fn streams_ended_by_lifetime_keep_every_rule_with_gaps_replays_and_heartbeats() {
    let server = Server::start(&[
        "--workers",
        "1",
        "--heartbeat",
        "100ms",
        "--max-lifetime",
        "1500ms",
        "--retry",
        "300ms",
    ]);
    // Resumes from an id this server cannot have issued: a gap frame comes first.
    let mut gap = Sse::open(server.addr, "topic=w", &[("Last-Event-ID", "nope")]);
    gap.head();
    common::eventually("subscribed", || server.metric("ringcast_subscribers") == 1);
    let payloads: [(&str, &[u8]); 7] = [
        ("topic=w&event=update", b"named"),
        ("topic=w", b"one\ntwo\r\nthree\rfour"),
        ("topic=w&event=multi", b"x\n\ny\n"),
        ("topic=w", b""),
        ("topic=w", b" leading space"),
        ("topic=w", "héllo ✓ 日本".as_bytes()),
        ("topic=w", b"id: 1\nretry: x\n: not a comment\nevent: no"),
    ];
    let ids: Vec<u64> = (payloads.iter())
        .map(|(query, body)| id_of(&server.publish(query, body).1))
        .collect();
    // Resumes after the first event: the rest is replayed from history.
    let first = ids[0].to_string();
    let mut replay = server.subscribe(&format!("topic=w&last_event_id={first}"));
    replay.head();

    let gap_blocks = checked(&mut gap);
    let replay_blocks = checked(&mut replay);
    assert_eq!(
        gap_blocks.events,
        1 + payloads.len(),
        "the gap, then each event"
    );
    assert_eq!(replay_blocks.events, payloads.len() - 1);
    let all: Vec<String> = ids.iter().map(u64::to_string).collect();
    assert_eq!(gap_blocks.ids, all);
    assert_eq!(replay_blocks.ids, all[1..]);
    for blocks in [&gap_blocks, &replay_blocks] {
        assert_retries(blocks, 300);
        assert_ids_increase(blocks);
        assert!(
            blocks.heartbeats >= 1,
            "quiet streams got heartbeats: {blocks:?}"
        );
    }
    assert_eq!(
        (gap_blocks.heartbeats + replay_blocks.heartbeats) as u64,
        server.metric("ringcast_heartbeats_total"),
        "every heartbeat sent is one comment line"
    );
    assert_eq!(server.metric("ringcast_replay_gaps_total"), 1);
}

#[test]
fn a_stream_ended_by_the_sigterm_drain_keeps_every_rule() {
    let mut server = Server::start(&["--workers", "1", "--retry", "400ms", "--drain", "200ms"]);
    let mut sub = server.subscribe("topic=d");
    sub.head();
    common::eventually("subscribed", || server.metric("ringcast_subscribers") == 1);
    server.publish("topic=d&event=bye", b"last\nwords");
    server.signal(libc::SIGTERM);
    let blocks = checked(&mut sub);
    assert_eq!(blocks.events, 1);
    assert_retries(&blocks, 400);
    let status = server
        .wait_exit(common::PATIENCE)
        .expect("the server exits");
    assert!(status.success(), "{status:?}");
}

#[test]
fn a_hostile_last_event_id_cannot_break_the_stream() {
    let server = Server::start(&["--workers", "1", "--max-lifetime", "300ms"]);
    // Percent-decoded from the query: CR, LF, NUL, a field and JSON quoting.
    let injected = "a\r\nid: x\0y\n\nevent: evil✓\"\\";
    let query = "topic=h&last_event_id=a%0D%0Aid:%20x%00y%0A%0Aevent:%20evil%E2%9C%93%22%5C";
    let header = [("Last-Event-ID", "\" \\ :x")];
    let streams = [
        (Sse::open(server.addr, query, &[]), Some(injected)),
        (Sse::open(server.addr, "topic=h", &header), Some("\" \\ :x")),
        // Not UTF-8 once decoded: the server may replace it, never pass it through.
        (
            Sse::open(server.addr, "topic=h&last_event_id=%FF%FE", &[]),
            None,
        ),
    ];
    for (mut sub, sent) in streams {
        sub.head();
        let events = sub.until_closed(common::PATIENCE);
        let body = sub.body().to_vec();
        let blocks = check(&body)
            .unwrap_or_else(|v| panic!("{v:?} in the stream {:?}", String::from_utf8_lossy(&body)));
        assert_eq!((blocks.events, blocks.ids.len()), (1, 0), "one gap, no id");
        assert_eq!(events[0].event, "gap");
        let gap: serde_json::Value = serde_json::from_str(&events[0].data).expect("JSON");
        if let Some(sent) = sent {
            assert_eq!(gap["last_event_id"], sent, "echoed as sent, escaped");
        }
    }
}
