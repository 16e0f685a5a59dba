//! The corpus of the differential test: hand-written requests, valid and invalid, and
//! programmatic variations on top of them. Every case says what must hold against httparse.

pub mod requests;

use ringcast::http::ParseError;

/// What a case must show when compared with httparse.
#[derive(Clone, Copy, Debug)]
pub enum Expect {
    /// Same outcome as httparse on the full input and on every prefix of it.
    Same,
    /// We reject the full input with this error where httparse does not, for the reason
    /// given. On prefixes we may error earlier than httparse, never the other way round.
    Stricter(ParseError, &'static str),
    /// Both reject the full input, but we see the bad byte sooner: on some prefixes we
    /// error while httparse still says Partial, for the reason given.
    Earlier(&'static str),
}

#[derive(Clone, Debug)]
pub struct Case {
    pub name: String,
    pub bytes: Vec<u8>,
    pub expect: Expect,
}

fn case(name: impl Into<String>, bytes: impl Into<Vec<u8>>, expect: Expect) -> Case {
    Case {
        name: name.into(),
        bytes: bytes.into(),
        expect,
    }
}

const BARE_LF: &str = "bare LF line endings are accepted by httparse, not by us";
const NON_ASCII_TARGET: &str = "we take only visible ASCII in the request-target";
const UTF8_AT_END: &str = "httparse checks the target's UTF-8 only once it has all of it";
const SEMANTIC: &str = "a framing rule httparse does not check";
const LIMIT: &str = "a limit httparse leaves to the caller";

/// Every case, hand-written and generated.
pub fn all() -> Vec<Case> {
    let mut cases = valid();
    cases.extend(invalid());
    cases.extend(semantic());
    cases.extend(methods_versions_targets());
    cases.extend(bytes_in_each_part());
    cases
}

/// Hand-written requests both parsers accept.
fn valid() -> Vec<Case> {
    use requests::*;
    let s = Expect::Same;
    let mut v = vec![
        case("subscribe_min", SUBSCRIBE_MIN, s),
        case("chromium_eventsource", CHROMIUM_EVENTSOURCE, s),
        case("firefox_eventsource", FIREFOX_EVENTSOURCE, s),
        case("curl_publish", [CURL_PUBLISH, b"hello"].concat(), s),
        case("curl_publish_chunked", [CURL_PUBLISH_CHUNKED, b"5\r\nhello\r\n0\r\n\r\n"].concat(), s),
        case("cors_preflight", CORS_PREFLIGHT, s),
        case("forty_headers", forty_headers(), s),
        case("http10_no_host", "GET /events?topic=a HTTP/1.0\r\n\r\n", s),
        case("http10_keep_alive", "GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", s),
        case("leading_crlf", "\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", s),
        case("leading_crlfs", "\r\n\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", s),
        case("ndjson_batch", "POST /publish HTTP/1.1\r\nHost: a\r\nContent-Type: application/x-ndjson\r\nContent-Length: 38\r\n\r\n{\"topic\":\"a\",\"data\":\"x\"}\n", s),
        case("percent_target", "GET /events?topic=caf%C3%A9&topic=a%2Fb%20c HTTP/1.1\r\nHost: a\r\n\r\n", s),
        case("absolute_form", "GET http://example.com:8080/events?topic=a HTTP/1.1\r\nHost: example.com:8080\r\n\r\n", s),
        case("authority_form", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", s),
        case("asterisk_form", "OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n", s),
        case("all_target_punctuation", "GET /!$&'()*+,;=:@-._~%20/?#[]{}|\\^`\"<> HTTP/1.1\r\nHost: a\r\n\r\n", s),
        case("empty_query", "GET /events? HTTP/1.1\r\nHost: a\r\n\r\n", s),
        case("two_question_marks", "GET /e?a=1?b=2 HTTP/1.1\r\nHost: a\r\n\r\n", s),
        case("tchar_names", "GET / HTTP/1.1\r\nHost: a\r\n!#$%&'*+-.^_`|~09azAZ: v\r\n\r\n", s),
        case("value_ows", "GET / HTTP/1.1\r\nHost: \t a \t \r\nX-A:b\r\nX-B:\t\tc d\t \r\n\r\n", s),
        case("empty_values", "GET / HTTP/1.1\r\nHost: a\r\nX-Empty:\r\nX-Blank:   \r\nX-Tab:\t\r\n\r\n", s),
        case("obs_text_value", ["GET / HTTP/1.1\r\nHost: a\r\nX-Name: Zo\u{eb} \u{1F600}\r\n".as_bytes(), b"X-Latin1: caf\xe9\r\n\r\n"].concat(), s),
        case("value_punctuation", "GET / HTTP/1.1\r\nHost: a\r\nX: !\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~\r\n\r\n", s),
        case("colon_in_value", "GET / HTTP/1.1\r\nHost: a:1\r\nX: a: b: c\r\n\r\n", s),
        case("body_after_head", "POST /publish?topic=a HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\nhello world", s),
        case("pipelined", "GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n", s),
        case("expect_continue", "POST /publish?topic=a HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n", s),
        case("connection_list", "GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, close\r\nconnection: keep-alive\r\n\r\n", s),
        case("two_cookies", "GET /events?topic=a HTTP/1.1\r\nHost: a\r\nCookie: a=1\r\nCookie: b=2\r\n\r\n", s),
        case("same_content_length_twice", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", s),
        case("content_length_list", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 5\r\n\r\n", s),
        case("content_length_zeros", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 007\r\n\r\n", s),
        case("content_length_max", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 18446744073709551615\r\n\r\n", s),
        case("chunked_any_case", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding:  ChUnKeD \r\n\r\n", s),
        case("header_case_mix", "GET / HTTP/1.1\r\nhOsT: a\r\nLAST-EVENT-ID: 7\r\nlast-event-id: 8\r\n\r\n", s),
        case("empty_host", "GET / HTTP/1.1\r\nHost:\r\n\r\n", s),
        case("last_event_id_empty", "GET /events?topic=a HTTP/1.1\r\nHost: a\r\nLast-Event-ID:\r\n\r\n", s),
        case("long_method", "M-SEARCH * HTTP/1.1\r\nHost: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\n\r\n", s),
    ];
    let long = "x".repeat(4000);
    v.push(case(
        "long_cookie",
        format!("GET /events?topic=a HTTP/1.1\r\nHost: a\r\nCookie: s={long}\r\n\r\n"),
        s,
    ));
    v.push(case(
        "long_name",
        format!("GET / HTTP/1.1\r\nHost: a\r\nX-{long}: 1\r\n\r\n"),
        s,
    ));
    v.push(case(
        "long_target",
        format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "t".repeat(4095)),
        s,
    ));
    v.push(case(
        "long_user_agent",
        format!(
            "GET / HTTP/1.1\r\nHost: a\r\nUser-Agent: {}\r\n\r\n",
            "Mozilla/5.0 ".repeat(60)
        ),
        s,
    ));
    v.push(case("hundred_headers", with_headers(99), s));
    v.push(case(
        "hundred_one_headers",
        with_headers(100),
        Expect::Stricter(ParseError::TooManyHeaders, LIMIT),
    ));
    v.push(case(
        "target_over_limit",
        format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "t".repeat(4096)),
        Expect::Stricter(ParseError::UriTooLong, LIMIT),
    ));
    v
}

/// `Host` plus `extra` more field lines.
fn with_headers(extra: usize) -> String {
    let mut req = String::from("GET /events?topic=a HTTP/1.1\r\nHost: a\r\n");
    for i in 0..extra {
        req.push_str(&format!("X-H{i}: {i}\r\n"));
    }
    req + "\r\n"
}

/// Hand-written requests both parsers reject, and the ones only we reject.
fn invalid() -> Vec<Case> {
    use ParseError as E;
    let s = Expect::Same;
    let lf = |e| Expect::Stricter(e, BARE_LF);
    vec![
        case("empty_method", " / HTTP/1.1\r\nHost: a\r\n\r\n", s),
        case("method_paren", "GE(T / HTTP/1.1\r\nHost: a\r\n\r\n", s),
        case(
            "method_space_inside",
            "GE T / HTTP/1.1\r\nHost: a\r\n\r\n",
            s,
        ),
        case("method_tab", "GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", s),
        case("method_only", "GET\r\n\r\n", s),
        case("double_space", "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", s),
        case("empty_target", "GET  HTTP/1.1\r\nHost: a\r\n\r\n", s),
        case("target_tab", "GET /a\tb HTTP/1.1\r\nHost: a\r\n\r\n", s),
        case("target_then_crlf", "GET /\r\nHost: a\r\n\r\n", s),
        case(
            "target_invalid_utf8",
            &b"GET /\xff HTTP/1.1\r\nHost: a\r\n\r\n"[..],
            Expect::Earlier(UTF8_AT_END),
        ),
        case(
            "target_utf8",
            "GET /caf\u{e9} HTTP/1.1\r\nHost: a\r\n\r\n",
            Expect::Stricter(E::Target, NON_ASCII_TARGET),
        ),
        case(
            "target_emoji",
            "GET /events?topic=\u{1F600} HTTP/1.1\r\nHost: a\r\n\r\n",
            Expect::Stricter(E::Target, NON_ASCII_TARGET),
        ),
        case("version_2", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", s),
        case("version_1_2", "GET / HTTP/1.2\r\nHost: a\r\n\r\n", s),
        case("version_0_9", "GET / HTTP/0.9\r\nHost: a\r\n\r\n", s),
        case("version_lower", "GET / http/1.1\r\nHost: a\r\n\r\n", s),
        case("version_short", "GET / HTTP/1\r\nHost: a\r\n\r\n", s),
        case("version_long", "GET / HTTP/1.10\r\nHost: a\r\n\r\n", s),
        case(
            "version_space_after",
            "GET / HTTP/1.1 \r\nHost: a\r\n\r\n",
            s,
        ),
        case("missing_version", "GET /\r\n\r\n", s),
        case("bare_cr_request_line", "GET / HTTP/1.1\rHost: a\r\n\r\n", s),
        case(
            "bare_cr_in_value",
            "GET / HTTP/1.1\r\nHost: a\rb\r\n\r\n",
            s,
        ),
        case("bare_cr_end", "GET / HTTP/1.1\r\nHost: a\r\n\rx", s),
        case("bare_cr_leading", "\rGET / HTTP/1.1\r\nHost: a\r\n\r\n", s),
        case("cr_cr_lf", "GET / HTTP/1.1\r\nHost: a\r\r\n\r\n", s),
        case(
            "obs_fold",
            "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n  c\r\n\r\n",
            s,
        ),
        case(
            "obs_fold_tab",
            "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n\tc\r\n\r\n",
            s,
        ),
        case(
            "space_before_first_header",
            "GET / HTTP/1.1\r\n Host: a\r\n\r\n",
            s,
        ),
        case(
            "space_before_colon",
            "GET / HTTP/1.1\r\nHost : a\r\n\r\n",
            s,
        ),
        case("tab_before_colon", "GET / HTTP/1.1\r\nHost\t: a\r\n\r\n", s),
        case("empty_name", "GET / HTTP/1.1\r\nHost: a\r\n: b\r\n\r\n", s),
        case("no_colon", "GET / HTTP/1.1\r\nHost: a\r\nX-A\r\n\r\n", s),
        case(
            "name_slash",
            "GET / HTTP/1.1\r\nHost: a\r\nX/A: b\r\n\r\n",
            s,
        ),
        case(
            "name_utf8",
            "GET / HTTP/1.1\r\nHost: a\r\nX-\u{e9}: b\r\n\r\n",
            s,
        ),
        case(
            "bare_lf_request_line",
            "GET / HTTP/1.1\nHost: a\r\n\r\n",
            lf(E::NewLine),
        ),
        case(
            "bare_lf_header",
            "GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n",
            lf(E::NewLine),
        ),
        case(
            "bare_lf_end",
            "GET / HTTP/1.1\r\nHost: a\r\n\n",
            lf(E::NewLine),
        ),
        case(
            "bare_lf_everywhere",
            "GET / HTTP/1.1\nHost: a\n\n",
            lf(E::NewLine),
        ),
        case(
            "bare_lf_leading",
            "\nGET / HTTP/1.1\r\nHost: a\r\n\r\n",
            lf(E::NewLine),
        ),
        case(
            "bare_lf_empty_value",
            "GET / HTTP/1.1\r\nHost: a\r\nX:\n\r\n",
            lf(E::NewLine),
        ),
    ]
}

/// Syntactically fine requests that break a framing rule: we reject, httparse cannot know.
fn semantic() -> Vec<Case> {
    use ParseError as E;
    let st = |e| Expect::Stricter(e, SEMANTIC);
    let post = |headers: &str| format!("POST /publish?topic=a HTTP/1.1\r\n{headers}\r\n");
    vec![
        case(
            "missing_host",
            "GET /events?topic=a HTTP/1.1\r\n\r\n",
            st(E::MissingHost),
        ),
        case(
            "missing_host_with_others",
            "GET / HTTP/1.1\r\nAccept: */*\r\nX-Host: a\r\n\r\n",
            st(E::MissingHost),
        ),
        case(
            "two_hosts",
            "GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n",
            st(E::MissingHost),
        ),
        case(
            "two_hosts_http10",
            "GET / HTTP/1.0\r\nHost: a\r\nhost: b\r\n\r\n",
            st(E::MissingHost),
        ),
        case(
            "cl_then_te",
            post("Host: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n"),
            st(E::LengthAndEncoding),
        ),
        case(
            "te_then_cl",
            post("Host: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 5\r\n"),
            st(E::LengthAndEncoding),
        ),
        case(
            "cl_differing",
            post("Host: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n"),
            st(E::ContentLength),
        ),
        case(
            "cl_list_differing",
            post("Host: a\r\nContent-Length: 5, 6\r\n"),
            st(E::ContentLength),
        ),
        case(
            "cl_list_empty_item",
            post("Host: a\r\nContent-Length: 5,,5\r\n"),
            st(E::ContentLength),
        ),
        case(
            "cl_plus",
            post("Host: a\r\nContent-Length: +5\r\n"),
            st(E::ContentLength),
        ),
        case(
            "cl_minus",
            post("Host: a\r\nContent-Length: -5\r\n"),
            st(E::ContentLength),
        ),
        case(
            "cl_inner_space",
            post("Host: a\r\nContent-Length: 1 0\r\n"),
            st(E::ContentLength),
        ),
        case(
            "cl_hex",
            post("Host: a\r\nContent-Length: 0x10\r\n"),
            st(E::ContentLength),
        ),
        case(
            "cl_empty",
            post("Host: a\r\nContent-Length:\r\n"),
            st(E::ContentLength),
        ),
        case(
            "cl_overflow",
            post("Host: a\r\nContent-Length: 18446744073709551616\r\n"),
            st(E::ContentLength),
        ),
        case(
            "cl_way_overflow",
            post("Host: a\r\nContent-Length: 99999999999999999999999999\r\n"),
            st(E::ContentLength),
        ),
        case(
            "te_chunked_identity",
            post("Host: a\r\nTransfer-Encoding: chunked, identity\r\n"),
            st(E::TransferEncoding),
        ),
        case(
            "te_gzip_chunked",
            post("Host: a\r\nTransfer-Encoding: gzip, chunked\r\n"),
            st(E::TransferEncoding),
        ),
        case(
            "te_gzip",
            post("Host: a\r\nTransfer-Encoding: gzip\r\n"),
            st(E::TransferEncoding),
        ),
        case(
            "te_identity",
            post("Host: a\r\nTransfer-Encoding: identity\r\n"),
            st(E::TransferEncoding),
        ),
        case(
            "te_twice",
            post("Host: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"),
            st(E::TransferEncoding),
        ),
        case(
            "te_empty",
            post("Host: a\r\nTransfer-Encoding:\r\n"),
            st(E::TransferEncoding),
        ),
        case(
            "te_chunked_typo",
            post("Host: a\r\nTransfer-Encoding: chunk\r\n"),
            st(E::TransferEncoding),
        ),
        case(
            "te_on_http10",
            "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
            st(E::TransferEncoding),
        ),
    ]
}

const METHODS: &[&str] = &[
    "GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH", "CONNECT", "TRACE", "PURGE",
    "M-SEARCH", "get",
];
const TARGETS: &[(&str, &str)] = &[
    ("root", "/"),
    ("origin", "/events?topic=a&topic=b&last_event_id=42"),
    ("percent", "/a%20b/%E2%9C%93?x=%2F%3F"),
    ("absolute", "http://example.com:8080/events?topic=a"),
    ("authority", "example.com:443"),
    ("asterisk", "*"),
];

/// Every method × version × target kind, each with Host, some with a body.
fn methods_versions_targets() -> Vec<Case> {
    let mut v = Vec::new();
    for method in METHODS {
        for minor in [0, 1] {
            for (kind, target) in TARGETS {
                let req = format!(
                    "{method} {target} HTTP/1.{minor}\r\nHost: example.com\r\nAccept: */*\r\n\r\n"
                );
                v.push(case(
                    format!("gen_{method}_{kind}_1{minor}"),
                    req,
                    Expect::Same,
                ));
            }
        }
    }
    v
}

/// Every control byte, DEL and a few non-ASCII bytes, in each part of a request.
fn bytes_in_each_part() -> Vec<Case> {
    let mut bytes: Vec<u8> = (0x00..0x20).collect();
    bytes.extend([0x7f, 0x80, 0xc3, 0xff]);
    let mut v = Vec::new();
    for b in bytes {
        let c = char::from(b);
        let at = |template: &str| {
            let mut out = Vec::new();
            for piece in template.split('@').enumerate() {
                if piece.0 > 0 {
                    out.push(b);
                }
                out.extend_from_slice(piece.1.as_bytes());
            }
            out
        };
        v.push(case(
            format!("byte_{b:02x}_in_method"),
            at("G@T / HTTP/1.1\r\nHost: a\r\n\r\n"),
            Expect::Same,
        ));
        // Alone or followed by `b`, none of 0x80.. is valid UTF-8: httparse rejects too, later.
        let in_target = if b >= 0x80 {
            Expect::Earlier(UTF8_AT_END)
        } else {
            Expect::Same
        };
        v.push(case(
            format!("byte_{b:02x}_in_target"),
            at("GET /a@b HTTP/1.1\r\nHost: a\r\n\r\n"),
            in_target,
        ));
        v.push(case(
            format!("byte_{b:02x}_in_name"),
            at("GET / HTTP/1.1\r\nHost: a\r\nX-@: b\r\n\r\n"),
            Expect::Same,
        ));
        let in_value = at("GET / HTTP/1.1\r\nHost: a\r\nX: a@b: c\r\n\r\n");
        let expect = match c {
            // httparse ends the line at the LF and reads `b: c` as the next field.
            '\n' => Expect::Stricter(ParseError::NewLine, BARE_LF),
            _ => Expect::Same,
        };
        v.push(case(format!("byte_{b:02x}_in_value"), in_value, expect));
        v.push(case(
            format!("byte_{b:02x}_leading_value"),
            at("GET / HTTP/1.1\r\nHost: a\r\nX: @b: c\r\n\r\n"),
            expect,
        ));
    }
    v
}
