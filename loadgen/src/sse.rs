//! The SSE stream parser of the subscriber: finds one block (lines up to a blank line)
//! at the front of a buffer and hands back slices into it. Nothing is copied or
//! allocated per event; an incomplete block is `Status::Partial` and the caller keeps
//! its bytes for the next read.

use crate::Status;

/// One block of an event stream: an event when it has data, otherwise only comments
/// (heartbeats) or a `retry:` hint. Slices point into the caller's buffer.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Block<'a> {
    /// Last `id:` field of the block, the resume point for `Last-Event-ID`.
    pub id: Option<&'a [u8]>,
    /// `event:` field; ringcast names its history-gap notice `gap`.
    pub event: Option<&'a [u8]>,
    /// First `data:` line. loadgen's own payloads are one line; later lines are only
    /// counted, because checking seq and timestamp needs nothing more.
    pub data: Option<&'a [u8]>,
    /// Number of `data:` lines; the block is an event (per the SSE spec) when > 0.
    pub data_lines: u32,
    /// Comment lines (`:` first), the heartbeats of most servers.
    pub comments: u32,
    /// Whether the block carried a `retry:` field.
    pub retry: bool,
}

/// Parses the block at the front of `buf`. On `Complete` the second value is the number
/// of bytes the block used, its terminating blank line included.
pub fn parse_block(buf: &[u8]) -> Status<(Block<'_>, usize)> {
    let mut block = Block::default();
    let mut pos = 0;
    loop {
        let rest = &buf[pos..];
        let Some(end) = memchr::memchr2(b'\n', b'\r', rest) else {
            return Status::Partial;
        };
        let line = &rest[..end];
        let next = match line_break_len(rest, end) {
            Some(len) => pos + end + len,
            // A CR ends the buffer: CRLF or a bare CR? Only a blank line may finish
            // now (a stray LF then reads as an empty block, which dispatches nothing).
            None if line.is_empty() => pos + end + 1,
            None => return Status::Partial,
        };
        if line.is_empty() {
            return Status::Complete((block, next));
        }
        apply_line(&mut block, line);
        pos = next;
    }
}

/// Length of the line break at `rest[end]`, or `None` when a CR is the last byte seen.
#[inline]
fn line_break_len(rest: &[u8], end: usize) -> Option<usize> {
    if rest[end] == b'\n' {
        return Some(1);
    }
    match rest.get(end + 1) {
        Some(b'\n') => Some(2),
        Some(_) => Some(1),
        None => None,
    }
}

/// Applies one non-blank line (`field: value`, `field`, or `:comment`).
#[inline]
fn apply_line<'a>(block: &mut Block<'a>, line: &'a [u8]) {
    let (name, value) = match memchr::memchr(b':', line) {
        Some(0) => {
            block.comments += 1;
            return;
        }
        Some(i) => {
            let v = &line[i + 1..];
            (&line[..i], v.strip_prefix(b" ").unwrap_or(v))
        }
        None => (line, &line[line.len()..]),
    };
    match name {
        b"data" => {
            if block.data_lines == 0 {
                block.data = Some(value);
            }
            block.data_lines += 1;
        }
        b"id" => block.id = Some(value),
        b"event" => block.event = Some(value),
        b"retry" => block.retry = true,
        _ => {}
    }
}

/// Parses every complete block at the front of `buf`, calling `f` on each, and returns
/// the bytes used; the rest is an incomplete block to keep for the next read.
pub fn for_each_block(buf: &[u8], mut f: impl FnMut(&Block<'_>)) -> usize {
    let mut used = 0;
    while let Status::Complete((block, n)) = parse_block(&buf[used..]) {
        f(&block);
        used += n;
    }
    used
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An owned copy of a block, so blocks from different buffers compare.
    #[derive(Debug, PartialEq, Eq)]
    struct Owned {
        id: Option<Vec<u8>>,
        event: Option<Vec<u8>>,
        data: Option<Vec<u8>>,
        data_lines: u32,
        comments: u32,
        retry: bool,
    }

    fn own(b: &Block<'_>) -> Owned {
        Owned {
            id: b.id.map(<[u8]>::to_vec),
            event: b.event.map(<[u8]>::to_vec),
            data: b.data.map(<[u8]>::to_vec),
            data_lines: b.data_lines,
            comments: b.comments,
            retry: b.retry,
        }
    }

    /// Feeds `chunks` one after another the way the subscriber does: carry the
    /// incomplete tail, append the next read, parse again. Empty blocks (a stray LF
    /// after a bare-CR terminator) are dropped, since they dispatch nothing.
    fn feed(chunks: &[&[u8]]) -> Vec<Owned> {
        let mut carry = Vec::new();
        let mut out = Vec::new();
        for chunk in chunks {
            carry.extend_from_slice(chunk);
            let used = for_each_block(&carry, |b| {
                if *b != Block::default() {
                    out.push(own(b));
                }
            });
            carry.drain(..used);
        }
        out
    }

    macro_rules! block_tests {
        ($($name:ident: $input:expr => $id:expr, $event:expr, $data:expr, $lines:expr, $comments:expr, $retry:expr, $used:expr;)*) => {$(
            #[test]
            fn $name() {
                let input: &[u8] = $input;
                let Status::Complete((b, used)) = parse_block(input) else {
                    panic!("expected a complete block in {:?}", String::from_utf8_lossy(input));
                };
                let want_id: Option<&[u8]> = $id;
                let want_event: Option<&[u8]> = $event;
                let want_data: Option<&[u8]> = $data;
                assert_eq!(b.id, want_id, "id");
                assert_eq!(b.event, want_event, "event");
                assert_eq!(b.data, want_data, "data");
                assert_eq!((b.data_lines, b.comments, b.retry, used), ($lines, $comments, $retry, $used));
            }
        )*};
    }

    block_tests! {
        lf_event: b"id: 7\ndata: 1 2 x\n\n" => Some(b"7"), None, Some(b"1 2 x"), 1, 0, false, 19;
        crlf_event: b"id: 7\r\ndata: a\r\n\r\n" => Some(b"7"), None, Some(b"a"), 1, 0, false, 18;
        bare_cr_event: b"data: a\r\rtail" => None, None, Some(b"a"), 1, 0, false, 9;
        heartbeat: b":\n\n" => None, None, None, 0, 1, false, 3;
        retry_first: b"retry: 3000\n\n" => None, None, None, 0, 0, true, 13;
        gap_notice: b"event: gap\ndata: {\"oldest_id\":null}\n\n" => None, Some(b"gap"), Some(b"{\"oldest_id\":null}"), 1, 0, false, 37;
        keeps_second_space: b"data:  x\n\n" => None, None, Some(b" x"), 1, 0, false, 10;
        no_space: b"data:x\n\n" => None, None, Some(b"x"), 1, 0, false, 8;
        empty_data: b"data\n\n" => None, None, Some(b""), 1, 0, false, 6;
        multi_line: b"data: a\ndata: b\n\n" => None, None, Some(b"a"), 2, 0, false, 17;
        unknown_field: b"foo: bar\ndata: a\n\n" => None, None, Some(b"a"), 1, 0, false, 18;
        comment_in_event: b": hi\ndata: a\n\n" => None, None, Some(b"a"), 1, 1, false, 14;
        blank_line: b"\n" => None, None, None, 0, 0, false, 1;
    }

    #[test]
    fn partial_inputs() {
        for input in [
            &b""[..],
            b"data: a",
            b"data: a\n",
            b"data: a\r",
            b"data: a\r\n\r",
            b"id: 1\r",
        ] {
            match parse_block(input) {
                Status::Partial if input != b"data: a\r\n\r" => {}
                // CR CR at the end: the blank line is complete whatever follows.
                Status::Complete((_, n)) if input == b"data: a\r\n\r" => assert_eq!(n, input.len()),
                other => panic!(
                    "{:?}: unexpected {:?}",
                    String::from_utf8_lossy(input),
                    other
                ),
            }
        }
    }

    fn stream() -> Vec<u8> {
        let mut s = Vec::new();
        s.extend_from_slice(b"retry: 3000\n\n:\n\n");
        for i in 1..=5u32 {
            s.extend_from_slice(format!("id: {i}\ndata: {i} 99 xxxx\n\n").as_bytes());
        }
        s.extend_from_slice(b"event: gap\r\ndata: {}\r\n\r\nid: 9\r\ndata: 9 1\r\n\r\n");
        s.extend_from_slice(b": keepalive\n\nid: 10\rdata: 10 2\r\r");
        s
    }

    #[test]
    fn split_at_every_offset_gives_the_same_blocks() {
        let s = stream();
        let whole = feed(&[&s]);
        assert_eq!(whole.len(), 11, "blocks in the test stream: {whole:?}");
        for cut in 0..=s.len() {
            assert_eq!(feed(&[&s[..cut], &s[cut..]]), whole, "split at {cut}");
        }
    }

    #[test]
    fn byte_by_byte_gives_the_same_blocks() {
        let s = stream();
        let bytes: Vec<&[u8]> = s.chunks(1).collect();
        assert_eq!(feed(&bytes), feed(&[&s]));
    }
}
