//! Several ringcast processes as one service through a real redis-server: publish on
//! one, receive on all; resume on another process; Redis outages and restarts; a
//! process restart; processes sharing one port with SO_REUSEPORT.

mod common;

use std::time::Duration;

use common::redis::Redis;
use common::{id_of, Client, Event, Server, Sse};

fn subscribed(server: &Server, n: u64) {
    common::eventually("subscribed", || server.metric("ringcast_subscribers") == n);
}

#[test]
fn an_event_published_on_any_process_reaches_subscribers_on_all() {
    let redis = Redis::start(false);
    let nodes: Vec<Server> = (0..3).map(|_| redis.node(&[])).collect();
    let mut subs: Vec<Sse> = nodes
        .iter()
        .map(|n| n.subscribe("topic=all&topic=other"))
        .collect();
    for (n, s) in nodes.iter().zip(&mut subs) {
        s.head();
        subscribed(n, 1);
    }
    let mut ids = Vec::new();
    for (i, n) in nodes.iter().enumerate() {
        let (status, body) = n.publish("topic=all", format!("from {i}").as_bytes());
        assert_eq!(status, 202, "{body}");
        ids.push(id_of(&body));
    }
    let (_, body) = nodes[1].publish("topic=all&topic=other", b"both topics");
    ids.push(id_of(&body));
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "one increasing order across processes: {ids:?}"
    );
    for s in &mut subs {
        let got: Vec<(String, String)> = s.take(4).into_iter().map(|e| (e.id, e.data)).collect();
        let want: Vec<(String, String)> = ids
            .iter()
            .zip(["from 0", "from 1", "from 2", "both topics"])
            .map(|(id, d)| (id.to_string(), d.to_string()))
            .collect();
        assert_eq!(
            got, want,
            "same events, same ids, same order, a two-topic event once"
        );
    }
    // A batch is one atomic step in the stream.
    let mut c = Client::connect(nodes[2].addr);
    let (status, body) = c.publish(
        "",
        b"{\"topic\":\"all\",\"data\":\"b1\"}\n{\"topic\":\"all\",\"data\":\"b2\"}\n",
        &[("Content-Type", "application/x-ndjson")],
    );
    assert_eq!(status, 202, "{body}");
    for s in &mut subs {
        assert_eq!(
            s.take(2)
                .iter()
                .map(|e| e.data.as_str())
                .collect::<Vec<_>>(),
            ["b1", "b2"]
        );
    }
}

#[test]
fn a_client_resumes_on_another_process_exactly() {
    let redis = Redis::start(false);
    let a = redis.node(&[]);
    let b = redis.node(&[]);
    let mut on_a = a.subscribe("topic=r");
    on_a.head();
    subscribed(&a, 1);
    let ids: Vec<u64> = (0..10)
        .map(|i| id_of(&a.publish("topic=r", format!("e{i}").as_bytes()).1))
        .collect();
    let seen = on_a.take(4);
    drop(on_a);
    // B never had a subscriber on this topic: its own history is empty, Redis serves it.
    let mut on_b = Sse::open(b.addr, "topic=r", &[("Last-Event-ID", &seen[3].id)]);
    let got: Vec<u64> = on_b.take(6).iter().map(|e| e.id.parse().unwrap()).collect();
    assert_eq!(
        got,
        ids[4..],
        "exactly the events after the last one seen, from Redis"
    );
    // Live events continue after the replay, once each.
    let live = id_of(&b.publish("topic=r", b"live").1);
    assert_eq!(on_b.next().id, live.to_string());
    assert!(on_b.next_within(Duration::from_millis(200)).is_none());
    // Now B has local history too: a second resume is served from it, the same way.
    let mut again = Sse::open(b.addr, "topic=r", &[("Last-Event-ID", &ids[7].to_string())]);
    let got: Vec<u64> = again
        .take(3)
        .iter()
        .map(|e| e.id.parse().unwrap())
        .collect();
    assert_eq!(got, [ids[8], ids[9], live]);
    assert_eq!(b.metric("ringcast_replay_gaps_total"), 0);
    // An id from before the stream's retention is a gap, then what Redis still has.
    let mut old = Sse::open(b.addr, "topic=r", &[("Last-Event-ID", "5")]);
    let gap = old.next();
    assert_eq!(gap.event, "gap");
    assert_eq!(old.next().id, ids[0].to_string());
}

fn stream_ids(events: &[Event]) -> Vec<String> {
    events.iter().map(|e| e.id.clone()).collect()
}

/// Publishes while every ringcast process is stopped (SIGSTOP) straight into Redis, then
/// kills and restarts Redis, then lets the processes run again.
fn restart_redis_with_unread_entries(persistent: bool) -> (Vec<Event>, u64) {
    let mut redis = Redis::start(persistent);
    let a = redis.node(&[]);
    let b = redis.node(&[]);
    let mut sub = b.subscribe("topic=o");
    sub.head();
    subscribed(&b, 1);
    let before = id_of(&a.publish("topic=o", b"before").1);
    assert_eq!(sub.next().data, "before");
    // Nobody reads while these are written: if Redis then loses them, they are lost.
    a.pause();
    b.pause();
    let mut con = redis.client();
    let _: String = redis::cmd("XADD")
        .arg("ringcast:events")
        .arg("*")
        .arg("t")
        .arg("o")
        .arg("d")
        .arg("unread")
        .query(&mut con)
        .unwrap();
    redis.restart();
    a.signal(libc::SIGCONT);
    b.signal(libc::SIGCONT);
    common::eventually("reconnected", || {
        [&a, &b].iter().all(|n| {
            n.metric("ringcast_cluster_reconnects_total") >= 1
                && n.metric("ringcast_cluster_up") == 1
        })
    });
    let after = id_of(&a.publish("topic=o", b"after").1);
    let mut got = Vec::new();
    while got.last().map(|e: &Event| e.data.as_str()) != Some("after") {
        got.push(sub.next());
    }
    assert!(after > before);
    (got, b.metric("ringcast_cluster_gaps_total"))
}

#[test]
fn a_redis_restart_that_keeps_its_data_is_invisible_to_subscribers() {
    let (got, gaps) = restart_redis_with_unread_entries(true);
    assert_eq!(
        got.iter().map(|e| e.data.as_str()).collect::<Vec<_>>(),
        ["unread", "after"],
        "no gap, nothing lost"
    );
    assert_eq!(gaps, 0);
    assert!(got.iter().all(|e| e.event == "message"));
}

#[test]
fn a_redis_restart_that_lost_events_sends_a_gap_frame() {
    let (got, gaps) = restart_redis_with_unread_entries(false);
    assert_eq!(got.len(), 2, "{:?}", stream_ids(&got));
    assert_eq!(got[0].event, "gap", "the loss is told in-band: {got:?}");
    assert_eq!(got[1].data, "after");
    assert_eq!(gaps, 1);
}

#[test]
fn publishes_during_an_outage_get_503_and_subscribers_are_not_stalled() {
    let mut redis = Redis::start(false);
    let a = redis.node(&[]);
    let mut sub = a.subscribe("topic=x");
    sub.head();
    subscribed(&a, 1);
    redis.kill();
    common::eventually("outage noticed", || a.metric("ringcast_cluster_up") == 0);
    let (status, body) = a.publish("topic=x", b"lost?");
    assert_eq!(status, 503, "{body}");
    assert!(a.metric("ringcast_cluster_publish_refused_total") >= 1);
    assert_eq!(
        common::get(a.addr, "/healthz").0,
        200,
        "the process itself stays up"
    );
    assert_eq!(
        Sse::open(a.addr, "topic=y", &[]).status(),
        200,
        "new subscribers are still accepted"
    );
    redis.restart();
    common::eventually("recovered", || a.metric("ringcast_cluster_up") == 1);
    let id = id_of(&a.publish("topic=x", b"back").1);
    let next = sub.next();
    // The restarted Redis lost the stream, so a gap notice may come first.
    let next = if next.event == "gap" {
        sub.next()
    } else {
        next
    };
    assert_eq!((next.id, next.data), (id.to_string(), "back".to_string()));
}

#[test]
fn restarting_one_process_does_not_disturb_the_others() {
    let redis = Redis::start(false);
    let mut a = redis.node(&[]);
    let b = redis.node(&[]);
    let mut on_b = b.subscribe("topic=p");
    on_b.head();
    subscribed(&b, 1);
    a.signal(libc::SIGTERM);
    assert!(a
        .wait_exit(Duration::from_secs(15))
        .is_some_and(|s| s.success()));
    let id = id_of(&b.publish("topic=p", b"still here").1);
    assert_eq!(on_b.next().id, id.to_string());
    let a2 = redis.node(&[]);
    let id = id_of(&a2.publish("topic=p", b"from the new process").1);
    let ev = on_b.next();
    assert_eq!(
        (ev.id, ev.data.as_str()),
        (id.to_string(), "from the new process")
    );
    assert_eq!(
        b.metric("ringcast_subscribers"),
        1,
        "B's subscriber was never disconnected"
    );
}

#[test]
fn processes_can_share_one_port() {
    let redis = Redis::start(false);
    let port = common::redis::free_port();
    let listen = format!("127.0.0.1:{port}");
    let nodes: Vec<Server> = (0..2).map(|_| redis.node(&["--listen", &listen])).collect();
    let mut subs: Vec<Sse> = (0..100)
        .map(|_| nodes[0].subscribe("topic=shared"))
        .collect();
    for s in &mut subs {
        s.head();
    }
    // Each process holds some of the connections (the kernel spreads them).
    let sockets = |pid: u32| {
        std::fs::read_dir(format!("/proc/{pid}/fd"))
            .unwrap()
            .count()
    };
    common::eventually("both processes hold subscribers", || {
        nodes.iter().all(|n| sockets(n.pid()) > 50)
    });
    let id = id_of(&nodes[1].publish("topic=shared", b"to everyone").1);
    for s in &mut subs {
        assert_eq!(s.next().id, id.to_string());
    }
}
