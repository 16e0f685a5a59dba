//! Forward auth (`--auth-url`) against a real auth server run by the test
//! (`common::auth_server`).

mod common;

use std::net::TcpListener;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use common::auth_server::{json_reply, reply, AuthServer, Reply, Seen};
use common::{header, Client, Server, Sse};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::json;

/// `ringcast --workers N --auth-url <auth> <extra>`.
fn ringcast(auth: &str, workers: &str, extra: &[&str]) -> Server {
    let mut args = vec!["--workers", workers, "--auth-url", auth];
    args.extend_from_slice(extra);
    Server::start(&args)
}

fn status(server: &Server, query: &str, headers: &[(&str, &str)]) -> u16 {
    Sse::open(server.addr, query, headers).status()
}

fn outcome(server: &Server, name: &str) -> u64 {
    server.metric(&format!(
        "ringcast_forward_auth_total{{outcome=\"{name}\"}}"
    ))
}

/// The answer by the request's cookie: how each test scripts its auth server.
fn by_cookie(seen: &Seen) -> Reply {
    match seen.get("cookie").unwrap_or_default() {
        "session=ok" => reply(200),
        "session=401" => reply(401),
        "session=403" => reply(403),
        "session=500" => reply(500),
        "session=garbage" => Reply {
            status: 200,
            body: "{\"topics\": \"not a list\"".into(),
            delay: Duration::ZERO,
        },
        "session=slow" => Reply {
            status: 200,
            body: String::new(),
            delay: Duration::from_secs(3),
        },
        _ => reply(401),
    }
}

#[test]
fn allow_and_deny_pass_through_with_every_header_forwarded() {
    let auth = AuthServer::start(by_cookie);
    let server = ringcast(&auth.url(), "2", &[]);
    let mut allowed = Sse::open(
        server.addr,
        "topic=a&topic=b%2Fc&topic=x:y",
        &[
            ("Cookie", "session=ok"),
            ("Authorization", "Basic dXNlcjpwdw=="),
            ("Origin", "https://app.example"),
        ],
    );
    assert_eq!(allowed.status(), 200);
    let seen = auth.seen();
    assert_eq!(seen.len(), 1);
    let s = &seen[0];
    assert_eq!(s.target, "/check");
    assert_eq!(s.get("cookie"), Some("session=ok"));
    assert_eq!(s.get("authorization"), Some("Basic dXNlcjpwdw=="));
    assert_eq!(s.get("origin"), Some("https://app.example"));
    assert_eq!(
        s.get("x-original-uri"),
        Some("/events?topic=a&topic=b%2Fc&topic=x:y")
    );
    assert_eq!(s.get("x-forwarded-for"), Some("127.0.0.1"));
    assert_eq!(s.get("x-ringcast-action"), Some("subscribe"));
    assert_eq!(s.get("x-ringcast-topics"), Some("a,b%2Fc,x%3Ay"));
    assert_eq!(
        s.get("host").map(str::to_string),
        Some(auth.addr.to_string())
    );

    // What the client did not send is not made up.
    assert_eq!(status(&server, "topic=a", &[]), 401);
    let bare = &auth.seen()[1];
    assert_eq!(
        (
            bare.get("cookie"),
            bare.get("authorization"),
            bare.get("origin")
        ),
        (None, None, None)
    );

    let mut denied = Sse::open(server.addr, "topic=a", &[("Cookie", "session=401")]);
    assert_eq!(denied.status(), 401);
    assert_eq!(
        status(&server, "topic=a", &[("Cookie", "session=403")]),
        403
    );
    assert_eq!(outcome(&server, "allow"), 1);
    assert_eq!(outcome(&server, "deny"), 3);
    assert_eq!(outcome(&server, "error") + outcome(&server, "timeout"), 0);
    // The allowed subscriber streams.
    let (code, _) = server.publish("topic=b/c", b"hello");
    assert_eq!(code, 202);
    assert_eq!(allowed.next().data, "hello");
}

#[test]
fn an_answer_narrows_the_topics() {
    let auth =
        AuthServer::start(|_| json_reply(json!({"topics": ["news", "chat/*"], "user": "ann"})));
    let server = ringcast(&auth.url(), "2", &[]);
    let mut sub = server.subscribe("topic=secret&topic=news&topic=chat/1");
    assert_eq!(sub.status(), 200);
    for (topic, data) in [
        ("secret", "s1"),
        ("news", "n1"),
        ("secret", "s2"),
        ("chat/1", "c1"),
    ] {
        let (code, _) = server.publish(&format!("topic={topic}"), data.as_bytes());
        assert_eq!(code, 202);
    }
    assert_eq!(sub.next().data, "n1");
    assert_eq!(sub.next().data, "c1");
    assert_eq!(sub.next_within(Duration::from_millis(300)), None);
    // Nothing asked for is allowed: 403.
    assert_eq!(status(&server, "topic=secret", &[]), 403);
    assert_eq!(outcome(&server, "allow"), 2);
}

#[test]
fn a_slow_broken_or_absent_auth_server_is_503_with_retry_after() {
    let auth = AuthServer::start(by_cookie);
    let server = ringcast(&auth.url(), "2", &["--auth-timeout", "300ms"]);
    let started = Instant::now();
    let mut slow = Sse::open(server.addr, "topic=a", &[("Cookie", "session=slow")]);
    let head = slow.head();
    assert_eq!(common::status_of(&head), 503, "{head}");
    assert_eq!(header(&head, "retry-after"), Some("1"));
    assert!(
        started.elapsed() < Duration::from_millis(2900),
        "answered before the auth server did: {:?}",
        started.elapsed()
    );
    assert_eq!(outcome(&server, "timeout"), 1);
    for cookie in ["session=500", "session=garbage"] {
        let mut s = Sse::open(server.addr, "topic=a", &[("Cookie", cookie)]);
        let head = s.head();
        assert_eq!(common::status_of(&head), 503, "{cookie}: {head}");
        assert_eq!(header(&head, "retry-after"), Some("1"));
    }
    assert_eq!(outcome(&server, "error"), 2);
    // The pool still serves after a timed-out call dropped its connection.
    assert_eq!(status(&server, "topic=a", &[("Cookie", "session=ok")]), 200);

    let nothing = TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}/check", nothing.local_addr().unwrap());
    drop(nothing);
    let server = ringcast(&dead, "1", &[]);
    let mut s = Sse::open(server.addr, "topic=a", &[("Cookie", "session=ok")]);
    let head = s.head();
    assert_eq!(common::status_of(&head), 503, "{head}");
    assert_eq!(header(&head, "retry-after"), Some("1"));
    assert_eq!(outcome(&server, "error"), 1);
}

#[test]
fn allowing_answers_are_cached_for_the_ttl() {
    let auth = AuthServer::start(by_cookie);
    // One worker: the cache is per worker.
    let server = ringcast(&auth.url(), "1", &["--auth-cache-ttl", "2s"]);
    let ok = [("Cookie", "session=ok")];
    assert_eq!(status(&server, "topic=a", &ok), 200);
    assert_eq!(status(&server, "topic=a", &ok), 200);
    assert_eq!(
        auth.asked(),
        1,
        "the second subscribe was answered from the cache"
    );
    assert_eq!(outcome(&server, "cached"), 1);
    // Other topics or other credentials are asked about.
    assert_eq!(status(&server, "topic=b", &ok), 200);
    assert_eq!(
        status(
            &server,
            "topic=a",
            &[("Cookie", "session=ok"), ("Origin", "http://x")]
        ),
        200
    );
    assert_eq!(auth.asked(), 3);
    // Denials are not cached.
    let no = [("Cookie", "session=403")];
    assert_eq!(status(&server, "topic=a", &no), 403);
    assert_eq!(status(&server, "topic=a", &no), 403);
    assert_eq!(auth.asked(), 5);
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(status(&server, "topic=a", &ok), 200);
    assert_eq!(auth.asked(), 6, "asked again after the TTL");
    assert_eq!(outcome(&server, "cached"), 1);
    assert_eq!(outcome(&server, "allow"), 4);
}

const SECRET: &str = "a-test-secret-of-32-bytes-length";

#[test]
fn with_jwt_auth_both_must_allow() {
    let auth = AuthServer::start(by_cookie);
    let server = ringcast(&auth.url(), "2", &["--jwt-secret", SECRET]);
    let token = encode(
        &Header::new(Algorithm::HS256),
        &json!({"topics": ["news"], "sub": "ann"}),
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap();
    let bearer = format!("Bearer {token}");
    let both = [("Authorization", bearer.as_str()), ("Cookie", "session=ok")];
    assert_eq!(status(&server, "topic=news", &both), 200);
    let jwt_only = [
        ("Authorization", bearer.as_str()),
        ("Cookie", "session=403"),
    ];
    assert_eq!(status(&server, "topic=news", &jwt_only), 403);
    let jwt_only = [
        ("Authorization", bearer.as_str()),
        ("Cookie", "session=401"),
    ];
    assert_eq!(status(&server, "topic=news", &jwt_only), 401);
    assert_eq!(auth.asked(), 3);
    // The JWT is checked first: without it the auth server is not asked.
    assert_eq!(
        status(&server, "topic=news", &[("Cookie", "session=ok")]),
        401
    );
    assert_eq!(
        status(&server, "topic=other", &both),
        403,
        "the token does not allow the topic"
    );
    assert_eq!(auth.asked(), 3);
    let seen = auth.seen();
    assert_eq!(seen[0].get("authorization"), Some(bearer.as_str()));
}

#[test]
fn publishes_are_asked_about_with_auth_publish() {
    let auth = AuthServer::start(|seen| match seen.get("x-ringcast-action") {
        Some("publish") if seen.get("cookie") == Some("session=ok") => {
            json_reply(json!({"topics": ["allowed", "room/*"]}))
        }
        Some("publish") => reply(401),
        _ => reply(200),
    });
    let server = ringcast(&auth.url(), "2", &["--auth-publish"]);
    let mut sub = server.subscribe("topic=allowed");
    assert_eq!(sub.status(), 200);
    let ok = [("Cookie", "session=ok")];
    let mut c = Client::connect(server.addr);
    let (code, _) = c.publish("topic=allowed", b"one", &ok);
    assert_eq!(code, 202);
    assert_eq!(sub.next().data, "one");
    let last = auth.seen().pop().unwrap();
    assert_eq!(last.get("x-ringcast-action"), Some("publish"));
    assert_eq!(last.get("x-ringcast-topics"), Some("allowed"));
    assert_eq!(last.get("x-original-uri"), Some("/publish?topic=allowed"));
    // Narrowing does not apply to publishes: one topic not allowed refuses the whole.
    let mut c = Client::connect(server.addr);
    let (code, _) = c.publish("topic=allowed&topic=other", b"two", &ok);
    assert_eq!(code, 403);
    let mut c = Client::connect(server.addr);
    let batch = b"{\"topic\":\"room/1\",\"data\":\"x\"}\n{\"topic\":[\"allowed\",\"secret\"],\"data\":\"y\"}\n";
    let headers = [
        ("Cookie", "session=ok"),
        ("Content-Type", "application/x-ndjson"),
    ];
    let (code, _) = c.publish("", batch, &headers);
    assert_eq!(code, 403);
    let last = auth.seen().pop().unwrap();
    assert_eq!(
        last.get("x-ringcast-topics"),
        Some("allowed,room%2F1,secret")
    );
    let mut c = Client::connect(server.addr);
    let (code, _) = c.publish("topic=allowed", b"three", &[("Cookie", "session=nope")]);
    assert_eq!(code, 401);
    let mut c = Client::connect(server.addr);
    let (code, _) = c.publish("topic=allowed", b"four", &ok);
    assert_eq!(code, 202);
    assert_eq!(sub.next().data, "four", "nothing refused was published");
    // A bad body is refused before the auth server is asked.
    let before = auth.asked();
    let mut c = Client::connect(server.addr);
    let (code, _) = c.publish("topic=allowed&event=a%0Ab", b"x", &ok);
    assert_eq!(code, 400);
    assert_eq!(auth.asked(), before);
}

#[test]
fn a_thousand_subscribers_at_once_share_a_bounded_pool() {
    const SUBSCRIBERS: usize = 1000;
    const PER_WORKER: usize = 4;
    const WORKERS: usize = 2;
    let auth = AuthServer::start(|_| Reply {
        status: 200,
        body: String::new(),
        delay: Duration::from_millis(1),
    });
    let server = ringcast(
        &auth.url(),
        &WORKERS.to_string(),
        &[
            "--auth-max-conns",
            &PER_WORKER.to_string(),
            "--auth-timeout",
            "15s",
        ],
    );
    let mut subs: Vec<Sse> = (0..SUBSCRIBERS)
        .map(|i| Sse::open(server.addr, &format!("topic=t{}", i % 10), &[]))
        .collect();
    let statuses: Vec<u16> = subs.iter_mut().map(Sse::status).collect();
    let ok = statuses.iter().filter(|&&s| s == 200).count();
    assert_eq!(
        ok,
        SUBSCRIBERS,
        "statuses other than 200: {:?}",
        statuses.iter().filter(|&&s| s != 200).collect::<Vec<_>>()
    );
    assert_eq!(auth.asked(), SUBSCRIBERS);
    let r = &auth.record;
    let (in_flight, open, accepted) = (
        r.max_in_flight.load(Ordering::SeqCst),
        r.max_open.load(Ordering::SeqCst),
        r.accepted.load(Ordering::SeqCst),
    );
    assert!(
        in_flight <= PER_WORKER * WORKERS && open <= PER_WORKER * WORKERS,
        "{in_flight} requests and {open} connections at once"
    );
    assert!(
        accepted <= PER_WORKER * WORKERS,
        "connections are kept alive: {accepted} opened"
    );
    assert_eq!(outcome(&server, "allow"), SUBSCRIBERS as u64);
}

#[test]
fn the_options_come_from_a_config_file_and_a_bad_url_stops_the_start() {
    let auth = AuthServer::start(by_cookie);
    let file = std::env::temp_dir().join(format!("ringcast-fa-{}.toml", std::process::id()));
    std::fs::write(
        &file,
        format!(
            "auth_url = \"{}\"\nauth_timeout = \"300ms\"\nauth_cache_ttl = \"1h\"\nauth_max_conns = 2\n",
            auth.url()
        ),
    )
    .unwrap();
    let server = Server::start(&["--workers", "1", "--config", file.to_str().unwrap()]);
    let _ = std::fs::remove_file(&file);
    let mut slow = Sse::open(server.addr, "topic=a", &[("Cookie", "session=slow")]);
    assert_eq!(slow.status(), 503);
    assert_eq!(outcome(&server, "timeout"), 1);
    for _ in 0..2 {
        assert_eq!(status(&server, "topic=a", &[("Cookie", "session=ok")]), 200);
    }
    assert_eq!(outcome(&server, "cached"), 1);

    for (args, says) in [
        (&["--auth-url", "https://127.0.0.1:1/x"][..], "TLS"),
        (&["--auth-url", "127.0.0.1:1"][..], "--auth-url"),
        (
            &["--auth-url", "http://127.0.0.1:notaport/"][..],
            "bad port",
        ),
        (&["--auth-publish"][..], "--auth-publish needs --auth-url"),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ringcast"))
            .args(["--listen", "127.0.0.1:0"])
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}
