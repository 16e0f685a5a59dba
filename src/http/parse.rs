//! `conn::handshake ──► http::parse`: the bytes of a request head become a [`RequestHead`].
//!
//! One pass over the head: the request-line ([`line`]), then each field line
//! ([`fields`]), handing every `(name, value)` to a [`HeaderSink`]. The server's sink,
//! [`KnownHeaders`] ([`known`]), keeps the dozen headers it acts on and applies the
//! framing rules (Host, Content-Length, Transfer-Encoding) as they arrive.
//!
//! Strict where RFC 9112 lets a server choose: CRLF only (a bare LF or bare CR is an
//! error), no obs-fold, a visible-ASCII request-target, exactly `HTTP/1.0` or `HTTP/1.1`.
//! Input that ends early is [`Status::Partial`] only while every byte seen so far is
//! valid; the first bad byte is an error however much of the head is still missing.
//!
//! [`find_head_end`] is the cheap question asked on every read ("is the head all here?"),
//! so that the full parse runs once per request; until the head is all here,
//! [`check_partial`] checks each read's new lines, resuming where the last read stopped.

/// The value of a `Complete` step; a `Partial` one (or an error) returns to the caller.
macro_rules! complete {
    ($step:expr) => {
        match $step? {
            Status::Complete(value) => value,
            Status::Partial => return Ok(Status::Partial),
        }
    };
}

mod fields;
mod host;
mod known;
mod line;
#[cfg(test)]
mod tests;

pub use known::KnownHeaders;

use super::cursor;

/// One phase of the parse: done, needs more bytes, or failed.
type Step<T> = Result<Status<T>, ParseError>;

/// Parsing needs more bytes (`Partial`) or is done (`Complete`). Not an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status<T> {
    Complete(T),
    Partial,
}

/// The request method. `Other` keeps its bytes in [`RequestLine::method_bytes`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Method {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Options,
    Patch,
    Connect,
    Trace,
    Other,
}

/// Caps the parser enforces itself. The whole head is capped separately, by the
/// connection, before it asks for more bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Field lines allowed in one head; one more is `TooManyHeaders` (431). 100 is what
    /// common servers allow, and a browser sends about 15.
    pub max_headers: usize,
    /// Request-target length in bytes; longer is `UriTooLong` (414). 4096 leaves room for
    /// many topics in one subscribe URL while staying well under the 8 KiB head cap.
    pub max_target: usize,
}

impl Limits {
    pub const DEFAULT_MAX_HEADERS: usize = 100;
    pub const DEFAULT_MAX_TARGET: usize = 4096;

    pub const fn new() -> Self {
        Limits {
            max_headers: Self::DEFAULT_MAX_HEADERS,
            max_target: Self::DEFAULT_MAX_TARGET,
        }
    }

    pub const fn max_headers(mut self, n: usize) -> Self {
        self.max_headers = n;
        self
    }

    pub const fn max_target(mut self, bytes: usize) -> Self {
        self.max_target = bytes;
        self
    }
}

impl Default for Limits {
    fn default() -> Self {
        Self::new()
    }
}

/// A parsed request head, borrowing from the read buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestHead<'a> {
    pub method: Method,
    pub method_bytes: &'a [u8],
    /// The request-target as sent.
    pub target: &'a [u8],
    /// The target up to the first `?` (all of it when there is none).
    pub path: &'a [u8],
    /// What follows the first `?`, without it.
    pub query: Option<&'a [u8]>,
    /// 0 or 1.
    pub minor_version: u8,
    /// Bytes of `buf` the head took: skipped leading CRLFs, the request-line, the field
    /// lines and the final blank line. The body (or the next request) starts here.
    pub head_len: usize,
    pub header_count: usize,
    pub headers: KnownHeaders<'a>,
}

/// The request-line, as the syntactic parse [`parse_with`] returns it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RequestLine<'a> {
    pub method: Method,
    pub method_bytes: &'a [u8],
    pub target: &'a [u8],
    pub path: &'a [u8],
    pub query: Option<&'a [u8]>,
    pub minor_version: u8,
}

/// What [`parse_with`] found: the request-line and where the head ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawHead<'a> {
    pub line: RequestLine<'a>,
    /// As [`RequestHead::head_len`].
    pub head_len: usize,
    /// Field lines handed to the sink.
    pub header_count: usize,
}

/// Receives each field line, in order, as the parser meets it. `value` has its leading
/// and trailing whitespace trimmed. Returning an error stops the parse with it.
pub trait HeaderSink<'a> {
    fn header(&mut self, name: &'a [u8], value: &'a [u8]) -> Result<(), ParseError>;
}

/// Why a head was rejected. Matched in one place by the connection, to answer and close.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ParseError {
    Method,
    Target,
    Version,
    /// A bare CR, or a bare LF used as a line ending.
    NewLine,
    HeaderName,
    HeaderValue,
    /// A field line starting with whitespace (obs-fold, or whitespace before the first one).
    ObsFold,
    TooManyHeaders,
    UriTooLong,
    /// HTTP/1.1 without Host, or more than one Host.
    MissingHost,
    /// A Host that is not `host [":" port]` (see [`host`]).
    InvalidHost,
    /// Content-Length not 1*DIGIT, overflowing, or repeated with a different value.
    ContentLength,
    /// Any Transfer-Encoding other than one `chunked` header.
    TransferEncoding,
    /// Both Content-Length and Transfer-Encoding.
    LengthAndEncoding,
}

impl ParseError {
    /// The response status this error is answered with.
    pub const fn status(self) -> u16 {
        match self {
            ParseError::UriTooLong => 414,
            ParseError::TooManyHeaders => 431,
            _ => 400,
        }
    }

    /// A short human text, for the response body and the log.
    pub const fn reason(self) -> &'static str {
        match self {
            ParseError::Method => "invalid method",
            ParseError::Target => "invalid request-target",
            ParseError::Version => "unsupported HTTP version",
            ParseError::NewLine => "bare CR or LF in request head",
            ParseError::HeaderName => "invalid header name",
            ParseError::HeaderValue => "invalid byte in header value",
            ParseError::ObsFold => "folded or indented header line",
            ParseError::TooManyHeaders => "too many header fields",
            ParseError::UriTooLong => "request-target too long",
            ParseError::MissingHost => "missing or repeated Host header",
            ParseError::InvalidHost => "invalid Host header",
            ParseError::ContentLength => "invalid Content-Length",
            ParseError::TransferEncoding => "unsupported Transfer-Encoding",
            ParseError::LengthAndEncoding => "both Content-Length and Transfer-Encoding",
        }
    }
}

impl core::fmt::Display for ParseError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for ParseError {}

/// The server's entry point: the full parse, with the framing checks of [`KnownHeaders`].
///
/// Always inlined, with a sink that never lets `&mut self` escape: the 250-byte result is
/// then assembled where the caller keeps it. Copied through memory instead, it cost a
/// third of the time of a short parse.
#[inline(always)]
pub fn parse<'a>(buf: &'a [u8], limits: &Limits) -> Result<Status<RequestHead<'a>>, ParseError> {
    let mut headers = KnownHeaders::new();
    let raw = complete!(parse_with(buf, limits, &mut headers));
    headers.finish(raw.line.minor_version)?;
    let line = raw.line;
    Ok(Status::Complete(RequestHead {
        method: line.method,
        method_bytes: line.method_bytes,
        target: line.target,
        path: line.path,
        query: line.query,
        minor_version: line.minor_version,
        head_len: raw.head_len,
        header_count: raw.header_count,
        headers,
    }))
}

/// The syntactic parse: the request-line, then every field line handed to `sink`.
#[inline(always)]
pub fn parse_with<'a, S: HeaderSink<'a>>(
    buf: &'a [u8],
    limits: &Limits,
    sink: &mut S,
) -> Result<Status<RawHead<'a>>, ParseError> {
    let (line, mut at) = complete!(line::parse_line(buf, limits));
    let mut header_count = 0;
    let head_len = complete!(fields::parse_fields(
        buf,
        &mut at,
        &mut header_count,
        limits,
        sink
    ));
    Ok(Status::Complete(RawHead {
        line,
        head_len,
        header_count,
    }))
}

/// How far [`check_partial`] has checked a head that is not all here yet.
#[derive(Clone, Copy, Debug, Default)]
pub struct Progress {
    /// Where the next unchecked field line starts; 0 while the request-line is incomplete.
    at: usize,
    /// Field lines checked.
    count: usize,
    /// What the framing rules need to know of the lines checked (see [`KnownHeaders`]).
    host: bool,
    content_length: Option<u64>,
    chunked: bool,
}

/// Checks the part of an incomplete head that arrived since the last call, so that a
/// head that is already wrong is refused at once, not when its end arrives (which it may
/// never do). Complete lines are checked once; only the request-line while it is
/// incomplete, and the field line being received, are looked at again on the next read.
/// The full [`parse`] still runs once, when the head is all here.
pub fn check_partial(
    buf: &[u8],
    limits: &Limits,
    progress: &mut Progress,
) -> Result<(), ParseError> {
    if progress.at == 0 {
        match line::parse_line(buf, limits)? {
            Status::Complete((_, fields_start)) => progress.at = fields_start,
            Status::Partial => return Ok(()),
        }
    }
    // The framing rules see the earlier lines through what they left: a Host (its value
    // no longer matters), a length, chunked.
    let mut sink = KnownHeaders {
        host: progress.host.then_some(&[][..]),
        content_length: progress.content_length,
        chunked: progress.chunked,
        ..KnownHeaders::new()
    };
    let checked = fields::parse_fields(
        buf,
        &mut progress.at,
        &mut progress.count,
        limits,
        &mut sink,
    );
    progress.host = sink.host.is_some();
    progress.content_length = sink.content_length;
    progress.chunked = sink.chunked;
    checked.map(drop)
}

/// Where the head ends: the index just past the first blank line, scanning `buf[from..]`.
///
/// `from` is how far an earlier call scanned, so each read scans only the new bytes; the
/// scan backs up 3 bytes, so any terminator ending at or after `from` is found, including
/// one that straddles it. A blank line is LF LF or LF CR LF: a head that ends with bare
/// LFs is found too, and `parse` then rejects it. Empty lines before the request-line,
/// which `parse` skips, do not count.
pub fn find_head_end(buf: &[u8], from: usize) -> Option<usize> {
    let leading = buf
        .iter()
        .position(|&b| b != b'\r' && b != b'\n')
        .unwrap_or(buf.len());
    // The longest terminator, LF CR LF, is 3 bytes.
    let mut at = from.saturating_sub(3).max(leading);
    loop {
        let lf = cursor::find_byte(buf, at, b'\n');
        match buf.get(lf..) {
            Some([_, b'\n', ..]) => return Some(lf + 2),
            Some([_, b'\r', b'\n', ..]) => return Some(lf + 3),
            Some([_, ..]) => at = lf + 1,
            _ => return None,
        }
    }
}

impl Method {
    /// Recognises the methods RFC 9110 defines (case-sensitive, as methods are).
    #[inline]
    pub fn from_bytes(bytes: &[u8]) -> Method {
        match bytes {
            b"GET" => Method::Get,
            b"HEAD" => Method::Head,
            b"POST" => Method::Post,
            b"PUT" => Method::Put,
            b"DELETE" => Method::Delete,
            b"OPTIONS" => Method::Options,
            b"PATCH" => Method::Patch,
            b"CONNECT" => Method::Connect,
            b"TRACE" => Method::Trace,
            _ => Method::Other,
        }
    }
}
