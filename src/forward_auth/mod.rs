//! Forward auth (`--auth-url`): before a subscribe (and, with `--auth-publish`, a
//! publish) is served, its connection's task asks an HTTP auth server whether to allow
//! it, awaiting the answer on its own worker; nothing blocks and no thread is added.
//!
//! The request is `GET <url>` with the client's `Cookie`, `Authorization` and `Origin`,
//! `X-Original-URI` (the request-target as sent), `X-Forwarded-For` (the peer's address),
//! `X-Ringcast-Action` (`subscribe` or `publish`) and `X-Ringcast-Topics` (the topics,
//! each percent-encoded, comma-separated). A 2xx allows, and an optional JSON body
//! `{"topics": [...], "user": "..."}` narrows the topics (names or `prefix*` patterns)
//! and names the user; 401 and 403 are passed on; anything else, a broken answer, a
//! refused connection or the timeout is [`Verdict::Unavailable`] (fail closed).
//!
//! Per worker: a [`pool`] of at most `max_conns` kept-alive connections, and with a TTL a
//! [`cache`] of allowing answers keyed by the credentials, the action and the topics.

mod cache;
pub mod client;
pub mod pool;
mod request;

use std::cell::RefCell;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use crate::auth::Pattern;
use crate::http::parse::KnownHeaders;
use cache::Cache;
use client::{Answer, Failure};
use pool::Pool;
use request::request;

/// Long enough for an auth server that checks a session store, short enough that a
/// subscriber is told 503 (and retries) before a browser gives up on the request.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(2);
/// Connections per worker to the auth server: at 1 ms an answer, 32 carry 32,000 checks
/// a second per worker, more than a worker accepts; and the auth server sees at most
/// 32 × workers connections from one ringcast.
pub const DEFAULT_MAX_CONNS: usize = 32;

/// Where and how to ask.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The URL as given (for logs).
    pub url: String,
    /// Resolved once at start.
    addr: SocketAddr,
    /// The `Host` header: the URL's authority.
    host: String,
    /// The path and query to `GET`.
    path: String,
    /// Covers the whole call: waiting for a connection, connecting, asking, the answer.
    pub timeout: Duration,
    /// How long an allowing answer is reused; zero: never.
    pub cache_ttl: Duration,
    /// Publishes are asked too.
    pub publish: bool,
    pub max_conns: usize,
}

impl Settings {
    /// From `http://host[:port][/path]`: anything else is an error naming the flag.
    pub fn new(url: &str) -> Result<Settings, String> {
        let bad = |why: &str| format!("--auth-url {url:?}: {why}");
        let rest = match url.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
            Some((scheme, _)) if scheme.eq_ignore_ascii_case("https") => {
                return Err(bad(
                    "TLS (https://) is not supported; use http:// on a trusted network",
                ))
            }
            _ => return Err(bad("not an http://host:port/path URL")),
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], rest[i..].to_string()),
            Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
            None => (rest, "/".to_string()),
        };
        if authority.is_empty() || authority.contains('@') {
            return Err(bad("needs a host (and no user info)"));
        }
        if path.contains('#') || path.bytes().any(|b| !b.is_ascii_graphic()) {
            return Err(bad("the path must be visible ASCII without a fragment"));
        }
        let with_port = match authority.rsplit_once(':') {
            Some((_, port)) if !authority.ends_with(']') => {
                port.parse::<u16>().map_err(|_| bad("bad port"))?;
                authority.to_string()
            }
            _ => format!("{authority}:80"),
        };
        let addr = with_port
            .to_socket_addrs()
            .map_err(|e| bad(&format!("cannot resolve the host: {e}")))?
            .next()
            .ok_or_else(|| bad("the host has no address"))?;
        Ok(Settings {
            url: url.to_string(),
            addr,
            host: authority.to_string(),
            path,
            timeout: DEFAULT_TIMEOUT,
            cache_ttl: Duration::ZERO,
            publish: false,
            max_conns: DEFAULT_MAX_CONNS,
        })
    }

    #[must_use]
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    #[must_use]
    pub fn cache_ttl(mut self, ttl: Duration) -> Self {
        self.cache_ttl = ttl;
        self
    }

    #[must_use]
    pub fn publish(mut self, publish: bool) -> Self {
        self.publish = publish;
        self
    }

    #[must_use]
    pub fn max_conns(mut self, max: usize) -> Self {
        self.max_conns = max;
        self
    }
}

/// What is asked about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Subscribe,
    Publish,
}

impl Action {
    pub const fn name(self) -> &'static str {
        match self {
            Action::Subscribe => "subscribe",
            Action::Publish => "publish",
        }
    }
}

/// What of the client's request is forwarded, copied out of the request head (whose
/// buffer is reused before the auth server answers).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Credentials {
    pub cookie: Option<Vec<u8>>,
    pub authorization: Option<Vec<u8>>,
    pub origin: Option<Vec<u8>>,
    /// The request-target as sent.
    pub target: Vec<u8>,
    pub peer: Option<IpAddr>,
}

impl Credentials {
    pub fn from_head(h: &KnownHeaders<'_>, target: &[u8], peer: IpAddr) -> Credentials {
        Credentials {
            cookie: h.cookie.map(<[u8]>::to_vec),
            authorization: h.authorization.map(<[u8]>::to_vec),
            origin: h.origin.map(<[u8]>::to_vec),
            target: target.to_vec(),
            peer: Some(peer),
        }
    }
}

/// What an allowing answer says.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Grant {
    /// The topics allowed (names or `prefix*`); None: every topic asked for.
    pub topics: Option<Vec<Pattern>>,
    pub user: Option<String>,
}

impl Grant {
    pub fn allows(&self, topic: &str) -> bool {
        self.topics
            .as_ref()
            .is_none_or(|allowed| allowed.iter().any(|p| p.matches(topic)))
    }
}

/// The decision.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    Allow(Grant),
    /// 401 or 403, passed on.
    Deny(u16),
    /// Answer 503 (with `Retry-After`): the auth server could not say, and why.
    Unavailable(String),
}

/// How a check ended, for `/metrics`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    Allow,
    Deny,
    Error,
    Timeout,
    Cached,
}

impl Outcome {
    pub const ALL: [Outcome; 5] = [
        Outcome::Allow,
        Outcome::Deny,
        Outcome::Error,
        Outcome::Timeout,
        Outcome::Cached,
    ];

    pub const fn index(self) -> usize {
        self as usize
    }

    pub const fn name(self) -> &'static str {
        match self {
            Outcome::Allow => "allow",
            Outcome::Deny => "deny",
            Outcome::Error => "error",
            Outcome::Timeout => "timeout",
            Outcome::Cached => "cached",
        }
    }
}

/// A worker's pool and cache (one per thread: a worker is a thread).
struct Local {
    settings: Arc<Settings>,
    pool: Rc<Pool>,
    cache: RefCell<Cache>,
}

thread_local! {
    static LOCAL: RefCell<Option<Rc<Local>>> = const { RefCell::new(None) };
}

fn local(settings: &Arc<Settings>) -> Rc<Local> {
    LOCAL.with(|cell| {
        let mut slot = cell.borrow_mut();
        match &*slot {
            Some(l) if Arc::ptr_eq(&l.settings, settings) => l.clone(),
            _ => {
                let l = Rc::new(Local {
                    settings: settings.clone(),
                    pool: Pool::new(settings.max_conns),
                    cache: RefCell::new(Cache::new()),
                });
                *slot = Some(l.clone());
                l
            }
        }
    })
}

/// Asks whether `who` may `action` on `topics` (the cache first, when on).
pub async fn check(
    settings: &Arc<Settings>,
    action: Action,
    who: &Credentials,
    topics: &[&str],
) -> (Verdict, Outcome) {
    let local = local(settings);
    let ttl = settings.cache_ttl;
    let key = (!ttl.is_zero()).then(|| cache::key(action, who, topics));
    if let Some(grant) = key.as_ref().and_then(|k| local.cache.borrow_mut().get(k)) {
        return (Verdict::Allow(grant), Outcome::Cached);
    }
    let request = request(settings, action, who, topics);
    let asked = monoio::time::timeout(settings.timeout, ask(&local, request)).await;
    let (verdict, outcome) = match asked {
        Err(_) => (
            Verdict::Unavailable(format!(
                "the auth server did not answer within {:?}",
                settings.timeout
            )),
            Outcome::Timeout,
        ),
        Ok(Err(why)) => (Verdict::Unavailable(why), Outcome::Error),
        Ok(Ok(answer)) => judge(answer),
    };
    if let (Some(key), Verdict::Allow(grant)) = (key, &verdict) {
        local.cache.borrow_mut().put(key, grant.clone(), ttl);
    }
    (verdict, outcome)
}

/// Sends the request on a kept-alive connection (again on a new one if the kept one
/// turns out closed) or a new one.
async fn ask(local: &Local, request: Vec<u8>) -> Result<Answer, String> {
    let permit = local.pool.permit().await;
    let fail = |e: String| format!("auth server {}: {e}", local.settings.url);
    if let Some(stream) = local.pool.take_idle(&permit) {
        match client::exchange(stream, request.clone()).await {
            Ok((answer, back)) => {
                if let Some(stream) = back {
                    local.pool.put_idle(stream, &permit);
                }
                return Ok(answer);
            }
            Err(Failure::Unanswered(_)) => {}
            Err(Failure::Broken(why)) => return Err(fail(why)),
        }
    }
    let stream = monoio::net::TcpStream::connect(local.settings.addr)
        .await
        .map_err(|e| fail(format!("connect: {e}")))?;
    let _ = stream.set_nodelay(true);
    match client::exchange(stream, request).await {
        Ok((answer, back)) => {
            if let Some(stream) = back {
                local.pool.put_idle(stream, &permit);
            }
            Ok(answer)
        }
        Err(Failure::Unanswered(e)) => Err(fail(format!("no answer: {e}"))),
        Err(Failure::Broken(why)) => Err(fail(why)),
    }
}

/// The allowing answer's optional body.
#[derive(Deserialize)]
struct Body {
    topics: Option<Vec<String>>,
    user: Option<String>,
}

/// The verdict an answer gives.
fn judge(answer: Answer) -> (Verdict, Outcome) {
    match answer.status {
        200..=299 => match grant(&answer) {
            Ok(grant) => (Verdict::Allow(grant), Outcome::Allow),
            Err(why) => (
                Verdict::Unavailable(format!("auth server answer: {why}")),
                Outcome::Error,
            ),
        },
        status @ (401 | 403) => (Verdict::Deny(status), Outcome::Deny),
        status => (
            Verdict::Unavailable(format!("auth server answered {status}")),
            Outcome::Error,
        ),
    }
}

/// The grant in a 2xx body: a JSON object when it is one (by type or by its first
/// byte), and anything else (`OK`, empty) allows as asked.
fn grant(answer: &Answer) -> Result<Grant, String> {
    let first = answer.body.iter().find(|b| !b.is_ascii_whitespace());
    if !answer.json && first != Some(&b'{') || first.is_none() {
        return Ok(Grant::default());
    }
    let body: Body =
        serde_json::from_slice(&answer.body).map_err(|e| format!("bad JSON body: {e}"))?;
    Ok(Grant {
        topics: body
            .topics
            .map(|t| t.iter().map(|p| Pattern::parse(p)).collect()),
        user: body.user,
    })
}

#[cfg(test)]
mod tests;
