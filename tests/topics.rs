//! `GET /topics/T` and `GET /topics?prefix=P`: subscriber counts over every worker, what
//! history holds, paging, the publisher's authorization; in cluster mode the counts of
//! every live process summed through a real Redis, and a killed process's share expiring.

mod common;

use std::time::Duration;

use common::redis::Redis;
use common::{id_of, Server, Sse};
use serde_json::{json, Value};

fn get_json(server: &Server, path: &str, headers: &[(&str, &str)]) -> (u16, Value) {
    let extra: String = headers
        .iter()
        .map(|(k, v)| format!("{k}: {v}\r\n"))
        .collect();
    let raw = common::exchange(
        server.addr,
        format!("GET {path} HTTP/1.1\r\nHost: t\r\n{extra}Connection: close\r\n\r\n").as_bytes(),
    );
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = common::status_of(head);
    if status != 200 {
        return (status, Value::String(body.to_string()));
    }
    assert_eq!(
        common::header(head, "Content-Type"),
        Some("application/json")
    );
    (status, serde_json::from_str(body).expect("JSON"))
}

fn info(server: &Server, topic: &str) -> Value {
    let (status, v) = get_json(server, &format!("/topics/{topic}"), &[]);
    assert_eq!(status, 200, "{v}");
    v
}

fn open(server: &Server, query: &str) -> Sse {
    let mut s = server.subscribe(query);
    assert_eq!(s.status(), 200);
    s
}

#[test]
fn topic_info_counts_subscribers_on_every_worker_and_reports_history() {
    let server = Server::start(&["--workers", "2"]);
    let mut subs: Vec<Sse> = (0..3).map(|_| open(&server, "topic=user/1")).collect();
    subs.push(open(&server, "topic=user/1&topic=user/2"));
    subs.push(open(&server, "topic=room"));
    assert_eq!(
        info(&server, "user%2F1"),
        json!({"topic":"user/1","subscribers":4,"last_id":null,"retained":0,"retained_bytes":0})
    );
    id_of(&server.publish("topic=user/1", b"one").1);
    let last = id_of(&server.publish("topic=user/1", b"two").1);
    let v = info(&server, "user/1");
    assert_eq!(v["last_id"], json!(last.to_string()));
    assert_eq!(v["retained"], 2);
    assert!(v["retained_bytes"].as_u64().unwrap() > 6);
    // A topic nobody follows and nothing was published to is all zeros, not an error.
    assert_eq!(info(&server, "nobody")["subscribers"], 0);
    // Closes are counted down.
    drop(subs.remove(0));
    common::eventually("a close counted", || {
        info(&server, "user/1")["subscribers"] == 3
    });
    assert_eq!(get_json(&server, "/topics/a%20b", &[]).0, 400);
    assert_eq!(get_json(&server, "/topics/%zz", &[]).0, 400);
}

#[test]
fn topics_are_listed_by_prefix_in_name_order_a_page_at_a_time() {
    let server = Server::start(&["--workers", "2"]);
    let _subs: Vec<Sse> = ["user/3", "user/1", "user/2", "user/2", "room/x"]
        .iter()
        .map(|t| open(&server, &format!("topic={t}")))
        .collect();
    let (status, v) = get_json(&server, "/topics?prefix=user/", &[]);
    assert_eq!(status, 200);
    assert_eq!(
        v,
        json!({"topics":[
            {"topic":"user/1","subscribers":1},
            {"topic":"user/2","subscribers":2},
            {"topic":"user/3","subscribers":1}],"next":null})
    );
    let (_, first) = get_json(&server, "/topics?prefix=user/&limit=2", &[]);
    assert_eq!(first["topics"].as_array().unwrap().len(), 2);
    assert_eq!(first["next"], "user/2");
    let (_, rest) = get_json(&server, "/topics?prefix=user/&limit=2&after=user/2", &[]);
    assert_eq!(
        rest,
        json!({"topics":[{"topic":"user/3","subscribers":1}],"next":null})
    );
    let (_, all) = get_json(&server, "/topics", &[]);
    assert_eq!(all["topics"].as_array().unwrap().len(), 4);
    for bad in ["limit=0", "limit=5000", "limit=x", "prefix=a%20"] {
        assert_eq!(
            get_json(&server, &format!("/topics?{bad}"), &[]).0,
            400,
            "{bad}"
        );
    }
}

#[test]
fn topic_info_needs_the_publishers_authorization() {
    use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
    const SECRET: &str = "a-test-secret-of-32-bytes-length";
    let server = Server::start(&["--jwt-secret", SECRET, "--publish-token", "s3cret"]);
    let token = |claims: Value| {
        let key = EncodingKey::from_secret(SECRET.as_bytes());
        encode(&Header::new(Algorithm::HS256), &claims, &key).unwrap()
    };
    let publisher = format!("Bearer {}", token(json!({"publish": ["user/*"]})));
    let subscriber = format!("Bearer {}", token(json!({"topics": ["user/*"]})));
    let _a = Sse::open(
        server.addr,
        "topic=user/1",
        &[("Authorization", &subscriber)],
    );
    let as_publisher = [("Authorization", publisher.as_str())];
    assert_eq!(get_json(&server, "/topics/user/1", &as_publisher).0, 200);
    assert_eq!(get_json(&server, "/topics/room", &as_publisher).0, 403);
    assert_eq!(
        get_json(&server, "/topics/user/1", &[("Authorization", &subscriber)]).0,
        403,
        "a subscriber's token does not allow it"
    );
    assert_eq!(
        get_json(
            &server,
            "/topics/user/1",
            &[("Authorization", "Bearer nope")]
        )
        .0,
        401
    );
    assert_eq!(
        get_json(
            &server,
            "/topics/user/1",
            &[("Authorization", "Bearer s3cret")]
        )
        .0,
        200
    );
}

#[test]
fn in_cluster_mode_counts_are_summed_over_live_processes_and_a_dead_ones_expire() {
    let redis = Redis::start(false);
    let (a, b) = (redis.node(&[]), redis.node(&[]));
    let _on_a: Vec<Sse> = (0..2).map(|_| open(&a, "topic=doc/1")).collect();
    let on_b: Vec<Sse> = vec![open(&b, "topic=doc/1"), open(&b, "topic=doc/2")];
    // Each process reports about once a second.
    common::eventually("both processes counted on A", || {
        info(&a, "doc/1")["subscribers"] == 3
    });
    common::eventually("both processes counted on B", || {
        get_json(&b, "/topics?prefix=doc/", &[]).1
            == json!({"topics":[
                {"topic":"doc/1","subscribers":3},
                {"topic":"doc/2","subscribers":1}],"next":null})
    });
    // B dies without a word: its share expires.
    b.signal(libc::SIGKILL);
    drop(on_b);
    let started = std::time::Instant::now();
    common::eventually("B's share expired", || {
        info(&a, "doc/1")["subscribers"] == 2
            && get_json(&a, "/topics?prefix=doc/", &[]).1["topics"]
                .as_array()
                .is_some_and(|t| t.len() == 1)
    });
    assert!(started.elapsed() < Duration::from_secs(15));
}
