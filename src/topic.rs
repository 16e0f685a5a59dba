//! Topic names: the grammar every endpoint and the cluster reader share, and the
//! per-request cap on how many one request may name.

use crate::http::query::BadEncoding;

/// Topics one subscribe (or publish) may name by default (`--max-topics`): enough for
/// most pages, small enough that a single request cannot make a connection expensive.
pub const MAX_TOPICS: usize = 64;
/// The highest `--max-topics`: each topic of a subscription costs a hub link (about
/// 16 bytes) and a hash lookup per subscribe, and every event is deduplicated per
/// subscriber, so a thousand is still cheap; more is a sign of a topic design to fix.
pub const MAX_TOPICS_CAP: usize = 1024;
/// Longest topic name, in bytes.
pub const MAX_TOPIC_BYTES: usize = 128;

/// Why a subscribe (or publish) query was refused; answered with 400.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum QueryError {
    NoTopic,
    BadTopic,
    TooManyTopics,
    BadEncoding,
    BadEventName,
    BadReplay,
}

impl QueryError {
    pub const fn reason(self) -> &'static str {
        match self {
            QueryError::NoTopic => "no topic given (use ?topic=NAME)",
            QueryError::BadTopic => "topic names are 1 to 128 bytes of A-Z a-z 0-9 - _ . ~ : /",
            QueryError::TooManyTopics => "too many topics in one request (see --max-topics)",
            QueryError::BadEncoding => "malformed percent-encoding in query",
            QueryError::BadEventName => "event names are 1 to 64 bytes without CR, LF or NUL",
            QueryError::BadReplay => "replay is a count of past events: decimal digits only",
        }
    }
}

impl From<BadEncoding> for QueryError {
    fn from(_: BadEncoding) -> Self {
        QueryError::BadEncoding
    }
}

/// Whether `name` is a valid topic name.
pub fn valid_topic(name: &[u8]) -> bool {
    (1..=MAX_TOPIC_BYTES).contains(&name.len())
        && name.iter().all(|&b| {
            b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~' | b':' | b'/')
        })
}

/// Adds a topic to `topics` once, validating it; at most `max` topics.
pub fn add_topic(topics: &mut Vec<String>, raw: &[u8], max: usize) -> Result<(), QueryError> {
    if !valid_topic(raw) {
        return Err(QueryError::BadTopic);
    }
    // Validated as ASCII above.
    let name = String::from_utf8_lossy(raw);
    if !topics.iter().any(|t| *t == name) {
        if topics.len() >= max {
            return Err(QueryError::TooManyTopics);
        }
        topics.push(name.into_owned());
    }
    Ok(())
}
