//! `--subscription-events`: `join` and `leave` on `sys:subscriptions/T` with the user of
//! the subscriber's token, the same authorization as `T`, the users listed at
//! `GET /topics/T/subscribers`, a burst of joins, and the same over two processes
//! sharing a real Redis (including one that is killed).

mod common;

use std::time::Duration;

use common::redis::Redis;
use common::{Event, Server, Sse};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::{json, Value};

const SECRET: &str = "a-test-secret-of-32-bytes-length";

fn bearer(claims: Value) -> String {
    let key = EncodingKey::from_secret(SECRET.as_bytes());
    format!(
        "Bearer {}",
        encode(&Header::new(Algorithm::HS256), &claims, &key).unwrap()
    )
}

fn as_user(server: &Server, query: &str, user: &str, topics: &[&str]) -> Sse {
    let auth = bearer(json!({"sub": user, "topics": topics}));
    let mut s = Sse::open(server.addr, query, &[("Authorization", &auth)]);
    assert_eq!(s.status(), 200, "{query} as {user}");
    s
}

fn data(ev: &Event) -> Value {
    serde_json::from_str(&ev.data).expect("JSON data")
}

fn users(server: &Server, topic: &str) -> (u16, String) {
    common::get(server.addr, &format!("/topics/{topic}/subscribers"))
}

#[test]
fn joins_and_leaves_name_the_user_and_connection_and_need_the_topics_authorization() {
    let server = Server::start(&[
        "--workers",
        "2",
        "--jwt-secret",
        SECRET,
        "--public-topic",
        "lobby",
        "--subscription-events",
    ]);
    let mut watcher = as_user(&server, "topic=sys:subscriptions/doc", "watcher", &["doc"]);
    let alice = as_user(&server, "topic=doc&topic=other", "alice", &["doc", "other"]);
    let join = watcher.next();
    assert_eq!(join.event, "join");
    let j = data(&join);
    assert_eq!(
        (j["topic"].as_str(), j["user"].as_str()),
        (Some("doc"), Some("alice"))
    );
    let connection = j["connection"].as_str().unwrap().to_string();
    assert!(j["at"].as_u64().unwrap() > 1_700_000_000_000, "unix ms");
    assert_eq!(
        users(&server, "doc"),
        (
            200,
            r#"{"topic":"doc","users":[{"user":"alice","connections":1}],"next":null}"#.into()
        )
    );
    drop(alice);
    let leave = watcher.next();
    assert_eq!(leave.event, "leave");
    let l = data(&leave);
    assert_eq!(l["user"], "alice");
    assert_eq!(l["connection"], connection.as_str(), "the same connection");
    assert!(
        watcher.next_within(Duration::from_millis(200)).is_none(),
        "nothing for `other`"
    );
    common::eventually("alice gone from the list", || {
        users(&server, "doc").1.contains(r#""users":[]"#)
    });
    // Following a topic's subscription events takes the topic's authorization.
    let outsider = bearer(json!({"sub": "eve", "topics": ["other"]}));
    let mut refused = Sse::open(
        server.addr,
        "topic=sys:subscriptions/doc",
        &[("Authorization", &outsider)],
    );
    assert_eq!(refused.status(), 403);
    // An anonymous subscriber of a public topic joins as null; so may anyone watch it.
    let mut lobby_watch = server.subscribe("topic=sys:subscriptions/lobby");
    assert_eq!(lobby_watch.status(), 200);
    let _anon = server.subscribe("topic=lobby");
    assert_eq!(data(&lobby_watch.next())["user"], Value::Null);
    // Watching makes no events of its own, and history keeps them for `replay`.
    let mut late = as_user(
        &server,
        "topic=sys:subscriptions/doc&replay=10",
        "w2",
        &["doc"],
    );
    let seen: Vec<String> = late.take(2).iter().map(|e| e.event.clone()).collect();
    assert_eq!(seen, ["join", "leave"]);
    assert!(late.next_within(Duration::from_millis(200)).is_none());
}

#[test]
fn without_the_flag_there_are_no_events_and_no_user_list() {
    let server = Server::start(&[]);
    let mut watcher = server.subscribe("topic=sys:subscriptions/doc");
    assert_eq!(watcher.status(), 200);
    let _s = server.subscribe("topic=doc");
    assert!(watcher.next_within(Duration::from_millis(300)).is_none());
    assert_eq!(users(&server, "doc").0, 404);
    assert_eq!(server.metric("ringcast_subscription_events_total"), 0);
}

#[test]
fn a_burst_of_a_thousand_joins_is_published_and_the_server_keeps_answering() {
    let server = Server::start(&["--workers", "2", "--subscription-events"]);
    let mut watcher = server.subscribe("topic=sys:subscriptions/t7");
    assert_eq!(watcher.status(), 200);
    let subs: Vec<std::net::TcpStream> = (0..1000)
        .map(|i| {
            let mut s = std::net::TcpStream::connect(server.addr).unwrap();
            use std::io::Write;
            write!(s, "GET /events?topic=t{i} HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
            s
        })
        .collect();
    common::eventually("a thousand joins published", || {
        server.metric("ringcast_subscription_events_total") == 1000
    });
    assert_eq!(common::get(server.addr, "/healthz").0, 200);
    let ev = watcher.next();
    assert_eq!(
        (ev.event.as_str(), data(&ev)["topic"].as_str()),
        ("join", Some("t7"))
    );
    drop(subs);
    common::eventually("a thousand leaves", || {
        server.metric("ringcast_subscription_events_total") == 2000
    });
    assert_eq!(watcher.next().event, "leave");
}

#[test]
fn in_cluster_mode_events_cross_processes_and_a_killed_processs_users_expire() {
    let redis = Redis::start(false);
    let extra = ["--jwt-secret", SECRET, "--subscription-events"];
    let (a, b) = (redis.node(&extra), redis.node(&extra));
    let mut watcher = as_user(&a, "topic=sys:subscriptions/doc", "watcher", &["doc"]);
    let _on_a = as_user(&a, "topic=doc", "ann", &["doc"]);
    let on_b = as_user(&b, "topic=doc", "bob", &["doc"]);
    let mut joined: Vec<String> = (0..2)
        .map(|_| data(&watcher.next())["user"].as_str().unwrap().to_string())
        .collect();
    joined.sort();
    assert_eq!(joined, ["ann", "bob"], "B's join came through Redis");
    let both = r#"{"topic":"doc","users":[{"user":"ann","connections":1},{"user":"bob","connections":1}],"next":null}"#;
    common::eventually("both users listed on A", || users(&a, "doc").1 == both);
    common::eventually("and on B", || users(&b, "doc").1 == both);
    b.signal(libc::SIGKILL);
    drop(on_b);
    common::eventually("B's users expired", || {
        users(&a, "doc").1
            == r#"{"topic":"doc","users":[{"user":"ann","connections":1}],"next":null}"#
    });
}
