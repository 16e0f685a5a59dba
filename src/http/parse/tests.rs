//! Table tests of the head parser. The differential test against httparse, over a larger
//! corpus and every prefix of it, is `tests/parser_diff.rs`.

use super::*;

/// What a case must parse to.
#[derive(Debug)]
enum Want {
    /// Method, target, minor version, head_len.
    Head(Method, &'static [u8], u8, usize),
    Err(ParseError),
    Partial,
}

fn check(name: &str, input: &[u8], want: Want) {
    let got = parse(input, &Limits::new().max_headers(4).max_target(32));
    match (want, got) {
        (Want::Head(method, target, minor, len), Ok(Status::Complete(h))) => {
            assert_eq!(
                (h.method, h.target, h.minor_version, h.head_len),
                (method, target, minor, len),
                "{name}"
            );
        }
        (Want::Err(want), got) => assert_eq!(got, Err(want), "{name}"),
        (Want::Partial, got) => assert_eq!(got, Ok(Status::Partial), "{name}"),
        (want, got) => panic!("{name}: want {want:?}, got {got:?}"),
    }
}

/// `name: input => want;`, one `#[test]` per line (limits: 4 headers, 32-byte target).
macro_rules! parse_cases {
    ($($name:ident: $input:expr => $want:expr;)*) => {
        $(#[test] fn $name() { check(stringify!($name), $input, $want); })*
    };
}

use Method::*;
use ParseError as E;
parse_cases! {
    minimal_get: b"GET /events?topic=a HTTP/1.1\r\nHost: x\r\n\r\n"
        => Want::Head(Get, b"/events?topic=a", 1, 41);
    http10_needs_no_host: b"GET / HTTP/1.0\r\n\r\n" => Want::Head(Get, b"/", 0, 18);
    post: b"POST /publish HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi"
        => Want::Head(Post, b"/publish", 1, 54);
    other_method: b"PURGE * HTTP/1.0\r\n\r\n" => Want::Head(Other, b"*", 0, 20);
    lowercase_method_is_other: b"get / HTTP/1.0\r\n\r\n" => Want::Head(Other, b"/", 0, 18);
    leading_crlfs: b"\r\n\r\nGET / HTTP/1.0\r\n\r\n" => Want::Head(Get, b"/", 0, 22);
    empty_value: b"GET / HTTP/1.0\r\nX:\r\nY: \t \r\n\r\n" => Want::Head(Get, b"/", 0, 29);
    leading_bare_lf: b"\nGET / HTTP/1.0\r\n\r\n" => Want::Err(E::NewLine);
    leading_bare_cr: b"\rGET / HTTP/1.0\r\n\r\n" => Want::Err(E::NewLine);
    empty_method: b" / HTTP/1.1\r\n" => Want::Err(E::Method);
    bad_method_byte: b"GE(T / HTTP/1.1\r\n" => Want::Err(E::Method);
    double_space: b"GET  / HTTP/1.1\r\n" => Want::Err(E::Target);
    tab_delimiter: b"GET\t/ HTTP/1.1\r\n" => Want::Err(E::Method);
    non_ascii_target: b"GET /\xc3\xa9 HTTP/1.1\r\n" => Want::Err(E::Target);
    del_in_target: b"GET /\x7f HTTP/1.1\r\n" => Want::Err(E::Target);
    target_too_long: b"GET /0123456789012345678901234567890123 HTTP/1.1\r\n" => Want::Err(E::UriTooLong);
    target_too_long_partial: b"GET /0123456789012345678901234567890123" => Want::Err(E::UriTooLong);
    target_at_limit: b"GET /0123456789012345678901234567890 HTTP/1.0\r\n\r\n"
        => Want::Head(Get, b"/0123456789012345678901234567890", 0, 49);
    version_2: b"GET / HTTP/2.0\r\n" => Want::Err(E::Version);
    version_1_2: b"GET / HTTP/1.2\r\n" => Want::Err(E::Version);
    version_lowercase: b"GET / http/1.1\r\n" => Want::Err(E::Version);
    version_early_error: b"GET / HTTX" => Want::Err(E::Version);
    version_trailing_space: b"GET / HTTP/1.1 \r\n" => Want::Err(E::Version);
    version_bare_lf: b"GET / HTTP/1.1\nHost: x\r\n\r\n" => Want::Err(E::NewLine);
    version_bare_cr: b"GET / HTTP/1.1\rHost: x\r\n\r\n" => Want::Err(E::NewLine);
    header_bare_lf: b"GET / HTTP/1.1\r\nHost: x\n\r\n" => Want::Err(E::NewLine);
    header_bare_cr: b"GET / HTTP/1.1\r\nHost: x\ry: z\r\n\r\n" => Want::Err(E::NewLine);
    final_bare_lf: b"GET / HTTP/1.1\r\nHost: x\r\n\n" => Want::Err(E::NewLine);
    final_bare_cr: b"GET / HTTP/1.1\r\nHost: x\r\n\rx" => Want::Err(E::NewLine);
    obs_fold: b"GET / HTTP/1.1\r\nHost: x\r\n y\r\n\r\n" => Want::Err(E::ObsFold);
    space_before_first: b"GET / HTTP/1.1\r\n Host: x\r\n\r\n" => Want::Err(E::ObsFold);
    space_before_colon: b"GET / HTTP/1.1\r\nHost : x\r\n\r\n" => Want::Err(E::HeaderName);
    empty_name: b"GET / HTTP/1.1\r\n: x\r\n\r\n" => Want::Err(E::HeaderName);
    no_colon: b"GET / HTTP/1.1\r\nHost\r\n\r\n" => Want::Err(E::HeaderName);
    nul_in_name: b"GET / HTTP/1.1\r\nHo\0st: x\r\n\r\n" => Want::Err(E::HeaderName);
    nul_in_value: b"GET / HTTP/1.1\r\nHost: x\0y\r\n\r\n" => Want::Err(E::HeaderValue);
    del_in_value: b"GET / HTTP/1.1\r\nHost: x\x7fy\r\n\r\n" => Want::Err(E::HeaderValue);
    obs_text_value: b"GET / HTTP/1.0\r\nX: caf\xc3\xa9\r\n\r\n" => Want::Head(Get, b"/", 0, 28);
    four_headers: b"GET / HTTP/1.0\r\na:1\r\nb:2\r\nc:3\r\nd:4\r\n\r\n" => Want::Head(Get, b"/", 0, 38);
    five_headers: b"GET / HTTP/1.0\r\na:1\r\nb:2\r\nc:3\r\nd:4\r\ne" => Want::Err(E::TooManyHeaders);
    missing_host: b"GET / HTTP/1.1\r\n\r\n" => Want::Err(E::MissingHost);
    two_hosts: b"GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n" => Want::Err(E::MissingHost);
    cl_and_te: b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n"
        => Want::Err(E::LengthAndEncoding);
    te_and_cl: b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 1\r\n"
        => Want::Err(E::LengthAndEncoding);
    te_list: b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, identity\r\n" => Want::Err(E::TransferEncoding);
    te_gzip: b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n" => Want::Err(E::TransferEncoding);
    te_twice: b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"
        => Want::Err(E::TransferEncoding);
    cl_sign: b"POST / HTTP/1.1\r\nContent-Length: +1\r\n" => Want::Err(E::ContentLength);
    cl_empty: b"POST / HTTP/1.1\r\nContent-Length:\r\n" => Want::Err(E::ContentLength);
    cl_inner_space: b"POST / HTTP/1.1\r\nContent-Length: 1 2\r\n" => Want::Err(E::ContentLength);
    cl_overflow: b"POST / HTTP/1.1\r\nContent-Length: 18446744073709551616\r\n" => Want::Err(E::ContentLength);
    cl_differing: b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n" => Want::Err(E::ContentLength);
    cl_differing_list: b"POST / HTTP/1.1\r\nContent-Length: 1, 2\r\n" => Want::Err(E::ContentLength);
    cl_empty_list_item: b"POST / HTTP/1.1\r\nContent-Length: 1,\r\n" => Want::Err(E::ContentLength);
    partial_empty: b"" => Want::Partial;
    partial_crlf: b"\r\n" => Want::Partial;
    partial_line: b"GET /events HTTP/1." => Want::Partial;
    partial_cr: b"GET / HTTP/1.1\r\nHost: x\r" => Want::Partial;
    partial_final_cr: b"GET / HTTP/1.1\r\nHost: x\r\n\r" => Want::Partial;
}

#[test]
fn known_headers_are_extracted() {
    let req = b"POST /publish?topic=a&event=b HTTP/1.1\r\n\
        HOST: example.com:8080 \r\n\
        content-length: 7, 7\r\n\
        Content-Length: 7\r\n\
        Connection: Keep-Alive, CLOSE\r\n\
        Expect: 100-Continue\r\n\
        Last-Event-ID:  42\r\n\
        Authorization: Bearer t\r\n\
        Cookie: a=1\r\n\
        Cookie: b=2\r\n\
        Origin: https://o.example\r\n\
        Content-Type: application/x-ndjson\r\n\
        Access-Control-Request-Method: POST\r\n\
        Access-Control-Request-Headers: content-type\r\n\
        X-Other: y\r\n\r\nbody!!!";
    let Ok(Status::Complete(h)) = parse(req, &Limits::new()) else {
        panic!("{:?}", parse(req, &Limits::new()));
    };
    assert_eq!(h.head_len, req.len() - 7);
    assert_eq!(
        (h.path, h.query),
        (&b"/publish"[..], Some(&b"topic=a&event=b"[..]))
    );
    assert_eq!(h.header_count, 14);
    let k = h.headers;
    assert_eq!(k.host, Some(&b"example.com:8080"[..]));
    assert_eq!(k.content_length, Some(7));
    assert!(!k.chunked && k.connection_close && k.connection_keep_alive && k.expect_continue);
    assert_eq!(k.last_event_id, Some(&b"42"[..]));
    assert_eq!(k.authorization, Some(&b"Bearer t"[..]));
    assert_eq!(k.cookie, Some(&b"a=1"[..]));
    assert_eq!(k.origin, Some(&b"https://o.example"[..]));
    assert_eq!(k.content_type, Some(&b"application/x-ndjson"[..]));
    assert_eq!(k.access_control_request_method, Some(&b"POST"[..]));
    assert_eq!(k.access_control_request_headers, Some(&b"content-type"[..]));
}

#[test]
fn chunked_and_query_split() {
    let req = b"POST /p? HTTP/1.1\r\nHost: h\r\nTransfer-Encoding:  Chunked \r\n\r\n";
    let Ok(Status::Complete(h)) = parse(req, &Limits::new()) else {
        panic!()
    };
    assert!(h.headers.chunked);
    assert_eq!(h.headers.content_length, None);
    assert_eq!((h.path, h.query), (&b"/p"[..], Some(&b""[..])));
}

#[test]
fn error_statuses() {
    assert_eq!(E::UriTooLong.status(), 414);
    assert_eq!(E::TooManyHeaders.status(), 431);
    assert_eq!(E::NewLine.status(), 400);
    assert_eq!(E::NewLine.reason(), "bare CR or LF in request head");
}

#[test]
fn find_head_end_incremental() {
    let req = b"\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\nnext";
    let end = req.len() - 4;
    assert_eq!(find_head_end(req, 0), Some(end));
    // Fed one byte at a time, each call scanning from where the last one stopped.
    let mut scanned = 0;
    for k in 0..=end {
        let found = find_head_end(&req[..k], scanned);
        assert_eq!(found, (k == end).then_some(end), "prefix {k}");
        scanned = k;
    }
    // A terminator ending exactly at `from` is still found.
    assert_eq!(find_head_end(req, end), Some(end));
    assert_eq!(find_head_end(b"\r\n\r\n\r\n", 0), None);
    assert_eq!(find_head_end(b"GET / HTTP/1.1\n\n", 0), Some(16));
    assert_eq!(find_head_end(b"GET / HTTP/1.1\r\nA: b\n\r\n", 5), Some(23));
}

/// Heads fed a few bytes at a time: the incremental check refuses each at the same read
/// as a full parse of everything received so far would, and passes every prefix of a
/// good head.
#[test]
fn the_incremental_check_agrees_with_a_full_parse_of_every_prefix() {
    let heads: &[&[u8]] = &[
        b"GET /events?topic=a HTTP/1.1\r\nHost: t\r\nLast-Event-ID: 5\r\n\r\n",
        b"\r\nPOST /publish HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n",
        b"G@T / HTTP/1.1\r\nHost: t\r\n\r\n",
        b"GET /a\x7fb HTTP/1.1\r\nHost: t\r\n\r\n",
        b"GET / HTTP/2.0\r\nHost: t\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: t\r\nX: a\nY: b\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\nHost: b\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nX: y\r\nContent-Length: 4\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: t\r\nX: a\r\n folded\r\n\r\n",
        b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\nE: 5\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: t\r\nBad Name: 1\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: t\r\nX: a\x01b\r\n\r\n",
    ];
    let limits = Limits::new().max_headers(4).max_target(32);
    for head in heads {
        for step in 1..=3 {
            let mut progress = Progress::default();
            let mut seen = 0;
            let mut refused = None;
            while seen < head.len() && refused.is_none() {
                seen = (seen + step).min(head.len());
                let prefix = &head[..seen];
                if find_head_end(prefix, 0).is_some() {
                    break;
                }
                let full = parse(prefix, &limits).err();
                let incremental = check_partial(prefix, &limits, &mut progress).err();
                assert_eq!(
                    incremental,
                    full,
                    "{:?} at {seen} bytes",
                    String::from_utf8_lossy(head)
                );
                refused = incremental;
            }
        }
    }
}
