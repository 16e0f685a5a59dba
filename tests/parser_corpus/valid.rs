//! Hand-written requests both parsers accept, and the few we reject at a limit.

use super::requests::*;
use super::{case, Case, Expect, LIMIT};
use ringcast::http::ParseError;

/// Hand-written requests both parsers accept.
pub(super) fn valid() -> Vec<Case> {
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
        case("page_revalidation", "GET / HTTP/1.1\r\nHost: a\r\nIf-None-Match: W/\"x\", \"0123\"\r\nif-none-match: \"late\"\r\n\r\n", s),
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
