//! Pipelined and batched publishing (`--pub-pipeline`, `--pub-batch`) against a real
//! ringcast: nothing lost, and the report names the settings.

mod common;

use serde_json::Value;

use common::{
    assert_all_connected, assert_complete_delivery, assert_passed, run_scenario, u, Server,
    ONE_AT_A_TIME,
};

/// Publishes as fast as answered on one connection per 10 topics with `extra` flags,
/// one subscriber per topic, and checks that nothing was lost and the report names
/// the publisher's settings.
fn fanout_as_fast_as_answered(extra: &[&str]) -> Value {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let server = Server::start();
    let mut args = vec![
        "-n",
        "20",
        "-t",
        "20",
        "-r",
        "0",
        "-d",
        "1s",
        "--pub-conns",
        "2",
    ];
    args.extend_from_slice(extra);
    let (code, r) = run_scenario(&server, "fanout", &args);
    assert_all_connected(&r, 20);
    assert_complete_delivery(&r);
    let accepted = u(&r, "/publish/events_accepted");
    assert_eq!(
        u(&r, "/delivery/events_expected"),
        accepted,
        "one subscriber per topic"
    );
    assert!(
        r["publish"]["errors"]
            .as_object()
            .is_some_and(|e| e.is_empty()),
        "{:#}",
        r["publish"]
    );
    assert_eq!(u(&r, "/publish/conns"), 2);
    assert_passed(code, &r);
    r
}

#[test]
fn pipelined_publishes_lose_nothing() {
    let r = fanout_as_fast_as_answered(&["--pub-pipeline", "8"]);
    for path in ["/params/publish/pipeline", "/publish/pipeline"] {
        assert_eq!(u(&r, path), 8, "{path}");
    }
    assert_eq!(u(&r, "/publish/batch"), 1);
    assert_eq!(
        u(&r, "/publish/requests_accepted"),
        u(&r, "/publish/events_accepted")
    );
}

#[test]
fn batched_publishes_lose_nothing() {
    let r = fanout_as_fast_as_answered(&["--pub-batch", "50"]);
    for path in ["/params/publish/batch", "/publish/batch"] {
        assert_eq!(u(&r, path), 50, "{path}");
    }
    assert_eq!(u(&r, "/publish/pipeline"), 1);
    let requests = u(&r, "/publish/requests_accepted");
    assert!(requests > 0, "{:#}", r["publish"]);
    assert_eq!(u(&r, "/publish/requests_sent"), requests);
    assert_eq!(u(&r, "/publish/events_accepted"), 50 * requests);
    // Every write of requests is timed from their stamp, and takes no longer than the
    // answer that follows it.
    let writes = u(&r, "/publish/write_us/count");
    assert!(writes > 0 && writes <= requests, "{:#}", r["publish"]);
    assert!(u(&r, "/publish/write_us/p50") <= u(&r, "/publish/response_us/p50"));
}
