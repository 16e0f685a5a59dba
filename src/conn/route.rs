//! Which endpoint a request head asks for: parse it, check it, and take out of the read
//! buffer everything the endpoint needs, so the connection's buffer can be reused.
//!
//! With `--base-path` every endpoint lives under the prefix: it is stripped before the
//! match, and a request outside it is a 404.

use std::net::SocketAddr;

use super::publish::{self, Refusal, Target};
use super::subscribe::Subscribe;
use crate::http::parse::{self, Limits, Method, Status};
use crate::http::response::Response;
use crate::page;
use crate::server::Shared;

/// What a request head asks for, with everything needed taken out of the read buffer.
pub enum Route {
    Subscribe(Subscribe),
    Publish {
        target: Target,
        batch: bool,
        body: Framing,
        expect_continue: bool,
    },
    Answer {
        status: u16,
        bytes: Vec<u8>,
        close: bool,
    },
    Refuse(u16, String),
}

#[derive(Clone, Copy)]
pub enum Framing {
    None,
    Length(u64),
    Chunked,
}

/// Parses a complete request head and decides what to do with it; also says whether
/// the connection may stay open afterwards.
pub fn route(head_bytes: &[u8], peer: SocketAddr, shared: &Shared) -> (Route, bool) {
    let cfg = &shared.config;
    let limits = Limits::new()
        .max_headers(cfg.max_headers)
        .max_target(cfg.max_target_bytes);
    let head = match parse::parse(head_bytes, &limits) {
        Ok(Status::Complete(head)) => head,
        Ok(Status::Partial) => return (Route::Refuse(400, "malformed request head".into()), false),
        Err(e) => return (Route::Refuse(e.status(), e.reason().into()), false),
    };
    let h = &head.headers;
    let keep_alive = if head.minor_version == 0 {
        h.connection_keep_alive
    } else {
        !h.connection_close
    };
    let path = match strip_base(origin_path(head.path), &cfg.base_path) {
        Base::Inside(path) => path,
        Base::Bare => {
            return (
                redirect_to_base(&cfg.base_path, head.query, keep_alive),
                keep_alive,
            )
        }
        Base::Outside => {
            let why = format!(
                "no such endpoint (this server's are under {}/)",
                cfg.base_path
            );
            return (Route::Refuse(404, why), false);
        }
    };
    let route = match (path, head.method) {
        (b"/events", Method::Get) => match Subscribe::from_request(head.query, h.last_event_id) {
            Ok(sub) => Route::Subscribe(sub),
            Err(e) => Route::Refuse(400, e.reason().into()),
        },
        (b"/publish", Method::Post) => {
            if let Err(Refusal { status, why }) =
                publish::authorize(peer.ip(), h.authorization, cfg.publish_token.as_deref())
            {
                return (Route::Refuse(status, why), false);
            }
            let body = match (h.content_length, h.chunked) {
                (Some(n), _) => Framing::Length(n),
                (None, true) => Framing::Chunked,
                (None, false) => Framing::None,
            };
            match Target::from_query(head.query) {
                Ok(target) => Route::Publish {
                    target,
                    batch: publish::is_batch(h.content_type),
                    body,
                    expect_continue: h.expect_continue,
                },
                Err(e) => Route::Refuse(400, e.reason().into()),
            }
        }
        (b"/healthz", Method::Get | Method::Head) => health(shared, head.method, keep_alive),
        (b"/metrics", Method::Get) => metrics(shared, keep_alive),
        (
            path @ (b"/" | b"/app.js" | b"/style.css" | b"/favicon.svg"),
            Method::Get | Method::Head,
        ) => page::serve(path, head.method, h.if_none_match, cfg, keep_alive),
        (b"/events" | b"/publish", Method::Options) => Route::Answer {
            status: 204,
            bytes: Response::new(204).header("Allow", allow(path)).empty(),
            close: false,
        },
        (
            path @ (b"/events" | b"/publish" | b"/healthz" | b"/metrics" | b"/" | b"/app.js"
            | b"/style.css" | b"/favicon.svg"),
            _,
        ) => Route::Answer {
            status: 405,
            bytes: Response::new(405)
                .header("Allow", allow(path))
                .close()
                .body("text/plain; charset=utf-8", b"405 Method Not Allowed\n"),
            close: true,
        },
        _ => Route::Refuse(404, "no such endpoint (try GET /events?topic=NAME)".into()),
    };
    (route, keep_alive)
}

fn health(shared: &Shared, method: Method, keep_alive: bool) -> Route {
    let (status, body): (u16, &[u8]) = if shared.is_draining() {
        (503, b"draining\n")
    } else {
        (200, b"ok\n")
    };
    let mut r = Response::new(status).header("Cache-Control", "no-store");
    if !keep_alive {
        r = r.close();
    }
    let mut bytes = r.body("text/plain; charset=utf-8", body);
    if method == Method::Head {
        bytes.truncate(bytes.len() - body.len());
    }
    Route::Answer {
        status,
        bytes,
        close: false,
    }
}

fn metrics(shared: &Shared, keep_alive: bool) -> Route {
    let text = crate::metrics::render(shared);
    let mut r = Response::new(200).header("Cache-Control", "no-store");
    if !keep_alive {
        r = r.close();
    }
    let bytes = r.body("text/plain; version=0.0.4; charset=utf-8", text.as_bytes());
    Route::Answer {
        status: 200,
        bytes,
        close: false,
    }
}

/// Where a request's path stands with respect to the base path.
#[derive(Debug, PartialEq, Eq)]
enum Base<'a> {
    /// Under it: the rest, from its `/` on.
    Inside(&'a [u8]),
    /// The base path itself, without the slash that would make it the page's directory.
    Bare,
    Outside,
}

fn strip_base<'a>(path: &'a [u8], base: &str) -> Base<'a> {
    if base.is_empty() {
        return Base::Inside(path);
    }
    match path.strip_prefix(base.as_bytes()) {
        Some(b"") => Base::Bare,
        Some(rest) if rest.starts_with(b"/") => Base::Inside(rest),
        _ => Base::Outside,
    }
}

/// `GET /sse` ──► `308` to `/sse/`, so that the page's relative URLs resolve under it.
fn redirect_to_base(base: &str, query: Option<&[u8]>, keep_alive: bool) -> Route {
    let mut location = format!("{base}/");
    if let Some(q) = query {
        // The target passed the parser's byte check: visible ASCII, safe in a header.
        location.push('?');
        location.push_str(&String::from_utf8_lossy(q));
    }
    let mut r = Response::new(308).header("Location", &location);
    if !keep_alive {
        r = r.close();
    }
    Route::Answer {
        status: 308,
        bytes: r.empty(),
        close: false,
    }
}

/// The path of an origin-form target, or of an absolute-form one (`http://host/path`).
fn origin_path(path: &[u8]) -> &[u8] {
    for scheme in [&b"http://"[..], b"https://"] {
        if path.len() > scheme.len() && path[..scheme.len()].eq_ignore_ascii_case(scheme) {
            let rest = &path[scheme.len()..];
            return rest
                .iter()
                .position(|&b| b == b'/')
                .map_or(&b"/"[..], |i| &rest[i..]);
        }
    }
    path
}

fn allow(path: &[u8]) -> &'static str {
    match path {
        b"/events" => "GET, OPTIONS",
        b"/publish" => "POST, OPTIONS",
        _ => "GET, HEAD",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_base_path_is_stripped_on_a_segment_boundary() {
        assert_eq!(strip_base(b"/events", ""), Base::Inside(b"/events"));
        assert_eq!(strip_base(b"/sse/events", "/sse"), Base::Inside(b"/events"));
        assert_eq!(strip_base(b"/sse/", "/sse"), Base::Inside(b"/"));
        assert_eq!(strip_base(b"/sse", "/sse"), Base::Bare);
        assert_eq!(strip_base(b"/ssex/events", "/sse"), Base::Outside);
        assert_eq!(strip_base(b"/events", "/sse"), Base::Outside);
        assert_eq!(strip_base(b"/SSE/events", "/sse"), Base::Outside);
        assert_eq!(strip_base(b"/a/b/x", "/a/b"), Base::Inside(b"/x"));
    }
}
