//! Every tunable of the server, as one plain value.
//!
//! `main.rs` builds a [`Config`] once from flags, environment and an optional file, and
//! passes it down; library code never reads the environment. Tests build
//! `Config::new().heartbeat(ms(50))` instead of sleeping for seconds.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::auth::{Auth, Pattern};
use crate::cors::Cors;

/// Below the idle timeouts of common proxies and load balancers (nginx 60 s, AWS ALB 60 s),
/// with room for one lost heartbeat.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(15);
/// Long enough for a slow mobile client to send a head, short enough to shed slowloris.
pub const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a publisher's keep-alive connection may sit between requests.
pub const DEFAULT_KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a subscriber's write may make no progress before it is evicted as slow: a
/// reader that takes this long to take a few frames is not keeping up.
pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// What `EventSource` waits before reconnecting; the first frame of every stream.
pub const DEFAULT_RETRY: Duration = Duration::from_millis(3000);
/// How long SIGTERM/SIGINT spreads the closing of subscribers over.
pub const DEFAULT_DRAIN: Duration = Duration::from_secs(10);
/// Per-topic history: enough for a client to survive a short network drop at 10 events/s.
pub const DEFAULT_HISTORY: usize = 1000;
pub const DEFAULT_HISTORY_BYTES: usize = 4 << 20;
pub const DEFAULT_HISTORY_TTL: Duration = Duration::from_secs(3600);
/// Frames queued for one subscriber before it is evicted as slow.
pub const DEFAULT_MAX_QUEUED_FRAMES: usize = 1024;
/// The byte side of the same bound: frames are shared, but a reader that stopped keeps
/// every frame it holds alive after the others have sent it. Four times the default
/// history of one topic, so a resume's replay (which counts) fits with room to spare.
pub const DEFAULT_MAX_QUEUED_BYTES: usize = 16 << 20;
/// Kernel send buffer per subscriber (the kernel doubles it for bookkeeping). Bounded so a
/// reader that stopped reading pins at most this much kernel memory; autotuning would let
/// it grow to `tcp_wmem` max (4 MiB).
pub const DEFAULT_SNDBUF: usize = 128 << 10;
/// Writes started per loop turn (see `Config::flush_batch`). A coalesced write under
/// 1 KiB saturation costs up to about 0.4 ms here, so 128 made turns of up to 58 ms; at 32
/// new connections waited at most 51-113 ms instead of 102-132 ms (19,000 subscribers),
/// and more frames waited to share each write: 1.87-1.89 M deliveries/s at 0.57 CPU-s
/// per million instead of 1.55 M at 0.65 (BENCHMARKS.md, admission under saturation).
pub const DEFAULT_FLUSH_BATCH: usize = 32;
/// How long published events may wait in a worker's inbox before publishes wait, and
/// how long each publish waits while subscribers are saturated (see `Capacity`).
pub const DEFAULT_MAX_LAG: Duration = Duration::from_millis(500);
/// Timer wheel resolution: heartbeats and timeouts are rounded up to this.
pub const DEFAULT_TICK: Duration = Duration::from_millis(10);

/// Which io driver the workers run on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Driver {
    /// io_uring when the kernel allows it, else epoll.
    Auto,
    /// io_uring or fail.
    Uring,
    /// epoll (monoio's legacy driver), for kernels or sandboxes without io_uring.
    Legacy,
}

/// The whole configuration. Defaults are the documented ones; see `--help`.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where every worker's SO_REUSEPORT listener binds.
    pub listen: SocketAddr,
    /// With these, `listen` speaks TLS (`--tls-cert`, `--tls-key`).
    pub tls: Option<crate::tls::Files>,
    /// A plaintext listener next to the TLS one, e.g. for health checks from loopback.
    pub plain_listen: Option<SocketAddr>,
    /// Worker threads, each with its own runtime and listener. 0 means one per usable CPU.
    pub workers: usize,
    pub driver: Driver,
    /// Open connections (all kinds) per process; None means the open-file limit minus a reserve.
    pub max_connections: Option<usize>,
    /// Cap on a request head; over it, 431.
    pub max_head_bytes: usize,
    /// Cap on the request-target; over it, 414.
    pub max_target_bytes: usize,
    /// Cap on header lines in one head; over it, 431.
    pub max_headers: usize,
    /// Topics one subscribe or publish may name; over it, 400.
    pub max_topics: usize,
    /// Cap on one event's data (a publish body, or one NDJSON line's data); over it, 413.
    pub max_event_bytes: usize,
    /// Cap on a whole NDJSON batch body; over it, 413.
    pub max_batch_bytes: usize,
    /// The `retry:` hint sent first on every stream.
    pub retry: Duration,
    pub heartbeat: Duration,
    pub handshake_timeout: Duration,
    pub keepalive_timeout: Duration,
    pub write_timeout: Duration,
    pub max_queued_frames: usize,
    /// Bytes a subscriber that is not reading may have queued before it is evicted.
    pub max_queued_bytes: usize,
    /// SO_SNDBUF for subscribers; None keeps the kernel's autotuning.
    pub sndbuf: Option<usize>,
    /// Close streams after this long (with a jittered `retry:`) so load rebalances.
    pub max_lifetime: Option<Duration>,
    pub drain: Duration,
    pub history: usize,
    pub history_bytes: usize,
    pub history_ttl: Duration,
    /// Bearer token that allows publishing from non-loopback peers.
    pub publish_token: Option<String>,
    /// Entries of each worker's private io_uring for subscriber writes.
    pub ring_entries: u32,
    /// Writes a worker starts per loop turn from each lane of its dirty list (narrow
    /// topics, wide fan-outs) before it lets its other tasks (publishes, accepts) run:
    /// bounds how long a large fan-out holds up a publish.
    pub flush_batch: usize,
    /// How long published events may wait for a worker (in its inbox, or queued for a
    /// subscriber whose write it has not started) before publishes wait for it to catch
    /// up: overload slows publishers down instead of evicting subscribers.
    pub max_lag: Duration,
    pub tick: Duration,
    /// Where every endpoint lives (`/sse` puts the page at `/sse/` and the stream at
    /// `/sse/events`); empty for the root. Normalized: a leading `/`, no trailing one.
    pub base_path: String,
    /// Verifies subscriber (and publisher) JWTs; None leaves subscribing open.
    pub auth: Option<Arc<Auth>>,
    /// Asks an HTTP auth server about each subscribe (and publish); None: nobody asked.
    pub forward_auth: Option<Arc<crate::forward_auth::Settings>>,
    /// Topics anyone may subscribe to without a token while `auth` is on (patterns).
    pub public_topics: Vec<Pattern>,
    /// Cross-origin access; None answers no origin.
    pub cors: Option<Arc<Cors>>,
    /// Share publishes with other processes through Redis; None: this process alone.
    pub cluster: Option<crate::cluster::Settings>,
    /// Share the listening port with other processes (SO_REUSEPORT across processes).
    /// Off, a port some other socket already listens on is refused at start: a forgotten
    /// ringcast silently taking half the connections is a trap. Cluster mode shares.
    pub reuse_port: bool,
    /// Publish `join`/`leave` on `sys:subscriptions/T` as subscribers come and go, and
    /// keep the users following each topic (`GET /topics/T/subscribers`).
    pub subscription_events: bool,
}

impl Config {
    pub const fn new() -> Self {
        Config {
            listen: SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 8080),
            tls: None,
            plain_listen: None,
            workers: 0,
            driver: Driver::Auto,
            max_connections: None,
            max_head_bytes: 8 << 10,
            max_target_bytes: 4 << 10,
            max_headers: 100,
            max_topics: crate::topic::MAX_TOPICS,
            max_event_bytes: 64 << 10,
            max_batch_bytes: 4 << 20,
            retry: DEFAULT_RETRY,
            heartbeat: DEFAULT_HEARTBEAT,
            handshake_timeout: DEFAULT_HANDSHAKE_TIMEOUT,
            keepalive_timeout: DEFAULT_KEEPALIVE_TIMEOUT,
            write_timeout: DEFAULT_WRITE_TIMEOUT,
            max_queued_frames: DEFAULT_MAX_QUEUED_FRAMES,
            max_queued_bytes: DEFAULT_MAX_QUEUED_BYTES,
            sndbuf: Some(DEFAULT_SNDBUF),
            max_lifetime: None,
            drain: DEFAULT_DRAIN,
            history: DEFAULT_HISTORY,
            history_bytes: DEFAULT_HISTORY_BYTES,
            history_ttl: DEFAULT_HISTORY_TTL,
            publish_token: None,
            ring_entries: 4096,
            flush_batch: DEFAULT_FLUSH_BATCH,
            max_lag: DEFAULT_MAX_LAG,
            tick: DEFAULT_TICK,
            base_path: String::new(),
            auth: None,
            forward_auth: None,
            public_topics: Vec::new(),
            cors: None,
            cluster: None,
            reuse_port: false,
            subscription_events: false,
        }
    }
}

impl Config {
    /// Checks the values that no type rules out, naming the flag each comes from. The
    /// server checks it at start, so library callers and tests get the same answers as
    /// the command line.
    pub fn validate(&self) -> Result<(), String> {
        if self.tick.is_zero() {
            return Err("--tick must be at least 1ms".into());
        }
        if self.heartbeat.is_zero()
            || self.handshake_timeout.is_zero()
            || self.write_timeout.is_zero()
        {
            return Err(
                "--heartbeat, --handshake-timeout and --write-timeout must be above zero".into(),
            );
        }
        if self.max_queued_frames == 0 {
            return Err("--max-queued-frames must be at least 1".into());
        }
        if self.max_queued_bytes < 64 << 10 {
            return Err("--max-queued-bytes must be at least 64KiB".into());
        }
        if !(1..=crate::topic::MAX_TOPICS_CAP).contains(&self.max_topics) {
            return Err(format!(
                "--max-topics must be 1 to {}",
                crate::topic::MAX_TOPICS_CAP
            ));
        }
        if self.max_head_bytes < 256 {
            return Err("--max-head-bytes must be at least 256".into());
        }
        if self.flush_batch == 0 {
            return Err("--flush-batch must be at least 1".into());
        }
        if self.auth.is_none() && !self.public_topics.is_empty() {
            return Err("--public-topic needs --jwt-secret or --jwt-public-key".into());
        }
        if let Some(f) = &self.forward_auth {
            if f.timeout.is_zero() || f.max_conns == 0 {
                return Err("--auth-timeout and --auth-max-conns must be above zero".into());
            }
        }
        if let Some(cluster) = &self.cluster {
            check_redis_url(&cluster.url)?;
        }
        if self.plain_listen.is_some() && self.tls.is_none() {
            return Err("--plain-listen needs --tls-cert and --tls-key".into());
        }
        Ok(())
    }
}

/// A `--cluster` URL this binary can connect to: `redis://host:port`.
fn check_redis_url(url: &str) -> Result<(), String> {
    match url.split_once("://") {
        Some(("redis", rest)) if !rest.is_empty() => Ok(()),
        Some(("rediss", _)) => {
            Err("--cluster: TLS (rediss://) is not built into this binary".into())
        }
        _ => Err(format!("--cluster {url:?} is not a redis://host:port URL")),
    }
}

impl Default for Config {
    fn default() -> Self {
        Self::new()
    }
}

macro_rules! setters {
    ($($name:ident: $ty:ty),* $(,)?) => {
        impl Config {
            $(
                #[must_use]
                pub fn $name(mut self, $name: $ty) -> Self {
                    self.$name = $name;
                    self
                }
            )*
        }
    };
}

setters! {
    listen: SocketAddr, tls: Option<crate::tls::Files>, plain_listen: Option<SocketAddr>, workers: usize, driver: Driver, max_connections: Option<usize>,
    max_head_bytes: usize, max_target_bytes: usize, max_headers: usize,
    max_topics: usize, max_event_bytes: usize, max_batch_bytes: usize, retry: Duration, heartbeat: Duration,
    handshake_timeout: Duration, keepalive_timeout: Duration, write_timeout: Duration,
    max_queued_frames: usize, max_queued_bytes: usize, sndbuf: Option<usize>, max_lifetime: Option<Duration>,
    drain: Duration, history: usize, history_bytes: usize, history_ttl: Duration,
    publish_token: Option<String>, ring_entries: u32, flush_batch: usize, max_lag: Duration, tick: Duration, base_path: String,
    auth: Option<Arc<Auth>>, forward_auth: Option<Arc<crate::forward_auth::Settings>>, public_topics: Vec<Pattern>, cors: Option<Arc<Cors>>,
    cluster: Option<crate::cluster::Settings>, reuse_port: bool, subscription_events: bool,
}

/// Parses `200ms`, `15s`, `2m`, `1h`, `1d` (a bare number is seconds).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration (e.g. 200ms, 15s, 1h)"))?;
    let ms = match unit.trim() {
        "ms" => Some(n),
        "" | "s" => n.checked_mul(1000),
        "m" | "min" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        "d" => n.checked_mul(86_400_000),
        other => {
            return Err(format!(
                "unknown duration unit `{other}` in `{s}` (ms, s, m, h, d)"
            ))
        }
    };
    ms.map(Duration::from_millis)
        .ok_or_else(|| format!("duration `{s}` is too large"))
}

/// Parses `65536`, `64KiB`, `4MiB`, `1GiB` (also `K`, `KB`, `M`, `MB`, as binary units).
pub fn parse_size(s: &str) -> Result<usize, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: usize = num
        .parse()
        .map_err(|_| format!("`{s}` is not a size (e.g. 65536, 64KiB, 4MiB)"))?;
    let shift = match unit.trim() {
        "" | "B" => 0,
        "K" | "KB" | "KiB" => 10,
        "M" | "MB" | "MiB" => 20,
        "G" | "GB" | "GiB" => 30,
        other => {
            return Err(format!(
                "unknown size unit `{other}` in `{s}` (KiB, MiB, GiB)"
            ))
        }
    };
    n.checked_mul(1 << shift)
        .ok_or_else(|| format!("size `{s}` is too large"))
}

/// Parses a path prefix: `/sse`, `/sse/` and `sse` all become `/sse`; `` and `/` become
/// the root (empty). Segments are what may appear in a URL path without encoding, so the
/// prefix can be compared with request targets byte for byte.
pub fn parse_base_path(s: &str) -> Result<String, String> {
    let trimmed = s.trim().trim_matches('/');
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    let ok = trimmed.split('/').all(|segment| {
        !segment.is_empty()
            && segment != "."
            && segment != ".."
            && segment
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@".contains(&b))
    });
    if !ok {
        return Err(format!(
            "`{s}` is not a path prefix (e.g. /sse; segments of A-Z a-z 0-9 - . _ ~ and sub-delims)"
        ));
    }
    Ok(format!("/{trimmed}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validate_names_the_flag_of_each_bad_value() {
        assert_eq!(Config::new().validate(), Ok(()));
        let cases: [(Config, &str); 9] = [
            (Config::new().max_topics(0), "--max-topics"),
            (Config::new().max_topics(1025), "--max-topics"),
            (Config::new().tick(Duration::ZERO), "--tick"),
            (Config::new().heartbeat(Duration::ZERO), "--heartbeat"),
            (
                Config::new().write_timeout(Duration::ZERO),
                "--write-timeout",
            ),
            (Config::new().max_queued_frames(0), "--max-queued-frames"),
            (Config::new().max_head_bytes(255), "--max-head-bytes"),
            (Config::new().flush_batch(0), "--flush-batch"),
            (
                Config::new().public_topics(vec![crate::auth::Pattern::parse("news")]),
                "--public-topic",
            ),
        ];
        for (config, flag) in cases {
            let why = config.validate().expect_err(flag);
            assert!(why.contains(flag), "{flag}: {why}");
        }
    }

    #[test]
    fn cluster_urls_are_checked() {
        assert_eq!(check_redis_url("redis://127.0.0.1:6379"), Ok(()));
        assert!(check_redis_url("rediss://h:1").unwrap_err().contains("TLS"));
        assert!(check_redis_url("http://h:1").is_err());
        assert!(check_redis_url("redis://").is_err());
    }

    macro_rules! table {
        ($f:ident: $($input:expr => $want:expr),* $(,)?) => {
            $( assert_eq!($f($input), $want, "input {:?}", $input); )*
        };
    }

    #[test]
    fn durations_take_units() {
        let ms = |n| Ok(Duration::from_millis(n));
        table!(parse_duration:
            "200ms" => ms(200), "15s" => ms(15_000), "15" => ms(15_000), "2m" => ms(120_000),
            "1h" => ms(3_600_000), "1d" => ms(86_400_000), " 3s " => ms(3000),
        );
        assert!(parse_duration("").is_err());
        assert!(parse_duration("s").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("10x").is_err());
        assert!(parse_duration("99999999999999999999h").is_err());
    }

    #[test]
    fn sizes_take_binary_units() {
        table!(parse_size:
            "65536" => Ok(65536), "64KiB" => Ok(65536), "64K" => Ok(65536),
            "4MiB" => Ok(4 << 20), "1GiB" => Ok(1 << 30), "0" => Ok(0),
        );
        assert!(parse_size("1TiB").is_err());
        assert!(parse_size("KiB").is_err());
        assert!(parse_size("-5").is_err());
    }

    #[test]
    fn base_paths_are_normalized() {
        let ok = |p: &str| Ok(p.to_string());
        table!(parse_base_path:
            "" => ok(""), "/" => ok(""), "/sse" => ok("/sse"), "/sse/" => ok("/sse"),
            "sse" => ok("/sse"), "/a/b" => ok("/a/b"), " /x-1.y_z~ " => ok("/x-1.y_z~"),
        );
        for bad in [
            "/a//b", "/a b", "/a?b", "/a#b", "/../x", "/./x", "/é", "/a%20b",
        ] {
            assert!(parse_base_path(bad).is_err(), "{bad}");
        }
    }
}
