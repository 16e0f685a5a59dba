//! Conformance with the SSE clients people use: a real browser's native `EventSource`
//! (Debian's chromium driven by playwright-core), Node's `eventsource` package and
//! undici's `EventSource`, and Python's httpx-sse with a hand-written reconnect.
//!
//! Each client is a small program in `tests/clients/` (installed, with pinned versions,
//! by `tests/clients/install.sh`) that subscribes to a real ringcast and prints one
//! JSON document with what it received. The test publishes at the right moments and
//! checks that document exactly:
//! 1. the client subscribes; the test publishes multi-line, empty, leading-space,
//!    UTF-8 and named events;
//! 2. the server ends the stream at its maximum lifetime with a `retry:` hint, and the
//!    test publishes the "missed" events while the client is away;
//! 3. the client reconnects (by itself, or by hand for httpx-sse) with
//!    `Last-Event-ID`, gets exactly the missed events once, in order, and stays until
//!    the server ends that stream too.
//!
//! Each client runs the scenario twice: over plaintext HTTP, and (the `_over_https`
//! tests) over TLS with a test CA it trusts as its users would (see
//! [`Served::trust`]).
//!
//! A client or runtime that is missing fails its test with how to install it.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::clients::{node_program, python_program, require_on_path, Running, CLIENT_START};
use common::transport::{Served, Transport};
use common::{id_of, PATIENCE};
use serde::Deserialize;

/// Streams end after about 2 s with a retry hint of 1–2 s: the hint is the window in
/// which the test publishes the missed events, wide enough for a slow, shared machine.
const SERVER_ARGS: [&str; 6] = [
    "--workers",
    "2",
    "--max-lifetime",
    "2s",
    "--retry",
    "1000ms",
];
const RETRY_MS: u64 = 1000;

/// Percent-encoded by every client, decoded by the server.
const TOPIC: &str = "conformance/room:1";

/// Published while the client is connected: (event name, data).
const LIVE: [(Option<&str>, &str); 5] = [
    (None, "a\nb\nc"),
    (None, ""),
    (None, " x"),
    (None, "héllo ✓ 日本"),
    (Some("update"), "named"),
];

/// Published while the client is away; it must get them on resume, once, in order.
const MISSED: [(Option<&str>, &str); 3] = [
    (None, "missed one"),
    (Some("update"), "missed\nnamed"),
    (None, ""),
];

/// A client's own time limit is 30 s; this is that plus room to start and report.
const CLIENT_LIMIT: Duration = Duration::from_secs(45);

/// One event as the client reported it.
#[derive(Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Received {
    r#type: String,
    data: String,
    last_event_id: String,
    /// 1 for the first connection, 2 after the first reconnect.
    connection: u32,
}

/// An `error` event seen by an EventSource client.
#[derive(Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ErrorSeen {
    after_events: usize,
    /// 0 = CONNECTING: the client is reconnecting by itself (2 would be CLOSED).
    ready_state: u8,
}

/// The `Last-Event-ID` header a request carried (as seen from the client's side).
#[derive(Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RequestSeen {
    last_event_id: Option<String>,
}

/// One connection of the hand-reconnecting Python client.
#[derive(Debug, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct ConnectionSeen {
    last_event_id_sent: Option<String>,
    status: u16,
    /// The `retry:` hints httpx-sse reported with that stream's events.
    retry: Vec<u64>,
}

/// The JSON document a client program prints.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Report {
    client: String,
    events: Vec<Received>,
    failure: Option<String>,
    /// EventSource clients.
    opens: Option<u32>,
    errors: Option<Vec<ErrorSeen>>,
    requests: Option<Vec<RequestSeen>>,
    page_errors: Option<Vec<String>>,
    /// The hand-reconnecting client.
    connections: Option<Vec<ConnectionSeen>>,
}

#[test]
fn chromium_native_eventsource_receives_exactly_and_resumes_by_itself() {
    chromium(Transport::Plain);
}

#[test]
fn chromium_native_eventsource_receives_exactly_and_resumes_by_itself_over_https() {
    chromium(Transport::Tls);
}

#[test]
fn node_eventsource_package_receives_exactly_and_resumes_by_itself() {
    node_eventsource(Transport::Plain);
}

#[test]
fn node_eventsource_package_receives_exactly_and_resumes_by_itself_over_https() {
    node_eventsource(Transport::Tls);
}

#[test]
fn undici_eventsource_receives_exactly_and_resumes_by_itself() {
    undici(Transport::Plain);
}

#[test]
fn undici_eventsource_receives_exactly_and_resumes_by_itself_over_https() {
    undici(Transport::Tls);
}

#[test]
fn httpx_sse_receives_exactly_and_resumes_with_last_event_id() {
    httpx_sse(Transport::Plain);
}

#[test]
fn httpx_sse_receives_exactly_and_resumes_with_last_event_id_over_https() {
    httpx_sse(Transport::Tls);
}

fn chromium(transport: Transport) {
    require_on_path(
        "chromium",
        "install it with `apt-get install -y chromium` (tests/clients/install.sh does)",
    );
    let png = screenshot_path(transport);
    let _ = std::fs::remove_file(&png);
    let browser = node_program("browser.mjs", &["playwright-core"]);
    let run = run_scenario(browser, transport, &[png.to_str().expect("a UTF-8 path")]);
    assert_eq!(run.report.page_errors, None, "no script error in the page");
    assert_resumed_by_itself(&run);
    let shot = std::fs::read(&png).unwrap_or_else(|e| panic!("screenshot {png:?}: {e}"));
    assert!(shot.starts_with(b"\x89PNG\r\n\x1a\n"), "a PNG at {png:?}");
}

fn node_eventsource(transport: Transport) {
    let client = node_program("node_eventsource.mjs", &["eventsource"]);
    assert_resumed_by_itself(&run_scenario(client, transport, &[]));
}

fn undici(transport: Transport) {
    let client = node_program("node_undici.mjs", &["undici"]);
    assert_resumed_by_itself(&run_scenario(client, transport, &[]));
}

fn httpx_sse(transport: Transport) {
    let run = run_scenario(
        python_program("httpx_sse_client.py", "httpx, httpx_sse"),
        transport,
        &[],
    );
    let connections = run.report.connections.as_ref().expect("connections");
    let sent: Vec<_> = connections.iter().map(|c| &c.last_event_id_sent).collect();
    let last_live = Some(run.live_ids[LIVE.len() - 1].to_string());
    assert_eq!(sent, [&None, &last_live], "{}", run.json);
    for c in connections {
        assert_eq!(c.status, 200, "{}", run.json);
        // The stream's `retry:` line joins the first event's block, so httpx-sse reports
        // it with that event. The closing hint starts a block the close leaves unfinished:
        // a parser that applies fields as it reads them (an EventSource) takes it, httpx-sse
        // drops it, and neither reports an event for it.
        assert_eq!(
            c.retry,
            [RETRY_MS],
            "the configured hint, once: {}",
            run.json
        );
    }
}

/// What one run of the scenario left to check.
struct Run {
    report: Report,
    /// The client's stdout, for failure messages.
    json: String,
    live_ids: Vec<u64>,
}

/// Runs the scenario (see the top of this file) with `client` over `transport`, given
/// the arguments `BASE_URL TOPIC COUNT` and then `extra`. Checks what every client must
/// show: the events exactly, each on the right connection, and a resume from history.
fn run_scenario(mut client: Command, transport: Transport, extra: &[&str]) -> Run {
    let server = Served::start(transport, &SERVER_ARGS);
    let count = (LIVE.len() + MISSED.len()).to_string();
    client.args([&server.url(), TOPIC, &count]);
    let mut client = Running::spawn(server.trust(client.args(extra)));

    client.wait_for("the client to subscribe", CLIENT_START, || {
        server.metric("ringcast_subscribers") == 1
    });
    let live_ids = publish(&server, &LIVE);
    client.wait_for("the server to end the first stream", PATIENCE, || {
        server.metric("ringcast_closes_total{reason=\"lifetime\"}") == 1
    });
    let missed_ids = publish(&server, &MISSED);
    assert_eq!(
        server.metric("ringcast_subscribers"),
        0,
        "the missed events were published while the client was away"
    );
    let (report, json): (Report, String) = client.finish(CLIENT_LIMIT);
    eprintln!("client: {}", report.client);

    assert_eq!(report.failure, None, "the client failed: {json}");
    let expected: Vec<Received> = (LIVE.iter().zip(&live_ids).map(|(e, id)| (e, id, 1)))
        .chain(MISSED.iter().zip(&missed_ids).map(|(e, id)| (e, id, 2)))
        .map(|(&(name, data), id, connection)| Received {
            r#type: name.unwrap_or("message").to_string(),
            data: data.to_string(),
            last_event_id: id.to_string(),
            connection,
        })
        .collect();
    assert_eq!(
        report.events, expected,
        "events as the client got them: {json}"
    );
    assert_eq!(
        server.metric("ringcast_replayed_frames_total"),
        MISSED.len() as u64,
        "the resume was served from history: the client sent its last id"
    );
    assert_eq!(server.metric("ringcast_replay_gaps_total"), 0);
    Run {
        report,
        json,
        live_ids,
    }
}

/// What an EventSource must show beyond the events: it reconnected on its own (one
/// error per ended stream, readyState CONNECTING each time, two opens) and its
/// second request carried the last id it had seen.
fn assert_resumed_by_itself(run: &Run) {
    let (r, json) = (&run.report, &run.json);
    assert_eq!(r.opens, Some(2), "{json}");
    let ended = |after_events| ErrorSeen {
        after_events,
        ready_state: 0,
    };
    let all = LIVE.len() + MISSED.len();
    assert_eq!(
        r.errors.as_deref(),
        Some(&[ended(LIVE.len()), ended(all)][..]),
        "{json}"
    );
    let last_live = Some(run.live_ids[LIVE.len() - 1].to_string());
    let sent: Vec<_> = r
        .requests
        .iter()
        .flatten()
        .map(|q| &q.last_event_id)
        .collect();
    assert_eq!(
        sent,
        [&None, &last_live],
        "Last-Event-ID per request: {json}"
    );
}

/// Publishes each (event name, data); returns the ids the server answered with.
fn publish(server: &Served, events: &[(Option<&str>, &str)]) -> Vec<u64> {
    let query = |name: Option<&str>| match name {
        Some(name) => format!("topic={TOPIC}&event={name}"),
        None => format!("topic={TOPIC}"),
    };
    (events.iter())
        .map(|&(name, data)| {
            let (status, body) = server.publish(&query(name), data.as_bytes());
            assert_eq!(status, 202, "{body}");
            id_of(&body)
        })
        .collect()
}

/// `target/conformance/browser.png` (`browser-https.png` over TLS), for reviewers.
fn screenshot_path(transport: Transport) -> PathBuf {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("CARGO_TARGET_TMPDIR is target/tmp");
    target.join(format!("conformance/browser{}.png", transport.suffix()))
}
