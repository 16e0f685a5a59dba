//! The corpus of the differential test: hand-written requests, valid and invalid, and
//! programmatic variations on top of them. Every case says what must hold against httparse.

mod generated;
mod invalid;
pub mod requests;
mod valid;

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
    let mut cases = valid::valid();
    cases.extend(invalid::invalid());
    cases.extend(invalid::semantic());
    cases.extend(generated::methods_versions_targets());
    cases.extend(generated::bytes_in_each_part());
    cases
}
