//! `GET /topics/T` (one topic: its subscribers and what history holds of it),
//! `GET /topics?prefix=P&after=NAME&limit=K` (the topics with subscribers, in name
//! order, a page at a time) and, with `--subscription-events`,
//! `GET /topics/T/subscribers?after=USER&limit=K` (the users following it). Both need the publisher's authorization, and with a JWT
//! grant only the topics it may publish to are shown. In cluster mode the subscriber
//! counts are summed over every live process through Redis (`cluster::census`).

use crate::auth::Grant;
use crate::http::query;
use crate::json::json_escape;
use crate::shared::Shared;
use crate::topic::{valid_topic, MAX_TOPIC_BYTES};

/// Topics listed when the request names no `limit`, and the most it may name.
const DEFAULT_LIMIT: usize = 100;
const MAX_LIMIT: usize = 1000;

#[derive(Debug, PartialEq, Eq)]
pub enum TopicQuery {
    Info(String),
    List {
        prefix: String,
        after: Option<String>,
        limit: usize,
    },
    Subscribers {
        topic: String,
        after: Option<String>,
        limit: usize,
    },
}

/// A topic request: what it asks, and the grant it is answered within (None: all).
pub struct Topics {
    pub query: TopicQuery,
    pub grant: Option<Grant>,
}

/// Reads the path after `/topics` and the query string.
pub fn parse(rest: &[u8], query_string: Option<&[u8]>) -> Result<TopicQuery, String> {
    if rest.is_empty() || rest == b"/" {
        return list(query_string.unwrap_or_default());
    }
    let raw = rest.strip_prefix(b"/").ok_or("no such endpoint")?;
    let (raw, users) = match raw.strip_suffix(b"/subscribers") {
        Some(topic) => (topic, true),
        None => (raw, false),
    };
    let name = query::decode(raw).map_err(|_| "malformed percent-encoding in path")?;
    let topic = topic_name(&name)?;
    if !users {
        return Ok(TopicQuery::Info(topic));
    }
    let (mut after, mut limit) = (None, DEFAULT_LIMIT);
    for pair in query::pairs(query_string.unwrap_or_default()) {
        let (key, value) = pair.map_err(|_| "malformed percent-encoding in query")?;
        match &*key {
            b"after" => after = Some(String::from_utf8_lossy(&value).into_owned()),
            b"limit" => limit = parse_limit(&value)?,
            _ => {}
        }
    }
    Ok(TopicQuery::Subscribers {
        topic,
        after,
        limit,
    })
}

fn parse_limit(value: &[u8]) -> Result<usize, String> {
    std::str::from_utf8(value)
        .ok()
        .filter(|v| v.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|v| v.parse().ok())
        .filter(|n| (1..=MAX_LIMIT).contains(n))
        .ok_or(format!("limit is a number from 1 to {MAX_LIMIT}"))
}

fn list(query_string: &[u8]) -> Result<TopicQuery, String> {
    let (mut prefix, mut after, mut limit) = (String::new(), None, DEFAULT_LIMIT);
    for pair in query::pairs(query_string) {
        let (key, value) = pair.map_err(|_| "malformed percent-encoding in query")?;
        match &*key {
            b"prefix" if value.is_empty() => {}
            b"prefix" => prefix = topic_name(&value).map_err(|_| bad_prefix())?,
            b"after" => after = Some(topic_name(&value)?),
            b"limit" => limit = parse_limit(&value)?,
            _ => {}
        }
    }
    Ok(TopicQuery::List {
        prefix,
        after,
        limit,
    })
}

fn topic_name(raw: &[u8]) -> Result<String, String> {
    match valid_topic(raw) {
        true => Ok(String::from_utf8_lossy(raw).into_owned()),
        false => Err(crate::topic::QueryError::BadTopic.reason().into()),
    }
}

fn bad_prefix() -> String {
    format!("a prefix is up to {MAX_TOPIC_BYTES} bytes of the topic name characters")
}

/// The JSON answer, or a refusal (status and why).
pub async fn answer(request: Topics, shared: &Shared) -> Result<String, (u16, String)> {
    let may = |t: &str| request.grant.as_ref().is_none_or(|g| g.may_publish(t));
    let unavailable = |why: String| (503, why);
    match request.query {
        TopicQuery::Info(topic) => {
            if !may(&topic) {
                return Err((403, format!("the token does not allow {topic}")));
            }
            let subscribers = match &shared.cluster {
                None => shared.census.count(&topic),
                Some(cluster) => cluster.count(topic.clone()).await.map_err(unavailable)?,
            };
            let (last_id, retained, bytes) = shared.sequencer.topic_history(&topic);
            let mut out = String::with_capacity(128);
            info(&mut out, &topic, subscribers);
            out.pop();
            out.push_str(",\"last_id\":");
            match last_id {
                Some(id) => {
                    out.push('"');
                    out.push_str(itoa::Buffer::new().format(id));
                    out.push('"');
                }
                None => out.push_str("null"),
            }
            out.push_str(&format!(
                ",\"retained\":{retained},\"retained_bytes\":{bytes}}}"
            ));
            Ok(out)
        }
        TopicQuery::List {
            prefix,
            after,
            limit,
        } => {
            let page: Vec<(String, u64)> = match &shared.cluster {
                None => shared
                    .census
                    .list(&prefix, after.as_deref(), limit)
                    .into_iter()
                    .map(|(t, n)| (t.to_string(), n))
                    .collect(),
                Some(cluster) => cluster
                    .list(prefix, after, limit)
                    .await
                    .map_err(unavailable)?,
            };
            // A full page may have more after it: its last name is where the next starts.
            let next = (page.len() == limit).then(|| page[page.len() - 1].0.clone());
            let mut out = String::from("{\"topics\":[");
            for (topic, n) in page.iter().filter(|(t, _)| may(t)) {
                info(&mut out, topic, *n);
                out.push(',');
            }
            finish_page(&mut out, next);
            Ok(out)
        }
        TopicQuery::Subscribers {
            topic,
            after,
            limit,
        } => {
            if !shared.config.subscription_events {
                return Err((404, "users are kept only with --subscription-events".into()));
            }
            if !may(&topic) {
                return Err((403, format!("the token does not allow {topic}")));
            }
            let page: Vec<(String, u64)> = match &shared.cluster {
                None => shared
                    .census
                    .users(&topic, after.as_deref(), limit)
                    .into_iter()
                    .map(|(u, n)| (u.to_string(), n))
                    .collect(),
                Some(cluster) => cluster
                    .users(topic.clone(), after, limit)
                    .await
                    .map_err(unavailable)?,
            };
            let next = (page.len() == limit).then(|| page[page.len() - 1].0.clone());
            let mut out = String::from("{\"topic\":\"");
            json_escape(&topic, &mut out);
            out.push_str("\",\"users\":[");
            for (user, n) in &page {
                out.push_str("{\"user\":\"");
                json_escape(user, &mut out);
                out.push_str("\",\"connections\":");
                out.push_str(itoa::Buffer::new().format(*n));
                out.push_str("},");
            }
            finish_page(&mut out, next);
            Ok(out)
        }
    }
}

/// Closes a page's list (dropping a trailing comma) and adds where the next one starts.
fn finish_page(out: &mut String, next: Option<String>) {
    if out.ends_with(',') {
        out.pop();
    }
    out.push_str("],\"next\":");
    match next {
        Some(name) => {
            out.push('"');
            json_escape(&name, out);
            out.push('"');
        }
        None => out.push_str("null"),
    }
    out.push('}');
}

/// `{"topic":"…","subscribers":N}`.
fn info(out: &mut String, topic: &str, subscribers: u64) {
    out.push_str("{\"topic\":\"");
    json_escape(topic, out);
    out.push_str("\",\"subscribers\":");
    out.push_str(itoa::Buffer::new().format(subscribers));
    out.push('}');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_queries_are_read_and_checked() {
        assert_eq!(parse(b"/a%2Fb", None), Ok(TopicQuery::Info("a/b".into())));
        assert_eq!(
            parse(b"/user/7", None),
            Ok(TopicQuery::Info("user/7".into()))
        );
        assert!(parse(b"/a b", None).is_err());
        assert!(parse(b"/%zz", None).is_err());
        assert!(parse(b"x", None).is_err());
        assert_eq!(
            parse(b"", Some(b"prefix=user/&limit=2&after=user/1")),
            Ok(TopicQuery::List {
                prefix: "user/".into(),
                after: Some("user/1".into()),
                limit: 2
            })
        );
        assert_eq!(
            parse(b"/", None),
            Ok(TopicQuery::List {
                prefix: String::new(),
                after: None,
                limit: DEFAULT_LIMIT
            })
        );
        assert_eq!(
            parse(b"/doc%2F1/subscribers", Some(b"after=ann&limit=5")),
            Ok(TopicQuery::Subscribers {
                topic: "doc/1".into(),
                after: Some("ann".into()),
                limit: 5
            })
        );
        assert!(parse(b"/subscribers", None).is_ok(), "a topic named so");
        for bad in [
            "limit=0",
            "limit=1001",
            "limit=-1",
            "limit=x",
            "prefix=a*",
            "after=",
        ] {
            assert!(parse(b"", Some(bad.as_bytes())).is_err(), "{bad}");
        }
    }
}
