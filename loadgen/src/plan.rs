//! The plan of a run: every parameter, resolved once from the command line in
//! `cli.rs`, serialized into the JSON report and handed to each worker process.
//! Library code reads nothing else (no environment, no flags).

use std::net::{Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// Which scenario runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum Scenario {
    Idle,
    Fanout,
    Reconnect,
    Slow,
}

impl Scenario {
    pub fn name(self) -> &'static str {
        match self {
            Scenario::Idle => "idle",
            Scenario::Fanout => "fanout",
            Scenario::Reconnect => "reconnect",
            Scenario::Slow => "slow",
        }
    }
}

/// One piece of a request template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Piece {
    Lit(String),
    /// `{topic}`: the topic's name.
    Topic,
    /// `{data}`: the event data (see `payload.rs`).
    Data,
}

/// A string with `{topic}` and `{data}` placeholders, split once so that expanding it
/// per event is a few copies into a reused buffer.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Template(pub Vec<Piece>);

impl Template {
    pub fn parse(s: &str) -> Template {
        let mut pieces = Vec::new();
        let mut rest = s;
        while let Some(i) = rest.find('{') {
            let (lit, tail) = rest.split_at(i);
            let (piece, skip) = if tail.starts_with("{topic}") {
                (Some(Piece::Topic), 7)
            } else if tail.starts_with("{data}") {
                (Some(Piece::Data), 6)
            } else {
                (None, 1)
            };
            push_lit(&mut pieces, lit);
            match piece {
                Some(p) => pieces.push(p),
                None => push_lit(&mut pieces, "{"),
            }
            rest = &tail[skip..];
        }
        push_lit(&mut pieces, rest);
        Template(pieces)
    }

    pub fn has(&self, p: &Piece) -> bool {
        self.0.contains(p)
    }

    /// Appends the expansion to `out`.
    pub fn expand(&self, topic: &[u8], data: &[u8], out: &mut Vec<u8>) {
        for p in &self.0 {
            match p {
                Piece::Lit(s) => out.extend_from_slice(s.as_bytes()),
                Piece::Topic => out.extend_from_slice(topic),
                Piece::Data => out.extend_from_slice(data),
            }
        }
    }
}

fn push_lit(pieces: &mut Vec<Piece>, s: &str) {
    if s.is_empty() {
        return;
    }
    if let Some(Piece::Lit(prev)) = pieces.last_mut() {
        prev.push_str(s);
    } else {
        pieces.push(Piece::Lit(s.to_owned()));
    }
}

/// Where requests go: the socket address and the `Host` header, plus the path template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub addr: SocketAddr,
    pub host: String,
    pub path: Template,
    /// `https://`: every connection to it speaks TLS (see `tls`).
    pub tls: bool,
}

impl Endpoint {
    /// Parses `http[s]://host[:port]/path` (or a path alone, resolved against `base`).
    pub fn parse(url: &str, base: &str) -> Result<Endpoint, String> {
        let full = if url.starts_with('/') {
            format!("{}{url}", base.trim_end_matches('/'))
        } else {
            url.to_owned()
        };
        let (tls, rest, default_port) = if let Some(rest) = full.strip_prefix("https://") {
            (true, rest, 443)
        } else if let Some(rest) = full.strip_prefix("http://") {
            (false, rest, 80)
        } else {
            return Err(format!(
                "{full:?}: only http:// and https:// URLs are supported"
            ));
        };
        let (authority, path) = rest.find('/').map_or((rest, "/"), |i| rest.split_at(i));
        if authority.is_empty() {
            return Err(format!("{full:?}: no host"));
        }
        let with_port = if authority.contains(':') {
            authority.to_owned()
        } else {
            format!("{authority}:{default_port}")
        };
        let addr = with_port
            .to_socket_addrs()
            .map_err(|e| format!("{full:?}: cannot resolve {with_port}: {e}"))?
            .find(SocketAddr::is_ipv4)
            .ok_or_else(|| format!("{full:?}: {with_port} has no IPv4 address"))?;
        Ok(Endpoint {
            addr,
            host: authority.to_owned(),
            path: Template::parse(path),
            tls,
        })
    }

    /// The host without its port: the name a TLS server's certificate is checked
    /// against (and sent as SNI when it is a DNS name).
    pub fn host_name(&self) -> &str {
        let h = self.host.as_str();
        let h = match h.rfind(':') {
            Some(i) if !h[i..].contains(']') => &h[..i],
            _ => h,
        };
        h.trim_start_matches('[').trim_end_matches(']')
    }
}

/// What https connections trust (`--ca` or `--insecure`; loadgen ships no root store).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Trust {
    /// The CA certificates of this PEM file: a server's certificate must chain to one.
    Ca(PathBuf),
    /// Any certificate; the handshake's signatures are still checked.
    Insecure,
}

/// The publishing side of fanout, reconnect and slow.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Publish {
    /// Target events per second over all topics; 0 = as fast as the server answers.
    pub rate: f64,
    /// Bytes of event data.
    pub payload: usize,
    pub method: String,
    pub endpoint: Endpoint,
    pub body: Template,
    pub headers: Vec<String>,
    /// Keep-alive publisher connections; topic t is published on connection t % conns,
    /// so each topic's events are sent in order.
    pub conns: u32,
    /// Requests in flight per connection (HTTP/1.1 pipelining). Answers come back in
    /// order, so a topic's seqs stay in order on its one connection.
    pub pipeline: u32,
    /// Events per request. Above 1, each request is ringcast's NDJSON batch, sent to
    /// the publish path without its query (`/publish`).
    pub batch: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reconnect {
    /// Share of live connections dropped and re-opened each interval.
    pub fraction: f64,
    pub interval_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Slow {
    /// Share of subscribers that stop reading.
    pub share: f64,
    /// SO_RCVBUF of slow subscribers, so the server's queue fills soon.
    pub rcvbuf: usize,
    /// When, after publishing starts, slow subscribers stop reading.
    pub after_ms: u64,
}

/// The admission prober (`--probe-interval`): requests on new connections, timed from
/// the connect to their answer, for the whole run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Probe {
    pub interval_ms: u64,
    /// A probe not answered within this fails, and its time is recorded as this.
    pub timeout_ms: u64,
    /// Path of the health probe, sent to the subscribe template's host.
    pub healthz_path: String,
    /// Topic of the subscribe and publish probes: the run's prefix and `probe`, which
    /// no subscriber follows (a topic is the prefix and a number).
    pub topic: String,
    /// The scenario's publish template (idle: the target's preset); `None` when there
    /// is none (idle with `--target generic`), and then no publish probes.
    pub publish: Option<Publish>,
    /// `--probe-max-ms`: probes are judged only when this is given.
    pub max_ms: Option<u64>,
}

/// Every parameter of a run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Plan {
    pub scenario: Scenario,
    pub target: String,
    pub subscribe: Endpoint,
    pub sub_headers: Vec<String>,
    pub connections: u32,
    pub topics: u32,
    pub topic_prefix: String,
    /// New connections per second, over all processes and threads.
    pub connect_rate: f64,
    /// Connects in flight at once, over all processes and threads.
    pub connect_inflight: u32,
    pub connect_timeout_ms: u64,
    /// Hold time (idle) or publishing time (the others).
    pub duration_ms: u64,
    /// How long to wait after publishing for the last events to arrive.
    pub drain_timeout_ms: u64,
    /// Hard limit for the whole run; everything stops by then.
    pub deadline_ms: u64,
    /// Source addresses, used round-robin by connection index; empty = kernel's choice.
    pub src_ips: Vec<Ipv4Addr>,
    /// Runtime threads per worker process.
    pub threads: u32,
    pub conns_per_process: u32,
    pub server_pids: Vec<u32>,
    pub publish: Option<Publish>,
    pub reconnect: Option<Reconnect>,
    pub slow: Option<Slow>,
    pub probe: Option<Probe>,
    /// Whether any endpoint is https (subscribe, publish, or the probes' publish).
    pub tls: bool,
    /// What https connections trust; `None` when nothing speaks TLS.
    pub tls_trust: Option<Trust>,
}

impl Plan {
    pub fn topic_name(&self, topic: u32) -> String {
        format!("{}{topic}", self.topic_prefix)
    }

    /// Topic of the subscriber with global index `i`: round-robin, so topics get equal
    /// shares of subscribers.
    pub fn topic_of(&self, i: u32) -> u32 {
        i % self.topics
    }

    /// Whether subscriber `i` is one of the slow share: spread evenly over indexes (so
    /// over topics, processes and threads) by where `i * share` crosses an integer.
    pub fn is_slow(&self, i: u32) -> bool {
        self.slow.as_ref().is_some_and(|s| {
            let (a, b) = (f64::from(i) * s.share, f64::from(i + 1) * s.share);
            b.floor() > a.floor()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! template_tests {
        ($($name:ident: $input:expr => $want:expr;)*) => {$(
            #[test]
            fn $name() {
                let mut out = Vec::new();
                Template::parse($input).expand(b"T", b"D", &mut out);
                assert_eq!(String::from_utf8(out).unwrap(), $want);
            }
        )*};
    }

    template_tests! {
        ringcast_url: "/publish?topic={topic}" => "/publish?topic=T";
        body_json: "{\"channel\":\"{topic}\",\"data\":\"{data}\"}" => "{\"channel\":\"T\",\"data\":\"D\"}";
        unknown_brace: "{x}{topic}{" => "{x}T{";
        no_placeholder: "/events" => "/events";
    }

    #[test]
    fn endpoint_parsing() {
        let e = Endpoint::parse("/sub/{topic}", "http://127.0.0.1:8081/").unwrap();
        assert_eq!(e.addr, "127.0.0.1:8081".parse().unwrap());
        assert_eq!(e.host, "127.0.0.1:8081");
        assert!(e.path.has(&Piece::Topic));
        let e = Endpoint::parse("http://127.0.0.1", "ignored").unwrap();
        assert_eq!(
            (e.addr.port(), e.path.0.clone()),
            (80, vec![Piece::Lit("/".into())])
        );
        assert!(Endpoint::parse("ftp://x/", "")
            .unwrap_err()
            .contains("only http:// and https://"));
        let e = Endpoint::parse("/events", "https://127.0.0.1").unwrap();
        assert_eq!(
            (e.tls, e.addr.port(), e.host_name()),
            (true, 443, "127.0.0.1")
        );
        let e = Endpoint::parse("https://localhost:8443/p", "").unwrap();
        assert_eq!(
            (e.tls, e.host.as_str(), e.host_name()),
            (true, "localhost:8443", "localhost")
        );
        assert!(Endpoint::parse("http:///x", "")
            .unwrap_err()
            .contains("no host"));
    }

    #[test]
    fn slow_share_is_exact_and_spread() {
        let plan_with = |share| Plan {
            slow: Some(Slow {
                share,
                rcvbuf: 4096,
                after_ms: 0,
            }),
            ..crate::cli::tests::sample_plan()
        };
        let p = plan_with(0.1);
        let slow: Vec<u32> = (0..100).filter(|&i| p.is_slow(i)).collect();
        assert_eq!(slow.len(), 10);
        assert!(slow.windows(2).all(|w| w[1] - w[0] == 10), "{slow:?}");
        let p = plan_with(0.25);
        assert_eq!((0..1000).filter(|&i| p.is_slow(i)).count(), 250);
    }
}
