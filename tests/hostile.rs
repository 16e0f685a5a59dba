//! Request smuggling shapes and broken message framing (issue 7), over real sockets: each
//! gets its exact status and a close, and a publish that was refused provably published
//! nothing — a subscriber on the topic hears nothing and the published counter holds.

mod common;
mod hostile_kit;

use std::io::Write;
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use common::{header, status_of, Server};
use hostile_kit::{assert_silent, published, read_until_close, refused, watch};

/// How long a watcher must stay silent to show that nothing was published. Publishes are
/// delivered in well under a millisecond here; the margin is for a loaded machine.
const QUIET: Duration = Duration::from_millis(300);

/// `POST /publish?topic=smug` with the given extra field lines, then `rest` (the body).
fn publish_with(fields: &str, rest: &str) -> Vec<u8> {
    format!("POST /publish?topic=smug HTTP/1.1\r\nHost: t\r\n{fields}\r\n{rest}").into_bytes()
}

/// A whole, valid publish to `smug`: what a smuggler hopes to slip through.
const SMUGGLED: &str =
    "POST /publish?topic=smug HTTP/1.1\r\nHost: t\r\nContent-Length: 6\r\n\r\nsmuggl";

macro_rules! refusals {
    ($($name:ident: $request:expr => $status:expr;)*) => {
        /// Every shape is refused with its status and a close, and none of them publishes.
        #[test]
        fn smuggling_shapes_are_refused_and_publish_nothing() {
            let server = Server::start(&["--workers", "2"]);
            let mut sub = watch(&server, "smug");
            $(
                let request: Vec<u8> = $request;
                let raw = refused(&server, &request, $status);
                assert!(!raw.contains("202"), "{}: {raw}", stringify!($name));
            )*
            assert_silent(&mut sub, QUIET, "after the refusals");
            assert_eq!(published(&server), 0, "nothing was published");
            assert!(!server.log().contains("panicked"), "{}", server.log());
        }
    };
}

refusals! {
    cl_then_te: publish_with("Content-Length: 70\r\nTransfer-Encoding: chunked\r\n", &format!("0\r\n\r\n{SMUGGLED}")) => 400;
    te_then_cl: publish_with("Transfer-Encoding: chunked\r\nContent-Length: 5\r\n", &format!("0\r\n\r\n{SMUGGLED}")) => 400;
    cl_te_cl: publish_with("Content-Length: 5\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n", "0\r\n\r\n") => 400;
    cl_differing: publish_with("Content-Length: 6\r\nContent-Length: 7\r\n", "smuggle") => 400;
    cl_differing_list: publish_with("Content-Length: 6, 7\r\n", "smuggle") => 400;
    cl_negative: publish_with("Content-Length: -1\r\n", "x") => 400;
    cl_plus: publish_with("Content-Length: +1\r\n", "x") => 400;
    cl_hex: publish_with("Content-Length: 0x1\r\n", "x") => 400;
    cl_inner_space: publish_with("Content-Length: 1 1\r\n", "x") => 400;
    cl_empty: publish_with("Content-Length: \r\n", "x") => 400;
    cl_overflow: publish_with("Content-Length: 18446744073709551616\r\n", "x") => 400;
    cl_over_limit: publish_with("Content-Length: 65537\r\n", "x") => 413;
    te_chunked_identity: publish_with("Transfer-Encoding: chunked, identity\r\n", "1\r\nx\r\n0\r\n\r\n") => 400;
    te_identity_chunked: publish_with("Transfer-Encoding: identity, chunked\r\n", "1\r\nx\r\n0\r\n\r\n") => 400;
    te_identity: publish_with("Transfer-Encoding: identity\r\n", "x") => 400;
    te_gzip_chunked: publish_with("Transfer-Encoding: gzip, chunked\r\n", "1\r\nx\r\n0\r\n\r\n") => 400;
    te_twice: publish_with("Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n", "1\r\nx\r\n0\r\n\r\n") => 400;
    te_chunked_then_identity: publish_with("Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n", "1\r\nx\r\n0\r\n\r\n") => 400;
    te_empty: publish_with("Transfer-Encoding: \r\n", "1\r\nx\r\n0\r\n\r\n") => 400;
    te_chunked_suffix: publish_with("Transfer-Encoding: chunkedx\r\n", "1\r\nx\r\n0\r\n\r\n") => 400;
    te_chunked_param: publish_with("Transfer-Encoding: chunked;q=1\r\n", "1\r\nx\r\n0\r\n\r\n") => 400;
    te_quoted: publish_with("Transfer-Encoding: \"chunked\"\r\n", "1\r\nx\r\n0\r\n\r\n") => 400;
    te_vertical_tab: publish_with("Transfer-Encoding: \x0bchunked\r\n", "1\r\nx\r\n0\r\n\r\n") => 400;
    te_form_feed: publish_with("Transfer-Encoding: chunked\x0c\r\n", "1\r\nx\r\n0\r\n\r\n") => 400;
    te_space_before_colon: publish_with("Transfer-Encoding : chunked\r\n", "1\r\nx\r\n0\r\n\r\n") => 400;
    te_tab_before_colon: publish_with("Transfer-Encoding\t: chunked\r\n", "1\r\nx\r\n0\r\n\r\n") => 400;
    te_leading_space_line: publish_with(" Transfer-Encoding: chunked\r\n", "1\r\nx\r\n0\r\n\r\n") => 400;
    te_obs_fold_value: publish_with("Transfer-Encoding:\r\n chunked\r\n", "1\r\nx\r\n0\r\n\r\n") => 400;
    te_obs_fold_list: publish_with("Transfer-Encoding: chunked\r\n\t, identity\r\n", "1\r\nx\r\n0\r\n\r\n") => 400;
    te_http10: b"POST /publish?topic=smug HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n0\r\n\r\n".to_vec() => 400;
    te_bare_cr_value: publish_with("Transfer-Encoding: chunked\rX: y\r\n", "1\r\nx\r\n0\r\n\r\n") => 400;
    bare_lf_before_te: publish_with("X: y\nTransfer-Encoding: chunked\r\n", "1\r\nx\r\n0\r\n\r\n") => 400;
    bare_lf_request_line: b"POST /publish?topic=smug HTTP/1.1\nHost: t\r\nContent-Length: 1\r\n\r\nx".to_vec() => 400;
    bare_cr_request_line: b"POST /publish?topic=smug HTTP/1.1\rHost: t\r\nContent-Length: 1\r\n\r\nx".to_vec() => 400;
    bare_cr_in_target: b"POST /publish?topic=smug\r HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\nx".to_vec() => 400;
    bare_cr_in_name: publish_with("Content\r-Length: 1\r\n", "x") => 400;
    bare_lf_in_name: publish_with("Content\n-Length: 1\r\n", "x") => 400;
    bare_cr_end_of_head: b"POST /publish?topic=smug HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\r\n\r\nx".to_vec() => 400;
    bare_lf_end_of_head: b"POST /publish?topic=smug HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\nx".to_vec() => 400;
    obs_fold_cl: publish_with("Content-Length:\r\n 1\r\n", "x") => 400;
    chunk_size_not_hex: publish_with("Transfer-Encoding: chunked\r\n", "zz\r\nx\r\n0\r\n\r\n") => 400;
    chunk_size_empty: publish_with("Transfer-Encoding: chunked\r\n", "\r\nx\r\n0\r\n\r\n") => 400;
    chunk_size_0x: publish_with("Transfer-Encoding: chunked\r\n", "0x10\r\n0123456789abcdef\r\n0\r\n\r\n") => 400;
    chunk_size_negative: publish_with("Transfer-Encoding: chunked\r\n", "-1\r\nx\r\n0\r\n\r\n") => 400;
    chunk_size_plus: publish_with("Transfer-Encoding: chunked\r\n", "+1\r\nx\r\n0\r\n\r\n") => 400;
    chunk_size_leading_space: publish_with("Transfer-Encoding: chunked\r\n", " 1\r\nx\r\n0\r\n\r\n") => 400;
    chunk_size_trailing_space: publish_with("Transfer-Encoding: chunked\r\n", "1 \r\nx\r\n0\r\n\r\n") => 400;
    chunk_size_tab: publish_with("Transfer-Encoding: chunked\r\n", "1\t\r\nx\r\n0\r\n\r\n") => 400;
    chunk_size_inner_space: publish_with("Transfer-Encoding: chunked\r\n", "1 0\r\n0123456789abcdef\r\n0\r\n\r\n") => 400;
    chunk_size_bare_lf: publish_with("Transfer-Encoding: chunked\r\n", "1\nx\r\n0\r\n\r\n") => 400;
    chunk_size_17_digits: publish_with("Transfer-Encoding: chunked\r\n", "00000000000000001\r\nx\r\n0\r\n\r\n") => 400;
    chunk_size_overflow: publish_with("Transfer-Encoding: chunked\r\n", "fffffffffffffffffffff\r\nx\r\n0\r\n\r\n") => 413;
    chunk_size_over_limit: publish_with("Transfer-Encoding: chunked\r\n", "10001\r\n") => 413;
    chunks_sum_over_limit: publish_with("Transfer-Encoding: chunked\r\n", &format!("8000\r\n{}\r\n8001\r\n", "a".repeat(0x8000))) => 413;
    chunk_data_longer: publish_with("Transfer-Encoding: chunked\r\n", &format!("1\r\nxy\r\n0\r\n\r\n{SMUGGLED}")) => 400;
    chunk_data_shorter: publish_with("Transfer-Encoding: chunked\r\n", "3\r\nab\r\n0\r\n\r\n") => 400;
    chunk_data_no_crlf: publish_with("Transfer-Encoding: chunked\r\n", "1\r\nx0\r\n\r\n") => 400;
    chunk_ext_empty_name: publish_with("Transfer-Encoding: chunked\r\n", "1;\r\nx\r\n0\r\n\r\n") => 400;
    chunk_ext_no_name: publish_with("Transfer-Encoding: chunked\r\n", "1;=v\r\nx\r\n0\r\n\r\n") => 400;
    chunk_ext_empty_value: publish_with("Transfer-Encoding: chunked\r\n", "1;a=\r\nx\r\n0\r\n\r\n") => 400;
    chunk_ext_space: publish_with("Transfer-Encoding: chunked\r\n", "1; a=b\r\nx\r\n0\r\n\r\n") => 400;
    chunk_ext_open_quote: publish_with("Transfer-Encoding: chunked\r\n", "1;a=\"b\r\nx\r\n0\r\n\r\n") => 400;
    chunk_ext_nul: publish_with("Transfer-Encoding: chunked\r\n", "1;a=\"\0\"\r\nx\r\n0\r\n\r\n") => 400;
    chunk_ext_bare_lf: publish_with("Transfer-Encoding: chunked\r\n", "1;a\nx\r\n0\r\n\r\n") => 400;
    chunk_ext_endless: publish_with("Transfer-Encoding: chunked\r\n", &format!("1;a={}\r\nx\r\n0\r\n\r\n", "b".repeat(5000))) => 400;
    trailer_no_colon: publish_with("Transfer-Encoding: chunked\r\n", "1\r\nx\r\n0\r\nX-T\r\n\r\n") => 400;
    trailer_space_in_name: publish_with("Transfer-Encoding: chunked\r\n", "1\r\nx\r\n0\r\nX T: 1\r\n\r\n") => 400;
    trailer_obs_fold: publish_with("Transfer-Encoding: chunked\r\n", "1\r\nx\r\n0\r\nX-T: 1\r\n 2\r\n\r\n") => 400;
    trailer_nul: publish_with("Transfer-Encoding: chunked\r\n", "1\r\nx\r\n0\r\nX-T: \0\r\n\r\n") => 400;
    trailer_bare_lf: publish_with("Transfer-Encoding: chunked\r\n", "1\r\nx\r\n0\r\nX-T: 1\n\r\n") => 400;
    trailers_endless: publish_with("Transfer-Encoding: chunked\r\n", &format!("1\r\nx\r\n0\r\nX-T: {}\r\n\r\n", "b".repeat(9000))) => 400;
    last_chunk_bare_lf: publish_with("Transfer-Encoding: chunked\r\n", "1\r\nx\r\n0\r\n\n") => 400;
}

/// Publishes `request` (which must ask for `Connection: close`) and returns the event the
/// watcher then receives.
fn accepted(server: &Server, sub: &mut common::Sse, request: &[u8]) -> common::Event {
    let raw = common::exchange(server.addr, request);
    let shown = String::from_utf8_lossy(request);
    assert_eq!(status_of(&raw), 202, "request {shown:?} got {raw:?}");
    let ev = sub.next();
    let id = raw
        .rsplit_once("\"id\":\"")
        .map(|(_, r)| r.trim_end_matches("\"}"));
    assert_eq!(Some(ev.id.as_str()), id, "request {shown:?}");
    ev
}

/// The accepted spellings are framed the same way every time: the body the server
/// publishes is exactly the one the framing delimits, once. (The controls for the test
/// above: they show that its watcher and counter would have seen a publish.)
#[test]
fn accepted_spellings_publish_exactly_the_framed_body_once() {
    let server = Server::start(&["--workers", "2"]);
    let mut sub = watch(&server, "smug");
    let close = "Connection: close\r\n";
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (
            publish_with(
                &format!("Content-Length: 3\r\nContent-Length: 3\r\n{close}"),
                "abc",
            ),
            "abc",
        ),
        (
            publish_with(&format!("Content-Length: 3, 3\r\n{close}"), "abc"),
            "abc",
        ),
        (
            publish_with(&format!("Content-Length: 003\r\n{close}"), "abc"),
            "abc",
        ),
        (
            publish_with(
                &format!("Transfer-Encoding: CHUNKED\r\n{close}"),
                "3\r\nabc\r\n0\r\n\r\n",
            ),
            "abc",
        ),
        (
            publish_with(
                &format!("transfer-encoding:chunked\r\n{close}"),
                "3\r\nabc\r\n0\r\n\r\n",
            ),
            "abc",
        ),
        (
            publish_with(
                &format!("Transfer-Encoding:  \tChunked \t\r\n{close}"),
                "3\r\nabc\r\n0\r\n\r\n",
            ),
            "abc",
        ),
        (
            publish_with(
                &format!("Transfer-Encoding: chunked\r\n{close}"),
                "2;a=1;b=\"q\\\"\"\r\nab\r\n1\r\nc\r\n0;z\r\nX-T: 1\r\nContent-Length: 99\r\n\r\n",
            ),
            "abc",
        ),
        (
            publish_with(
                &format!("Transfer-Encoding: chunked\r\n{close}"),
                "0003\r\nabc\r\n00\r\n\r\n",
            ),
            "abc",
        ),
    ];
    let before = published(&server);
    for (request, data) in &cases {
        let ev = accepted(&server, &mut sub, request);
        assert_eq!(ev.data, *data, "{:?}", String::from_utf8_lossy(request));
    }
    assert_silent(&mut sub, QUIET, "one event per request");
    assert_eq!(published(&server) - before, cases.len() as u64);
}

/// A body that ends early (connection closed, or half-closed, mid-body) is never
/// published, the server does not hang on it, and the connection is released. One that
/// simply stops is answered 408 when the handshake timeout passes.
#[test]
fn a_body_cut_short_publishes_nothing_and_never_hangs() {
    let server = Server::start(&["--workers", "2", "--handshake-timeout", "500ms"]);
    let mut sub = watch(&server, "smug");
    let cut_bodies = [
        publish_with("Transfer-Encoding: chunked\r\n", "3\r\nabc\r\n"),
        publish_with("Transfer-Encoding: chunked\r\n", "3\r\nab"),
        publish_with("Transfer-Encoding: chunked\r\n", "3\r\nabc\r\n0\r\n"),
        publish_with(
            "Transfer-Encoding: chunked\r\n",
            "3\r\nabc\r\n0\r\nX-T: 1\r\n",
        ),
        publish_with("Content-Length: 10\r\n", "abc"),
    ];
    for request in &cut_bodies {
        let shown = String::from_utf8_lossy(request);
        // Half-closed: the server sees the end of the stream and must end too, at once.
        let mut s = TcpStream::connect(server.addr).unwrap();
        s.write_all(request).unwrap();
        s.shutdown(Shutdown::Write).unwrap();
        let started = Instant::now();
        let (rest, _) = read_until_close(&mut s, Duration::from_secs(5));
        assert!(
            started.elapsed() < Duration::from_millis(400),
            "{shown:?}: took {:?}",
            started.elapsed()
        );
        assert!(
            !String::from_utf8_lossy(&rest).contains("202"),
            "{shown:?}: {rest:?}"
        );
        // Closed outright.
        let mut s = TcpStream::connect(server.addr).unwrap();
        s.write_all(request).unwrap();
        drop(s);
        // Left hanging: 408 at the timeout.
        let started = Instant::now();
        let raw = common::exchange(server.addr, request);
        assert_eq!(status_of(&raw), 408, "{shown:?}: {raw}");
        assert_eq!(header(&raw, "connection"), Some("close"));
        assert!(started.elapsed() >= Duration::from_millis(490), "{shown:?}");
    }
    assert_silent(&mut sub, QUIET, "after the cut bodies");
    assert_eq!(published(&server), 0);
    common::eventually("every cut connection released", || {
        // The watcher, and the metrics request itself.
        server.metric("ringcast_connections") == 2
    });
}

/// A request carried inside a publish's body is that event's data: published once, as
/// bytes, on the publish's own topic — never run as a second request.
#[test]
fn a_request_inside_a_publish_body_is_data_not_a_request() {
    let server = Server::start(&["--workers", "2"]);
    let mut smug = watch(&server, "smug");
    let mut carrier = watch(&server, "carrier");
    let by_length = format!(
        "POST /publish?topic=carrier HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{SMUGGLED}",
        SMUGGLED.len()
    );
    let by_chunks = format!(
        "POST /publish?topic=carrier HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{:x}\r\n{SMUGGLED}\r\n0\r\n\r\n",
        SMUGGLED.len()
    );
    for request in [by_length, by_chunks] {
        let raw = common::exchange(server.addr, request.as_bytes());
        assert_eq!(raw.matches("HTTP/1.1 ").count(), 1, "one answer: {raw}");
        assert_eq!(status_of(&raw), 202, "{raw}");
        let ev = carrier.next();
        assert_eq!(ev.data, SMUGGLED.replace("\r\n", "\n"));
    }
    assert_silent(&mut smug, QUIET, "the smuggled publish");
    assert_silent(&mut carrier, Duration::ZERO, "one event per carrier");
    assert_eq!(published(&server), 2);
}

/// A GET, HEAD or OPTIONS with a body: the body is framed by its Content-Length or
/// chunked coding whatever the method (RFC 9112 §6.3), so the server must discard it or
/// refuse the request — never read it as the next request on the connection.
#[test]
fn a_body_on_a_get_head_or_options_is_never_run_as_a_request() {
    let server = Server::start(&["--workers", "2"]);
    let mut smug = watch(&server, "smug");
    let chunked = format!("{:x}\r\n{SMUGGLED}\r\n0\r\n\r\n", SMUGGLED.len());
    let requests = [
        format!(
            "GET /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{SMUGGLED}",
            SMUGGLED.len()
        ),
        format!(
            "HEAD /healthz HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{SMUGGLED}",
            SMUGGLED.len()
        ),
        format!(
            "GET /metrics HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{SMUGGLED}",
            SMUGGLED.len()
        ),
        format!(
            "OPTIONS /publish HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{SMUGGLED}",
            SMUGGLED.len()
        ),
        format!("GET /healthz HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n{chunked}"),
        // No body at all, but the chunk framing around the request must not matter.
        format!(
            "OPTIONS /events HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n{chunked}"
        ),
    ];
    let mut executed = Vec::new();
    for request in &requests {
        let mut s = TcpStream::connect(server.addr).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        // The server may keep the connection open for a next request that never comes;
        // what matters is what it answered within a moment.
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let mut raw = Vec::new();
        let _ = std::io::Read::read_to_end(&mut s, &mut raw);
        let raw = String::from_utf8_lossy(&raw).into_owned();
        if raw.contains("202 Accepted") {
            let statuses: Vec<&str> = raw.lines().filter(|l| l.starts_with("HTTP/1.1 ")).collect();
            executed.push(format!("{request:?}\n  answered {statuses:?}"));
        }
    }
    let delivered = smug.next_within(QUIET);
    assert!(
        executed.is_empty() && delivered.is_none(),
        "smuggled requests were executed:\n{}\nthe watcher got {delivered:?}",
        executed.join("\n")
    );
    assert_eq!(published(&server), 0);
}
