//! HTTP/1.1 responses as a client sees them: the response head (status, how the body
//! is delimited, keep-alive) and an in-place decoder for chunked bodies. Subscribers
//! need both because Nchan and Pushpin stream SSE with chunked encoding, while ringcast
//! streams the raw body until close.

use crate::Status;

/// Largest response head accepted; no SSE server sends more than a few hundred bytes.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;

/// How the body of a response ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// `Content-Length: n`.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Neither: the body runs until the server closes (ringcast's SSE stream).
    UntilClose,
}

/// The parts of a response head that loadgen acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    pub body: Body,
    /// Whether the connection may carry another request after this response.
    pub keep_alive: bool,
    /// Bytes of the head, its blank line included.
    pub len: usize,
}

/// What is wrong with a response head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadError {
    /// Not `HTTP/1.x NNN ...`, or a malformed header.
    Syntax,
    /// Longer than [`MAX_HEAD_BYTES`].
    TooLarge,
}

/// Parses the response head at the front of `buf`.
pub fn parse_head(buf: &[u8]) -> Result<Status<Head>, HeadError> {
    let Some(len) = head_end(buf) else {
        return if buf.len() > MAX_HEAD_BYTES {
            Err(HeadError::TooLarge)
        } else {
            Ok(Status::Partial)
        };
    };
    let text = &buf[..len];
    let mut lines = text
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let status_line = lines.next().ok_or(HeadError::Syntax)?;
    let (http10, status) = parse_status_line(status_line)?;
    let mut head = Head {
        status,
        body: Body::UntilClose,
        keep_alive: !http10,
        len,
    };
    for line in lines.filter(|l| !l.is_empty()) {
        let colon = memchr::memchr(b':', line).ok_or(HeadError::Syntax)?;
        let name = &line[..colon];
        let value = trim(&line[colon + 1..]);
        if name.eq_ignore_ascii_case(b"content-length") && head.body != Body::Chunked {
            let n = std::str::from_utf8(value).ok().and_then(|s| s.parse().ok());
            head.body = Body::Length(n.ok_or(HeadError::Syntax)?);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding")
            && contains_token(value, b"chunked")
        {
            head.body = Body::Chunked;
        } else if name.eq_ignore_ascii_case(b"connection") {
            if contains_token(value, b"close") {
                head.keep_alive = false;
            } else if contains_token(value, b"keep-alive") {
                head.keep_alive = true;
            }
        }
    }
    if matches!(status, 100..=199 | 204 | 304) {
        head.body = Body::Length(0);
    }
    if head.body == Body::UntilClose {
        head.keep_alive = false;
    }
    Ok(Status::Complete(head))
}

/// End of the head (after the blank line), accepting LF as well as CRLF line ends.
fn head_end(buf: &[u8]) -> Option<usize> {
    let mut from = 0;
    while let Some(i) = memchr::memchr(b'\n', &buf[from..]) {
        let at = from + i;
        let rest = &buf[at + 1..];
        if rest.first() == Some(&b'\n') {
            return Some(at + 2);
        }
        if rest.starts_with(b"\r\n") {
            return Some(at + 3);
        }
        from = at + 1;
    }
    None
}

fn parse_status_line(line: &[u8]) -> Result<(bool, u16), HeadError> {
    let http10 = match line.get(..9) {
        Some(b"HTTP/1.1 ") => false,
        Some(b"HTTP/1.0 ") => true,
        _ => return Err(HeadError::Syntax),
    };
    let code = line.get(9..12).ok_or(HeadError::Syntax)?;
    if !code.iter().all(u8::is_ascii_digit) || line.get(12).is_some_and(|&b| b != b' ') {
        return Err(HeadError::Syntax);
    }
    let status = code
        .iter()
        .fold(0u16, |acc, &d| acc * 10 + u16::from(d - b'0'));
    Ok((http10, status))
}

fn trim(v: &[u8]) -> &[u8] {
    let start = v
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(v.len());
    let end = v
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |i| i + 1);
    &v[start..end]
}

fn contains_token(value: &[u8], token: &[u8]) -> bool {
    value
        .split(|&b| b == b',')
        .any(|t| trim(t).eq_ignore_ascii_case(token))
}

/// Where the chunked decoder is in the framing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Chunk {
    /// Reading hex digits of a chunk size.
    Size,
    /// Skipping a chunk extension up to the end of the size line.
    Extension,
    /// Inside chunk data; `remaining` bytes to go.
    Data,
    /// Expecting the CRLF after chunk data.
    DataEnd,
    /// After the last (zero) chunk: at the start of a trailer line.
    TrailerLineStart,
    /// Inside a trailer line.
    TrailerLine,
    /// The body has ended.
    Done,
}

/// Chunk sizes above this are treated as a framing error (a guard against garbage).
const MAX_CHUNK_BYTES: u64 = 1 << 40;

/// Chunked framing that is not valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FramingError;

/// Removes chunked framing in place, one read at a time; keeps its state between reads
/// so a chunk header may be split anywhere.
#[derive(Debug, Clone)]
pub struct Dechunker {
    state: Chunk,
    remaining: u64,
    saw_digit: bool,
}

impl Default for Dechunker {
    fn default() -> Self {
        Self::new()
    }
}

impl Dechunker {
    pub const fn new() -> Self {
        Self {
            state: Chunk::Size,
            remaining: 0,
            saw_digit: false,
        }
    }

    /// Whether the terminating zero-size chunk and trailer have been seen.
    pub fn is_done(&self) -> bool {
        self.state == Chunk::Done
    }

    /// Decodes `buf` in place; returns how many payload bytes now sit at its front.
    pub fn decode(&mut self, buf: &mut [u8]) -> Result<usize, FramingError> {
        let (mut read, mut write) = (0, 0);
        while read < buf.len() {
            if self.state == Chunk::Data {
                let take = (self.remaining.min((buf.len() - read) as u64)) as usize;
                buf.copy_within(read..read + take, write);
                (read, write) = (read + take, write + take);
                self.remaining -= take as u64;
                if self.remaining == 0 {
                    self.state = Chunk::DataEnd;
                }
                continue;
            }
            self.step(buf[read])?;
            read += 1;
        }
        Ok(write)
    }

    /// Advances over one framing byte (everything but chunk data).
    fn step(&mut self, b: u8) -> Result<(), FramingError> {
        match (self.state, b) {
            (Chunk::Size, b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F') => {
                let digit = (b as char).to_digit(16).unwrap_or(0) as u64;
                self.remaining = self.remaining * 16 + digit;
                self.saw_digit = true;
                if self.remaining > MAX_CHUNK_BYTES {
                    return Err(FramingError);
                }
            }
            (Chunk::Size, b';' | b' ' | b'\t') if self.saw_digit => self.state = Chunk::Extension,
            (Chunk::Size | Chunk::Extension, b'\r') if self.saw_digit => {}
            (Chunk::Size | Chunk::Extension, b'\n') if self.saw_digit => self.end_size_line(),
            (Chunk::Extension, _) => {}
            (Chunk::DataEnd, b'\r') => {}
            (Chunk::DataEnd, b'\n') => self.state = Chunk::Size,
            (Chunk::TrailerLineStart, b'\r') => {}
            (Chunk::TrailerLineStart, b'\n') => self.state = Chunk::Done,
            (Chunk::TrailerLineStart, _) => self.state = Chunk::TrailerLine,
            (Chunk::TrailerLine, b'\n') => self.state = Chunk::TrailerLineStart,
            (Chunk::TrailerLine, _) => {}
            // Bytes after the end of the body are ignored; the caller closes.
            (Chunk::Done, _) => {}
            _ => return Err(FramingError),
        }
        Ok(())
    }

    fn end_size_line(&mut self) {
        self.saw_digit = false;
        self.state = if self.remaining == 0 {
            Chunk::TrailerLineStart
        } else {
            Chunk::Data
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! head_tests {
        ($($name:ident: $input:expr => $want:expr;)*) => {$(
            #[test]
            fn $name() {
                let input: &[u8] = $input;
                assert_eq!(parse_head(input), $want, "{:?}", String::from_utf8_lossy(input));
            }
        )*};
    }

    fn head(
        status: u16,
        body: Body,
        keep_alive: bool,
        len: usize,
    ) -> Result<Status<Head>, HeadError> {
        Ok(Status::Complete(Head {
            status,
            body,
            keep_alive,
            len,
        }))
    }

    head_tests! {
        sse_until_close: b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\nretry" =>
            head(200, Body::UntilClose, false, 52);
        accepted_json: b"HTTP/1.1 202 Accepted\r\nContent-Length: 12\r\n\r\n" =>
            head(202, Body::Length(12), true, 45);
        chunked_lf_only: b"HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\n" => head(200, Body::Chunked, true, 44);
        close_header: b"HTTP/1.1 503 Busy\r\nConnection: close\r\nContent-Length: 0\r\n\r\n" =>
            head(503, Body::Length(0), false, 59);
        http10_keep_alive: b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 2\r\n\r\n" =>
            head(200, Body::Length(2), true, 62);
        no_content: b"HTTP/1.1 204 No Content\r\n\r\n" => head(204, Body::Length(0), true, 27);
        partial: b"HTTP/1.1 200 OK\r\nContent-" => Ok(Status::Partial);
        bad_version: b"HTTP/2 200 OK\r\n\r\n" => Err(HeadError::Syntax);
        bad_code: b"HTTP/1.1 2x0 OK\r\n\r\n" => Err(HeadError::Syntax);
        bad_length: b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n" => Err(HeadError::Syntax);
        no_colon: b"HTTP/1.1 200 OK\r\nbroken\r\n\r\n" => Err(HeadError::Syntax);
    }

    #[test]
    fn too_large() {
        let mut big = b"HTTP/1.1 200 OK\r\n".to_vec();
        big.resize(MAX_HEAD_BYTES + 10, b'a');
        assert_eq!(parse_head(&big), Err(HeadError::TooLarge));
    }

    fn chunked(parts: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for p in parts {
            out.extend_from_slice(format!("{:x};ext=1\r\n", p.len()).as_bytes());
            out.extend_from_slice(p);
            out.extend_from_slice(b"\r\n");
        }
        out.extend_from_slice(b"0\r\nX-Trailer: 1\r\n\r\n");
        out
    }

    fn decode_pieces(pieces: &[&[u8]]) -> (Vec<u8>, bool) {
        let mut d = Dechunker::new();
        let mut out = Vec::new();
        for p in pieces {
            let mut b = p.to_vec();
            let n = d.decode(&mut b).expect("valid framing");
            out.extend_from_slice(&b[..n]);
        }
        (out, d.is_done())
    }

    #[test]
    fn dechunk_split_at_every_offset() {
        let parts: [&[u8]; 3] = [
            b"data: 1\n\n",
            b"id: 2\ndata: 2 abcdefghijklmnopq\n\n",
            b":\n\n",
        ];
        let body = chunked(&parts);
        let want: Vec<u8> = parts.concat();
        for cut in 0..=body.len() {
            assert_eq!(
                decode_pieces(&[&body[..cut], &body[cut..]]),
                (want.clone(), true),
                "cut {cut}"
            );
        }
        let bytes: Vec<&[u8]> = body.chunks(1).collect();
        assert_eq!(decode_pieces(&bytes), (want, true));
    }

    #[test]
    fn dechunk_rejects_garbage() {
        for bad in [
            &b"zz\r\n"[..],
            b"\r\n",
            b"3\r\nabcX",
            b"fffffffffffffff\r\n",
        ] {
            let mut b = bad.to_vec();
            assert_eq!(
                Dechunker::new().decode(&mut b),
                Err(FramingError),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
