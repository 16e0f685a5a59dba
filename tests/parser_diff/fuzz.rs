//! The second phase: random bytes and mutated corpus cases, for which nothing is
//! written down but that we are never laxer than httparse and never panic.

use proptest::prelude::*;
use proptest::test_runner::Config;

use super::*;

/// The never-laxer property, for inputs without a written expectation: whatever httparse
/// rejects we reject, whatever we accept httparse accepts the same way, and `parse` never
/// panics.
fn check_not_laxer(buf: &[u8]) {
    let raw = ours_raw(buf);
    let full = parse(buf, &LIMITS);
    let oracle = theirs(buf);
    check_full_vs_raw("fuzz", buf.len(), &raw, &full);
    match (&raw.0, &oracle) {
        (Outcome::Error, _) => {}
        (ours, Outcome::Error) => panic!(
            "httparse rejects, we say {ours:?}: {:?}",
            String::from_utf8_lossy(buf)
        ),
        (ours, theirs) => assert_eq!(ours, theirs, "{:?}", String::from_utf8_lossy(buf)),
    }
    let found = find_head_end(buf, 0);
    if let Outcome::Complete { head_len, .. } = raw.0 {
        assert_eq!(found, Some(head_len));
    }
    if found.is_some() {
        assert_ne!(
            raw.0,
            Outcome::Partial,
            "{:?}",
            String::from_utf8_lossy(buf)
        );
    }
}

/// Byte strings that make mutations land on the grammar's edges.
const DICTIONARY: &[&[u8]] = &[
    b"\r",
    b"\n",
    b"\r\n",
    b"\r\n\r\n",
    b" ",
    b"\t",
    b":",
    b"\0",
    b"\x7f",
    b"\x80",
    b"\xff",
    b"?",
    b"HTTP/1.1",
    b"Host: a\r\n",
    b"Content-Length: 5\r\n",
    b"Transfer-Encoding: chunked\r\n",
];

fn mutate(mut bytes: Vec<u8>, edits: &[(u8, usize, u8)]) -> Vec<u8> {
    for &(op, pos, byte) in edits {
        let at = pos % (bytes.len() + 1);
        match op % 4 {
            0 if at < bytes.len() => bytes[at] = byte,
            1 => {
                let token = DICTIONARY[usize::from(byte) % DICTIONARY.len()];
                bytes.splice(at..at, token.iter().copied());
            }
            2 if at < bytes.len() => {
                bytes.remove(at);
            }
            _ => bytes.insert(at, byte),
        }
    }
    bytes
}

/// Built once: the proptest draws from it thousands of times.
fn corpus() -> &'static [Case] {
    static CORPUS: std::sync::OnceLock<Vec<Case>> = std::sync::OnceLock::new();
    CORPUS.get_or_init(parser_corpus::all)
}

fn fuzz_config(cases: u32) -> Config {
    Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    }
}

proptest! {
    #![proptest_config(fuzz_config(1500))]

    #[test]
    fn mutated_corpus_is_never_laxer(
        pick in any::<prop::sample::Index>(),
        edits in prop::collection::vec((any::<u8>(), any::<usize>(), any::<u8>()), 1..5),
        cut in any::<prop::sample::Index>(),
    ) {
        let bytes = mutate(pick.get(corpus()).bytes.clone(), &edits);
        check_not_laxer(&bytes);
        check_not_laxer(&bytes[..cut.index(bytes.len() + 1)]);
    }
}

proptest! {
    #![proptest_config(fuzz_config(1500))]

    #[test]
    fn random_bytes_are_never_laxer(
        prefix in prop::sample::select(vec![&b""[..], b"GET / HTTP/1.1\r\n", b"POST /p HTTP/1.0\r\nHost: a\r\n"]),
        tail in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        check_not_laxer(&[prefix, &tail[..]].concat());
    }
}
