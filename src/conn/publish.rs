//! `POST /publish`: who may publish, and turning a body (one event, or an NDJSON batch)
//! into drafted frames handed to the sequencer.

use std::borrow::Cow;
use std::net::IpAddr;

use serde::Deserialize;
use smallvec::SmallVec;

use crate::auth::{Auth, Grant};
use crate::broadcast::frame::Draft;
use crate::broadcast::sequencer::{NewEvent, Sequencer};
use crate::cluster::WireEvent;
use crate::http::query;
use crate::topic::{add_topic, valid_topic, QueryError};

/// Longest event name, in bytes.
pub const MAX_EVENT_NAME: usize = 64;

/// A refusal of a publish: the status and a short reason for the body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Refusal {
    pub status: u16,
    pub why: String,
}

impl Refusal {
    fn new(status: u16, why: impl Into<String>) -> Refusal {
        Refusal {
            status,
            why: why.into(),
        }
    }
}

/// Who may publish: loopback peers; the bearer of `--publish-token` (any topic); the
/// bearer of a JWT whose `publish` claim lists topics (those topics). Returns the topics
/// allowed, None meaning any. A missing credential is 401 where one could be presented,
/// an offered credential that is not valid is 401, a valid one that allows no publishing
/// is 403.
pub fn authorize(
    peer: IpAddr,
    authorization: Option<&[u8]>,
    token: Option<&str>,
    auth: Option<&Auth>,
) -> Result<Option<Grant>, Refusal> {
    let loopback = match peer {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    };
    let offered = authorization
        .and_then(|h| h.strip_prefix(b"Bearer "))
        .map(<[u8]>::trim_ascii);
    let Some(offered) = offered else {
        return match (loopback, token.is_some() || auth.is_some()) {
            (true, _) => Ok(None),
            (false, true) => Err(Refusal::new(401, "a bearer token is required to publish")),
            (false, false) => Err(Refusal::new(
                403,
                "publishing is allowed from loopback only",
            )),
        };
    };
    if token.is_some_and(|t| constant_time_eq(offered, t.as_bytes())) {
        return Ok(None);
    }
    match auth.map(|a| a.verify(offered)) {
        Some(Ok(grant)) if !grant.publish.is_empty() => Ok(Some(grant)),
        Some(Ok(_)) => Err(Refusal::new(403, "the token does not allow publishing")),
        _ => Err(Refusal::new(401, "invalid publish token")),
    }
}

/// Whether the request may publish to `topic`: not a reserved topic, and within its grant.
fn permitted(target: &Target, topic: &str) -> Result<(), Refusal> {
    if reserved_topic(topic) {
        return Err(reserved(topic));
    }
    match &target.grant {
        Some(grant) if !grant.may_publish(topic) => Err(Refusal::new(
            403,
            format!("the token does not allow publishing to {topic}"),
        )),
        _ => Ok(()),
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The query of a single publish: its topics and optional event name.
#[derive(Debug, PartialEq, Eq)]
pub struct Target {
    pub topics: Vec<String>,
    pub event: Option<String>,
    /// The topics this publisher may use (from its token); None: any.
    pub grant: Option<Grant>,
    /// Topics one event may name (`--max-topics`), for a batch's lines too.
    pub max_topics: usize,
}

impl Default for Target {
    fn default() -> Target {
        Target {
            topics: Vec::new(),
            event: None,
            grant: None,
            max_topics: crate::topic::MAX_TOPICS,
        }
    }
}

impl Target {
    /// Reads `?topic=...&event=...`. Topics may be absent only for a batch, whose lines
    /// name their own.
    pub fn from_query(query: Option<&[u8]>, max_topics: usize) -> Result<Target, QueryError> {
        let mut target = Target {
            max_topics,
            ..Target::default()
        };
        for pair in query::pairs(query.unwrap_or_default()) {
            let (key, value) = pair?;
            match &*key {
                b"topic" => add_topic(&mut target.topics, &value, max_topics)?,
                b"event" => target.event = Some(event_name(&value)?.to_owned()),
                _ => {}
            }
        }
        Ok(target)
    }
}

fn event_name(raw: &[u8]) -> Result<&str, QueryError> {
    let ok = (1..=MAX_EVENT_NAME).contains(&raw.len())
        && !raw.iter().any(|b| matches!(b, b'\r' | b'\n' | 0));
    match std::str::from_utf8(raw) {
        Ok(name) if ok => Ok(name),
        _ => Err(QueryError::BadEventName),
    }
}

/// Topics under `sys:` carry the server's own streams (`sys:stats`, see `page::stats`):
/// nobody publishes to them from outside.
pub fn reserved_topic(topic: &str) -> bool {
    topic.starts_with("sys:")
}

fn reserved(topic: &str) -> Refusal {
    Refusal::new(
        403,
        format!("topic {topic} is reserved: sys: topics are published by the server itself"),
    )
}

/// Whether a Content-Type names the NDJSON batch form.
pub fn is_batch(content_type: Option<&[u8]>) -> bool {
    content_type.is_some_and(|ct| {
        let essence = ct
            .split(|&b| b == b';')
            .next()
            .unwrap_or_default()
            .trim_ascii();
        essence.eq_ignore_ascii_case(b"application/x-ndjson")
    })
}

/// A validated event, borrowing from the request: ready for the local sequencer or for
/// the cluster's stream.
pub struct Valid<'a> {
    pub topics: SmallVec<[Cow<'a, str>; 2]>,
    pub event: Option<Cow<'a, str>>,
    pub data: Cow<'a, str>,
}

/// Checks a single publish whose data is `body`.
pub fn single<'a>(
    target: &'a Target,
    body: &'a [u8],
    max_event: usize,
) -> Result<Vec<Valid<'a>>, Refusal> {
    if target.topics.is_empty() {
        return Err(Refusal::new(400, QueryError::NoTopic.reason()));
    }
    for topic in &target.topics {
        permitted(target, topic)?;
    }
    if body.len() > max_event {
        return Err(Refusal::new(
            413,
            format!("event data over {max_event} bytes"),
        ));
    }
    let data =
        std::str::from_utf8(body).map_err(|_| Refusal::new(400, "event data must be UTF-8"))?;
    Ok(vec![Valid {
        topics: target
            .topics
            .iter()
            .map(|t| Cow::Borrowed(t.as_str()))
            .collect(),
        event: target.event.as_deref().map(Cow::Borrowed),
        data: Cow::Borrowed(data),
    }])
}

/// Validated events as the cluster's stream carries them.
pub fn to_wire(events: &[Valid<'_>]) -> Vec<WireEvent> {
    events
        .iter()
        .map(|v| WireEvent {
            topics: v.topics.iter().map(|t| t.to_string()).collect(),
            event: v.event.as_deref().map(str::to_owned),
            data: v.data.to_string(),
        })
        .collect()
}

/// Publishes validated events on this process (single-process mode); returns the first
/// id, the others following consecutively.
pub fn locally(seq: &Sequencer, events: &[Valid<'_>]) -> u64 {
    let events = events
        .iter()
        .map(|v| NewEvent {
            topics: v.topics.iter().map(|t| &**t).collect(),
            draft: Draft::new(v.event.as_deref().map(str::as_bytes), v.data.as_bytes()),
        })
        .collect();
    seq.publish(events)
}

/// One line of an NDJSON batch.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Line<'a> {
    #[serde(borrow, default)]
    topic: Option<TopicField<'a>>,
    #[serde(borrow, default)]
    event: Option<Cow<'a, str>>,
    #[serde(borrow)]
    data: Cow<'a, str>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum TopicField<'a> {
    One(#[serde(borrow)] Cow<'a, str>),
    Many(#[serde(borrow)] Vec<Cow<'a, str>>),
}

/// Checks every line of an NDJSON batch; one bad line refuses the whole batch, naming it.
pub fn batch<'a>(
    target: &'a Target,
    body: &'a [u8],
    max_event: usize,
) -> Result<Vec<Valid<'a>>, Refusal> {
    let text =
        std::str::from_utf8(body).map_err(|_| Refusal::new(400, "batch body must be UTF-8"))?;
    let mut lines: Vec<Valid<'_>> = Vec::new();
    for (n, raw) in text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
    {
        let bad = |why: String| Refusal::new(400, format!("line {}: {why}", n + 1));
        let line: Line<'_> = serde_json::from_str(raw).map_err(|e| bad(e.to_string()))?;
        let topics: SmallVec<[Cow<'_, str>; 2]> = match line.topic {
            Some(TopicField::One(t)) => SmallVec::from_iter([t]),
            Some(TopicField::Many(ts)) => ts.into_iter().collect(),
            None => target
                .topics
                .iter()
                .map(|t| Cow::Borrowed(t.as_str()))
                .collect(),
        };
        if topics.is_empty() {
            return Err(bad("no topic".into()));
        }
        if topics.len() > target.max_topics || !topics.iter().all(|t| valid_topic(t.as_bytes())) {
            return Err(bad(QueryError::BadTopic.reason().into()));
        }
        for topic in &topics {
            permitted(target, topic)
                .map_err(|r| Refusal::new(r.status, format!("line {}: {}", n + 1, r.why)))?;
        }
        let event = line
            .event
            .or_else(|| target.event.as_deref().map(Cow::Borrowed));
        if let Some(name) = &event {
            event_name(name.as_bytes()).map_err(|e| bad(e.reason().into()))?;
        }
        if line.data.len() > max_event {
            return Err(Refusal::new(
                413,
                format!("line {}: event data over {max_event} bytes", n + 1),
            ));
        }
        lines.push(Valid {
            topics,
            event,
            data: line.data,
        });
    }
    if lines.is_empty() {
        return Err(Refusal::new(400, "empty batch"));
    }
    Ok(lines)
}

#[cfg(test)]
mod tests;
