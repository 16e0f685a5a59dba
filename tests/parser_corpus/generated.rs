//! Variations generated on top of the hand-written cases.

use super::{case, Case, Expect, BARE_LF, UTF8_AT_END};
use ringcast::http::ParseError;

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
pub(super) fn methods_versions_targets() -> Vec<Case> {
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
pub(super) fn bytes_in_each_part() -> Vec<Case> {
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
