//! One entry of the shared stream as ringcast reads it (the reader thread follows the
//! stream, the writer thread fetches ranges for resumes), and the Redis connection
//! both threads open.

use std::time::Duration;

use redis::streams::StreamId;
use redis::{Connection, RedisResult, Value};
use smallvec::SmallVec;

use super::ids;
use crate::topic::valid_topic;

/// How long a connect, or one command, may take before the request is refused (a
/// publisher would rather get a 503 at once than wait on a dead server).
const TIMEOUT: Duration = Duration::from_secs(2);

pub fn connect(client: &redis::Client) -> RedisResult<Connection> {
    let con = client.get_connection_with_timeout(TIMEOUT)?;
    con.set_read_timeout(Some(TIMEOUT))?;
    con.set_write_timeout(Some(TIMEOUT))?;
    Ok(con)
}

/// A decoded stream entry.
pub struct Decoded {
    pub topics: SmallVec<[String; 2]>,
    pub event: Option<String>,
    pub data: String,
}

/// A stream entry as a ringcast event: its id, topics, name and data; None for an entry
/// some other client wrote that is not one (it is skipped and counted).
pub fn decode(entry: &StreamId, max_event_bytes: usize) -> Option<(u64, Decoded)> {
    let id = ids::from_stream(&entry.id)?;
    let text = |field: &str| match entry.map.get(field) {
        Some(Value::BulkString(bytes)) => String::from_utf8(bytes.clone()).ok(),
        Some(Value::SimpleString(s)) => Some(s.clone()),
        _ => None,
    };
    let topics: SmallVec<[String; 2]> = text("t")?.split(',').map(str::to_owned).collect();
    if topics.is_empty() || !topics.iter().all(|t| valid_topic(t.as_bytes())) {
        return None;
    }
    let event = text("e");
    if event
        .as_ref()
        .is_some_and(|e| e.is_empty() || e.len() > 64 || e.contains(['\r', '\n', '\0']))
    {
        return None;
    }
    let data = text("d")?;
    if data.len() > max_event_bytes {
        return None;
    }
    Some((
        id,
        Decoded {
            topics,
            event,
            data,
        },
    ))
}
