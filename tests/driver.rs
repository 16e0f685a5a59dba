//! The same server on both drivers: io_uring (with the private data-plane ring) and the
//! epoll fallback used where io_uring is unavailable. Each must stream, notice a peer's
//! close, send heartbeats, and coalesce a burst into few writes.

mod common;

use std::time::Duration;

use common::Server;

fn streams_and_notices_closes(driver: &str) {
    let server = Server::start(&["--workers", "2", "--driver", driver, "--heartbeat", "100ms"]);
    assert!(server.log().contains(&format!(
        "driver={}",
        if driver == "legacy" {
            "epoll"
        } else {
            "io_uring"
        }
    )));
    let mut sub = server.subscribe("topic=d");
    sub.head();
    common::eventually("subscribed", || server.metric("ringcast_subscribers") == 1);
    server.publish("topic=d", b"one");
    assert_eq!(sub.next().data, "one");
    common::eventually("a heartbeat while quiet", || {
        sub.next_within(Duration::from_millis(50));
        sub.comments > 0
    });
    drop(sub);
    common::eventually("the close noticed", || {
        server.metric("ringcast_subscribers") == 0
            && server.metric("ringcast_closes_total{reason=\"peer\"}") >= 1
    });
}

fn coalesces_a_burst(driver: &str) {
    let server = Server::start(&["--workers", "1", "--driver", driver]);
    let mut subs: Vec<_> = (0..50).map(|_| server.subscribe("topic=burst")).collect();
    for s in &mut subs {
        s.head();
    }
    common::eventually("subscribed", || server.metric("ringcast_subscribers") == 50);
    let writes_before = server.metric("ringcast_writes_total");
    let batch: String = (0..200)
        .map(|i| format!("{{\"topic\":\"burst\",\"data\":\"{i}\"}}\n"))
        .collect();
    let mut c = common::Client::connect(server.addr);
    assert_eq!(
        c.publish(
            "",
            batch.as_bytes(),
            &[("Content-Type", "application/x-ndjson")]
        )
        .0,
        202
    );
    for s in &mut subs {
        let got: Vec<String> = s.take(200).into_iter().map(|e| e.data).collect();
        assert_eq!(got, (0..200).map(|i| i.to_string()).collect::<Vec<_>>());
    }
    let writes = server.metric("ringcast_writes_total") - writes_before;
    let frames = 50 * 200;
    assert!(
        writes * 10 <= frames,
        "{writes} writes for {frames} frames: the burst was not coalesced"
    );
}

#[test]
fn io_uring_streams_and_notices_closes() {
    streams_and_notices_closes("uring");
}

#[test]
fn epoll_streams_and_notices_closes() {
    streams_and_notices_closes("legacy");
}

#[test]
fn io_uring_coalesces_a_burst() {
    coalesces_a_burst("uring");
}

#[test]
fn epoll_coalesces_a_burst() {
    coalesces_a_burst("legacy");
}
