//! The command line: scenarios as subcommands, flags with units, presets per target
//! server, and the checks that turn bad arguments into one clear message. The result
//! is a [`Plan`].

use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

mod resolve;

pub use resolve::resolve;

use crate::probe::args::ProbeArgs;
use crate::units::{parse_duration, parse_ip_list, parse_size};

/// Connections per worker process: the open-file limit here is 20,000 and a process
/// needs a few dozen descriptors of its own (rings, pipes, stdio).
pub const DEFAULT_CONNS_PER_PROCESS: u32 = 19_000;

#[derive(Debug, Parser)]
#[command(
    name = "loadgen",
    version,
    about = "Load generator for Server-Sent Events servers"
)]
pub struct Cli {
    /// Internal: run as a worker process (plan on stdin, results on stdout).
    #[arg(long, hide = true)]
    pub child: bool,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Open N subscribers at a rate, hold them, report connect figures and memory.
    Idle(IdleArgs),
    /// N subscribers over T topics, publish at R events/s: throughput, latency, loss.
    Fanout(FanoutArgs),
    /// Like fanout, but drop and resume a share of subscribers with Last-Event-ID.
    Reconnect(ReconnectArgs),
    /// Like fanout, but a share of subscribers stops reading: effect and evictions.
    Slow(SlowArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Target {
    /// ringcast: GET /events?topic=T, POST /publish?topic=T.
    Ringcast,
    /// Nchan: GET /sub/T, POST /pub/T (Accept: text/json).
    Nchan,
    /// No defaults: give --sub-url and --pub-url.
    Generic,
}

#[derive(Debug, Args)]
pub struct Common {
    /// Preset URL templates for a known server.
    #[arg(long, value_enum, default_value = "ringcast")]
    pub target: Target,
    /// Base URL that path-only templates are resolved against.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    pub server: String,
    /// Subscribe URL template ({topic}); a path is resolved against --server.
    #[arg(long)]
    pub sub_url: Option<String>,
    /// Extra subscribe request header, "Name: value" (repeatable).
    #[arg(long = "sub-header")]
    pub sub_headers: Vec<String>,
    /// https: PEM file with the CA certificate(s) the server's certificate must chain to.
    #[arg(long, value_name = "FILE", conflicts_with = "insecure")]
    pub ca: Option<PathBuf>,
    /// https: accept any server certificate (handshake signatures are still checked).
    #[arg(long)]
    pub insecure: bool,
    /// Subscriber connections.
    #[arg(short = 'n', long, default_value_t = 1000)]
    pub connections: u32,
    /// Topics; subscriber i follows topic i % T.
    #[arg(short = 't', long, default_value_t = 10)]
    pub topics: u32,
    /// Topic name prefix (default: "lg<pid>-", unique per run, so runs never share history).
    #[arg(long)]
    pub topic_prefix: Option<String>,
    /// New connections per second.
    #[arg(long, default_value_t = 2000.0)]
    pub connect_rate: f64,
    /// Connects in flight at once.
    #[arg(long, default_value_t = 256)]
    pub connect_inflight: u32,
    /// Time for connect + response head, e.g. 5s.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub connect_timeout: Duration,
    /// Hold (idle) or publishing (other scenarios) time, e.g. 10s.
    #[arg(short = 'd', long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Wait this long after publishing for the last events.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub drain_timeout: Duration,
    /// Hard limit for the whole run (default: ramp-up + duration + drain + 30s).
    #[arg(long, value_parser = parse_duration)]
    pub deadline: Option<Duration>,
    /// Source addresses: "127.0.0.2-127.0.0.17" or a comma list (default: kernel's choice).
    #[arg(long, value_parser = parse_src_ips)]
    pub src_ips: Option<SrcIps>,
    /// Runtime threads per worker process (default: CPUs available).
    #[arg(long)]
    pub threads: Option<u32>,
    /// Connections per worker process; more connections start more processes.
    #[arg(long, default_value_t = DEFAULT_CONNS_PER_PROCESS)]
    pub conns_per_process: u32,
    /// Server process to measure (RSS, CPU); repeat to sum several processes.
    #[arg(long = "server-pid")]
    pub server_pids: Vec<u32>,
    /// Write every figure, the parameters and the environment to this JSON file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// No live progress line.
    #[arg(short, long)]
    pub quiet: bool,
    #[command(flatten)]
    pub probe: ProbeArgs,
}

#[derive(Debug, Args)]
pub struct PublishArgs {
    /// Events per second over all topics; 0 = as fast as the server answers.
    #[arg(short = 'r', long, default_value_t = 1000.0)]
    pub rate: f64,
    /// Bytes of event data (with units: 64, 1KiB).
    #[arg(short = 'p', long, default_value = "64", value_parser = parse_size)]
    pub payload: usize,
    /// Publish URL template ({topic}); a path is resolved against --server.
    #[arg(long)]
    pub pub_url: Option<String>,
    /// Publish method.
    #[arg(long, default_value = "POST")]
    pub pub_method: String,
    /// Publish body template ({data}, {topic}).
    #[arg(long, default_value = "{data}")]
    pub pub_body: String,
    /// Extra publish request header, "Name: value" (repeatable).
    #[arg(long = "pub-header")]
    pub pub_headers: Vec<String>,
    /// Publisher keep-alive connections (topics are split among them).
    #[arg(long, default_value_t = 1)]
    pub pub_conns: u32,
    /// Requests in flight per publisher connection (HTTP/1.1 pipelining), 1 to 1024.
    #[arg(long, default_value_t = 1)]
    pub pub_pipeline: u32,
    /// Events per publish request, 1 to 1024; above 1, ringcast's NDJSON batch (--target ringcast only).
    #[arg(long, default_value_t = 1)]
    pub pub_batch: u32,
}

#[derive(Debug, Args)]
pub struct IdleArgs {
    #[command(flatten)]
    pub common: Common,
}

#[derive(Debug, Args)]
pub struct FanoutArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub publish: PublishArgs,
}

#[derive(Debug, Args)]
pub struct ReconnectArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub publish: PublishArgs,
    /// Share of live connections dropped and resumed each interval (0-1].
    #[arg(long, default_value_t = 0.1)]
    pub reconnect_fraction: f64,
    /// How often a share is dropped.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    pub reconnect_interval: Duration,
}

#[derive(Debug, Args)]
pub struct SlowArgs {
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub publish: PublishArgs,
    /// Share of subscribers that stop reading (0-1).
    #[arg(long, default_value_t = 0.1)]
    pub slow_share: f64,
    /// SO_RCVBUF of slow subscribers.
    #[arg(long, default_value = "4KiB", value_parser = parse_size)]
    pub slow_rcvbuf: usize,
    /// When slow subscribers stop reading, after publishing starts (default: a third of --duration).
    #[arg(long, value_parser = parse_duration)]
    pub slow_after: Option<Duration>,
}

/// What `main` needs besides the plan.
pub struct Output {
    pub json: Option<PathBuf>,
    pub quiet: bool,
}

/// The parsed `--src-ips` (one flag value holding many addresses).
#[derive(Debug, Clone)]
pub struct SrcIps(pub Vec<Ipv4Addr>);

fn parse_src_ips(s: &str) -> Result<SrcIps, String> {
    parse_ip_list(s).map(SrcIps)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::plan::Plan;

    pub(crate) fn sample_plan() -> Plan {
        plan_of(&["idle", "-n", "10"])
    }

    pub(crate) fn plan_of(args: &[&str]) -> Plan {
        let cli =
            Cli::try_parse_from(std::iter::once("loadgen").chain(args.iter().copied())).unwrap();
        resolve(cli.command.unwrap()).unwrap().0
    }

    macro_rules! reject_tests {
        ($($name:ident: $args:expr => $needle:expr;)*) => {$(
            #[test]
            fn $name() {
                let args: &[&str] = $args;
                let err = match Cli::try_parse_from(std::iter::once("loadgen").chain(args.iter().copied())) {
                    Err(e) => e.to_string(),
                    Ok(cli) => resolve(cli.command.unwrap()).err().expect("must be rejected"),
                };
                assert!(err.contains($needle), "{err}");
            }
        )*};
    }

    reject_tests! {
        zero_conns: &["idle", "-n", "0"] => "--connections";
        bad_unit: &["idle", "-d", "10parsecs"] => "unknown unit";
        public_src: &["idle", "--src-ips", "10.0.0.1"] => "127.0.0.0/8";
        backwards_range: &["idle", "--src-ips", "127.0.0.9-127.0.0.2"] => "range must go up";
        generic_needs_sub_url: &["idle", "--target", "generic"] => "--sub-url";
        generic_needs_pub_url: &["fanout", "--target", "generic", "--sub-url", "/s/{topic}"] => "--pub-url";
        no_data: &["fanout", "--pub-body", "x"] => "{data}";
        bad_header: &["fanout", "--pub-header", "nocolon"] => "Name: value";
        ports: &["idle", "-n", "100000"] => "--src-ips";
        share: &["slow", "--slow-share", "1"] => "--slow-share";
        fraction: &["reconnect", "--reconnect-fraction", "0"] => "--reconnect-fraction";
        ftp: &["idle", "--server", "ftp://x"] => "only http:// and https://";
        https_needs_trust: &["idle", "--server", "https://127.0.0.1:1"] => "needs --ca FILE";
        trust_needs_https: &["idle", "--insecure"] => "are for https://";
        ca_and_insecure: &["idle", "--server", "https://127.0.0.1:1", "--ca", "x.pem", "--insecure"] => "cannot be used with";
        ca_missing: &["idle", "--server", "https://127.0.0.1:1", "--ca", "/nonexistent/ca.pem"] => "--ca /nonexistent/ca.pem: cannot read it";
        ca_mixed_templates: &["fanout", "--ca", "/nonexistent/ca.pem", "--pub-url", "https://127.0.0.1:1/p/{topic}"] => "--ca /nonexistent/ca.pem";
        probe_interval_unit: &["fanout", "--probe-interval", "5parsecs"] => "unknown unit";
        probe_interval_short: &["fanout", "--probe-interval", "1ms"] => "--probe-interval";
        probe_timeout_zero: &["idle", "--probe-interval", "1s", "--probe-timeout", "0s"] => "--probe-timeout";
        probe_max_alone: &["fanout", "--probe-max-ms", "100"] => "needs --probe-interval";
        probe_path: &["idle", "--probe-interval", "1s", "--probe-healthz-path", "healthz"] => "--probe-healthz-path";
        pipeline_zero: &["fanout", "--pub-pipeline", "0"] => "--pub-pipeline must be 1 to 1024";
        pipeline_over: &["slow", "--pub-pipeline", "1025"] => "--pub-pipeline must be 1 to 1024";
        batch_zero: &["fanout", "--pub-batch", "0"] => "--pub-batch must be 1 to 1024";
        batch_over: &["reconnect", "--pub-batch", "1025"] => "--pub-batch must be 1 to 1024";
        batch_nchan: &["fanout", "--target", "nchan", "--pub-batch", "2"] => "needs --target ringcast: nchan has no NDJSON batch";
        batch_generic: &["fanout", "--target", "generic", "--sub-url", "/s/{topic}", "--pub-url", "/p/{topic}", "--pub-batch", "2"] => "needs --target ringcast: generic";
        batch_pub_url: &["fanout", "--pub-batch", "2", "--pub-url", "/p?topic={topic}&d={data}"] => "drop --pub-url";
        batch_pub_body: &["fanout", "--pub-batch", "2", "--pub-body", "[{data}]"] => "drop --pub-body";
        batch_pub_method: &["fanout", "--pub-batch", "2", "--pub-method", "PUT"] => "drop --pub-method";
        batch_too_large: &["fanout", "--pub-batch", "1024", "-p", "1MiB"] => "at most 64MiB";
    }

    #[test]
    fn pipeline_and_batch_flags() {
        let p = sample_plan_publish(&["fanout"]);
        assert_eq!((p.pipeline, p.batch), (1, 1), "defaults");
        let args = ["reconnect", "--pub-pipeline", "1024", "--pub-batch", "1024"];
        let p = sample_plan_publish(&args);
        assert_eq!((p.pipeline, p.batch), (1024, 1024));
        // A batch of 1 is the single form, so any target and template may use it.
        let args = [
            "fanout",
            "--target",
            "nchan",
            "--pub-batch",
            "1",
            "--pub-pipeline",
            "8",
        ];
        assert_eq!(sample_plan_publish(&args).pipeline, 8);
    }

    fn sample_plan_publish(args: &[&str]) -> crate::plan::Publish {
        plan_of(args).publish.expect("a publishing scenario")
    }

    #[test]
    fn probe_flags() {
        assert!(sample_plan().probe.is_none(), "off by default");
        let plan = plan_of(&[
            "reconnect",
            "--topic-prefix",
            "x-",
            "--probe-interval",
            "200ms",
            "--probe-max-ms",
            "50",
            "--probe-healthz-path",
            "/up",
        ]);
        let p = plan.probe.expect("probing");
        assert_eq!(
            (p.interval_ms, p.timeout_ms, p.max_ms),
            (200, 5000, Some(50))
        );
        assert_eq!(
            (p.healthz_path.as_str(), p.topic.as_str()),
            ("/up", "x-probe")
        );
        assert_eq!(
            p.publish.map(|x| x.endpoint),
            plan.publish.map(|x| x.endpoint)
        );
        // idle publishes nothing: its publish probes use the target's preset.
        let p = plan_of(&["idle", "--target", "nchan", "--probe-interval", "1s"]).probe;
        let mut path = Vec::new();
        let publish = p.and_then(|p| p.publish).expect("nchan preset");
        publish.endpoint.path.expand(b"t", b"", &mut path);
        assert_eq!(path, b"/pub/t");
        let generic = ["idle", "--target", "generic", "--sub-url", "/s/{topic}"];
        let p = plan_of(&[&generic[..], &["--probe-interval", "1s"]].concat()).probe;
        assert!(p.expect("probing").publish.is_none(), "no template known");
    }

    #[test]
    fn tls_flags() {
        assert!(!sample_plan().tls, "http by default");
        let https = ["fanout", "--server", "https://127.0.0.1:8443", "--insecure"];
        let plan = plan_of(&https);
        assert!(plan.tls && plan.subscribe.tls);
        assert_eq!(plan.tls_trust, Some(crate::plan::Trust::Insecure));
        assert!(plan
            .publish
            .is_some_and(|p| p.endpoint.tls && p.endpoint.addr.port() == 8443));
        // One https template is enough to need (and allow) a trust flag.
        let mixed = [
            "fanout",
            "--insecure",
            "--pub-url",
            "https://127.0.0.1:8443/publish?topic={topic}",
        ];
        let plan = plan_of(&mixed);
        assert!(plan.tls && !plan.subscribe.tls);
    }

    #[test]
    fn src_ips_through_the_command_line() {
        let cli =
            Cli::try_parse_from(["loadgen", "idle", "--src-ips", "127.0.0.2-127.0.0.17"]).unwrap();
        let plan = resolve(cli.command.unwrap()).unwrap().0;
        assert_eq!(plan.src_ips.len(), 16);
        assert_eq!(plan.src_ips[15], Ipv4Addr::new(127, 0, 0, 17));
    }

    #[test]
    fn nchan_preset() {
        let cli = Cli::try_parse_from([
            "loadgen",
            "fanout",
            "--target",
            "nchan",
            "--server",
            "http://127.0.0.1:8081",
        ])
        .unwrap();
        let plan = resolve(cli.command.unwrap()).unwrap().0;
        let p = plan.publish.unwrap();
        assert_eq!(p.headers, vec!["Accept: text/json".to_owned()]);
        let mut path = Vec::new();
        p.endpoint.path.expand(b"a", b"", &mut path);
        assert_eq!(path, b"/pub/a");
        assert_eq!(plan.subscribe.addr.port(), 8081);
    }
}
