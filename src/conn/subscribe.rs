//! `GET /events`: validate the topics and the resume point, and build what a new
//! subscriber is sent before live events. The worker turns the connection into a
//! stream (`worker::subscribe`).

use bytes::Bytes;

use crate::broadcast::frame::{gap_frame, Body, Draft};
use crate::broadcast::sequencer::{Replay, Start};
use crate::cluster::Fetched;
use crate::http::query;
use crate::metrics::WorkerStats;
use crate::topic::{add_topic, QueryError};

/// A validated subscribe request.
#[derive(Debug, PartialEq, Eq)]
pub struct Subscribe {
    /// Distinct topic names, in the order given.
    pub topics: Vec<String>,
    /// The resume point as sent (header first, else query); None when absent or empty.
    pub last_event_id: Option<Vec<u8>>,
    /// `?replay=N`: start with the last N retained events (0: none). A resume point wins.
    pub replay: usize,
    /// `?access_token=`, used only when the server accepts tokens in URLs.
    pub access_token: Option<Vec<u8>>,
    /// A response head of its own (CORS headers for this origin); None: the shared one.
    pub head: Option<Bytes>,
    /// Seconds until the subscriber's token expires; the stream ends then.
    pub expires_in: Option<u64>,
    /// Chunks (HTTP/1.1), or the close (HTTP/1.0).
    pub body: Body,
    /// Who subscribes: the forward-auth answer's `user`, else the JWT's `sub` claim.
    pub user: Option<String>,
}

impl Subscribe {
    /// Reads `?topic=...&last_event_id=...`; a `Last-Event-ID` header wins over the query
    /// (a browser reconnecting sends the header with the newest id, on the same URL).
    pub fn from_request(
        query: Option<&[u8]>,
        header_id: Option<&[u8]>,
        max_topics: usize,
    ) -> Result<Subscribe, QueryError> {
        let mut topics = Vec::new();
        let mut query_id = None;
        let mut access_token = None;
        let mut replay = 0;
        for pair in query::pairs(query.unwrap_or_default()) {
            let (key, value) = pair?;
            match &*key {
                b"topic" => add_topic(&mut topics, &value, max_topics)?,
                b"last_event_id" if !value.is_empty() => query_id = Some(value.into_owned()),
                b"access_token" => access_token = Some(value.into_owned()),
                b"replay" => replay = parse_count(&value).ok_or(QueryError::BadReplay)?,
                _ => {}
            }
        }
        if topics.is_empty() {
            return Err(QueryError::NoTopic);
        }
        let last_event_id = match header_id {
            Some(h) if !h.is_empty() => Some(h.to_vec()),
            _ => query_id,
        };
        Ok(Subscribe {
            topics,
            last_event_id,
            replay,
            access_token,
            head: None,
            expires_in: None,
            body: Body::Chunked,
            user: None,
        })
    }
}

/// A count as sent: decimal digits; one too large for memory is as good as the largest
/// (the history bound caps it anyway).
fn parse_count(raw: &[u8]) -> Option<usize> {
    if raw.is_empty() || !raw.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(raw.iter().fold(0usize, |acc, &d| {
        acc.saturating_mul(10).saturating_add(usize::from(d - b'0'))
    }))
}

/// A start the shared stream must serve (cluster mode): fetched by the connection's
/// task, then handed back to its worker (`worker::Port::resume`).
pub struct RemoteResume {
    pub start: Start,
    pub upto: u64,
    /// The connection's generation, to recognise it after the wait.
    pub gen: u32,
}

/// The frames a new subscriber gets before live events: its response head
/// (`preamble`), a gap notice when its resume point is older than history, its replay;
/// each as the request's body framing sends it.
pub fn first_frames(
    preamble: Bytes,
    request: &Subscribe,
    replay: Replay,
    stats: &WorkerStats,
) -> Vec<Bytes> {
    let mut first = Vec::with_capacity(2 + replay.frames.len());
    first.push(preamble);
    if let Some(oldest) = replay.gap {
        let sent = request.last_event_id.as_deref().unwrap_or_default();
        first.push(request.body.frame(&gap_frame(sent, oldest)));
        stats.replay_gaps.add(1);
    }
    stats.replayed.add(replay.frames.len() as u64);
    first.extend(pack(replay.frames, request.body));
    first
}

/// The same for a start served from what the cluster's stream returned, up to where the
/// live events collected meanwhile begin. A resume whose point the stream no longer
/// holds, or that Redis could not serve, starts with a gap notice; a `?replay=N` that
/// Redis could not serve starts with what it is sent (the stream, from its first live
/// event): it asked for recent events, not for every event.
pub fn fetched_frames(
    preamble: Bytes,
    request: &Subscribe,
    pending: &RemoteResume,
    fetched: Result<Fetched, String>,
    stats: &WorkerStats,
) -> Vec<Bytes> {
    let mut first = vec![preamble];
    let fetched = fetched.unwrap_or_default();
    let upto = pending.upto;
    let events = fetched.events.into_iter();
    let events: Vec<_> = match pending.start {
        Start::After(after) => {
            let sent = request.last_event_id.as_deref().unwrap_or_default();
            if !fetched.contiguous || crate::broadcast::sequencer::parse_id(sent).is_none() {
                first.push(request.body.frame(&gap_frame(sent, fetched.oldest)));
                stats.replay_gaps.add(1);
            }
            events
                .filter(|(id, _, _)| *id > after && *id <= upto)
                .collect()
        }
        Start::Last(n) => {
            let mut events: Vec<_> = events.filter(|(id, _, _)| *id <= upto).collect();
            events.split_off(events.len().saturating_sub(n))
        }
    };
    let frames: Vec<Bytes> = events
        .into_iter()
        .map(|(id, event, data)| {
            Draft::new(event.as_deref().map(str::as_bytes), data.as_bytes()).finish(id)
        })
        .collect();
    stats.replayed.add(frames.len() as u64);
    first.extend(pack(frames, request.body));
    first
}

/// Largest chunk a replay is packed into.
const REPLAY_CHUNK: usize = 64 << 10;
/// Replays up to this many frames are queued as they are.
const REPLAY_UNPACKED: usize = 8;

/// Packs a long replay into a few large buffers. A replay may hold thousands of frames
/// (history is 1,000 per topic by default); queued one by one they would count against
/// the slow-reader bound, which is meant for frames the reader falls behind on, and would
/// take a write per 64 of them. One copy per resume buys both back; the live fan-out
/// still shares frames without copying.
fn pack(frames: Vec<Bytes>, body: Body) -> Vec<Bytes> {
    if frames.len() <= REPLAY_UNPACKED {
        return frames.iter().map(|f| body.frame(f)).collect();
    }
    let mut chunks = Vec::new();
    let mut chunk = bytes::BytesMut::new();
    for frame in frames {
        let frame = body.frame(&frame);
        if !chunk.is_empty() && chunk.len() + frame.len() > REPLAY_CHUNK {
            chunks.push(chunk.split().freeze());
        }
        chunk.extend_from_slice(&frame);
    }
    if !chunk.is_empty() {
        chunks.push(chunk.freeze());
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(q: &str, header: Option<&str>) -> Result<Subscribe, QueryError> {
        Subscribe::from_request(Some(q.as_bytes()), header.map(str::as_bytes), 64)
    }

    #[test]
    fn topics_are_validated_and_deduplicated() {
        let s = sub("topic=a&topic=b%2Fc&topic=a&x=1", None).unwrap();
        assert_eq!(s.topics, ["a", "b/c"]);
        assert_eq!(s.last_event_id, None);
        assert_eq!(sub("x=1", None), Err(QueryError::NoTopic));
        assert_eq!(sub("topic=", None), Err(QueryError::BadTopic));
        assert_eq!(sub("topic=a%20b", None), Err(QueryError::BadTopic));
        assert_eq!(sub("topic=a+b", None), Err(QueryError::BadTopic));
        assert_eq!(
            sub(&format!("topic={}", "x".repeat(129)), None),
            Err(QueryError::BadTopic)
        );
        assert!(sub(&format!("topic={}", "x".repeat(128)), None).is_ok());
        assert_eq!(sub("topic=%zz", None), Err(QueryError::BadEncoding));
        let many: String = (0..65).map(|i| format!("topic=t{i}&")).collect();
        assert_eq!(sub(&many, None), Err(QueryError::TooManyTopics));
    }

    #[test]
    fn the_header_id_wins_and_empty_means_absent() {
        assert_eq!(
            sub("topic=a&last_event_id=5", None).unwrap().last_event_id,
            Some(b"5".to_vec())
        );
        assert_eq!(
            sub("topic=a&last_event_id=5", Some("9"))
                .unwrap()
                .last_event_id,
            Some(b"9".to_vec())
        );
        assert_eq!(
            sub("topic=a&last_event_id=5", Some(""))
                .unwrap()
                .last_event_id,
            Some(b"5".to_vec())
        );
        assert_eq!(
            sub("topic=a&last_event_id=", None).unwrap().last_event_id,
            None
        );
    }

    #[test]
    fn long_replays_are_packed_in_order_and_short_ones_kept() {
        let frames: Vec<Bytes> = (0..3000)
            .map(|i| Draft::new(None, "x".repeat(40).as_bytes()).finish(i))
            .collect();
        let whole: Vec<u8> = frames.iter().flat_map(|f| f.iter().copied()).collect();
        let packed = pack(frames.clone(), Body::Chunked);
        assert!(packed.len() < 5, "{} chunks", packed.len());
        assert!(packed.iter().all(|c| c.len() <= REPLAY_CHUNK));
        assert_eq!(
            packed
                .iter()
                .flat_map(|c| c.iter().copied())
                .collect::<Vec<u8>>(),
            whole
        );
        let few = frames[..3].to_vec();
        assert_eq!(pack(few.clone(), Body::Chunked), few);
        assert!(pack(Vec::new(), Body::Chunked).is_empty());
        let unframed: Vec<u8> = pack(frames.clone(), Body::Close).concat();
        assert!(
            unframed.starts_with(b"id: 0\ndata: xxx"),
            "HTTP/1.0 replays carry no chunk framing"
        );
        assert_eq!(
            unframed.len(),
            whole.len()
                - frames
                    .iter()
                    .map(|f| f.len() - Body::Close.frame(f).len())
                    .sum::<usize>()
        );
    }

    #[test]
    fn gap_frames_escape_what_was_sent() {
        let f = Body::Close.frame(&gap_frame(b"a\"b\\c\x01", Some(7)));
        assert_eq!(
            &f[..],
            b"event: gap\ndata: {\"last_event_id\":\"a\\\"b\\\\c\\u0001\",\"oldest_id\":\"7\"}\n\n"
        );
        assert_eq!(
            &Body::Close.frame(&gap_frame(b"x", None))[..],
            b"event: gap\ndata: {\"last_event_id\":\"x\",\"oldest_id\":null}\n\n"
        );
    }
}
