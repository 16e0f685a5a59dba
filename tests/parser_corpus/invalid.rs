//! Hand-written requests that break the syntax or a framing rule.

use super::{case, Case, Expect, BARE_LF, NON_ASCII_TARGET, SEMANTIC, UTF8_AT_END};
use ringcast::http::ParseError;

/// Hand-written requests both parsers reject, and the ones only we reject.
pub(super) fn invalid() -> Vec<Case> {
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
pub(super) fn semantic() -> Vec<Case> {
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
            "host_list",
            "GET / HTTP/1.1\r\nHost: a, b\r\n\r\n",
            st(E::InvalidHost),
        ),
        case(
            "host_space",
            "GET / HTTP/1.1\r\nHost: a b\r\n\r\n",
            st(E::InvalidHost),
        ),
        case(
            "host_path",
            "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n",
            st(E::InvalidHost),
        ),
        case(
            "host_userinfo",
            "GET / HTTP/1.1\r\nHost: user@a\r\n\r\n",
            st(E::InvalidHost),
        ),
        case(
            "host_bad_port",
            "GET / HTTP/1.1\r\nHost: a:99999\r\n\r\n",
            st(E::InvalidHost),
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
