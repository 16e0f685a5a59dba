//! Which endpoint a request head asks for: parse it, check it, and take out of the read
//! buffer everything the endpoint needs, so the connection's buffer can be reused.
//!
//! With `--base-path` every endpoint lives under the prefix: it is stripped before the
//! match, and a request outside it is a 404.

use std::net::SocketAddr;

use bytes::Bytes;

use super::publish::{self, Refusal, Target};
use super::subscribe::Subscribe;
use super::topics::{self, Topics};
use crate::auth::AuthError;
use crate::broadcast::frame::{retry_frame, Body};
use crate::forward_auth::Credentials;
use crate::http::parse::{self, Limits, Method, RequestHead, Status};
use crate::http::response::Response;
use crate::page;
use crate::shared::Shared;

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
    /// `GET /topics…`, answered by the connection's task (cluster mode asks Redis).
    Topics(Topics),
    Refuse(u16, String),
}

#[derive(Clone, Copy)]
pub enum Framing {
    None,
    Length(u64),
    Chunked,
}

/// A routed request: where it goes, whether the connection may stay open after it, and
/// the `Access-Control-Allow-Origin` its answers carry (cross-origin `/events` and
/// `/publish` requests from an allowed origin).
pub struct Routed {
    pub route: Route,
    pub keep_alive: bool,
    pub cors: Option<String>,
    /// What forward auth (`--auth-url`) is to be shown, when it is to be asked.
    pub forward: Option<Box<Credentials>>,
}

/// Parses a complete request head and decides what to do with it.
pub fn route(head_bytes: &[u8], peer: SocketAddr, shared: &Shared) -> Routed {
    let cfg = &shared.config;
    let head = match parse::parse(head_bytes, &limits(cfg)) {
        Ok(Status::Complete(head)) => head,
        Ok(Status::Partial) => return refused(400, "malformed request head".into()),
        Err(e) => return refused(e.status(), e.reason().into()),
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
            let route = redirect_to_base(&cfg.base_path, head.query, keep_alive);
            return Routed {
                route,
                keep_alive,
                cors: None,
                forward: None,
            };
        }
        Base::Outside => {
            let why = format!(
                "no such endpoint (this server's are under {}/)",
                cfg.base_path
            );
            return refused(404, why);
        }
    };
    let cors = match path {
        b"/events" | b"/publish" => cfg.cors.as_ref().and_then(|c| c.allow(h.origin)),
        _ => None,
    };
    let route = match (path, head.method) {
        (b"/events", Method::Get) => subscribe(&head, shared, cors.as_deref()),
        (b"/publish", Method::Post) => publish(&head, peer, shared),
        (b"/healthz", Method::Get | Method::Head) => health(shared, head.method, keep_alive),
        (b"/metrics", Method::Get) => metrics(shared, keep_alive),
        (
            path @ (b"/" | b"/app.js" | b"/style.css" | b"/favicon.svg"),
            Method::Get | Method::Head,
        ) => match page::serve(path, head.method, h.if_none_match, cfg, keep_alive) {
            Some((status, bytes)) => Route::Answer {
                status,
                bytes,
                close: false,
            },
            None => Route::Refuse(404, "no such page asset".into()),
        },
        (b"/events" | b"/publish", Method::Options) => options(&head, path, shared),
        (path, Method::Get) if path == b"/topics" || path.starts_with(b"/topics/") => {
            topics(&head, &path[b"/topics".len()..], peer, shared)
        }
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
    // Only a publish reads a body. Any other request that announces one is refused:
    // left unread, the body would be taken for the next request (request smuggling).
    let has_body = h.chunked || h.content_length.is_some_and(|n| n > 0);
    let route = match route {
        Route::Publish { .. } | Route::Refuse(..) => route,
        Route::Answer { close: true, .. } => route,
        _ if has_body => Route::Refuse(400, "a body is not allowed on this request".into()),
        route => route,
    };
    let keep_alive = keep_alive && !matches!(route, Route::Refuse(..));
    let forward = match (&route, &cfg.forward_auth) {
        (Route::Subscribe(_), Some(_)) => true,
        (Route::Publish { .. }, Some(f)) => f.publish,
        _ => false,
    };
    let forward = forward.then(|| Box::new(Credentials::from_head(h, head.target, peer.ip())));
    Routed {
        route,
        keep_alive,
        cors,
        forward,
    }
}

/// The parser's limits from the configuration.
pub fn limits(cfg: &crate::config::Config) -> Limits {
    Limits::new()
        .max_headers(cfg.max_headers)
        .max_target(cfg.max_target_bytes)
}

fn refused(status: u16, why: String) -> Routed {
    Routed {
        route: Route::Refuse(status, why),
        keep_alive: false,
        cors: None,
        forward: None,
    }
}

/// `GET /events`: the topics, the resume point, and — with JWT auth on — the token that
/// allows every requested topic (public topics need none).
fn subscribe(head: &RequestHead<'_>, shared: &Shared, cors: Option<&str>) -> Route {
    let cfg = &shared.config;
    let h = &head.headers;
    let mut sub = match Subscribe::from_request(head.query, h.last_event_id, cfg.max_topics) {
        Ok(sub) => sub,
        Err(e) => return Route::Refuse(400, e.reason().into()),
    };
    if let Some(auth) = &cfg.auth {
        // Following a topic's subscription events takes what following the topic takes.
        let public = |t: &String| cfg.public_topics.iter().any(|p| p.matches(guarded(t)));
        let token = auth.token(h.authorization, h.cookie, sub.access_token.as_deref());
        let checked = match token {
            None if sub.topics.iter().all(public) => Ok(None),
            None => Err(AuthError::Missing),
            Some(token) => auth.verify(token).and_then(|grant| {
                match sub
                    .topics
                    .iter()
                    .all(|t| public(t) || grant.may_subscribe(guarded(t)))
                {
                    true => Ok(Some(grant)),
                    false => Err(AuthError::Forbidden),
                }
            }),
        };
        match checked {
            Ok(grant) => {
                sub.expires_in = grant.as_ref().and_then(|g| g.remaining_secs());
                sub.user = grant.and_then(|g| g.subject);
            }
            Err(e) => return Route::Refuse(e.status(), e.reason().into()),
        }
    }
    if head.minor_version == 0 {
        sub.body = Body::Close;
    }
    if let (Some(allowed), Some(c)) = (cors, &cfg.cors) {
        sub.head = Some(preamble(
            c.apply(stream_head(), allowed),
            sub.body,
            cfg.retry,
        ));
    }
    Route::Subscribe(sub)
}

/// The topic whose authorization a subscription to `topic` needs: `T` for its
/// subscription events (`sys:subscriptions/T`), else itself.
fn guarded(topic: &str) -> &str {
    topic
        .strip_prefix(crate::worker::SUBSCRIPTIONS_PREFIX)
        .unwrap_or(topic)
}

/// The response head of every event stream (before CORS headers, if any).
pub fn stream_head() -> Response {
    Response::new(200)
        .header("Content-Type", "text/event-stream")
        .header("Cache-Control", "no-cache")
        .header("X-Accel-Buffering", "no")
}

/// What a stream starts with: its response head (`head`, plus the framing of `body`) and
/// the `retry:` line, which joins the first event's block.
pub fn preamble(head: Response, body: Body, retry: std::time::Duration) -> Bytes {
    let retry = retry_frame(retry.as_millis() as u64);
    let mut bytes = match body {
        Body::Chunked => head.header("Transfer-Encoding", "chunked").streaming(),
        Body::Close => head.streaming(),
    };
    bytes.extend_from_slice(&body.frame(&retry));
    Bytes::from(bytes)
}

/// `POST /publish`: who is publishing, where to, and how the body is framed.
fn publish(head: &RequestHead<'_>, peer: SocketAddr, shared: &Shared) -> Route {
    let cfg = &shared.config;
    let h = &head.headers;
    let grant = match publish::authorize(
        peer.ip(),
        h.authorization,
        cfg.publish_token.as_deref(),
        cfg.auth.as_deref(),
    ) {
        Ok(grant) => grant,
        Err(Refusal { status, why }) => return Route::Refuse(status, why),
    };
    let body = match (h.content_length, h.chunked) {
        (Some(n), _) => Framing::Length(n),
        (None, true) => Framing::Chunked,
        (None, false) => Framing::None,
    };
    match Target::from_query(head.query, shared.config.max_topics) {
        Ok(mut target) => {
            target.grant = grant;
            Route::Publish {
                target,
                batch: publish::is_batch(h.content_type),
                body,
                expect_continue: h.expect_continue,
            }
        }
        Err(e) => Route::Refuse(400, e.reason().into()),
    }
}

/// `GET /topics…`: with the publisher's authorization (see `conn::topics`).
fn topics(head: &RequestHead<'_>, rest: &[u8], peer: SocketAddr, shared: &Shared) -> Route {
    let cfg = &shared.config;
    let grant = match publish::authorize(
        peer.ip(),
        head.headers.authorization,
        cfg.publish_token.as_deref(),
        cfg.auth.as_deref(),
    ) {
        Ok(grant) => grant,
        Err(Refusal { status, why }) => return Route::Refuse(status, why),
    };
    match topics::parse(rest, head.query) {
        Ok(query) => Route::Topics(Topics { query, grant }),
        Err(why) => Route::Refuse(400, why),
    }
}

/// `OPTIONS`: a CORS preflight when it is one and origins are configured, else `Allow`.
fn options(head: &RequestHead<'_>, path: &[u8], shared: &Shared) -> Route {
    let h = &head.headers;
    match (
        &shared.config.cors,
        h.origin,
        h.access_control_request_method,
    ) {
        (Some(cors), Some(_), Some(method)) => {
            let (status, bytes) = cors.preflight(h.origin, Some(method), allow(path));
            Route::Answer {
                status,
                bytes,
                close: status != 204,
            }
        }
        _ => Route::Answer {
            status: 204,
            bytes: Response::new(204).header("Allow", allow(path)).empty(),
            close: false,
        },
    }
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
    let text = shared.metrics();
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
