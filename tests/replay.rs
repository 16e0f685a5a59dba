//! `GET /events?replay=N`: a new subscriber starts with the last N retained events of its
//! topics, merged in id order, then live events with no gap or duplicate at the seam; a
//! resume point wins over it; in cluster mode Redis serves what local history lacks.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::redis::Redis;
use common::{id_of, Client, Event, Server, Sse};

fn ids(events: &[Event]) -> Vec<u64> {
    events.iter().map(|e| e.id.parse().unwrap()).collect()
}

#[test]
fn replay_sends_the_last_n_events_of_three_topics_in_id_order_then_live() {
    let server = Server::start(&["--workers", "2"]);
    let issued = common::publish_over_three_topics(server.addr);
    let mut s = server.subscribe("topic=a&topic=b&topic=c&replay=5");
    let got = s.take(5);
    assert_eq!(ids(&got), issued[7..], "the five newest, each once");
    assert_eq!(
        got.iter().map(|e| e.data.as_str()).collect::<Vec<_>>(),
        ["e7", "e8", "e9", "e10", "e11"]
    );
    assert!(s.next_within(Duration::from_millis(200)).is_none());
    let live = id_of(&server.publish("topic=b", b"live").1);
    assert_eq!(s.next().id, live.to_string());
    // More than is retained on the topic gets what is there (no gap frame: nothing was
    // asked for beyond "recent").
    let mut b = server.subscribe("topic=b&replay=1000");
    let got = b.take(4);
    assert_eq!(
        ids(&got),
        [issued[1], issued[5], issued[9], live],
        "every b event, no gap notice"
    );
    // replay=0 is a plain subscribe; the counter of replayed events moved.
    let mut none = server.subscribe("topic=a&replay=0");
    assert!(none.next_within(Duration::from_millis(200)).is_none());
    assert!(server.metric("ringcast_replayed_frames_total") >= 9);
}

#[test]
fn replay_is_capped_at_the_history_size() {
    let server = Server::start(&["--history", "4"]);
    let mut c = Client::connect(server.addr);
    let issued: Vec<u64> = (0..10)
        .map(|i| id_of(&c.publish("topic=h", format!("{i}").as_bytes(), &[]).1))
        .collect();
    let mut s = server.subscribe("topic=h&replay=99999999999999999999999");
    assert_eq!(ids(&s.take(4)), issued[6..]);
    assert!(s.next_within(Duration::from_millis(200)).is_none());
}

#[test]
fn a_bad_replay_value_is_refused_and_a_resume_point_wins() {
    let server = Server::start(&[]);
    for bad in [
        "replay=",
        "replay=-1",
        "replay=3x",
        "replay=%201",
        "replay=1.5",
    ] {
        let mut s = server.subscribe(&format!("topic=q&{bad}"));
        assert_eq!(s.status(), 400, "{bad}");
        assert!(
            String::from_utf8_lossy(s.body()).contains("replay"),
            "{bad}: the answer says what is wrong"
        );
    }
    let mut c = Client::connect(server.addr);
    let issued: Vec<u64> = (0..6)
        .map(|i| id_of(&c.publish("topic=q", format!("{i}").as_bytes(), &[]).1))
        .collect();
    let mut s = Sse::open(
        server.addr,
        "topic=q&replay=5",
        &[("Last-Event-ID", &issued[3].to_string())],
    );
    assert_eq!(ids(&s.take(2)), issued[4..], "Last-Event-ID wins");
    assert!(s.next_within(Duration::from_millis(200)).is_none());
}

#[test]
fn replay_plus_live_has_no_gap_or_duplicate_while_a_publisher_runs() {
    let server = Server::start(&["--workers", "2", "--history", "100000"]);
    let published = Arc::new(Mutex::new(Vec::new()));
    let done = Arc::new(AtomicBool::new(false));
    const TOTAL: usize = 3000;
    let publisher = {
        let (addr, published, done) = (server.addr, published.clone(), done.clone());
        std::thread::spawn(move || {
            let mut c = Client::connect(addr);
            for i in 0..TOTAL {
                let id = id_of(&c.publish("topic=race", format!("p{i}").as_bytes(), &[]).1);
                published.lock().unwrap().push(id);
            }
            done.store(true, Ordering::SeqCst);
        })
    };
    let mut readers = Vec::new();
    for n in (1..=60).map(|k| k * 7) {
        while published.lock().unwrap().len() < n && !done.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(1));
        }
        let mut client = server.subscribe(&format!("topic=race&replay={n}"));
        assert_eq!(client.status(), 200);
        readers.push(std::thread::spawn(move || {
            let mut got = Vec::new();
            loop {
                let ev = client.next();
                got.push(ev.id.parse::<u64>().unwrap());
                if ev.data == format!("p{}", TOTAL - 1) {
                    return (n, got);
                }
            }
        }));
    }
    publisher.join().unwrap();
    let published = published.lock().unwrap().clone();
    for reader in readers {
        let (n, got) = reader.join().unwrap();
        let start = published.iter().position(|&id| id == got[0]).unwrap();
        assert_eq!(
            got,
            published[start..],
            "replay={n}: consecutive from its first event to the last, each once"
        );
        // It began with n replayed events, all published before it connected, so it
        // can only have started at or before the n-th newest at that moment.
        assert!(got.len() >= n, "replay={n} got {} events", got.len());
    }
}

#[test]
fn in_cluster_mode_replay_comes_from_redis_when_local_history_holds_fewer() {
    let redis = Redis::start(false);
    let (a, b) = (redis.node(&[]), redis.node(&[]));
    let issued = common::publish_over_three_topics(a.addr);
    // B never had a subscriber of these topics: its history is empty, Redis serves it.
    let mut on_b = b.subscribe("topic=a&topic=b&topic=c&replay=5");
    assert_eq!(ids(&on_b.take(5)), issued[7..]);
    let live = id_of(&a.publish("topic=c", b"live").1);
    assert_eq!(on_b.next().id, live.to_string());
    assert!(on_b.next_within(Duration::from_millis(200)).is_none());
    // B now records a, b and c: what arrives from here on is in its own history, and a
    // replay that fits in it needs no Redis (stopped to show it).
    let (x, y) = (a.publish("topic=b", b"x").1, a.publish("topic=b", b"y").1);
    let (x, y) = (id_of(&x), id_of(&y));
    assert_eq!(ids(&on_b.take(2)), [x, y]);
    let mut redis = redis;
    redis.kill();
    let mut local = b.subscribe("topic=b&replay=2");
    assert_eq!(ids(&local.take(2)), [x, y], "served from local history");
    // One more than B recorded needs the stream, which is down: the stream starts with
    // its live events, without a gap notice (recent events were asked for, not all).
    let mut more = b.subscribe("topic=b&replay=3");
    assert_eq!(more.status(), 200);
    assert!(more.next_within(Duration::from_millis(300)).is_none());
    assert_eq!(b.metric("ringcast_replay_gaps_total"), 0);
}
