//! `conn::publish ──► http::body`: a chunked request body (RFC 9112 §7.1) becomes the
//! event's bytes.
//!
//! A push decoder: feed it whatever the socket returned, in pieces of any size. It keeps
//! only its state between calls, never the input, and copies chunk data straight into the
//! caller's buffer. Strict like the head parser: CRLF only, a bounded chunk-size, chunk
//! extensions and trailer fields validated and then ignored.

use super::token::{is_tchar, FIELD_VALUE, QDTEXT};

/// Bytes allowed on one chunk-size line, extensions included. Real clients send none;
/// the cap stops a peer from streaming an endless extension that is never body.
const MAX_SIZE_LINE: usize = 4096;
/// Bytes allowed in the trailer section, the same budget as a request head's 8 KiB.
const MAX_TRAILERS: usize = 8192;
/// Hex digits in a chunk-size: 16 fill a u64, so the size can never overflow.
const MAX_SIZE_DIGITS: u8 = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyError {
    /// The body would exceed the limit (413); caught before its bytes are copied.
    TooLarge,
    /// A chunk-size that is empty, not hex, or longer than 16 digits.
    ChunkSize,
    /// Chunk data not followed by CRLF.
    ChunkData,
    /// A malformed chunk extension, or a size line over its cap.
    Extension,
    /// A malformed trailer field, or trailers over their cap.
    Trailer,
    /// A bare CR, or a bare LF as a line ending.
    NewLine,
}

impl BodyError {
    pub const fn status(self) -> u16 {
        match self {
            BodyError::TooLarge => 413,
            _ => 400,
        }
    }

    pub const fn reason(self) -> &'static str {
        match self {
            BodyError::TooLarge => "request body too large",
            BodyError::ChunkSize => "invalid chunk size",
            BodyError::ChunkData => "chunk data not followed by CRLF",
            BodyError::Extension => "invalid chunk extension",
            BodyError::Trailer => "invalid trailer field",
            BodyError::NewLine => "bare CR or LF in chunked body",
        }
    }
}

impl core::fmt::Display for BodyError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.reason())
    }
}

impl std::error::Error for BodyError {}

/// What one [`ChunkedDecoder::decode`] call did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Decoded {
    /// Input bytes used. All of them unless `done`: bytes after the body's end belong to
    /// the next request.
    pub consumed: usize,
    /// The last chunk and the trailer section have been read.
    pub done: bool,
}

/// Where the decoder is in the chunked grammar.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Hex digits of a chunk-size, `digits` of them so far.
    Size {
        digits: u8,
    },
    /// After `;`: an extension name, `named` once it has a byte.
    ExtName {
        named: bool,
    },
    /// After `=`: a token or a quoted-string.
    ExtValue,
    ExtToken,
    Quoted,
    QuotedPair,
    /// After a quoted-string's closing quote: `;` or the line end.
    ExtAfterQuote,
    /// The LF of the chunk-size line.
    SizeLf,
    /// Chunk data, `remaining` bytes of it still to come.
    Data,
    DataCr,
    DataLf,
    /// The start of a trailer line, or the final blank line.
    TrailerStart,
    TrailerName,
    TrailerValue,
    TrailerLf,
    /// The LF of the final blank line.
    EndLf,
    Done,
    /// A decoder that failed keeps failing the same way.
    Failed(BodyError),
}

/// Decodes a chunked body into the caller's buffer.
#[derive(Clone, Debug)]
pub struct ChunkedDecoder {
    state: State,
    /// The chunk-size being read, then the data bytes left in the current chunk.
    remaining: u64,
    /// Body bytes produced so far.
    total: u64,
    /// The limit on `total`.
    max_body: u64,
    /// Framing bytes on the current size line, or in the trailer section, against their caps.
    line_bytes: usize,
}

impl ChunkedDecoder {
    pub const fn new(max_body: usize) -> Self {
        ChunkedDecoder {
            state: State::Size { digits: 0 },
            remaining: 0,
            total: 0,
            max_body: max_body as u64,
            line_bytes: 0,
        }
    }

    /// The last chunk and trailers have been read.
    pub const fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// Body bytes produced so far.
    pub const fn body_len(&self) -> u64 {
        self.total
    }

    /// Decode as much of `input` as possible, appending the body bytes to `out`.
    /// `done` once the last chunk and trailer section (validated, ignored) are consumed;
    /// bytes after that belong to the next request and are not consumed.
    pub fn decode(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<Decoded, BodyError> {
        let mut at = 0;
        while at < input.len() {
            match self.state {
                State::Done => break,
                State::Failed(e) => return Err(e),
                State::Data => at += self.copy_data(&input[at..], out),
                _ => {
                    if let Err(e) = self.step(input[at]) {
                        self.state = State::Failed(e);
                        return Err(e);
                    }
                    at += 1;
                }
            }
        }
        if let State::Failed(e) = self.state {
            return Err(e);
        }
        Ok(Decoded {
            consumed: at,
            done: self.is_done(),
        })
    }

    /// Copies as much of the current chunk as `input` holds; returns how much.
    #[inline]
    fn copy_data(&mut self, input: &[u8], out: &mut Vec<u8>) -> usize {
        let n = usize::try_from(self.remaining).map_or(input.len(), |r| r.min(input.len()));
        out.extend_from_slice(&input[..n]);
        self.remaining -= n as u64;
        if self.remaining == 0 {
            self.state = State::DataCr;
        }
        n
    }

    /// Advances the framing state machine by one byte.
    fn step(&mut self, b: u8) -> Result<(), BodyError> {
        self.line_bytes += 1;
        self.state = match self.state {
            State::Size { digits } => self.size_byte(digits, b)?,
            State::ExtName { .. }
            | State::ExtValue
            | State::ExtToken
            | State::Quoted
            | State::QuotedPair
            | State::ExtAfterQuote => self.extension_byte(b)?,
            State::SizeLf => match b {
                b'\n' if self.remaining == 0 => State::TrailerStart,
                b'\n' => State::Data,
                _ => return Err(BodyError::NewLine),
            },
            State::DataCr => match b {
                b'\r' => State::DataLf,
                b'\n' => return Err(BodyError::NewLine),
                _ => return Err(BodyError::ChunkData),
            },
            State::DataLf => match b {
                b'\n' => {
                    self.line_bytes = 0;
                    State::Size { digits: 0 }
                }
                _ => return Err(BodyError::NewLine),
            },
            _ => self.trailer_byte(b)?,
        };
        Ok(())
    }

    /// A byte of the chunk-size, or the `;` or CR after it.
    fn size_byte(&mut self, digits: u8, b: u8) -> Result<State, BodyError> {
        let next = match (b, digits) {
            (b'\n', _) => return Err(BodyError::NewLine),
            (b';', 1..) => State::ExtName { named: false },
            (b'\r', 1..) => State::SizeLf,
            _ => {
                let d = (b as char).to_digit(16).ok_or(BodyError::ChunkSize)?;
                if digits == MAX_SIZE_DIGITS {
                    return Err(BodyError::ChunkSize);
                }
                // 16 digits at most, so this cannot overflow.
                self.remaining = self.remaining << 4 | u64::from(d);
                if self.remaining > self.max_body - self.total {
                    return Err(BodyError::TooLarge);
                }
                return Ok(State::Size { digits: digits + 1 });
            }
        };
        // The size is final: count its bytes as body now, before any is copied.
        self.total += self.remaining;
        Ok(next)
    }

    /// A byte of `*( ";" name [ "=" ( token / quoted-string ) ] )` before the CR.
    fn extension_byte(&mut self, b: u8) -> Result<State, BodyError> {
        if self.line_bytes > MAX_SIZE_LINE {
            return Err(BodyError::Extension);
        }
        let next = match (self.state, b) {
            (State::Quoted, b'"') => State::ExtAfterQuote,
            (State::Quoted, b'\\') => State::QuotedPair,
            (State::Quoted, _) if QDTEXT[usize::from(b)] => State::Quoted,
            (State::QuotedPair, _) if FIELD_VALUE[usize::from(b)] => State::Quoted,
            (State::ExtName { .. }, _) if is_tchar(b) => State::ExtName { named: true },
            (State::ExtName { named: true }, b'=') => State::ExtValue,
            (State::ExtValue, b'"') => State::Quoted,
            (State::ExtValue | State::ExtToken, _) if is_tchar(b) => State::ExtToken,
            (State::ExtName { named: true } | State::ExtToken | State::ExtAfterQuote, b';') => {
                State::ExtName { named: false }
            }
            (State::ExtName { named: true } | State::ExtToken | State::ExtAfterQuote, b'\r') => {
                State::SizeLf
            }
            (_, b'\n') => return Err(BodyError::NewLine),
            _ => return Err(BodyError::Extension),
        };
        Ok(next)
    }

    /// A byte of the trailer section: field lines like a head's, then a blank line.
    fn trailer_byte(&mut self, b: u8) -> Result<State, BodyError> {
        if self.line_bytes > MAX_TRAILERS {
            return Err(BodyError::Trailer);
        }
        let next = match (self.state, b) {
            (State::TrailerStart, b'\r') => State::EndLf,
            (State::TrailerStart | State::TrailerName, _) if is_tchar(b) => State::TrailerName,
            (State::TrailerName, b':') => State::TrailerValue,
            (State::TrailerValue, b'\r') => State::TrailerLf,
            (State::TrailerValue, _) if FIELD_VALUE[usize::from(b)] => State::TrailerValue,
            (State::TrailerLf, b'\n') => State::TrailerStart,
            (State::EndLf, b'\n') => State::Done,
            (State::TrailerLf | State::EndLf, _) | (_, b'\n') => return Err(BodyError::NewLine),
            _ => return Err(BodyError::Trailer),
        };
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` fed in the given pieces; returns the body and the bytes consumed.
    fn run(max: usize, pieces: &[&[u8]]) -> Result<(Vec<u8>, usize), BodyError> {
        let mut dec = ChunkedDecoder::new(max);
        let (mut out, mut used) = (Vec::new(), 0);
        for piece in pieces {
            let d = dec.decode(piece, &mut out)?;
            used += d.consumed;
            if d.done {
                return Ok((out, used));
            }
            assert_eq!(
                d.consumed,
                piece.len(),
                "an unfinished body consumes all its input"
            );
        }
        Ok((out, usize::MAX)) // not done: marks "needs more"
    }

    /// `name: max_body, input => Ok(body, consumed) | Err(error) | Partial`.
    macro_rules! chunked_cases {
        ($($name:ident: $max:expr, $input:expr => $want:expr;)*) => {
            const CASES: &[(&str, usize, &[u8], Want)] = &[$((stringify!($name), $max, $input, $want)),*];
            $(#[test] fn $name() { check(stringify!($name), $max, $input, $want); })*
        };
    }

    #[derive(Clone, Copy, Debug)]
    enum Want {
        Ok(&'static [u8], usize),
        Err(BodyError),
        Partial,
    }

    fn check(name: &str, max: usize, input: &[u8], want: Want) {
        let got = run(max, &[input]);
        match want {
            Want::Ok(body, used) => assert_eq!(got, Ok((body.to_vec(), used)), "{name}"),
            Want::Err(e) => assert_eq!(got, Err(e), "{name}"),
            Want::Partial => assert_eq!(got.map(|(_, u)| u), Ok(usize::MAX), "{name}"),
        }
    }

    const M: usize = 1024;
    chunked_cases! {
        one_chunk: M, b"5\r\nhello\r\n0\r\n\r\n" => Want::Ok(b"hello", 15);
        two_chunks: M, b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n" => Want::Ok(b"abcde", 20);
        empty_body: M, b"0\r\n\r\n" => Want::Ok(b"", 5);
        stops_at_next_request: M, b"1\r\nx\r\n0\r\n\r\nGET /" => Want::Ok(b"x", 11);
        hex_upper_lower: M, b"A\r\n0123456789\r\na\r\n0123456789\r\n0\r\n\r\n"
            => Want::Ok(b"01234567890123456789", 35);
        leading_zeros: M, b"0005\r\nhello\r\n0\r\n\r\n" => Want::Ok(b"hello", 18);
        extensions: M, b"5;a=1;b;c=\"q \\\"x\\\"\"\r\nhello\r\n0;last\r\n\r\n" => Want::Ok(b"hello", 38);
        trailers: M, b"1\r\nx\r\n0\r\nExpires: never\r\nX-Sum:\tab \r\n\r\n" => Want::Ok(b"x", 39);
        data_may_hold_crlf: M, b"4\r\n\r\n\r\n\r\n0\r\n\r\n" => Want::Ok(b"\r\n\r\n", 14);
        exactly_max: 5, b"5\r\nhello\r\n0\r\n\r\n" => Want::Ok(b"hello", 15);
        over_max_in_size: 4, b"5\r\nhello\r\n0\r\n\r\n" => Want::Err(BodyError::TooLarge);
        over_max_total: 6, b"5\r\nhello\r\n2\r\nxy\r\n0\r\n\r\n" => Want::Err(BodyError::TooLarge);
        huge_size: M, b"ffffffffffffffff\r\n" => Want::Err(BodyError::TooLarge);
        too_many_digits: usize::MAX, b"00000000000000001\r\nx\r\n0\r\n\r\n" => Want::Err(BodyError::ChunkSize);
        empty_size: M, b"\r\nx\r\n" => Want::Err(BodyError::ChunkSize);
        signed_size: M, b"+5\r\nhello\r\n0\r\n\r\n" => Want::Err(BodyError::ChunkSize);
        prefixed_size: M, b"0x5\r\nhello\r\n0\r\n\r\n" => Want::Err(BodyError::ChunkSize);
        space_after_size: M, b"5 \r\nhello\r\n0\r\n\r\n" => Want::Err(BodyError::ChunkSize);
        space_before_size: M, b" 5\r\nhello\r\n0\r\n\r\n" => Want::Err(BodyError::ChunkSize);
        bare_lf_size: M, b"5\nhello\r\n0\r\n\r\n" => Want::Err(BodyError::NewLine);
        bare_cr_size: M, b"5\rhello\r\n0\r\n\r\n" => Want::Err(BodyError::NewLine);
        data_too_long: M, b"3\r\nhello\r\n0\r\n\r\n" => Want::Err(BodyError::ChunkData);
        data_bare_lf: M, b"5\r\nhello\n0\r\n\r\n" => Want::Err(BodyError::NewLine);
        data_bare_cr: M, b"5\r\nhello\r0\r\n\r\n" => Want::Err(BodyError::NewLine);
        ext_empty_name: M, b"5;\r\nhello\r\n0\r\n\r\n" => Want::Err(BodyError::Extension);
        ext_empty_value: M, b"5;a=\r\nhello\r\n0\r\n\r\n" => Want::Err(BodyError::Extension);
        ext_space: M, b"5; a\r\nhello\r\n0\r\n\r\n" => Want::Err(BodyError::Extension);
        ext_open_quote: M, b"5;a=\"x\r\nhello\r\n0\r\n\r\n" => Want::Err(BodyError::Extension);
        ext_nul_in_quote: M, b"5;a=\"\0\"\r\nhello\r\n0\r\n\r\n" => Want::Err(BodyError::Extension);
        ext_after_quote: M, b"5;a=\"x\"y\r\nhello\r\n0\r\n\r\n" => Want::Err(BodyError::Extension);
        ext_bare_lf: M, b"5;a\nhello\r\n0\r\n\r\n" => Want::Err(BodyError::NewLine);
        trailer_no_colon: M, b"0\r\nExpires\r\n\r\n" => Want::Err(BodyError::Trailer);
        trailer_space_in_name: M, b"0\r\nX Y: 1\r\n\r\n" => Want::Err(BodyError::Trailer);
        trailer_fold: M, b"0\r\nX: 1\r\n 2\r\n\r\n" => Want::Err(BodyError::Trailer);
        trailer_nul: M, b"0\r\nX: \0\r\n\r\n" => Want::Err(BodyError::Trailer);
        trailer_bare_lf: M, b"0\r\nX: 1\n\r\n" => Want::Err(BodyError::NewLine);
        end_bare_lf: M, b"0\r\n\n" => Want::Err(BodyError::NewLine);
        end_bare_cr: M, b"0\r\n\rx" => Want::Err(BodyError::NewLine);
        unfinished_data: M, b"5\r\nhel" => Want::Partial;
        unfinished_trailers: M, b"0\r\nX: 1\r\n" => Want::Partial;
        unfinished_size: M, b"5" => Want::Partial;
    }

    /// Every case gives the same answer however its input is split: at every single
    /// offset, and one byte at a time.
    #[test]
    fn every_split_gives_the_same_answer() {
        for &(name, max, input, _) in CASES {
            let whole = run(max, &[input]);
            for k in 0..=input.len() {
                let (a, b) = input.split_at(k);
                assert_eq!(run(max, &[a, b]), whole, "{name} split at {k}");
            }
            let bytes: Vec<&[u8]> = input.chunks(1).collect();
            assert_eq!(run(max, &bytes), whole, "{name} byte by byte");
        }
    }

    /// Each byte of each case replaced by bytes the grammar cares about: never a panic,
    /// and the same answer fed whole or one byte at a time.
    #[test]
    fn mutations_decode_the_same_whole_or_byte_by_byte() {
        for &(_, max, input, _) in CASES {
            for at in 0..input.len() {
                for b in *b"\r\n;=\"\\0fx \t\0\xff" {
                    let mut bytes = input.to_vec();
                    bytes[at] = b;
                    let one_by_one: Vec<&[u8]> = bytes.chunks(1).collect();
                    assert_eq!(run(max, &[&bytes]), run(max, &one_by_one), "{bytes:?}");
                }
            }
        }
    }

    #[test]
    fn over_max_copies_nothing_of_the_chunk() {
        let mut dec = ChunkedDecoder::new(3);
        let mut out = Vec::new();
        assert_eq!(
            dec.decode(b"2\r\nab\r\n", &mut out),
            Ok(Decoded {
                consumed: 7,
                done: false
            })
        );
        assert_eq!(dec.decode(b"2\r\ncd", &mut out), Err(BodyError::TooLarge));
        assert_eq!(out, b"ab");
        // A failed decoder keeps failing.
        assert_eq!(
            dec.decode(b"\r\n0\r\n\r\n", &mut out),
            Err(BodyError::TooLarge)
        );
    }

    #[test]
    fn long_extension_and_trailer_are_capped() {
        let mut line = b"1;a=".to_vec();
        line.resize(MAX_SIZE_LINE + 10, b'x');
        assert_eq!(run(M, &[&line]), Err(BodyError::Extension));
        let mut trailers = b"0\r\nX: ".to_vec();
        trailers.resize(MAX_TRAILERS + 10, b'y');
        assert_eq!(run(M, &[&trailers]), Err(BodyError::Trailer));
    }

    #[test]
    fn status_codes() {
        assert_eq!(BodyError::TooLarge.status(), 413);
        assert_eq!(BodyError::ChunkSize.status(), 400);
        assert!(!BodyError::NewLine.reason().is_empty());
    }
}
