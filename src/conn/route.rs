//! Which endpoint a request head asks for: parse it, check it, and take out of the read
//! buffer everything the endpoint needs, so the connection's buffer can be reused.

use std::net::SocketAddr;

use super::publish::{self, Refusal, Target};
use super::subscribe::Subscribe;
use crate::http::parse::{self, Limits, Method, Status};
use crate::http::response::Response;
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
    let route = match (origin_path(head.path), head.method) {
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
        (b"/events" | b"/publish", Method::Options) => Route::Answer {
            status: 204,
            bytes: Response::new(204).header("Allow", allow(head.path)).empty(),
            close: false,
        },
        (path @ (b"/events" | b"/publish" | b"/healthz" | b"/metrics"), _) => Route::Answer {
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
