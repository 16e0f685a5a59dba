//! Encoding an event ONCE into the bytes every subscriber receives.
//!
//! A publish is encoded in two steps so the sequencer's critical section stays short:
//! [`Draft::new`] writes the `event:` and `data:` lines (outside any lock) after a gap
//! reserved for the id line, and [`Draft::finish`] writes `id: N\n` into that gap once the
//! id is known and freezes the buffer into a [`Bytes`] that the history ring and every
//! subscriber on every worker share by reference count.

use bytes::{Bytes, BytesMut};

/// `id: ` + up to 20 decimal digits (u64::MAX) + `\n`.
const ID_ROOM: usize = 4 + 20 + 1;

/// The comment every quiet connection receives at the heartbeat interval.
pub const HEARTBEAT: &[u8] = b":\n\n";

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
        let mut buf = BytesMut::with_capacity(ID_ROOM + event_len + data.len() + 7 * lines + 1);
        buf.resize(ID_ROOM, 0);
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

    /// Writes `id: <id>\n` right before the lines and freezes the frame.
    pub fn finish(mut self, id: u64) -> Bytes {
        let mut digits = itoa::Buffer::new();
        let digits = digits.format(id).as_bytes();
        let start = ID_ROOM - 5 - digits.len();
        let room = &mut self.buf[start..ID_ROOM];
        room[..4].copy_from_slice(b"id: ");
        room[4..4 + digits.len()].copy_from_slice(digits);
        room[4 + digits.len()] = b'\n';
        let _ = self.buf.split_to(start);
        self.buf.freeze()
    }

    /// The frame without an `id:` line, for events that are not part of the id sequence
    /// (they leave a client's last event id where it was).
    pub fn without_id(mut self) -> Bytes {
        let _ = self.buf.split_to(ID_ROOM);
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

/// The `retry:` frame every stream starts with.
pub fn retry_frame(retry_ms: u64) -> Bytes {
    Bytes::from(format!("retry: {retry_ms}\n\n"))
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
    Bytes::from(frame)
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
                    assert_eq!(
                        std::str::from_utf8(&frame).unwrap(),
                        std::str::from_utf8($want).unwrap()
                    );
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
        assert!(frame.starts_with(b"id: 12345\nevent: e\ndata:\n"));
    }
}
