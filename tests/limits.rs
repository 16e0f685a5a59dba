//! Every row of the design's "Limits and bad input" table, over real sockets: the exact
//! status, a short body, and a close — never a hang.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{exchange, header, status_of, Server};

/// Sends `request` and checks the answer's status, that it closes, and that its body
/// says something.
fn refused(server: &Server, request: &[u8], status: u16) -> String {
    let raw = exchange(server.addr, request);
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no head in {raw:?}"));
    assert_eq!(
        status_of(head),
        status,
        "request {:?} got {raw:?}",
        String::from_utf8_lossy(request)
    );
    assert_eq!(header(head, "connection"), Some("close"), "{raw:?}");
    assert!(!body.is_empty(), "a short body says why: {raw:?}");
    let len: usize = header(head, "content-length").unwrap().parse().unwrap();
    assert_eq!(len, body.len(), "{raw:?}");
    raw
}

macro_rules! rows {
    ($($name:ident: $request:expr => $status:expr;)*) => {
        #[test]
        fn each_bad_request_gets_its_status_and_a_close() {
            let server = Server::start(&["--workers", "2"]);
            $( let _ = stringify!($name); refused(&server, $request, $status); )*
            assert!(server.log().is_empty() || !server.log().contains("panicked"));
        }
    };
}

rows! {
    syntax: b"GET /events?topic=a HTTP/1.1 extra\r\nHost: t\r\n\r\n" => 400;
    bad_method: b"G(T /events HTTP/1.1\r\nHost: t\r\n\r\n" => 400;
    bad_version: b"GET /events?topic=a HTTP/2.0\r\nHost: t\r\n\r\n" => 400;
    bare_cr: b"GET /events?topic=a HTTP/1.1\r\nHost: t\rX: y\r\n\r\n" => 400;
    bare_lf: b"GET /events?topic=a HTTP/1.1\nHost: t\n\n" => 400;
    obs_fold: b"GET /events?topic=a HTTP/1.1\r\nHost: t\r\nX-A: b\r\n  c\r\n\r\n" => 400;
    bad_header_name: b"GET /events?topic=a HTTP/1.1\r\nHost: t\r\nBad Name: v\r\n\r\n" => 400;
    space_before_colon: b"GET /events?topic=a HTTP/1.1\r\nHost : t\r\n\r\n" => 400;
    nul_in_value: b"GET /events?topic=a HTTP/1.1\r\nHost: t\r\nX: a\0b\r\n\r\n" => 400;
    missing_host: b"GET /events?topic=a HTTP/1.1\r\n\r\n" => 400;
    host_list: b"GET /healthz HTTP/1.1\r\nHost: a, b\r\n\r\n" => 400;
    host_space: b"GET /healthz HTTP/1.1\r\nHost: a b\r\n\r\n" => 400;
    host_path: b"GET /healthz HTTP/1.1\r\nHost: a/b\r\n\r\n" => 400;
    host_userinfo: b"GET /healthz HTTP/1.1\r\nHost: user@a\r\n\r\n" => 400;
    host_bad_port: b"GET /healthz HTTP/1.1\r\nHost: a:99999\r\n\r\n" => 400;
    cl_and_te: b"POST /publish?topic=a HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" => 400;
    te_and_cl: b"POST /publish?topic=a HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n" => 400;
    differing_cl: b"POST /publish?topic=a HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd" => 400;
    te_not_chunked: b"POST /publish?topic=a HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n" => 400;
    te_chunked_identity: b"POST /publish?topic=a HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, identity\r\n\r\n" => 400;
    bad_chunk_size: b"POST /publish?topic=a HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n" => 400;
    chunk_size_over_limit: b"POST /publish?topic=a HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\nfffffffffffffffffff\r\n" => 413;
    chunk_size_too_many_digits: b"POST /publish?topic=a HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n00000000000000000001\r\n" => 400;
    missing_last_chunk: b"POST /publish?topic=a HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n1\r\na\r\nGET / HTTP/1.1\r\n\r\n" => 400;
    unknown_path: b"GET /nope HTTP/1.1\r\nHost: t\r\n\r\n" => 404;
    no_topic: b"GET /events HTTP/1.1\r\nHost: t\r\n\r\n" => 400;
    bad_topic: b"GET /events?topic=a%20b HTTP/1.1\r\nHost: t\r\n\r\n" => 400;
    bad_encoding: b"GET /events?topic=%zz HTTP/1.1\r\nHost: t\r\n\r\n" => 400;
    bad_event_name: b"POST /publish?topic=a&event=%0A HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n" => 400;
    body_over_limit: b"POST /publish?topic=a HTTP/1.1\r\nHost: t\r\nContent-Length: 70000\r\n\r\n" => 413;
    not_utf8: b"POST /publish?topic=a HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n\xff\xfe" => 400;
}

#[test]
fn wrong_methods_get_405_with_allow() {
    let server = Server::start(&["--workers", "1"]);
    for (request, allow) in [
        (
            &b"POST /events?topic=a HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n"[..],
            "GET, OPTIONS",
        ),
        (
            b"GET /publish?topic=a HTTP/1.1\r\nHost: t\r\n\r\n",
            "POST, OPTIONS",
        ),
        (b"DELETE /metrics HTTP/1.1\r\nHost: t\r\n\r\n", "GET, HEAD"),
    ] {
        let raw = refused(&server, request, 405);
        assert_eq!(header(&raw, "allow"), Some(allow), "{raw}");
    }
}

#[test]
fn an_oversized_head_gets_431_and_a_long_line_414() {
    let server = Server::start(&["--workers", "1"]);
    let mut big = b"GET /events?topic=a HTTP/1.1\r\nHost: t\r\n".to_vec();
    while big.len() < 9000 {
        big.extend_from_slice(b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
    }
    big.extend_from_slice(b"\r\n");
    refused(&server, &big, 431);
    let long_target = format!(
        "GET /events?topic={} HTTP/1.1\r\nHost: t\r\n\r\n",
        "a".repeat(9000)
    );
    refused(&server, long_target.as_bytes(), 414);
    let long_uri = format!(
        "GET /events?topic=a&pad={} HTTP/1.1\r\nHost: t\r\n\r\n",
        "b".repeat(5000)
    );
    refused(&server, long_uri.as_bytes(), 414);
    let many: String = (0..150).map(|i| format!("X-{i}: v\r\n")).collect();
    refused(
        &server,
        format!("GET /events?topic=a HTTP/1.1\r\nHost: t\r\n{many}\r\n").as_bytes(),
        431,
    );
}

#[test]
fn the_topic_cap_is_64_by_default_and_a_flag_raises_it() {
    let query = |n: usize| {
        (0..n)
            .map(|i| format!("topic=t{i}"))
            .collect::<Vec<_>>()
            .join("&")
    };
    let server = Server::start(&["--workers", "1"]);
    let raw = refused(
        &server,
        format!("GET /events?{} HTTP/1.1\r\nHost: t\r\n\r\n", query(65)).as_bytes(),
        400,
    );
    assert!(
        raw.contains("--max-topics"),
        "the refusal names the flag: {raw}"
    );
    let mut s = server.subscribe(&query(64));
    assert_eq!(s.status(), 200);

    let server = Server::start(&["--workers", "1", "--max-topics", "200"]);
    let mut s = server.subscribe(&query(200));
    assert_eq!(s.status(), 200);
    assert_eq!(server.publish("topic=t199", b"last").0, 202);
    assert_eq!(s.next().data, "last");
}

#[test]
fn valid_host_values_are_served() {
    let server = Server::start(&["--workers", "1"]);
    for host in [
        "a",
        "a:80",
        "127.0.0.1:8080",
        "[::1]:8080",
        "xn--caf-dma.example",
    ] {
        let raw = exchange(
            server.addr,
            format!("GET /healthz HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        );
        assert_eq!(status_of(&raw), 200, "Host: {host} got {raw:?}");
    }
}

#[test]
fn an_incomplete_head_gets_408_after_the_handshake_timeout() {
    let server = Server::start(&["--workers", "1", "--handshake-timeout", "200ms"]);
    let started = Instant::now();
    let raw = exchange(server.addr, b"GET /events?topic=a HTTP/1.1\r\nHost: t\r\n");
    assert_eq!(status_of(&raw), 408, "{raw}");
    assert!(
        started.elapsed() >= Duration::from_millis(190),
        "not before the timeout"
    );
    // A connection that sends nothing at all is answered the same way.
    let raw = exchange(server.addr, b"");
    assert_eq!(status_of(&raw), 408, "{raw}");
    common::eventually("timeouts counted", || {
        server.metric("ringcast_closes_total{reason=\"handshake_timeout\"}") == 2
    });
}

/// The keep-alive timeout covers only the idle gap before a request's first byte: a
/// head trickled in after a served request is held to the handshake timeout.
#[test]
fn a_head_trickled_after_a_served_request_gets_408_at_the_handshake_timeout() {
    let server = Server::start(&[
        "--workers",
        "1",
        "--handshake-timeout",
        "600ms",
        "--keepalive-timeout",
        "60s",
    ]);
    let mut c = common::Client::connect(server.addr);
    assert_eq!(c.publish("topic=a", b"abc", &[]).0, 202);
    let started = Instant::now();
    let head = b"GET /healthz HTTP/1.1\r\nHost: t\r\n";
    let mut sent = 0;
    // One byte every 100 ms: the head would take 3.5 s to complete.
    while sent < head.len() && c.stream.write_all(&head[sent..sent + 1]).is_ok() {
        sent += 1;
        std::thread::sleep(Duration::from_millis(100));
        let mut probe = [0u8; 1];
        c.stream.set_nonblocking(true).unwrap();
        let answered = std::io::Read::read(&mut c.stream, &mut probe).is_ok();
        c.stream.set_nonblocking(false).unwrap();
        if answered {
            let mut raw = vec![probe[0]];
            raw.extend(common::read_to_close(&mut c.stream).into_bytes());
            let raw = String::from_utf8_lossy(&raw).into_owned();
            let waited = started.elapsed();
            assert_eq!(status_of(&raw), 408, "{raw}");
            assert!(
                waited < Duration::from_secs(3),
                "408 after {waited:?}, not at the handshake timeout"
            );
            assert!(sent < head.len(), "answered only after the whole head");
            return;
        }
    }
    panic!("no 408 while the head trickled in ({sent} bytes sent)");
}

#[test]
fn over_the_connection_limit_gets_503_with_retry_after() {
    let server = Server::start(&["--workers", "1", "--max-connections", "3"]);
    let mut held: Vec<common::Sse> = (0..3).map(|_| server.subscribe("topic=a")).collect();
    for s in &mut held {
        assert_eq!(s.status(), 200);
    }
    let mut extra = TcpStream::connect(server.addr).unwrap();
    extra.set_read_timeout(Some(common::PATIENCE)).unwrap();
    extra
        .write_all(b"GET /events?topic=a HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let raw = common::read_to_close(&mut extra);
    assert_eq!(status_of(&raw), 503, "{raw}");
    assert_eq!(header(&raw, "retry-after"), Some("1"));
    drop(held.pop());
    common::eventually("a slot frees up", || {
        let mut s = server.subscribe("topic=a");
        s.status() == 200
    });
}

#[test]
fn an_idle_keep_alive_publisher_is_closed_without_a_word() {
    let server = Server::start(&["--workers", "1", "--keepalive-timeout", "200ms"]);
    let mut c = common::Client::connect(server.addr);
    assert_eq!(c.publish("topic=a", b"x", &[]).0, 202);
    let rest = common::read_to_close(&mut c.stream);
    assert_eq!(rest, "", "an idle keep-alive connection just closes");
    common::eventually("counted as idle", || {
        server.metric("ringcast_closes_total{reason=\"idle\"}") == 1
    });
}
