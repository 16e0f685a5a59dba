//! What an operator relies on: CORS for browser pages on other origins, the TOML
//! configuration file, configuration errors that name the option, and metrics that move
//! as events flow.

mod common;

use std::process::Command;
use std::time::Duration;

use common::{exchange, header, status_of, Client, Server, Sse};

#[test]
fn allowed_origins_get_cors_headers_on_preflights_streams_and_answers() {
    let server = Server::start(&[
        "--workers",
        "1",
        "--cors-origin",
        "https://app.test",
        "--cors-credentials",
    ]);
    let preflight = exchange(
        server.addr,
        b"OPTIONS /events?topic=a HTTP/1.1\r\nHost: t\r\nOrigin: https://app.test\r\n\
          Access-Control-Request-Method: GET\r\nAccess-Control-Request-Headers: last-event-id\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(status_of(&preflight), 204, "{preflight}");
    assert_eq!(
        header(&preflight, "access-control-allow-origin"),
        Some("https://app.test")
    );
    assert_eq!(
        header(&preflight, "access-control-allow-credentials"),
        Some("true")
    );
    assert!(header(&preflight, "access-control-allow-headers")
        .unwrap()
        .contains("Last-Event-ID"));
    let publish_preflight = exchange(
        server.addr,
        b"OPTIONS /publish HTTP/1.1\r\nHost: t\r\nOrigin: https://app.test\r\nAccess-Control-Request-Method: POST\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(
        header(&publish_preflight, "access-control-allow-methods"),
        Some("POST, OPTIONS")
    );
    let evil = exchange(
        server.addr,
        b"OPTIONS /events HTTP/1.1\r\nHost: t\r\nOrigin: https://evil.test\r\nAccess-Control-Request-Method: GET\r\n\r\n",
    );
    assert_eq!(status_of(&evil), 403);
    assert_eq!(header(&evil, "access-control-allow-origin"), None);

    let mut sub = Sse::open(server.addr, "topic=a", &[("Origin", "https://app.test")]);
    let head = sub.head();
    assert_eq!(
        header(&head, "access-control-allow-origin"),
        Some("https://app.test")
    );
    assert_eq!(header(&head, "vary"), Some("Origin"));
    assert_eq!(header(&head, "content-type"), Some("text/event-stream"));
    let mut plain = Sse::open(server.addr, "topic=a", &[]);
    assert_eq!(
        header(&plain.head(), "access-control-allow-origin"),
        None,
        "same-origin requests get none"
    );
    common::eventually("subscribed", || server.metric("ringcast_subscribers") == 2);
    let mut c = Client::connect(server.addr);
    c.stream.set_read_timeout(Some(common::PATIENCE)).unwrap();
    std::io::Write::write_all(
        &mut c.stream,
        b"POST /publish?topic=a HTTP/1.1\r\nHost: t\r\nOrigin: https://app.test\r\nContent-Length: 2\r\n\r\nhi",
    )
    .unwrap();
    assert_eq!(c.response().0, 202);
    assert_eq!(sub.next().data, "hi");
    let refused = exchange(
        server.addr,
        b"GET /events HTTP/1.1\r\nHost: t\r\nOrigin: https://app.test\r\n\r\n",
    );
    assert_eq!(status_of(&refused), 400);
    assert_eq!(
        header(&refused, "access-control-allow-origin"),
        Some("https://app.test"),
        "a page can read why"
    );
}

#[test]
fn a_config_file_sets_options_and_flags_override_it() {
    let path = std::env::temp_dir().join(format!("ringcast-config-{}.toml", std::process::id()));
    std::fs::write(
        &path,
        "heartbeat = \"100ms\"\nworkers = 3\nretry = \"1234ms\"\n",
    )
    .unwrap();
    let server = Server::start(&["--config", path.to_str().unwrap(), "--workers", "1"]);
    assert!(
        server.log().contains("workers=1"),
        "the flag wins over the file: {}",
        server.log()
    );
    let mut sub = server.subscribe("topic=c");
    sub.head();
    common::eventually("a heartbeat from the file's interval", || {
        sub.next_within(Duration::from_millis(50));
        sub.comments > 0
    });
    assert_eq!(sub.retry, Some(1234));
    std::fs::remove_file(&path).unwrap();
}

/// Runs the binary with `args`, expecting it to refuse to start; returns its stderr.
fn refuses_to_start(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_ringcast"))
        .args(args)
        .output()
        .expect("run ringcast");
    assert_eq!(out.status.code(), Some(2), "exit status for {args:?}");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn invalid_configuration_fails_at_start_naming_the_option() {
    assert!(refuses_to_start(&["--heartbeat", "15 parsecs"]).contains("--heartbeat"));
    assert!(refuses_to_start(&["--max-event-bytes", "lots"]).contains("--max-event-bytes"));
    assert!(
        refuses_to_start(&["--cors-origin", "*", "--cors-credentials"]).contains("--cors-origin")
    );
    assert!(refuses_to_start(&["--jwt-secret", "short"]).contains("--jwt-secret"));
    assert!(
        refuses_to_start(&["--jwt-public-key", "/nonexistent.pem"]).contains("--jwt-public-key")
    );
    assert!(refuses_to_start(&["--public-topic", "x"]).contains("--public-topic"));
    let path = std::env::temp_dir().join(format!("ringcast-bad-{}.toml", std::process::id()));
    std::fs::write(&path, "hartbeat = \"1s\"\n").unwrap();
    assert!(refuses_to_start(&["--config", path.to_str().unwrap()]).contains("hartbeat"));
    std::fs::remove_file(&path).unwrap();
    let help = Command::new(env!("CARGO_BIN_EXE_ringcast"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in [
        "--heartbeat",
        "--jwt-secret",
        "--cors-origin",
        "--config",
        "[default: 15s]",
        "RINGCAST_HEARTBEAT",
    ] {
        assert!(help.contains(flag), "--help explains {flag}");
    }
}

#[test]
fn metrics_move_as_events_flow() {
    let server = Server::start(&["--workers", "2"]);
    let before = |name: &str| server.metric(name);
    let published = before("ringcast_events_published_total");
    let mut subs: Vec<Sse> = (0..3).map(|_| server.subscribe("topic=m")).collect();
    for s in &mut subs {
        s.head();
    }
    common::eventually("subscribed", || server.metric("ringcast_subscribers") == 3);
    assert_eq!(server.metric("ringcast_subscriptions"), 3);
    assert!(
        (1..=2).contains(&server.metric("ringcast_subscribed_topics")),
        "one topic, on one or both workers"
    );
    assert!(server.metric("ringcast_connections") >= 3);
    for i in 0..10 {
        server.publish("topic=m", format!("{i}").as_bytes());
    }
    for s in &mut subs {
        s.take(10);
    }
    assert_eq!(
        server.metric("ringcast_events_published_total") - published,
        10
    );
    assert_eq!(server.metric("ringcast_frames_delivered_total"), 30);
    assert!(server.metric("ringcast_bytes_written_total") > 30 * 20);
    assert!(server.metric("ringcast_writes_total") >= 3);
    assert!(server.metric("ringcast_requests_total{status=\"202\"}") >= 10);
    assert!(server.metric("ringcast_history_bytes") > 0);
    assert!(server.metric("ringcast_publish_to_write_seconds_count") >= 10);
    let (_, text) = common::get(server.addr, "/metrics");
    for line in [
        "# TYPE ringcast_closes_total counter",
        "ringcast_closes_total{reason=\"slow\"} 0",
        "le=\"+Inf\"",
    ] {
        assert!(text.contains(line), "{line}");
    }
    drop(subs);
    common::eventually("closes counted", || {
        server.metric("ringcast_subscribers") == 0
            && server.metric("ringcast_closes_total{reason=\"peer\"}") >= 3
    });
}

#[test]
fn a_second_server_on_a_port_in_use_is_refused_unless_it_asks_to_share() {
    let first = Server::start(&["--workers", "2"]);
    let port = first.addr.to_string();
    let out = Command::new(env!("CARGO_BIN_EXE_ringcast"))
        .args(["--listen", &port])
        .output()
        .expect("run ringcast");
    assert_eq!(out.status.code(), Some(1), "exit status");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("already in use") && err.contains("--reuse-port"),
        "{err}"
    );
    // Asked to share, it starts next to the first one.
    let second = Server::start(&["--workers", "1", "--listen", &port, "--reuse-port"]);
    assert_eq!(second.addr, first.addr);
    assert_eq!(common::get(second.addr, "/healthz").0, 200);
}
