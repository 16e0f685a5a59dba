//! The SSE client libraries people reach for, each used the way its README shows, report
//! exactly what was published: the right events with the right data, names and ids,
//! nothing more (no empty event made of the `retry:` line or of a heartbeat), each within
//! a second of its publish.
//!
//! Libraries: httpx-sse (over httpx), sseclient-py and requests-sse (over requests), the
//! `eventsource` package (v5) and @microsoft/fetch-event-source (in Node). Each is a small
//! program in `tests/clients/` (`libs_*`, installed with pinned versions by
//! `tests/clients/install.sh`) that subscribes, records every event its library reports
//! with the wall-clock time it came, and prints one JSON document (see
//! `tests/clients/client_libs.py`). Once it has the events it expects it listens
//! [`QUIET`] more, through heartbeats, so a phantom event after the last real one is
//! still caught.
//!
//! Two scenarios per library, on a server with a 1 s heartbeat:
//! - live: the client subscribes; the test publishes [`EVENTS`] (plain, two lines, named,
//!   empty); the client reports exactly those, each within [`DELIVERY`] of its publish
//!   answer, then nothing through two heartbeats or more;
//! - resume: [`EVENTS`] are published first; the client subscribes with `Last-Event-ID` set
//!   to the second one's id and reports exactly the third and fourth, from history, within
//!   [`DELIVERY`] of subscribing, then nothing through two heartbeats or more.
//!
//! Each scenario runs over plaintext HTTP, and (the `_over_https` tests) over TLS with a
//! test CA the library trusts as its users would (see [`Served::trust`]).
//!
//! A client or runtime that is missing fails its test with how to install it.

mod common;

use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::clients::{node_program, python_program, Running, CLIENT_START};
use common::id_of;
use common::transport::{Served, Transport};
use serde::Deserialize;

/// Two workers, so the subscriber and the publisher may be on different ones; a 1 s
/// heartbeat, so that [`QUIET`] spans two of them.
const SERVER_ARGS: [&str; 4] = ["--workers", "2", "--heartbeat", "1s"];
const HEARTBEAT_MS: u64 = 1000;

/// Percent-encoded by every client, decoded by the server.
const TOPIC: &str = "client-libs/room:1";

/// What the test publishes: (event name, data).
const EVENTS: [(Option<&str>, &str); 4] = [
    (None, "hello"),
    (None, "a\nb"),
    (Some("chk"), "named"),
    (None, ""),
];

/// How long a client listens after its last expected event: over two heartbeats (at 1 s
/// of quiet each), with room for a late timer.
const QUIET: Duration = Duration::from_millis(3000);

/// The latest an event may reach the client after its publish was answered (the
/// contract: flushed at once).
const DELIVERY: Duration = Duration::from_secs(1);

/// A client program's own time limit is 20 s; this is that plus room to start and report.
const CLIENT_LIMIT: Duration = Duration::from_secs(35);

/// One event as the client's library reported it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Received {
    r#type: String,
    data: String,
    last_event_id: Option<String>,
    /// When the program got it: ms since the epoch.
    at: u64,
}

/// The JSON document a client program prints.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct Report {
    client: String,
    events: Vec<Received>,
    /// Errors the library reported without failing (a stream that failed or ended).
    errors: Vec<String>,
    failure: Option<String>,
}

/// (type, data, lastEventId): what is compared, without the time.
type Seen = (String, String, Option<String>);

macro_rules! client_tests {
    ($($lib:ident: $program:expr;)*) => {$(
        mod $lib {
            use super::*;

            #[test]
            fn reports_exactly_the_live_events_each_within_a_second() {
                live($program, Transport::Plain);
            }

            #[test]
            fn resumes_from_last_event_id_with_exactly_the_later_events() {
                resume($program, Transport::Plain);
            }

            #[test]
            fn reports_exactly_the_live_events_each_within_a_second_over_https() {
                live($program, Transport::Tls);
            }

            #[test]
            fn resumes_from_last_event_id_with_exactly_the_later_events_over_https() {
                resume($program, Transport::Tls);
            }
        }
    )*};
}

client_tests! {
    httpx_sse: python_program("libs_httpx_sse.py", "httpx, httpx_sse");
    sseclient_py: python_program("libs_sseclient_py.py", "requests, sseclient");
    requests_sse: python_program("libs_requests_sse.py", "requests, requests_sse");
    node_eventsource: node_program("libs_eventsource.mjs", &["eventsource"]);
    fetch_event_source: node_program(
        "libs_fetch_event_source.mjs",
        &["@microsoft/fetch-event-source"],
    );
}

/// The live scenario (see the top of this file).
fn live(client: Command, transport: Transport) {
    let server = Served::start(transport, &SERVER_ARGS);
    let mut client = spawn(client, &server, EVENTS.len(), None);
    client.wait_for("the client to subscribe", CLIENT_START, || {
        server.metric("ringcast_subscribers") == 1
    });
    let published = publish(&server, &EVENTS);
    let (report, json) = finish(client);

    let expected = seen(&EVENTS, &published);
    assert_eq!(
        got(&report),
        expected,
        "events as the client got them: {json}"
    );
    for (event, (_, answered)) in report.events.iter().zip(&published) {
        assert_in_time(event, *answered, "its publish was answered", &json);
    }
    assert_quiet_covered_heartbeats(&server, &json);
}

/// The resume scenario (see the top of this file).
fn resume(client: Command, transport: Transport) {
    let server = Served::start(transport, &SERVER_ARGS);
    let published = publish(&server, &EVENTS);
    let resume_from = published[1].0.to_string();
    let mut client = spawn(client, &server, 2, Some(&resume_from));
    client.wait_for("the client to subscribe", CLIENT_START, || {
        server.metric("ringcast_subscribers") == 1
    });
    // Seen after the subscribe, so no later than it: a fair start for the bound.
    let subscribed = now_ms();
    let (report, json) = finish(client);

    let expected = seen(&EVENTS[2..], &published[2..]);
    assert_eq!(
        got(&report),
        expected,
        "events as the client got them: {json}"
    );
    for event in &report.events {
        assert_in_time(event, subscribed, "it subscribed", &json);
    }
    assert_eq!(
        server.metric("ringcast_replayed_frames_total"),
        2,
        "served from history: the client sent the id"
    );
    assert_eq!(server.metric("ringcast_replay_gaps_total"), 0);
    assert_quiet_covered_heartbeats(&server, &json);
}

/// Starts `client BASE_URL TOPIC COUNT QUIET_MS [LAST_EVENT_ID]`.
fn spawn(mut client: Command, server: &Served, count: usize, last_id: Option<&str>) -> Running {
    client.args([
        server.url(),
        TOPIC.to_string(),
        count.to_string(),
        QUIET.as_millis().to_string(),
    ]);
    client.args(last_id);
    Running::spawn(server.trust(&mut client))
}

/// Publishes each (event name, data); returns each id with the time its answer came.
fn publish(server: &Served, events: &[(Option<&str>, &str)]) -> Vec<(u64, u64)> {
    (events.iter())
        .map(|&(name, data)| {
            let query = match name {
                Some(name) => format!("topic={TOPIC}&event={name}"),
                None => format!("topic={TOPIC}"),
            };
            let (status, body) = server.publish(&query, data.as_bytes());
            assert_eq!(status, 202, "{body}");
            (id_of(&body), now_ms())
        })
        .collect()
}

/// What a client should report for `events` published with `published` ids.
fn seen(events: &[(Option<&str>, &str)], published: &[(u64, u64)]) -> Vec<Seen> {
    (events.iter().zip(published))
        .map(|(&(name, data), &(id, _))| {
            let r#type = name.unwrap_or("message").to_string();
            (r#type, data.to_string(), Some(id.to_string()))
        })
        .collect()
}

fn got(report: &Report) -> Vec<Seen> {
    (report.events.iter())
        .map(|e| (e.r#type.clone(), e.data.clone(), e.last_event_id.clone()))
        .collect()
}

fn assert_in_time(event: &Received, since: u64, what: &str, json: &str) {
    let late = event.at.saturating_sub(since);
    assert!(
        late <= DELIVERY.as_millis() as u64,
        "event {:?} came {late} ms after {what} (at most {} ms): {json}",
        event.last_event_id,
        DELIVERY.as_millis()
    );
}

/// The client's quiet listening spanned two heartbeats or more: whatever they made the
/// library report would be in its report.
fn assert_quiet_covered_heartbeats(server: &Served, json: &str) {
    let beats = server.metric("ringcast_heartbeats_total");
    assert!(
        beats >= 2,
        "{beats} heartbeats while the client listened {} ms with {HEARTBEAT_MS} ms ones: {json}",
        QUIET.as_millis()
    );
}

fn now_ms() -> u64 {
    let since = SystemTime::now().duration_since(UNIX_EPOCH);
    since.expect("a clock after 1970").as_millis() as u64
}

/// Waits for the client's report; it must hold no failure and no error.
fn finish(client: Running) -> (Report, String) {
    let (report, json): (Report, String) = client.finish(CLIENT_LIMIT);
    eprintln!("client: {}", report.client);
    assert_eq!(report.failure, None, "the client failed: {json}");
    assert_eq!(report.errors, [] as [String; 0], "the stream held: {json}");
    (report, json)
}
