//! Encoding an event ONCE into the bytes every subscriber receives.
//!
//! A publish is encoded in two steps so the sequencer's critical section stays short:
//! [`Draft::new`] writes the `event:` and `data:` lines (outside any lock) after a gap
//! reserved for the chunk size and the id line, and [`Draft::finish`] writes `id: N\n`
//! into that gap once the id is known, frames the block as one HTTP/1.1 chunk
//! (`<hex size>\r\n … \r\n`) and freezes the buffer into a [`Bytes`] that the history
//! ring and every subscriber on every worker share by reference count.
//!
//! Every frame is a chunk: the framing is the same for every HTTP/1.1 subscriber, so it is
//! encoded once with the frame. An HTTP/1.0 subscriber (a body delimited by the close)
//! gets a slice of the same `Bytes` without the framing ([`Body::frame`]).

use bytes::{Bytes, BytesMut};

/// `id: ` + up to 20 decimal digits (u64::MAX) + `\n`.
const ID_ROOM: usize = 4 + 20 + 1;

/// A chunk-size line: up to 16 hex digits (a `usize`) + `\r\n`.
const SIZE_ROOM: usize = 16 + 2;

/// The comment every quiet connection receives at the heartbeat interval, as a chunk. No
/// blank line follows it: a comment followed by a blank line is reported as an empty
/// event by several client libraries (httpx-sse, @microsoft/fetch-event-source).
pub const HEARTBEAT: &[u8] = b"2\r\n:\n\r\n";

/// The last chunk of a planned close.
pub const LAST_CHUNK: &[u8] = b"0\r\n\r\n";

/// How a stream's body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Body {
    /// HTTP/1.1: `Transfer-Encoding: chunked`, each frame a chunk, `0\r\n\r\n` at a
    /// planned close. (Clients on urllib3 hold back a close-delimited body until a read
    /// block fills.)
    Chunked,
    /// HTTP/1.0: the bytes as they are, delimited by the close.
    Close,
}

impl Body {
    /// The bytes this stream sends for a (chunk-framed) frame: the frame itself, or a
    /// slice of it without the framing. Never a copy.
    pub fn frame(self, frame: &Bytes) -> Bytes {
        match self {
            Body::Chunked => frame.clone(),
            Body::Close => unchunked(frame),
        }
    }

    /// The end of a planned close: the last chunk, or nothing.
    pub fn last_bytes(self) -> &'static [u8] {
        match self {
            Body::Chunked => LAST_CHUNK,
            Body::Close => b"",
        }
    }
}

/// A frame's content without its chunk framing (a slice of the same buffer).
pub fn unchunked(frame: &Bytes) -> Bytes {
    match memchr::memchr(b'\n', frame) {
        Some(eol) if frame.len() >= eol + 3 => frame.slice(eol + 1..frame.len() - 2),
        _ => {
            debug_assert!(false, "not a chunk: {frame:?}");
            frame.clone()
        }
    }
}

/// `content` as one chunk (for the few frames built per connection: retry hints, gaps).
pub fn chunk(content: &[u8]) -> Bytes {
    let mut buf = BytesMut::with_capacity(content.len() + SIZE_ROOM + 2);
    buf.extend_from_slice(format!("{:x}\r\n", content.len()).as_bytes());
    buf.extend_from_slice(content);
    buf.extend_from_slice(b"\r\n");
    buf.freeze()
}

/// An event whose lines are encoded but whose id is not yet assigned.
pub struct Draft {
    buf: BytesMut,
}

impl Draft {
    /// Encodes `event:` (when named) and one `data:` line per line of `data`, splitting on
    /// CR, LF and CRLF, then the blank line that ends the event. An empty line is written
    /// as `data:` with no space, so an empty payload is `data:\n\n` and still fires.
    pub fn new(event: Option<&[u8]>, data: &[u8]) -> Draft {
        let lines = 1 + memchr::memchr2_iter(b'\n', b'\r', data).count();
        let event_len = event.map_or(0, |e| 8 + e.len());
        let room = SIZE_ROOM + ID_ROOM;
        let mut buf = BytesMut::with_capacity(room + event_len + data.len() + 7 * lines + 3);
        buf.resize(room, 0);
        if let Some(name) = event {
            buf.extend_from_slice(b"event: ");
            buf.extend_from_slice(name);
            buf.extend_from_slice(b"\n");
        }
        for line in (Lines { rest: Some(data) }) {
            if line.is_empty() {
                buf.extend_from_slice(b"data:\n");
            } else {
                buf.extend_from_slice(b"data: ");
                buf.extend_from_slice(line);
                buf.extend_from_slice(b"\n");
            }
        }
        buf.extend_from_slice(b"\n");
        Draft { buf }
    }

    /// Writes `id: <id>\n` right before the lines and freezes the frame as one chunk.
    pub fn finish(mut self, id: u64) -> Bytes {
        let mut digits = itoa::Buffer::new();
        let digits = digits.format(id).as_bytes();
        let end = SIZE_ROOM + ID_ROOM;
        let start = end - 5 - digits.len();
        let room = &mut self.buf[start..end];
        room[..4].copy_from_slice(b"id: ");
        room[4..4 + digits.len()].copy_from_slice(digits);
        room[4 + digits.len()] = b'\n';
        self.frame_from(start)
    }

    /// The frame without an `id:` line, for events that are not part of the id sequence
    /// (they leave a client's last event id where it was).
    pub fn without_id(self) -> Bytes {
        self.frame_from(SIZE_ROOM + ID_ROOM)
    }

    /// Writes the chunk-size line right before `start`, the chunk's CRLF after the block,
    /// and freezes what lies between.
    fn frame_from(mut self, start: usize) -> Bytes {
        let size = self.buf.len() - start;
        let mut hex = [0u8; SIZE_ROOM];
        let line = hex_line(size, &mut hex);
        let from = start - line.len();
        self.buf[from..start].copy_from_slice(line);
        self.buf.extend_from_slice(b"\r\n");
        let _ = self.buf.split_to(from);
        self.buf.freeze()
    }

    /// Bytes of the finished frame, give or take the id's digits (for history accounting).
    pub fn len(&self) -> usize {
        self.buf.len()
    }

    pub fn is_empty(&self) -> bool {
        false
    }
}

/// `<size in lowercase hex>\r\n`, written into the end of `out`.
fn hex_line(size: usize, out: &mut [u8; SIZE_ROOM]) -> &[u8] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut at = SIZE_ROOM - 2;
    out[at..].copy_from_slice(b"\r\n");
    let mut n = size;
    loop {
        at -= 1;
        out[at] = HEX[n & 0xf];
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    &out[at..]
}

/// The `retry:` line every stream starts with, as a chunk. No blank line follows it, so
/// it joins the first event's block: alone in a block, several client libraries report it
/// as an empty event. A spec-following parser applies it when it reads the line.
pub fn retry_frame(retry_ms: u64) -> Bytes {
    chunk(format!("retry: {retry_ms}\n").as_bytes())
}

/// What a planned close sends last: a `retry:` hint (the reconnect delay, with the
/// caller's jitter), then the last chunk. The hint starts a block that the close leaves
/// unfinished, so a client applies it and reports nothing.
pub fn closing_frame(retry_ms: u64, body: Body) -> Bytes {
    let hint = format!("retry: {retry_ms}\n");
    match body {
        Body::Chunked => {
            let mut buf = BytesMut::from(&chunk(hint.as_bytes())[..]);
            buf.extend_from_slice(LAST_CHUNK);
            buf.freeze()
        }
        Body::Close => Bytes::from(hint),
    }
}

/// Payload lines, split on CR, LF and CRLF; a trailing terminator yields a final empty line
/// (so `a\n` round-trips to `a\n` through a spec-following parser).
struct Lines<'a> {
    rest: Option<&'a [u8]>,
}

impl<'a> Iterator for Lines<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let rest = self.rest?;
        match memchr::memchr2(b'\n', b'\r', rest) {
            None => {
                self.rest = None;
                Some(rest)
            }
            Some(i) => {
                let crlf = rest[i] == b'\r' && rest.get(i + 1) == Some(&b'\n');
                self.rest = Some(&rest[i + 1 + usize::from(crlf)..]);
                Some(&rest[..i])
            }
        }
    }
}

/// The in-band notice that events may have been lost before the replay that follows.
pub fn gap_frame(sent: &[u8], oldest: Option<u64>) -> Bytes {
    let mut frame = String::from("event: gap\ndata: {\"last_event_id\":\"");
    crate::json::json_escape(&String::from_utf8_lossy(sent), &mut frame);
    frame.push_str("\",\"oldest_id\":");
    match oldest {
        Some(id) => frame.push_str(&format!("\"{id}\"")),
        None => frame.push_str("null"),
    }
    frame.push_str("}\n\n");
    chunk(frame.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! frames {
        ($($name:ident: ($id:expr, $event:expr, $data:expr) => $want:expr;)*) => {
            $(
                #[test]
                fn $name() {
                    let frame = Draft::new($event, $data).finish($id);
                    let want: &[u8] = $want;
                    let chunked = format!("{:x}\r\n{}\r\n", want.len(), std::str::from_utf8(want).unwrap());
                    assert_eq!(std::str::from_utf8(&frame).unwrap(), chunked);
                    assert_eq!(Body::Close.frame(&frame), want, "the same bytes unframed");
                }
            )*
        };
    }

    frames! {
        single_line: (1, None, b"hello") => b"id: 1\ndata: hello\n\n";
        named: (42, Some(&b"update"[..]), b"x") => b"id: 42\nevent: update\ndata: x\n\n";
        empty_payload_still_fires: (7, None, b"") => b"id: 7\ndata:\n\n";
        leading_space_kept: (7, None, b" x") => b"id: 7\ndata:  x\n\n";
        lf_splits: (7, None, b"a\nb") => b"id: 7\ndata: a\ndata: b\n\n";
        cr_splits: (7, None, b"a\rb") => b"id: 7\ndata: a\ndata: b\n\n";
        crlf_is_one_break: (7, None, b"a\r\nb") => b"id: 7\ndata: a\ndata: b\n\n";
        lfcr_is_two_breaks: (7, None, b"a\n\rb") => b"id: 7\ndata: a\ndata:\ndata: b\n\n";
        trailing_newline_kept: (7, None, b"a\n") => b"id: 7\ndata: a\ndata:\n\n";
        blank_lines_kept: (7, None, b"\n\n") => b"id: 7\ndata:\ndata:\ndata:\n\n";
        max_id: (u64::MAX, None, b"x") => b"id: 18446744073709551615\ndata: x\n\n";
        zero_id: (0, None, b"x") => b"id: 0\ndata: x\n\n";
        utf8_untouched: (3, None, "héllo ✓".as_bytes()) => "id: 3\ndata: héllo ✓\n\n".as_bytes();
    }

    #[test]
    fn capacity_estimate_avoids_regrowth() {
        let data = vec![b'\n'; 1000];
        let draft = Draft::new(Some(b"e"), &data);
        assert!(draft.buf.capacity() >= draft.buf.len());
        let frame = draft.finish(12345);
        assert!(
            frame.starts_with(b"178a\r\nid: 12345\nevent: e\ndata:\n"),
            "{frame:?}"
        );
    }

    #[test]
    fn chunk_sizes_are_lowercase_hex_of_any_width() {
        for size in [0, 1, 9, 10, 15, 16, 255, 256, 4095, 65_536, usize::MAX] {
            let mut out = [0; SIZE_ROOM];
            assert_eq!(hex_line(size, &mut out), format!("{size:x}\r\n").as_bytes());
        }
        let big = Draft::new(None, &vec![b'x'; 70_000]).finish(1);
        assert!(
            big.starts_with(b"1117e\r\nid: 1\n"),
            "70,014 bytes of block"
        );
        assert!(big.ends_with(b"x\n\n\r\n"));
    }

    #[test]
    fn frames_without_an_id_and_notices_are_chunks_too() {
        let f = Draft::new(Some(b"stats"), b"{}").without_id();
        assert_eq!(&f[..], b"17\r\nevent: stats\ndata: {}\n\n\r\n");
        assert_eq!(&retry_frame(3000)[..], b"c\r\nretry: 3000\n\r\n");
        assert_eq!(
            &closing_frame(1234, Body::Chunked)[..],
            b"c\r\nretry: 1234\n\r\n0\r\n\r\n"
        );
        assert_eq!(&closing_frame(1234, Body::Close)[..], b"retry: 1234\n");
        assert_eq!(
            &Body::Close.frame(&Bytes::from_static(HEARTBEAT))[..],
            b":\n"
        );
        assert_eq!(
            &Body::Close.frame(&gap_frame(b"9", None))[..],
            &b"event: gap\ndata: {\"last_event_id\":\"9\",\"oldest_id\":null}\n\n"[..]
        );
    }
}
