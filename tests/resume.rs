//! Resume with `Last-Event-ID`: exact replay, the seam with live events under load, and the
//! in-band `gap` frame when history no longer reaches back.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{id_of, Client, Event, Server, Sse};

fn publish_all(server: &Server, topic: &str, n: usize) -> Vec<u64> {
    let mut c = Client::connect(server.addr);
    (0..n)
        .map(|i| {
            id_of(
                &c.publish(&format!("topic={topic}"), format!("e{i}").as_bytes(), &[])
                    .1,
            )
        })
        .collect()
}

fn resume(server: &Server, query: &str, last_id: &str) -> Sse {
    let mut s = Sse::open(server.addr, query, &[("Last-Event-ID", last_id)]);
    assert_eq!(s.status(), 200);
    s
}

fn ids(events: &[Event]) -> Vec<u64> {
    events.iter().map(|e| e.id.parse().unwrap()).collect()
}

#[test]
fn resuming_from_the_fourth_id_replays_exactly_five_to_ten() {
    let server = Server::start(&["--workers", "2"]);
    let issued = publish_all(&server, "r", 10);
    let mut s = resume(&server, "topic=r", &issued[3].to_string());
    let got = s.take(6);
    assert_eq!(ids(&got), issued[4..]);
    assert_eq!(
        got.iter().map(|e| e.data.as_str()).collect::<Vec<_>>(),
        ["e4", "e5", "e6", "e7", "e8", "e9"]
    );
    assert!(
        s.next_within(Duration::from_millis(200)).is_none(),
        "nothing more, no duplicate"
    );
    // Then live events follow the replay.
    let live = id_of(&server.publish("topic=r", b"live").1);
    assert_eq!(s.next().id, live.to_string());
    // The query parameter works the same, and an empty header falls back to it.
    let mut q = Sse::open(
        server.addr,
        &format!("topic=r&last_event_id={}", issued[8]),
        &[("Last-Event-ID", "")],
    );
    assert_eq!(ids(&q.take(2)), [issued[9], live]);
}

#[test]
fn resuming_across_three_topics_merges_in_id_order_once() {
    let server = Server::start(&["--workers", "2"]);
    let issued = common::publish_over_three_topics(server.addr);
    let mut s = resume(&server, "topic=a&topic=b&topic=c", &issued[2].to_string());
    let got = s.take(9);
    assert_eq!(
        ids(&got),
        issued[3..],
        "interleaved topics merge by id, a+c events once"
    );
    assert!(s.next_within(Duration::from_millis(200)).is_none());
}

#[test]
fn a_hundred_clients_resume_while_events_keep_coming_without_gap_or_duplicate() {
    let server = Server::start(&["--workers", "2", "--history", "100000"]);
    let published: Arc<Mutex<Vec<u64>>> = Arc::new(Mutex::new(publish_all(&server, "race", 50)));
    let done = Arc::new(AtomicBool::new(false));
    let publisher = {
        let (addr, published, done) = (server.addr, published.clone(), done.clone());
        std::thread::spawn(move || {
            let mut c = Client::connect(addr);
            for i in 0..3000 {
                let id = id_of(&c.publish("topic=race", format!("p{i}").as_bytes(), &[]).1);
                published.lock().unwrap().push(id);
            }
            done.store(true, Ordering::SeqCst);
        })
    };
    // Clients reconnect at random moments with random ids already issued, and each reads
    // on its own thread (a stream nobody reads would rightly be evicted as slow).
    let mut readers = Vec::new();
    let mut rng = 0x2545_F491_4F6C_DD1Du64;
    for _ in 0..100 {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let from = {
            let p = published.lock().unwrap();
            p[(rng as usize) % p.len()]
        };
        let mut client = resume(&server, "topic=race", &from.to_string());
        readers.push(std::thread::spawn(move || {
            let mut got = Vec::new();
            loop {
                let ev = client.next();
                assert_ne!(ev.event, "gap", "history reaches back: no gap expected");
                got.push(ev.id.parse::<u64>().unwrap());
                if ev.data == "p2999" {
                    return (from, got);
                }
            }
        }));
        std::thread::sleep(Duration::from_millis(2));
    }
    publisher.join().unwrap();
    assert!(done.load(Ordering::SeqCst));
    let published = published.lock().unwrap().clone();
    for reader in readers {
        let (from, got) = reader.join().unwrap();
        let expected: Vec<u64> = published.iter().copied().filter(|&id| id > from).collect();
        assert_eq!(got, expected, "client resuming after {from}");
    }
    assert_eq!(server.metric("ringcast_closes_total{reason=\"slow\"}"), 0);
}

fn gap_of(s: &mut Sse) -> (String, String) {
    let ev = s.next();
    assert_eq!(ev.event, "gap", "the first event is the gap notice: {ev:?}");
    assert_eq!(
        ev.id, "",
        "a gap frame carries no id, so it does not move lastEventId"
    );
    let v: serde_json::Value = serde_json::from_str(&ev.data).expect("gap data is JSON");
    let sent = v["last_event_id"].as_str().unwrap().to_string();
    let oldest = match &v["oldest_id"] {
        serde_json::Value::Null => "null".to_string(),
        other => other.as_str().expect("oldest_id is a string").to_string(),
    };
    (sent, oldest)
}

#[test]
fn a_history_trimmed_by_count_is_reported_then_the_rest_replayed() {
    let server = Server::start(&["--workers", "1", "--history", "3"]);
    let issued = publish_all(&server, "c", 6);
    let mut s = resume(&server, "topic=c", &issued[0].to_string());
    assert_eq!(
        gap_of(&mut s),
        (issued[0].to_string(), issued[3].to_string())
    );
    assert_eq!(ids(&s.take(3)), issued[3..]);
    // From the last trimmed id itself, nothing was lost.
    let mut exact = resume(&server, "topic=c", &issued[2].to_string());
    assert_eq!(exact.next().id, issued[3].to_string());
    assert_eq!(server.metric("ringcast_replay_gaps_total"), 1);
}

#[test]
fn a_history_trimmed_by_bytes_is_reported() {
    let server = Server::start(&["--workers", "1", "--history-bytes", "200"]);
    let mut c = Client::connect(server.addr);
    let issued: Vec<u64> = (0..5)
        .map(|_| id_of(&c.publish("topic=b", &[b'x'; 60], &[]).1))
        .collect();
    // Each frame is id line + 60 bytes of data + framing (~90 bytes): two fit in 200.
    let mut s = resume(&server, "topic=b", &issued[0].to_string());
    assert_eq!(
        gap_of(&mut s),
        (issued[0].to_string(), issued[3].to_string())
    );
    assert_eq!(ids(&s.take(2)), issued[3..]);
}

#[test]
fn a_history_trimmed_by_age_is_reported() {
    let server = Server::start(&["--workers", "1", "--history-ttl", "300ms"]);
    let old = publish_all(&server, "t", 2);
    std::thread::sleep(Duration::from_millis(600));
    let fresh = publish_all(&server, "t", 1);
    let mut s = resume(&server, "topic=t", &old[0].to_string());
    assert_eq!(gap_of(&mut s), (old[0].to_string(), fresh[0].to_string()));
    assert_eq!(ids(&s.take(1)), fresh);
    std::thread::sleep(Duration::from_millis(600));
    let mut empty = resume(&server, "topic=t", &old[0].to_string());
    assert_eq!(
        gap_of(&mut empty),
        (old[0].to_string(), "null".to_string()),
        "nothing retained: oldest_id is null"
    );
    // Resuming from the newest expired id lost nothing: no gap, nothing to replay.
    let mut caught_up = resume(&server, "topic=t", &fresh[0].to_string());
    assert!(caught_up.next_within(Duration::from_millis(300)).is_none());
}

#[test]
fn ids_this_server_never_issued_get_a_gap_and_the_whole_history() {
    let server = Server::start(&["--workers", "1"]);
    let issued = publish_all(&server, "g", 3);
    let future = (issued[2] + 1000).to_string();
    for bad in [
        "garbage",
        "-5",
        "99999999999999999999999",
        "1.5",
        " 12",
        "0x10",
        &future,
    ] {
        let mut s = resume(&server, "topic=g", bad);
        let (sent, oldest) = gap_of(&mut s);
        assert_eq!(
            sent,
            bad.trim_start(),
            "the gap frame quotes the id as sent (header whitespace trimmed)"
        );
        assert_eq!(oldest, issued[0].to_string());
        assert_eq!(
            ids(&s.take(3)),
            issued,
            "then everything retained, for {bad:?}"
        );
    }
    // An id from before this process existed (a previous run) is a gap too.
    let mut s = resume(&server, "topic=g", "1");
    assert_eq!(gap_of(&mut s).1, issued[0].to_string());
    // Quotes and backslashes in the id stay valid JSON.
    let mut s = resume(&server, "topic=g", "a\"b\\c");
    assert_eq!(gap_of(&mut s).0, "a\"b\\c");
    // An empty id means no resume: no gap, no replay, live only.
    let mut none = resume(&server, "topic=g", "");
    assert!(none.next_within(Duration::from_millis(200)).is_none());
    let live = id_of(&server.publish("topic=g", b"live").1);
    assert_eq!(none.next().id, live.to_string());
}

#[test]
fn ids_keep_increasing_across_a_restart() {
    let first = {
        let server = Server::start(&["--workers", "1"]);
        id_of(&server.publish("topic=x", b"before").1)
    };
    let server = Server::start(&["--workers", "1"]);
    let second = id_of(&server.publish("topic=x", b"after").1);
    assert!(second > first, "{second} after {first}");
    let mut s = resume(&server, "topic=x", &first.to_string());
    assert_eq!(
        gap_of(&mut s),
        (first.to_string(), second.to_string()),
        "the previous run's events are gone: a gap"
    );
}

#[test]
fn a_replay_longer_than_the_queue_bound_is_not_a_slow_reader() {
    let server = Server::start(&[
        "--workers",
        "1",
        "--max-queued-frames",
        "100",
        "--history",
        "5000",
        "--history-bytes",
        "16MiB",
        "--sndbuf",
        "16KiB",
    ]);
    let pad = "x".repeat(1000);
    let mut c = Client::connect(server.addr);
    let body = (0..2000)
        .map(|i| format!("{{\"topic\":\"long\",\"data\":\"{i} {pad}\"}}\n"))
        .collect::<String>();
    let (status, answer) = c.publish(
        "",
        body.as_bytes(),
        &[("Content-Type", "application/x-ndjson")],
    );
    assert_eq!(status, 202, "{answer}");
    let first: u64 = answer.split('"').nth(3).unwrap().parse().unwrap();
    // A reader with a small window that reads nothing yet: most of the 2 MB replay waits
    // in the server's queue when the live events arrive.
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&server.addr.into()).unwrap();
    let mut s = common::Sse::on(
        socket.into(),
        "topic=long",
        &[("Last-Event-ID", &(first - 1).to_string())],
    );
    common::eventually("subscribed", || server.metric("ringcast_subscribers") == 1);
    let live: Vec<u64> = publish_all(&server, "long", 30);
    let got = s.take(2030);
    assert!(got[0].data.starts_with("0 "));
    assert!(got[1999].data.starts_with("1999 "));
    assert_eq!(ids(&got[2000..]), live);
    assert_eq!(server.metric("ringcast_closes_total{reason=\"slow\"}"), 0);
}
