//! Response heads and short bodies, as bytes ready to write.

use std::fmt::Write as _;

/// The reason phrase for each status the server sends.
pub const fn phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        202 => "Accepted",
        204 => "No Content",
        304 => "Not Modified",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        417 => "Expectation Failed",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// A response with a body, built field by field.
pub struct Response {
    buf: String,
    close: bool,
}

impl Response {
    pub fn new(status: u16) -> Response {
        let mut buf = String::with_capacity(256);
        let _ = write!(buf, "HTTP/1.1 {status} {}\r\n", phrase(status));
        Response { buf, close: false }
    }

    #[must_use]
    pub fn header(mut self, name: &str, value: &str) -> Response {
        let _ = write!(self.buf, "{name}: {value}\r\n");
        self
    }

    /// Marks the response as the connection's last (`Connection: close`).
    #[must_use]
    pub fn close(mut self) -> Response {
        self.close = true;
        self
    }

    pub fn body(mut self, content_type: &str, body: &[u8]) -> Vec<u8> {
        let _ = write!(
            self.buf,
            "Content-Type: {content_type}\r\nContent-Length: {}\r\n",
            body.len()
        );
        self.finish_head();
        let mut bytes = self.buf.into_bytes();
        bytes.extend_from_slice(body);
        bytes
    }

    /// A head with no body (`Content-Length: 0`).
    pub fn empty(mut self) -> Vec<u8> {
        self.buf.push_str("Content-Length: 0\r\n");
        self.finish_head();
        self.buf.into_bytes()
    }

    /// A head for a response that never has a body (`304`): no framing headers at all.
    pub fn no_body(mut self) -> Vec<u8> {
        self.finish_head();
        self.buf.into_bytes()
    }

    /// A head for a body that runs until the connection closes (the event stream).
    pub fn streaming(mut self) -> Vec<u8> {
        self.close = true;
        self.finish_head();
        self.buf.into_bytes()
    }

    fn finish_head(&mut self) {
        if self.close {
            self.buf.push_str("Connection: close\r\n");
        }
        self.buf.push_str("\r\n");
    }
}

/// The answer to a request the server refuses: a short text body saying why, and a close.
pub fn error(status: u16, why: &str) -> Vec<u8> {
    refusal(status).body(
        "text/plain; charset=utf-8",
        refusal_text(status, why).as_bytes(),
    )
}

/// The head of a refusal, before its body: the status, what the status calls for
/// (`Retry-After` on 503, `WWW-Authenticate` on 401), and `Connection: close`.
pub fn refusal(status: u16) -> Response {
    let r = match status {
        401 => Response::new(401).header("WWW-Authenticate", "Bearer"),
        503 => Response::new(503).header("Retry-After", "1"),
        _ => Response::new(status),
    };
    r.close()
}

/// A refusal's short body: the status and why.
pub fn refusal_text(status: u16, why: &str) -> String {
    format!("{status} {}: {why}\n", phrase(status))
}

/// 503 with `Retry-After`: over the connection limit, or shutting down.
pub fn unavailable(why: &str) -> Vec<u8> {
    error(503, why)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_bytes_are_exact() {
        assert_eq!(
            String::from_utf8(error(413, "event over 65536 bytes")).unwrap(),
            "HTTP/1.1 413 Content Too Large\r\nContent-Type: text/plain; charset=utf-8\r\n\
             Content-Length: 46\r\nConnection: close\r\n\r\n\
             413 Content Too Large: event over 65536 bytes\n"
        );
    }

    #[test]
    fn headers_come_before_framing() {
        let r = Response::new(405)
            .header("Allow", "GET, OPTIONS")
            .close()
            .empty();
        assert_eq!(
            String::from_utf8(r).unwrap(),
            "HTTP/1.1 405 Method Not Allowed\r\nAllow: GET, OPTIONS\r\nContent-Length: 0\r\n\
             Connection: close\r\n\r\n"
        );
    }
}
