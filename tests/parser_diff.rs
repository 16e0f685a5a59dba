//! The request-head parser against httparse, the oracle.
//!
//! Every corpus case is parsed whole and at every prefix (`buf[..k]` for every `k`) by
//! our syntactic parse (`parse_with`, collecting every field line), our full parse
//! (`parse`, with the framing rules) and httparse (with room for 1024 headers). They must
//! agree: both Complete with the same method, target, version, head length and field
//! list; both Partial; or both Error. Where we are stricter on purpose the case says so,
//! with the error we give and why, and the test checks that we do reject it and httparse
//! does not. `find_head_end` must agree with the parser on every prefix, and a proptest
//! feeds random and mutated corpus bytes to check nothing panics and we are never laxer
//! than httparse.

#[path = "parser_diff/fuzz.rs"]
mod fuzz;
mod parser_corpus;

use parser_corpus::{Case, Expect};
use ringcast::http::{
    find_head_end, parse, parse_with, HeaderSink, Limits, ParseError, RequestHead, Status,
};

/// What either parser made of some bytes, in a form the two can be compared on.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Outcome {
    Complete {
        method: Vec<u8>,
        target: Vec<u8>,
        minor: u8,
        head_len: usize,
        fields: Vec<(Vec<u8>, Vec<u8>)>,
    },
    Partial,
    Error,
}

/// A sink that keeps every field line, for comparing the whole list with httparse's.
#[derive(Default)]
struct Collect<'a>(Vec<(&'a [u8], &'a [u8])>);

impl<'a> HeaderSink<'a> for Collect<'a> {
    fn header(&mut self, name: &'a [u8], value: &'a [u8]) -> Result<(), ParseError> {
        self.0.push((name, value));
        Ok(())
    }
}

const LIMITS: Limits = Limits::new();

/// Our syntactic parse, and the error if there was one.
fn ours_raw(buf: &[u8]) -> (Outcome, Option<ParseError>) {
    let mut fields = Collect::default();
    match parse_with(buf, &LIMITS, &mut fields) {
        Ok(Status::Complete(raw)) => {
            assert_eq!(raw.header_count, fields.0.len(), "header_count vs the sink");
            let outcome = Outcome::Complete {
                method: raw.line.method_bytes.to_vec(),
                target: raw.line.target.to_vec(),
                minor: raw.line.minor_version,
                head_len: raw.head_len,
                fields: fields
                    .0
                    .iter()
                    .map(|(n, v)| (n.to_vec(), v.to_vec()))
                    .collect(),
            };
            (outcome, None)
        }
        Ok(Status::Partial) => (Outcome::Partial, None),
        Err(e) => (Outcome::Error, Some(e)),
    }
}

fn theirs(buf: &[u8]) -> Outcome {
    let mut headers = vec![httparse::EMPTY_HEADER; 1024];
    let mut req = httparse::Request::new(&mut headers);
    match req.parse(buf) {
        Ok(httparse::Status::Complete(head_len)) => Outcome::Complete {
            method: req.method.unwrap_or_default().as_bytes().to_vec(),
            target: req.path.unwrap_or_default().as_bytes().to_vec(),
            minor: req.version.unwrap_or(9),
            head_len,
            fields: req
                .headers
                .iter()
                .map(|h| (h.name.as_bytes().to_vec(), h.value.to_vec()))
                .collect(),
        },
        Ok(httparse::Status::Partial) => Outcome::Partial,
        Err(_) => Outcome::Error,
    }
}

/// Errors `parse` adds on top of `parse_with`: the framing rules of `KnownHeaders`.
fn is_semantic(e: ParseError) -> bool {
    use ParseError::*;
    matches!(
        e,
        MissingHost | InvalidHost | ContentLength | TransferEncoding | LengthAndEncoding
    )
}

/// The full parse agrees with the syntactic one: same head, and known headers that a
/// slow, independent reading of the field list also finds.
fn check_full_vs_raw(
    name: &str,
    k: usize,
    raw: &(Outcome, Option<ParseError>),
    full: &Result<Status<RequestHead<'_>>, ParseError>,
) {
    match (&raw.0, full) {
        (
            Outcome::Complete {
                method,
                target,
                minor,
                head_len,
                fields,
            },
            Ok(Status::Complete(h)),
        ) => {
            let got = (
                h.method_bytes,
                h.target,
                h.minor_version,
                h.head_len,
                h.header_count,
            );
            let want = (&method[..], &target[..], *minor, *head_len, fields.len());
            assert_eq!(got, want, "{name}[..{k}]: parse vs parse_with");
            check_known(name, fields, h);
        }
        (Outcome::Complete { .. } | Outcome::Partial, Err(e)) if is_semantic(*e) => {}
        (Outcome::Partial, Ok(Status::Partial)) => {}
        // A framing error can stop the full parse before it reaches a later syntax error.
        (Outcome::Error, Err(e)) if is_semantic(*e) => {}
        (Outcome::Error, Err(e)) => assert_eq!(Some(*e), raw.1, "{name}[..{k}]: same error"),
        _ => panic!("{name}[..{k}]: parse {full:?} vs parse_with {raw:?}"),
    }
}

/// Reads the known headers out of the field list the slow way and compares.
fn check_known(name: &str, fields: &[(Vec<u8>, Vec<u8>)], h: &RequestHead<'_>) {
    let all = |n: &'static str| {
        fields
            .iter()
            .filter(move |(f, _)| f.eq_ignore_ascii_case(n.as_bytes()))
            .map(|(_, v)| &v[..])
    };
    let first = |n: &'static str| all(n).next();
    let k = &h.headers;
    assert_eq!(k.host, first("host"), "{name}: host");
    assert_eq!(k.cookie, first("cookie"), "{name}: cookie");
    assert_eq!(
        k.last_event_id,
        first("last-event-id"),
        "{name}: last-event-id"
    );
    assert_eq!(
        k.authorization,
        first("authorization"),
        "{name}: authorization"
    );
    assert_eq!(k.origin, first("origin"), "{name}: origin");
    assert_eq!(
        k.if_none_match,
        first("if-none-match"),
        "{name}: if-none-match"
    );
    assert_eq!(
        k.content_type,
        first("content-type"),
        "{name}: content-type"
    );
    assert_eq!(
        k.access_control_request_method,
        first("access-control-request-method"),
        "{name}"
    );
    assert_eq!(
        k.access_control_request_headers,
        first("access-control-request-headers"),
        "{name}"
    );
    assert_eq!(
        k.chunked,
        first("transfer-encoding").is_some(),
        "{name}: chunked"
    );
    let cl = first("content-length").map(|v| {
        let v = std::str::from_utf8(v).unwrap();
        v.split(',').next().unwrap().trim().parse::<u64>().unwrap()
    });
    assert_eq!(k.content_length, cl, "{name}: content-length");
    // Bytes, not str: a mutated value need not be UTF-8.
    let options: Vec<Vec<u8>> = all("connection")
        .flat_map(|v| {
            v.split(|&b| b == b',')
                .map(|o| o.trim_ascii().to_ascii_lowercase())
        })
        .collect();
    assert_eq!(
        k.connection_close,
        options.iter().any(|o| o == b"close"),
        "{name}: close"
    );
    assert_eq!(
        k.connection_keep_alive,
        options.iter().any(|o| o == b"keep-alive"),
        "{name}: keep-alive"
    );
    let expect = all("expect").any(|v| v.eq_ignore_ascii_case(b"100-continue"));
    assert_eq!(k.expect_continue, expect, "{name}: expect");
}

/// `find_head_end` agrees with the parser: when the parser is Complete the end is found
/// at its head_len, and when an end is found the parser is not waiting for more bytes.
fn check_head_end(name: &str, k: usize, buf: &[u8], raw: &Outcome, found: Option<usize>) {
    if let Outcome::Complete { head_len, .. } = raw {
        assert_eq!(
            found,
            Some(*head_len),
            "{name}[..{k}]: find_head_end vs a complete parse"
        );
    }
    if found.is_some() {
        assert_ne!(
            *raw,
            Outcome::Partial,
            "{name}[..{k}]: end found but the parser wants more"
        );
    }
    assert_eq!(
        found,
        find_head_end(buf, 0),
        "{name}[..{k}]: incremental vs from scratch"
    );
}

fn run_case(case: &Case) {
    let name = &case.name;
    let (mut last_err, mut last_done): (Option<ParseError>, Option<usize>) = (None, None);
    let (mut scanned, mut found) = (0, None);
    for k in 0..=case.bytes.len() {
        let buf = &case.bytes[..k];
        let raw = ours_raw(buf);
        let full = parse(buf, &LIMITS);
        let oracle = theirs(buf);
        check_full_vs_raw(name, k, &raw, &full);

        match case.expect {
            Expect::Same => {
                assert_eq!(raw.0, oracle, "{name}[..{k}]: ours vs httparse");
                // No framing rule may fire on a case that expects no difference.
                let (full_err, raw_err) = (full.is_err(), raw.0 == Outcome::Error);
                assert_eq!(full_err, raw_err, "{name}[..{k}]: parse {full:?}");
            }
            Expect::Stricter(want, why) => {
                assert!(!why.is_empty());
                let full_err = full.as_ref().err().copied();
                // Semantic rules leave the syntax to agree with httparse everywhere.
                let syntax_agrees = is_semantic(want) && raw.0 == oracle;
                let we_reject_first = full_err.is_some() && oracle != Outcome::Error;
                assert!(
                    raw.0 == oracle || syntax_agrees || we_reject_first,
                    "{name}[..{k}]: ours {raw:?} / {full_err:?} vs httparse {oracle:?}"
                );
                if k == case.bytes.len() {
                    assert_eq!(full_err, Some(want), "{name}: our error ({why})");
                    assert_ne!(
                        oracle,
                        Outcome::Error,
                        "{name}: httparse must accept ({why})"
                    );
                }
            }
            Expect::Earlier(why) => {
                assert!(!why.is_empty());
                let sooner = raw.0 == Outcome::Error && oracle == Outcome::Partial;
                assert!(
                    raw.0 == oracle || sooner,
                    "{name}[..{k}]: ours {raw:?} vs httparse {oracle:?}"
                );
                if k == case.bytes.len() {
                    assert_eq!(
                        (&raw.0, &oracle),
                        (&Outcome::Error, &Outcome::Error),
                        "{name} ({why})"
                    );
                }
            }
        }

        // Once an answer is final it stays the same as more bytes arrive.
        match &full {
            Err(e) => assert!(
                last_err.is_none_or(|l| l == *e),
                "{name}[..{k}]: error changed"
            ),
            Ok(Status::Complete(h)) => {
                assert!(last_done.is_none_or(|l| l == h.head_len), "{name}[..{k}]")
            }
            Ok(Status::Partial) => assert!(
                last_err.is_none() && last_done.is_none(),
                "{name}[..{k}]: went back to Partial"
            ),
        }
        last_err = full.as_ref().err().copied().or(last_err);
        if let Ok(Status::Complete(h)) = &full {
            last_done = Some(h.head_len);
        }

        // The connection's way of calling it: scan only new bytes until the end is found.
        if found.is_none() {
            found = find_head_end(buf, scanned);
            scanned = k;
        }
        check_head_end(name, k, buf, &raw.0, found);
    }
}

#[test]
fn corpus_agrees_with_httparse_at_every_prefix() {
    let cases = parser_corpus::all();
    assert!(cases.len() >= 200, "corpus has {} cases", cases.len());
    let mut names = std::collections::HashSet::new();
    let mut failed = Vec::new();
    for case in &cases {
        assert!(
            names.insert(&case.name),
            "duplicate case name {}",
            case.name
        );
        // Run every case, so one run lists every disagreement.
        if std::panic::catch_unwind(|| run_case(case)).is_err() {
            failed.push(case.name.as_str());
        }
    }
    assert!(
        failed.is_empty(),
        "{} of {} cases failed: {failed:?}",
        failed.len(),
        cases.len()
    );
}
