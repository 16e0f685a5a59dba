//! The bytes of a publish request: the single form expanded from the plan's templates
//! (the admission prober sends it too), or ringcast's NDJSON batch, one
//! `{"topic":...,"data":...}` line per event.

use crate::payload;
use crate::plan::{Plan, Publish, Template};

use super::window::Window;

/// Builds a connection's requests: its topic names and reused scratch buffers.
pub struct Builder {
    /// Name of each of the connection's topics, in its round-robin order.
    names: Vec<Vec<u8>>,
    /// Where batches go: the publish path without its query.
    batch_path: Vec<u8>,
    /// One event's data.
    data: Vec<u8>,
    /// The expanded body template, or the batch's lines.
    body: Vec<u8>,
}

impl Builder {
    pub fn new(plan: &Plan, topics: &[u32]) -> Builder {
        let batch_path = plan
            .publish
            .as_ref()
            .map_or_else(Vec::new, |p| batch_path(&p.endpoint.path));
        Builder {
            names: topics
                .iter()
                .map(|&t| plan.topic_name(t).into_bytes())
                .collect(),
            batch_path,
            data: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Appends the next request to `out`: the next `p.batch` events of the window's
    /// round-robin, all stamped `sent_ns`.
    pub fn push(&mut self, p: &Publish, window: &mut Window, sent_ns: u64, out: &mut Vec<u8>) {
        let Builder {
            names,
            batch_path,
            data,
            body,
        } = self;
        body.clear();
        window.send(p.batch, sent_ns, |k, seq| {
            payload::encode(seq, sent_ns, p.payload, data);
            if p.batch == 1 {
                write_request(p, &names[k], data, body, out);
            } else {
                push_line(&names[k], data, body);
            }
        });
        if p.batch > 1 {
            write_batch(p, batch_path, body, out);
        }
    }
}

/// Appends the publish request for `topic` carrying `data` to `out`; `body` is scratch
/// for the expanded body template. The admission prober sends the same request.
pub fn write_request(
    p: &Publish,
    topic: &[u8],
    data: &[u8],
    body: &mut Vec<u8>,
    out: &mut Vec<u8>,
) {
    body.clear();
    p.body.expand(topic, data, body);
    out.extend_from_slice(p.method.as_bytes());
    out.push(b' ');
    p.endpoint.path.expand(topic, data, out);
    write_rest(p, None, body, out);
}

/// Appends a batch request whose NDJSON lines are `body` to `out`.
pub fn write_batch(p: &Publish, path: &[u8], body: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(b"POST ");
    out.extend_from_slice(path);
    write_rest(p, Some("application/x-ndjson"), body, out);
}

/// The request line's tail, the headers and the body.
fn write_rest(p: &Publish, content_type: Option<&str>, body: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(b" HTTP/1.1\r\nHost: ");
    out.extend_from_slice(p.endpoint.host.as_bytes());
    if let Some(ct) = content_type {
        out.extend_from_slice(b"\r\nContent-Type: ");
        out.extend_from_slice(ct.as_bytes());
    }
    out.extend_from_slice(format!("\r\nContent-Length: {}\r\n", body.len()).as_bytes());
    for h in &p.headers {
        out.extend_from_slice(h.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
}

/// Appends one batch line, `{"topic":"<topic>","data":"<data>"}` and a newline.
pub fn push_line(topic: &[u8], data: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(br#"{"topic":""#);
    push_json_str(topic, out);
    out.extend_from_slice(br#"","data":""#);
    push_json_str(data, out);
    out.extend_from_slice(b"\"}\n");
}

/// Appends `s` as the inside of a JSON string. loadgen's own data (digits, spaces,
/// `x`) needs no escape and is copied whole; a topic prefix may hold anything.
pub(super) fn push_json_str(s: &[u8], out: &mut Vec<u8>) {
    let plain = |b: u8| b >= 0x20 && b != b'"' && b != b'\\';
    if s.iter().all(|&b| plain(b)) {
        out.extend_from_slice(s);
        return;
    }
    for &b in s {
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            b'\n' => out.extend_from_slice(b"\\n"),
            b'\r' => out.extend_from_slice(b"\\r"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b if b < 0x20 => out.extend_from_slice(format!("\\u{b:04x}").as_bytes()),
            b => out.push(b),
        }
    }
}

/// The publish path without its query (`/publish?topic={topic}` -> `/publish`).
pub(super) fn batch_path(path: &Template) -> Vec<u8> {
    let mut out = Vec::new();
    path.expand(b"", b"", &mut out);
    let end = out.iter().position(|&b| b == b'?').unwrap_or(out.len());
    out.truncate(end);
    out
}
