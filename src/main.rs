//! The `ringcast` binary: flags (and `RINGCAST_*` environment variables) to a
//! [`Config`], logging, and the server until SIGTERM or SIGINT.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, ValueEnum};
use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::Arc;

use ringcast::auth::{Auth, Pattern};
use ringcast::config::{self, parse_base_path, parse_duration, parse_size, Config, Driver};
use ringcast::cors::Cors;
use ringcast::forward_auth::Settings as ForwardAuth;
use ringcast::logging;

mod flag_sources;

use flag_sources::{with_config_file, with_environment};

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A Server-Sent Events server: subscribe with GET /events?topic=T, publish with
/// POST /publish?topic=T. Every flag --foo-bar also reads RINGCAST_FOO_BAR from the
/// environment.
#[derive(Parser, Debug)]
#[command(version, about, max_term_width = 100, args_override_self = true)]
struct Flags {
    /// Address every worker listens on (SO_REUSEPORT).
    #[arg(long, env = "RINGCAST_LISTEN", default_value = "0.0.0.0:8080")]
    listen: SocketAddr,
    /// Serve TLS on --listen with this certificate chain (PEM; with --tls-key). SIGHUP
    /// reads both files again for new connections.
    #[arg(
        long,
        env = "RINGCAST_TLS_CERT",
        requires = "tls_key",
        value_name = "FILE"
    )]
    tls_cert: Option<PathBuf>,
    /// The private key of --tls-cert (PEM: PKCS#8, PKCS#1 or SEC1).
    #[arg(
        long,
        env = "RINGCAST_TLS_KEY",
        requires = "tls_cert",
        value_name = "FILE"
    )]
    tls_key: Option<PathBuf>,
    /// Also listen here in plaintext, next to the TLS listener (e.g. 127.0.0.1:8081 for
    /// health checks and metrics from loopback).
    #[arg(long, env = "RINGCAST_PLAIN_LISTEN", value_name = "ADDR")]
    plain_listen: Option<SocketAddr>,
    /// Worker threads, each with its own event loop. 0: one per usable CPU.
    #[arg(long, env = "RINGCAST_WORKERS", default_value_t = 0)]
    workers: usize,
    /// I/O driver: io_uring when available (auto), io_uring only, or epoll (legacy).
    #[arg(long, env = "RINGCAST_DRIVER", value_enum, default_value_t = DriverFlag::Auto)]
    driver: DriverFlag,
    /// Open connections allowed; over it, 503. Default: the open-file limit minus 100.
    #[arg(long, env = "RINGCAST_MAX_CONNECTIONS")]
    max_connections: Option<usize>,
    /// Largest request head; over it, 431.
    #[arg(long, env = "RINGCAST_MAX_HEAD_BYTES", default_value = "8KiB", value_parser = parse_size)]
    max_head_bytes: usize,
    /// Longest request-target; over it, 414.
    #[arg(long, env = "RINGCAST_MAX_URI_BYTES", default_value = "4KiB", value_parser = parse_size)]
    max_uri_bytes: usize,
    /// Most header lines in one request; over it, 431.
    #[arg(long, env = "RINGCAST_MAX_HEADERS", default_value_t = 100)]
    max_headers: usize,
    /// Most topics one subscribe or publish may name (at most 1024); over it, 400.
    #[arg(long, env = "RINGCAST_MAX_TOPICS", default_value_t = ringcast::topic::MAX_TOPICS)]
    max_topics: usize,
    /// Largest event (publish body, or one batch line's data); over it, 413.
    #[arg(long, env = "RINGCAST_MAX_EVENT_BYTES", default_value = "64KiB", value_parser = parse_size)]
    max_event_bytes: usize,
    /// Largest NDJSON batch body; over it, 413.
    #[arg(long, env = "RINGCAST_MAX_BATCH_BYTES", default_value = "4MiB", value_parser = parse_size)]
    max_batch_bytes: usize,
    /// The reconnection delay sent to clients as the first `retry:` frame.
    #[arg(long, env = "RINGCAST_RETRY", default_value = "3000ms", value_parser = parse_duration)]
    retry: Duration,
    /// A `:` comment goes to every connection quiet for this long.
    #[arg(long, env = "RINGCAST_HEARTBEAT", default_value = "15s", value_parser = parse_duration)]
    heartbeat: Duration,
    /// A request head must arrive within this; otherwise 408.
    #[arg(long, env = "RINGCAST_HANDSHAKE_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    handshake_timeout: Duration,
    /// An idle keep-alive (publisher) connection is closed after this.
    #[arg(long, env = "RINGCAST_KEEPALIVE_TIMEOUT", default_value = "60s", value_parser = parse_duration)]
    keepalive_timeout: Duration,
    /// A subscriber whose queued frames make no progress for this long is evicted (slow).
    #[arg(long, env = "RINGCAST_WRITE_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    write_timeout: Duration,
    /// Frames queued for one subscriber before it is evicted (slow).
    #[arg(long, env = "RINGCAST_MAX_QUEUED_FRAMES", default_value_t = config::DEFAULT_MAX_QUEUED_FRAMES)]
    max_queued_frames: usize,
    /// Bytes queued for one subscriber that is not reading before it is evicted (slow).
    #[arg(long, env = "RINGCAST_MAX_QUEUED_BYTES", default_value = "16MiB", value_parser = parse_size)]
    max_queued_bytes: usize,
    /// Kernel send buffer per subscriber (SO_SNDBUF); 0 keeps the kernel's autotuning.
    #[arg(long, env = "RINGCAST_SNDBUF", default_value = "128KiB", value_parser = parse_size)]
    sndbuf: usize,
    /// Close streams after this long, with a jittered `retry:` (off by default).
    #[arg(long, env = "RINGCAST_MAX_LIFETIME", value_parser = parse_duration)]
    max_lifetime: Option<Duration>,
    /// On SIGTERM/SIGINT, subscribers are closed in batches over this period.
    #[arg(long, env = "RINGCAST_DRAIN", default_value = "10s", value_parser = parse_duration)]
    drain: Duration,
    /// Events kept per topic for Last-Event-ID resume.
    #[arg(long, env = "RINGCAST_HISTORY", default_value_t = config::DEFAULT_HISTORY)]
    history: usize,
    /// Bytes of events kept per topic.
    #[arg(long, env = "RINGCAST_HISTORY_BYTES", default_value = "4MiB", value_parser = parse_size)]
    history_bytes: usize,
    /// Age after which events leave the history.
    #[arg(long, env = "RINGCAST_HISTORY_TTL", default_value = "1h", value_parser = parse_duration)]
    history_ttl: Duration,
    /// Bearer token that lets non-loopback peers publish.
    #[arg(long, env = "RINGCAST_PUBLISH_TOKEN", hide_env_values = true)]
    publish_token: Option<String>,
    /// Entries of each worker's private io_uring for subscriber writes.
    #[arg(long, env = "RINGCAST_RING_ENTRIES", default_value_t = 4096)]
    ring_entries: u32,
    /// Writes a worker starts per loop turn and lane (narrow topics, wide fan-outs)
    /// before serving its other tasks again.
    #[arg(long, env = "RINGCAST_FLUSH_BATCH", default_value_t = config::DEFAULT_FLUSH_BATCH)]
    flush_batch: usize,
    /// Publishes wait while published events wait longer than this in a worker's inbox,
    /// and up to this each while subscribers are saturated (overload slows publishers
    /// down rather than evicting subscribers).
    #[arg(long, env = "RINGCAST_MAX_LAG", default_value = "500ms", value_parser = parse_duration)]
    max_lag: Duration,
    /// Timer resolution: heartbeats and timeouts round up to it.
    #[arg(long, env = "RINGCAST_TICK", default_value = "10ms", value_parser = parse_duration)]
    tick: Duration,
    /// Serve every endpoint under this path prefix (e.g. /sse: the page at /sse/, the
    /// stream at /sse/events); requests outside it get 404.
    #[arg(long, env = "RINGCAST_BASE_PATH", default_value = "", value_parser = parse_base_path)]
    base_path: String,
    /// HS256 secret that signs subscriber (and publisher) JWTs; turns subscriber auth on.
    #[arg(
        long,
        env = "RINGCAST_JWT_SECRET",
        hide_env_values = true,
        conflicts_with = "jwt_public_key"
    )]
    jwt_secret: Option<String>,
    /// PEM public key (RSA: RS256, EC P-256: ES256) that verifies JWTs; turns auth on.
    #[arg(long, env = "RINGCAST_JWT_PUBLIC_KEY")]
    jwt_public_key: Option<PathBuf>,
    /// Cookie a subscriber's JWT may come in (for EventSource withCredentials).
    #[arg(long, env = "RINGCAST_AUTH_COOKIE", default_value = "ringcast_token")]
    auth_cookie: String,
    /// Also accept the JWT in an access_token query parameter (URLs end up in logs).
    #[arg(long, env = "RINGCAST_AUTH_QUERY_TOKEN")]
    auth_query_token: bool,
    /// Ask this HTTP auth server (http://host:port/path) about every subscribe: a 2xx
    /// allows (a JSON body {"topics":[...],"user":"..."} narrows), 401/403 are passed on,
    /// anything else or no answer in --auth-timeout is 503.
    #[arg(long, env = "RINGCAST_AUTH_URL")]
    auth_url: Option<String>,
    /// How long a forward-auth call may take in all (connecting included).
    #[arg(long, env = "RINGCAST_AUTH_TIMEOUT", default_value = "2s", value_parser = parse_duration)]
    auth_timeout: Duration,
    /// Reuse an allowing answer for the same Cookie, Authorization, Origin and topics
    /// this long (per worker); 0: ask every time.
    #[arg(long, env = "RINGCAST_AUTH_CACHE_TTL", default_value = "0s", value_parser = parse_duration)]
    auth_cache_ttl: Duration,
    /// Ask the auth server about publishes too (action `publish`, every topic of a batch).
    #[arg(long, env = "RINGCAST_AUTH_PUBLISH")]
    auth_publish: bool,
    /// Connections to the auth server per worker, kept alive; calls beyond wait in line.
    #[arg(long, env = "RINGCAST_AUTH_MAX_CONNS", default_value_t = ringcast::forward_auth::DEFAULT_MAX_CONNS)]
    auth_max_conns: usize,
    /// Topic (or `prefix*`) anyone may subscribe to without a token (repeatable).
    #[arg(
        long = "public-topic",
        env = "RINGCAST_PUBLIC_TOPIC",
        value_name = "TOPIC",
        value_delimiter = ','
    )]
    public_topics: Vec<String>,
    /// Origin allowed to subscribe and publish cross-origin, or `*` (repeatable).
    #[arg(
        long = "cors-origin",
        env = "RINGCAST_CORS_ORIGIN",
        value_name = "ORIGIN",
        value_delimiter = ','
    )]
    cors_origins: Vec<String>,
    /// Allow cookies and Authorization cross-origin (needs listed origins, not `*`).
    #[arg(long, env = "RINGCAST_CORS_CREDENTIALS")]
    cors_credentials: bool,
    /// Share publishes with other ringcast processes through this Redis
    /// (`redis://[:password@]host:port[/db]`); see README "Scale-out".
    #[arg(long, env = "RINGCAST_CLUSTER", hide_env_values = true)]
    cluster: Option<String>,
    /// Share the listening port with other processes already listening on it (implied
    /// by --cluster). Without it, a port in use is an error at start.
    #[arg(long, env = "RINGCAST_REUSE_PORT")]
    reuse_port: bool,
    /// Publish `join` and `leave` events on `sys:subscriptions/TOPIC` as subscribers
    /// start and stop following TOPIC, and list the users following a topic at
    /// GET /topics/TOPIC/subscribers.
    #[arg(long, env = "RINGCAST_SUBSCRIPTION_EVENTS")]
    subscription_events: bool,
    /// The Redis Stream all processes share.
    #[arg(
        long,
        env = "RINGCAST_CLUSTER_STREAM",
        default_value = "ringcast:events"
    )]
    cluster_stream: String,
    /// Entries Redis keeps in the stream (XADD MAXLEN ~): how far back a resume can reach
    /// when a process's own history does not.
    #[arg(long, env = "RINGCAST_CLUSTER_RETENTION", default_value_t = 100_000)]
    cluster_retention: usize,
    /// TOML file with any of these options (`heartbeat = "15s"`); flags and environment
    /// variables take precedence over it.
    #[arg(long, env = "RINGCAST_CONFIG")]
    config: Option<PathBuf>,
    /// Log level (also RUST_LOG): error, warn, info, debug, trace.
    #[arg(long, env = "RINGCAST_LOG_LEVEL")]
    log_level: Option<log::LevelFilter>,
    /// Log line format.
    #[arg(long, env = "RINGCAST_LOG_FORMAT", value_enum, default_value_t = LogFormat::Logfmt)]
    log_format: LogFormat,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum DriverFlag {
    Auto,
    Uring,
    Legacy,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Logfmt,
    Json,
}

impl Flags {
    fn config(self) -> Result<Config, String> {
        let auth = match (&self.jwt_secret, &self.jwt_public_key) {
            (Some(secret), _) if secret.len() < 16 => {
                return Err("--jwt-secret must be at least 16 bytes".into());
            }
            (Some(secret), _) => Some(Auth::hs256(
                secret.as_bytes(),
                self.auth_cookie.clone(),
                self.auth_query_token,
            )),
            (None, Some(path)) => {
                let pem = std::fs::read(path)
                    .map_err(|e| format!("--jwt-public-key {}: {e}", path.display()))?;
                let auth = Auth::public_key(&pem, self.auth_cookie.clone(), self.auth_query_token)
                    .map_err(|e| format!("--jwt-public-key {}: {e}", path.display()))?;
                Some(auth)
            }
            (None, None) => None,
        }
        .map(Arc::new);
        let forward_auth = match &self.auth_url {
            Some(url) => Some(Arc::new(
                ForwardAuth::new(url)?
                    .timeout(self.auth_timeout)
                    .cache_ttl(self.auth_cache_ttl)
                    .publish(self.auth_publish)
                    .max_conns(self.auth_max_conns),
            )),
            None if self.auth_publish => return Err("--auth-publish needs --auth-url".into()),
            None => None,
        };
        let cors = Cors::new(&self.cors_origins, self.cors_credentials)?.map(Arc::new);
        let cluster = self.cluster.clone().map(|url| ringcast::cluster::Settings {
            url,
            stream: self.cluster_stream.clone(),
            retention: self.cluster_retention.max(1),
            max_event_bytes: self.max_event_bytes,
        });
        let tls = match (self.tls_cert, self.tls_key) {
            (Some(cert), Some(key)) => Some(ringcast::tls::Files { cert, key }),
            _ => None,
        };
        let config = Config::new()
            .listen(self.listen)
            .tls(tls)
            .plain_listen(self.plain_listen)
            .workers(self.workers)
            .driver(match self.driver {
                DriverFlag::Auto => Driver::Auto,
                DriverFlag::Uring => Driver::Uring,
                DriverFlag::Legacy => Driver::Legacy,
            })
            .max_connections(self.max_connections)
            .max_head_bytes(self.max_head_bytes)
            .max_target_bytes(self.max_uri_bytes)
            .max_headers(self.max_headers)
            .max_topics(self.max_topics)
            .max_event_bytes(self.max_event_bytes)
            .max_batch_bytes(self.max_batch_bytes)
            .retry(self.retry)
            .heartbeat(self.heartbeat)
            .handshake_timeout(self.handshake_timeout)
            .keepalive_timeout(self.keepalive_timeout)
            .write_timeout(self.write_timeout)
            .max_queued_frames(self.max_queued_frames)
            .max_queued_bytes(self.max_queued_bytes)
            .sndbuf((self.sndbuf > 0).then_some(self.sndbuf))
            .max_lifetime(self.max_lifetime)
            .drain(self.drain)
            .history(self.history)
            .history_bytes(self.history_bytes)
            .history_ttl(self.history_ttl)
            .publish_token(self.publish_token)
            .ring_entries(self.ring_entries)
            .flush_batch(self.flush_batch)
            .max_lag(self.max_lag)
            .tick(self.tick)
            .base_path(self.base_path)
            .auth(auth)
            .forward_auth(forward_auth)
            .public_topics(
                self.public_topics
                    .iter()
                    .map(|p| Pattern::parse(p))
                    .collect(),
            )
            .cors(cors)
            .cluster(cluster)
            .reuse_port(self.reuse_port)
            .subscription_events(self.subscription_events);
        config.validate()?;
        Ok(config)
    }
}

fn main() -> ExitCode {
    // Before anything is allocated: see the function.
    ringcast::sys::disable_transparent_huge_pages();
    // Clap reads each flag's own variable; this reads the `RINGCAST_*` names it would not.
    let env: Vec<(OsString, OsString)> = std::env::vars_os().collect();
    let (args, env_notices) = with_environment(std::env::args_os().collect(), &env);
    let args = match with_config_file(args) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("ringcast: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    let flags = Flags::parse_from(args);
    let level = flags
        .log_level
        .or_else(|| std::env::var("RUST_LOG").ok().and_then(|v| v.parse().ok()))
        .unwrap_or(log::LevelFilter::Info);
    let format = match flags.log_format {
        LogFormat::Logfmt => logging::Format::Logfmt,
        LogFormat::Json => logging::Format::Json,
    };
    logging::init(format, level);
    for notice in &env_notices {
        notice.log();
    }
    let config = match flags.config() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("ringcast: invalid configuration: {e}");
            return ExitCode::from(2);
        }
    };
    match ringcast::server::run(config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            log::error!(error:% = e; "ringcast failed to start");
            ExitCode::FAILURE
        }
    }
}
