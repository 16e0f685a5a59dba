//! The headers the server acts on, kept during the same pass that parses them, and the
//! message-framing rules (RFC 9112 §6.3) that make a request unambiguous.

use super::{HeaderSink, ParseError};
use crate::http::token::{eq_ignore_case, eq_name, trim_ows};

/// The headers the server acts on, extracted during the parse (names compared
/// case-insensitively). Where a header may appear once, the first one is kept.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KnownHeaders<'a> {
    /// Required on HTTP/1.1; a second Host is an error (which one would route?).
    pub host: Option<&'a [u8]>,
    /// The body length of a publish; duplicates must agree.
    pub content_length: Option<u64>,
    /// `Transfer-Encoding: chunked`, the only transfer coding accepted.
    pub chunked: bool,
    /// `Connection: close` in any Connection header's token list.
    pub connection_close: bool,
    /// `Connection: keep-alive`, which an HTTP/1.0 client needs to keep the connection.
    pub connection_keep_alive: bool,
    /// `Expect: 100-continue`: the publisher waits for a `100` before sending the body.
    pub expect_continue: bool,
    /// Where a reconnecting `EventSource` resumes.
    pub last_event_id: Option<&'a [u8]>,
    /// The publish bearer token.
    pub authorization: Option<&'a [u8]>,
    /// The first Cookie header, for deployments that authenticate subscribers by cookie.
    pub cookie: Option<&'a [u8]>,
    /// CORS: the origin of a cross-origin request.
    pub origin: Option<&'a [u8]>,
    /// Tells a single publish from an NDJSON batch.
    pub content_type: Option<&'a [u8]>,
    /// CORS preflight: the method the real request will use.
    pub access_control_request_method: Option<&'a [u8]>,
    /// CORS preflight: the headers the real request will send.
    pub access_control_request_headers: Option<&'a [u8]>,
    /// The page's cached validators: a match is answered `304`. The first header is kept
    /// (a client sends its validators in one).
    pub if_none_match: Option<&'a [u8]>,
}

impl<'a> KnownHeaders<'a> {
    pub const fn new() -> Self {
        KnownHeaders {
            host: None,
            content_length: None,
            chunked: false,
            connection_close: false,
            connection_keep_alive: false,
            expect_continue: false,
            last_event_id: None,
            authorization: None,
            cookie: None,
            origin: None,
            content_type: None,
            access_control_request_method: None,
            access_control_request_headers: None,
            if_none_match: None,
        }
    }

    /// The checks that need the whole head: HTTP/1.1 requires Host (RFC 9112 §3.2), and
    /// Transfer-Encoding in an HTTP/1.0 request means its framing is faulty (§6.1).
    #[inline]
    pub fn finish(&self, minor_version: u8) -> Result<(), ParseError> {
        if minor_version == 1 && self.host.is_none() {
            return Err(ParseError::MissingHost);
        }
        if minor_version == 0 && self.chunked {
            return Err(ParseError::TransferEncoding);
        }
        Ok(())
    }

    // The setters below are inlined and leave their loops to free functions that take
    // no `&mut self`: `self` then never escapes, the compiler keeps the fields in
    // registers, and the finished head is written once instead of copied.

    #[inline(always)]
    fn set_host(&mut self, value: &'a [u8]) -> Result<(), ParseError> {
        if self.host.is_some() {
            return Err(ParseError::MissingHost);
        }
        if !super::host::valid(value) {
            return Err(ParseError::InvalidHost);
        }
        self.host = Some(value);
        Ok(())
    }

    #[inline(always)]
    fn set_content_length(&mut self, value: &[u8]) -> Result<(), ParseError> {
        let n = parse_content_length(value)?;
        if self.content_length.is_some_and(|prev| prev != n) {
            return Err(ParseError::ContentLength);
        }
        if self.chunked {
            return Err(ParseError::LengthAndEncoding);
        }
        self.content_length = Some(n);
        Ok(())
    }

    #[inline(always)]
    fn set_transfer_encoding(&mut self, value: &[u8]) -> Result<(), ParseError> {
        // One header, exactly `chunked`: anything else is a coding this server cannot
        // undo, or a list whose last member a proxy may read differently.
        if self.chunked || !eq_ignore_case(value, b"chunked") {
            return Err(ParseError::TransferEncoding);
        }
        if self.content_length.is_some() {
            return Err(ParseError::LengthAndEncoding);
        }
        self.chunked = true;
        Ok(())
    }

    #[inline(always)]
    fn add_connection(&mut self, value: &[u8]) {
        let (close, keep_alive) = connection_options(value);
        self.connection_close |= close;
        self.connection_keep_alive |= keep_alive;
    }
}

/// Whether a Connection value's token list holds `close`, and `keep-alive`.
#[inline(never)]
fn connection_options(value: &[u8]) -> (bool, bool) {
    let (mut close, mut keep_alive) = (false, false);
    for option in value.split(|&b| b == b',').map(trim_ows) {
        close |= eq_ignore_case(option, b"close");
        keep_alive |= eq_ignore_case(option, b"keep-alive");
    }
    (close, keep_alive)
}

/// Keeps the first value of a header that should appear once.
#[inline(always)]
fn first<'a>(slot: &mut Option<&'a [u8]>, value: &'a [u8]) {
    if slot.is_none() {
        *slot = Some(value);
    }
}

impl<'a> HeaderSink<'a> for KnownHeaders<'a> {
    /// Dispatches on the name's length, then its first byte, so an unknown header costs
    /// one or two compares.
    #[inline(always)]
    fn header(&mut self, name: &'a [u8], value: &'a [u8]) -> Result<(), ParseError> {
        let first_byte = name.first().map_or(0, |b| b | 0x20);
        match (name.len(), first_byte) {
            (4, b'h') if eq_name(name, b"host") => self.set_host(value)?,
            (6, b'c') if eq_name(name, b"cookie") => first(&mut self.cookie, value),
            (6, b'o') if eq_name(name, b"origin") => first(&mut self.origin, value),
            (6, b'e') if eq_name(name, b"expect") => {
                self.expect_continue |= eq_ignore_case(value, b"100-continue");
            }
            (10, b'c') if eq_name(name, b"connection") => self.add_connection(value),
            (12, b'c') if eq_name(name, b"content-type") => first(&mut self.content_type, value),
            (13, b'l') if eq_name(name, b"last-event-id") => first(&mut self.last_event_id, value),
            (13, b'a') if eq_name(name, b"authorization") => first(&mut self.authorization, value),
            (13, b'i') if eq_name(name, b"if-none-match") => first(&mut self.if_none_match, value),
            (14, b'c') if eq_name(name, b"content-length") => self.set_content_length(value)?,
            (17, b't') if eq_name(name, b"transfer-encoding") => {
                self.set_transfer_encoding(value)?;
            }
            (29, b'a') if eq_name(name, b"access-control-request-method") => {
                first(&mut self.access_control_request_method, value);
            }
            (30, b'a') if eq_name(name, b"access-control-request-headers") => {
                first(&mut self.access_control_request_headers, value);
            }
            _ => {}
        }
        Ok(())
    }
}

/// `1*DIGIT`, or a list of identical ones (`5, 5`, which RFC 9110 §8.6 lets a recipient
/// accept). No sign, no inner spaces, no overflow.
#[inline(never)]
fn parse_content_length(value: &[u8]) -> Result<u64, ParseError> {
    let mut result = None;
    for item in value.split(|&b| b == b',').map(trim_ows) {
        let n = parse_digits(item).ok_or(ParseError::ContentLength)?;
        if result.is_some_and(|prev| prev != n) {
            return Err(ParseError::ContentLength);
        }
        result = Some(n);
    }
    result.ok_or(ParseError::ContentLength)
}

/// A non-empty run of ASCII digits that fits in a u64.
#[inline]
fn parse_digits(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() {
        return None;
    }
    digits.iter().try_fold(0u64, |n, &b| {
        let d = b.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        n.checked_mul(10)?.checked_add(u64::from(d))
    })
}
