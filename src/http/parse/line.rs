//! The request-line: `method SP request-target SP HTTP-version CRLF`, after any empty
//! lines a client sent before it.

use super::{cursor, Limits, Method, ParseError, RequestLine, Status, Step};
use crate::http::token::is_tchar;

/// Parses the request-line at the start of `buf`; on success also returns where the
/// field lines start.
#[inline(always)]
pub(super) fn parse_line<'a>(buf: &'a [u8], limits: &Limits) -> Step<(RequestLine<'a>, usize)> {
    let start = complete!(skip_empty_lines(buf));
    let (method, method_bytes, target_start) = complete!(parse_method(buf, start));
    let (target, version_start) = complete!(parse_target(buf, target_start, limits));
    let minor_version = complete!(parse_version(buf, version_start));
    let (path, query) = split_query(buf, target_start, version_start - 1);
    let line = RequestLine {
        method,
        method_bytes,
        target,
        path,
        query,
        minor_version,
    };
    // "HTTP/1.x" CR LF
    Ok(Status::Complete((line, version_start + 10)))
}

/// RFC 9112 §2.2: a server should ignore at least one empty line before the request-line.
/// Only CRLF counts as one; a bare LF is an error like everywhere else.
#[inline(always)]
fn skip_empty_lines(buf: &[u8]) -> Step<usize> {
    let mut at = 0;
    loop {
        match buf.get(at..) {
            Some([b'\r', b'\n', ..]) => at += 2,
            Some([b'\r']) | Some([]) | None => return Ok(Status::Partial),
            Some([b'\r', ..] | [b'\n', ..]) => return Err(ParseError::NewLine),
            Some(_) => return Ok(Status::Complete(at)),
        }
    }
}

/// `method SP`: returns the method, its bytes and where the target starts.
#[inline(always)]
fn parse_method(buf: &[u8], start: usize) -> Step<(Method, &[u8], usize)> {
    let rest = buf.get(start..).unwrap_or_default();
    // The two requests this server lives on skip the token scan.
    if rest.starts_with(b"GET ") {
        return Ok(Status::Complete((Method::Get, &rest[..3], start + 4)));
    }
    if rest.starts_with(b"POST ") {
        return Ok(Status::Complete((Method::Post, &rest[..4], start + 5)));
    }
    let len = rest
        .iter()
        .position(|&b| !is_tchar(b))
        .unwrap_or(rest.len());
    match rest.get(len) {
        None => Ok(Status::Partial),
        Some(b' ') if len > 0 => {
            let bytes = &rest[..len];
            Ok(Status::Complete((
                Method::from_bytes(bytes),
                bytes,
                start + len + 1,
            )))
        }
        Some(_) => Err(ParseError::Method),
    }
}

/// `request-target SP`: returns the target and where the version starts.
#[inline(always)]
fn parse_target<'a>(buf: &'a [u8], start: usize, limits: &Limits) -> Step<(&'a [u8], usize)> {
    let end = cursor::target_end(buf, start);
    let len = end - start;
    // Checked before the end is known, so a huge target fails as soon as it is too long.
    if len > limits.max_target {
        return Err(ParseError::UriTooLong);
    }
    match buf.get(end) {
        None => Ok(Status::Partial),
        Some(b' ') if len > 0 => Ok(Status::Complete((&buf[start..end], end + 1))),
        Some(_) => Err(ParseError::Target),
    }
}

/// Splits the target `buf[start..end]` at its first `?`.
#[inline(always)]
fn split_query(buf: &[u8], start: usize, end: usize) -> (&[u8], Option<&[u8]>) {
    let q = cursor::find_byte(buf, start, b'?');
    if q < end {
        (&buf[start..q], Some(&buf[q + 1..end]))
    } else {
        (&buf[start..end], None)
    }
}

/// `HTTP/1.0` or `HTTP/1.1`, then CRLF. Returns the minor version.
#[inline(always)]
fn parse_version(buf: &[u8], start: usize) -> Step<u8> {
    const HTTP_1_1: u64 = u64::from_le_bytes(*b"HTTP/1.1");
    const HTTP_1_0: u64 = u64::from_le_bytes(*b"HTTP/1.0");
    let rest = buf.get(start..).unwrap_or_default();
    // One 8-byte compare instead of eight byte compares.
    if let Some((version, [b'\r', b'\n', ..])) = rest.split_first_chunk::<8>() {
        match u64::from_le_bytes(*version) {
            HTTP_1_1 => return Ok(Status::Complete(1)),
            HTTP_1_0 => return Ok(Status::Complete(0)),
            _ => {}
        }
    }
    slow_version(rest)
}

/// The version when fewer than 10 bytes are here, or when something is wrong: checks
/// each byte present against what it must be, so a bad one fails at once.
#[cold]
fn slow_version(rest: &[u8]) -> Step<u8> {
    const PREFIX: &[u8; 7] = b"HTTP/1.";
    for (i, &b) in rest.iter().enumerate().take(10) {
        let ok = match i {
            0..=6 => b == PREFIX[i],
            7 => b == b'0' || b == b'1',
            8 => b == b'\r',
            _ => b == b'\n',
        };
        if !ok {
            // A bare LF after the version, or a CR with something else after it.
            let bare = (i == 8 && b == b'\n') || i == 9;
            return Err(if bare {
                ParseError::NewLine
            } else {
                ParseError::Version
            });
        }
    }
    match rest.get(..10) {
        Some(v) => Ok(Status::Complete(v[7] - b'0')),
        None => Ok(Status::Partial),
    }
}
