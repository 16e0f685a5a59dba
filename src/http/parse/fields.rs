//! The field lines: `field-name ":" OWS field-value OWS CRLF`, until the blank line.

use super::{HeaderSink, Limits, ParseError, Status, Step};
use crate::http::cursor;
use crate::http::token::{is_ows, is_tchar};

/// Parses field lines from `at` to the blank line, handing each to `sink`; returns the
/// index just past the blank line. `at` and `count` (field lines so far) advance past
/// each complete line, so a parse that returns `Partial` resumes from them.
#[inline(always)]
pub(super) fn parse_fields<'a, S: HeaderSink<'a>>(
    buf: &'a [u8],
    at: &mut usize,
    count: &mut usize,
    limits: &Limits,
    sink: &mut S,
) -> Step<usize> {
    loop {
        match buf.get(*at..) {
            Some([b'\r', b'\n', ..]) => return Ok(Status::Complete(*at + 2)),
            Some([] | [b'\r']) | None => return Ok(Status::Partial),
            Some([b'\r', ..] | [b'\n', ..]) => return Err(ParseError::NewLine),
            Some(_) if *count == limits.max_headers => return Err(ParseError::TooManyHeaders),
            Some(_) => {}
        }
        let (name, value, next) = complete!(field_line(buf, *at));
        sink.header(name, value)?;
        *count += 1;
        *at = next;
    }
}

/// A field line's name, trimmed value, and where the next line starts.
type FieldLine<'a> = (&'a [u8], &'a [u8], usize);

/// One field line starting at `at` (known to hold at least one byte, not CR or LF).
#[inline(always)]
fn field_line(buf: &[u8], at: usize) -> Step<FieldLine<'_>> {
    // The line's end first, scanning from its start: name bytes and the colon are all
    // field-value bytes too. The next line's start then hangs on this one scan, and the
    // name checks below run alongside it instead of before it.
    let stop = cursor::value_end(buf, at);
    let colon = complete!(field_name_end(buf, at));
    let mut start = colon + 1;
    while buf.get(start).is_some_and(|&b| is_ows(b)) {
        start += 1;
    }
    match buf.get(stop..) {
        Some([b'\r', b'\n', ..]) => {}
        Some([] | [b'\r']) | None => return Ok(Status::Partial),
        Some([b'\r', ..] | [b'\n', ..]) => return Err(ParseError::NewLine),
        Some(_) => return Err(ParseError::HeaderValue),
    }
    let mut end = stop;
    while end > start && is_ows(buf[end - 1]) {
        end -= 1;
    }
    Ok(Status::Complete((
        &buf[at..colon],
        &buf[start..end],
        stop + 2,
    )))
}

/// The index of the colon ending the field name that starts at `at`.
#[inline(always)]
fn field_name_end(buf: &[u8], at: usize) -> Step<usize> {
    let mut end = cursor::name_run_end(buf, at);
    loop {
        match buf.get(end) {
            Some(b':') if end > at => return Ok(Status::Complete(end)),
            // The rarer tchars (`_`, `.`, `!`...) continue the name past the fast run.
            Some(&b) if is_tchar(b) => end = cursor::name_run_end(buf, end + 1),
            None => return Ok(Status::Partial),
            // A line that starts with whitespace continues the previous one (obs-fold),
            // or, on the first line, hides a field from a lenient reader: both rejected.
            Some(b' ' | b'\t') if end == at => return Err(ParseError::ObsFold),
            Some(_) => return Err(ParseError::HeaderName),
        }
    }
}
