//! HTTP/1.1 on the wire: the request-head parser and request bodies.
//!
//! - [`parse`]: `conn::handshake ──► http::parse`, bytes to a [`RequestHead`].
//! - [`body`]: `conn::publish`'s chunked request bodies.
//! - `token` and `cursor`: the byte classes, and the 16-byte scans over them (the only
//!   `unsafe` of `http`: the SSE2 intrinsics in `cursor`).

pub mod body;
mod cursor;
pub mod parse;
pub mod query;
pub mod response;
mod token;

pub use body::{BodyError, ChunkedDecoder, Decoded};
pub use parse::{
    find_head_end, parse, parse_with, HeaderSink, KnownHeaders, Limits, Method, ParseError,
    RawHead, RequestHead, RequestLine, Status,
};
