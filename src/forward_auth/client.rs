//! The smallest HTTP/1.1 client the auth call needs: one `GET` written in one piece, one
//! response read back (status, `Content-Length` or chunked body, `Connection: close`),
//! every size bounded. The caller bounds the time.

use monoio::buf::IoBufMut;
use monoio::io::{AsyncReadRent, AsyncWriteRentExt};
use monoio::net::TcpStream;

use crate::http::body::ChunkedDecoder;

/// Largest response head accepted from the auth server.
pub const MAX_HEAD: usize = 8 << 10;
/// Largest response body: an allow-list of topics and a user name fit many times over.
pub const MAX_BODY: usize = 64 << 10;

/// What the auth server answered.
#[derive(Debug, PartialEq, Eq)]
pub struct Answer {
    pub status: u16,
    /// `Content-Type` starts with `application/json` (or `+json`).
    pub json: bool,
    pub body: Vec<u8>,
}

/// Why an exchange failed.
#[derive(Debug)]
pub enum Failure {
    /// Reading or writing failed, or the server closed, before any byte of the answer:
    /// on a kept-alive connection the server may have closed it while idle, and the
    /// request may be sent again on a new one.
    Unanswered(std::io::Error),
    /// The answer broke off, or was not HTTP/1.x as this client reads it.
    Broken(String),
}

/// A response head, parsed.
#[derive(Debug, PartialEq, Eq)]
struct Head {
    status: u16,
    len: usize,
    framing: Framing,
    close: bool,
    json: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Framing {
    Length(usize),
    Chunked,
    /// No framing: the body runs to the close.
    Close,
}

/// Sends `request` on `stream` and reads the answer; gives the stream back when it may
/// carry another request.
pub async fn exchange(
    mut stream: TcpStream,
    request: Vec<u8>,
) -> Result<(Answer, Option<TcpStream>), Failure> {
    let (res, _) = stream.write_all(request).await;
    res.map_err(Failure::Unanswered)?;
    let mut buf = Vec::with_capacity(1024);
    let head = loop {
        match parse_head(&buf)? {
            Some(head) => break head,
            None if buf.len() >= MAX_HEAD => {
                return Err(Failure::Broken(format!(
                    "response head over {MAX_HEAD} bytes"
                )))
            }
            None => match fill(&mut stream, &mut buf, MAX_HEAD).await {
                Ok(0) if buf.is_empty() => {
                    return Err(Failure::Unanswered(
                        std::io::ErrorKind::UnexpectedEof.into(),
                    ))
                }
                Ok(0) => return Err(Failure::Broken("closed in the response head".into())),
                Ok(_) => {}
                Err(e) if buf.is_empty() => return Err(Failure::Unanswered(e)),
                Err(e) => return Err(Failure::Broken(e.to_string())),
            },
        }
    };
    buf.drain(..head.len);
    let (body, rest) = read_body(&mut stream, buf, head.framing).await?;
    let answer = Answer {
        status: head.status,
        json: head.json,
        body,
    };
    // Bytes after the answer were never asked for: the connection is not trusted again.
    let reusable = !head.close && head.framing != Framing::Close && rest == 0;
    Ok((answer, reusable.then_some(stream)))
}

/// Reads the body after the head (whose remaining bytes are `buf`); returns it and how
/// many bytes followed it.
async fn read_body(
    stream: &mut TcpStream,
    mut buf: Vec<u8>,
    framing: Framing,
) -> Result<(Vec<u8>, usize), Failure> {
    let broken = |e: std::io::Error| Failure::Broken(e.to_string());
    match framing {
        Framing::Length(n) => {
            while buf.len() < n {
                if fill(stream, &mut buf, n).await.map_err(broken)? == 0 {
                    return Err(Failure::Broken("closed in the response body".into()));
                }
            }
            let rest = buf.len() - n;
            buf.truncate(n);
            Ok((buf, rest))
        }
        Framing::Chunked => {
            let mut decoder = ChunkedDecoder::new(MAX_BODY);
            let mut body = Vec::new();
            loop {
                let d = decoder
                    .decode(&buf, &mut body)
                    .map_err(|e| Failure::Broken(format!("chunked body: {e}")))?;
                buf.drain(..d.consumed);
                if d.done {
                    return Ok((body, buf.len()));
                }
                if fill(stream, &mut buf, MAX_BODY).await.map_err(broken)? == 0 {
                    return Err(Failure::Broken("closed in the response body".into()));
                }
            }
        }
        Framing::Close => loop {
            if buf.len() > MAX_BODY {
                return Err(Failure::Broken(format!(
                    "response body over {MAX_BODY} bytes"
                )));
            }
            if fill(stream, &mut buf, MAX_BODY + 1).await.map_err(broken)? == 0 {
                return Ok((buf, 0));
            }
        },
    }
}

/// Reads more into `buf`, growing it toward `limit`.
async fn fill(stream: &mut TcpStream, buf: &mut Vec<u8>, limit: usize) -> std::io::Result<usize> {
    let len = buf.len();
    if len == buf.capacity() {
        buf.reserve((len.max(1024)).min(limit.saturating_sub(len)).max(1));
    }
    let owned = std::mem::take(buf);
    let (res, slice) = stream.read(owned.slice_mut(len..)).await;
    *buf = slice.into_inner();
    res
}

/// Parses a response head once it is complete (`None` until then).
fn parse_head(buf: &[u8]) -> Result<Option<Head>, Failure> {
    let Some(end) = memchr::memmem::find(buf, b"\r\n\r\n") else {
        return Ok(None);
    };
    let bad = |why: &str| Failure::Broken(format!("bad response head: {why}"));
    let text = &buf[..end];
    let mut lines = text
        .split(|&b| b == b'\n')
        .map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let line = lines.next().unwrap_or_default();
    let minor = match line.get(..9) {
        Some(b"HTTP/1.1 ") => 1,
        Some(b"HTTP/1.0 ") => 0,
        _ => return Err(bad("not an HTTP/1.x status line")),
    };
    let status = line
        .get(9..12)
        .and_then(|d| std::str::from_utf8(d).ok())
        .and_then(|d| d.parse::<u16>().ok())
        .filter(|s| (100..600).contains(s))
        .ok_or_else(|| bad("no status code"))?;
    if status < 200 {
        // Never asked for (no Expect, no upgrade): not worth reading past.
        return Err(bad("an interim (1xx) answer"));
    }
    let (mut length, mut chunked, mut close, mut json) = (None, false, minor == 0, false);
    for field in lines {
        let colon = field
            .iter()
            .position(|&b| b == b':')
            .ok_or_else(|| bad("a field without a colon"))?;
        let (name, value) = (&field[..colon], field[colon + 1..].trim_ascii());
        if name.eq_ignore_ascii_case(b"content-length") {
            let n = std::str::from_utf8(value)
                .ok()
                .and_then(|v| v.parse::<usize>().ok())
                .ok_or_else(|| bad("Content-Length"))?;
            if length.is_some_and(|m| m != n) {
                return Err(bad("two Content-Lengths"));
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            if !value.eq_ignore_ascii_case(b"chunked") {
                return Err(bad("a transfer coding other than chunked"));
            }
            chunked = true;
        } else if name.eq_ignore_ascii_case(b"connection") {
            for option in value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                close |= option.eq_ignore_ascii_case(b"close");
                close &= minor == 1 || !option.eq_ignore_ascii_case(b"keep-alive");
            }
        } else if name.eq_ignore_ascii_case(b"content-type") {
            let media = value
                .split(|&b| b == b';')
                .next()
                .unwrap_or_default()
                .trim_ascii();
            json = media.eq_ignore_ascii_case(b"application/json")
                || media.len() > 5 && media[media.len() - 5..].eq_ignore_ascii_case(b"+json");
        }
    }
    let framing = match (status, length, chunked) {
        (204 | 304, _, _) => Framing::Length(0),
        (_, Some(_), true) => return Err(bad("both Content-Length and chunked")),
        (_, Some(n), false) if n > MAX_BODY => {
            return Err(Failure::Broken(format!(
                "response body over {MAX_BODY} bytes"
            )))
        }
        (_, Some(n), false) => Framing::Length(n),
        (_, None, true) => Framing::Chunked,
        (_, None, false) => Framing::Close,
    };
    Ok(Some(Head {
        status,
        len: end + 4,
        framing,
        close,
        json,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head(raw: &str) -> Head {
        match parse_head(raw.as_bytes()) {
            Ok(Some(h)) => h,
            other => panic!("{raw:?}: {other:?}"),
        }
    }

    fn broken(raw: &str) -> bool {
        matches!(parse_head(raw.as_bytes()), Err(Failure::Broken(_)))
    }

    #[test]
    fn heads_give_status_framing_and_reuse() {
        let h = head("HTTP/1.1 200 OK\r\nContent-Length: 12\r\nContent-Type: application/json; charset=utf-8\r\n\r\n{}");
        assert_eq!(
            h,
            Head {
                status: 200,
                len: 86,
                framing: Framing::Length(12),
                close: false,
                json: true
            }
        );
        let h = head(
            "HTTP/1.1 403 Forbidden\r\ntransfer-encoding: Chunked\r\nConnection: close\r\n\r\n",
        );
        assert_eq!(
            (h.status, h.framing, h.close, h.json),
            (403, Framing::Chunked, true, false)
        );
        let h = head("HTTP/1.0 401 x\r\n\r\n");
        assert_eq!((h.framing, h.close), (Framing::Close, true));
        let h = head("HTTP/1.0 200 x\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n");
        assert!(!h.close, "HTTP/1.0 keep-alive");
        let h = head("HTTP/1.1 204 No Content\r\nContent-Type: application/problem+json\r\n\r\n");
        assert_eq!((h.framing, h.json), (Framing::Length(0), true));
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n")
            .unwrap()
            .is_none());
    }

    #[test]
    fn ambiguous_or_foreign_heads_are_broken() {
        assert!(broken("HTTP/2 200\r\n\r\n"));
        assert!(broken("HTTP/1.1 2x0 OK\r\n\r\n"));
        assert!(broken("HTTP/1.1 100 Continue\r\n\r\n"));
        assert!(broken(
            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"
        ));
        assert!(broken(
            "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n"
        ));
        assert!(broken("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n"));
        assert!(broken(
            "HTTP/1.1 200 OK\r\nContent-Length: 99999999\r\n\r\n"
        ));
        assert!(broken("HTTP/1.1 200 OK\r\nno colon\r\n\r\n"));
    }
}
