//! The outcome of a run: every figure merged over worker processes, the scenario's
//! checks (which decide the exit code), the JSON document written by `--json`, and
//! the human table.

use serde::Serialize;

use crate::hist::{self, HistDump, Summary};
use crate::plan::{Plan, Scenario};
use crate::probe::summary::ProbeFigures;
use crate::procfs::Environment;
use crate::run::Measured;
use crate::stats::{Counters, Failures, Hists};
use crate::tls::Negotiated;

/// Version of the JSON layout; bumped when a field changes meaning.
pub const SCHEMA: &str = "ringcast-loadgen/1";

#[derive(Debug, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub ok: bool,
    pub detail: String,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub schema: &'static str,
    pub scenario: &'static str,
    /// All checks passed.
    pub ok: bool,
    pub checks: Vec<Check>,
    pub params: Plan,
    pub environment: Environment,
    pub timing: Timing,
    pub connections: Connections,
    pub publish: Option<PublishFigures>,
    pub delivery: Option<Delivery>,
    /// Publish-to-receive latency (µs); in `slow`, of the other subscribers before
    /// the slow ones stopped reading.
    pub latency_us: Option<Summary>,
    /// The latency histogram itself, `[µs, count]` per bucket.
    pub latency_hist_us: Option<HistDump>,
    pub reconnect: Option<ReconnectFigures>,
    pub slow: Option<SlowFigures>,
    /// The admission prober's figures, keyed by kind (null without `--probe-interval`).
    pub probe: Option<ProbeFigures>,
    pub server: Server,
    pub loadgen: Loadgen,
    pub errors: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Timing {
    pub connect_s: f64,
    /// Hold (idle) or publishing time.
    pub run_s: f64,
    pub drain_s: f64,
    pub total_s: f64,
}

#[derive(Debug, Serialize)]
pub struct Connections {
    pub requested: u32,
    pub established: u64,
    pub failed: u64,
    pub failures: Failures,
    /// Established connections per second of the connect phase.
    pub connect_rate_per_s: f64,
    /// From starting a connect to a complete response head.
    pub connect_us: Summary,
    pub dropped_by_server: u64,
    /// Established only after publishing began (the connect phase ran out of time);
    /// their losses count from their first event.
    pub late_joiners: u64,
    pub worker_processes: usize,
    pub threads_per_process: u32,
    pub source_addresses: usize,
    /// What the first subscriber's TLS handshake settled on (null for plain http).
    pub tls: Option<Negotiated>,
}

#[derive(Debug, Serialize)]
pub struct PublishFigures {
    /// 0: as fast as the server answers.
    pub rate_target_per_s: f64,
    pub events_accepted: u64,
    pub rate_achieved_per_s: f64,
    /// Requests written, whatever became of them; each carries `batch` events.
    pub requests_sent: u64,
    /// Requests answered 2xx.
    pub requests_accepted: u64,
    /// Failed requests (and publisher connects) by kind.
    pub errors: Failures,
    /// Publish request to its answer.
    pub response_us: Summary,
    /// A write of requests, from their stamp to the write returning: the part of
    /// `response_us` (and of delivery latency) spent before the server could read them.
    pub write_us: Summary,
    pub payload_bytes: usize,
    /// Publisher connections.
    pub conns: u32,
    /// Requests in flight per connection.
    pub pipeline: u32,
    /// Events per request.
    pub batch: u32,
}

#[derive(Debug, Serialize)]
pub struct Delivery {
    pub events_received: u64,
    /// Sum over subscribers of the events published on their topic.
    pub events_expected: u64,
    /// Received events per second, from the first publish to the last receive.
    pub events_per_s: f64,
    pub lost: u64,
    pub duplicated: u64,
    pub subscribers_with_loss: u64,
    pub max_lost_per_subscriber: u64,
    pub heartbeats: u64,
    pub gap_frames: u64,
    pub foreign_events: u64,
    pub bytes: u64,
}

#[derive(Debug, Serialize)]
pub struct ReconnectFigures {
    pub reconnects: u64,
    pub reconnects_per_s: f64,
    pub failures: Failures,
    pub resumes_with_gap: u64,
    pub resume_gap_events: u64,
    pub gap_frames: u64,
    /// From dropping a connection to the resumed response head.
    pub reconnect_us: Summary,
}

#[derive(Debug, Serialize)]
pub struct SlowFigures {
    pub slow_subscribers: u64,
    pub evicted: u64,
    pub slow_events_received: u64,
    pub slow_lost: u64,
    pub others_latency_before_us: Summary,
    pub others_latency_during_us: Summary,
}

#[derive(Debug, Serialize)]
pub struct Server {
    pub pids: Vec<u32>,
    pub rss_before_bytes: u64,
    pub rss_connected_bytes: u64,
    pub rss_end_bytes: u64,
    /// (connected - before) / established.
    pub rss_per_connection_bytes: Option<f64>,
    /// CPU seconds while the connections were opened (handshakes included).
    pub cpu_connect_s: f64,
    /// `cpu_connect_s` per established connection, in µs: with TLS, the handshake's cost.
    pub cpu_us_per_connect: Option<f64>,
    /// CPU seconds from publishing start to the end of the drain (idle: the hold).
    pub cpu_run_s: f64,
    pub cpu_s_per_million_deliveries: Option<f64>,
    pub unreadable_pids: Vec<u32>,
}

#[derive(Debug, Serialize)]
pub struct Loadgen {
    pub cpu_s: f64,
    pub cpu_run_s: f64,
    pub cpu_s_per_million_deliveries: Option<f64>,
    /// Sum over worker processes, once connected.
    pub rss_connected_bytes: u64,
    /// (connected - start) / established, over worker processes.
    pub rss_per_connection_bytes: Option<f64>,
    pub io_driver: String,
}

/// Merges the workers' results and judges the run.
pub fn build(plan: Plan, env: Environment, m: Measured) -> Report {
    let mut c = Counters::default();
    let (mut fails, mut refails, mut hists) =
        (Failures::default(), Failures::default(), Hists::default());
    let (mut lg_cpu, mut lg_cpu_run, mut rss_start, mut rss_ready, mut driver) =
        (m.own_cpu_s, m.own_cpu_run_s, 0, 0, String::new());
    let mut errors = m.errors.clone();
    let tls = m.shards.iter().flatten().find_map(|r| r.tls.clone());
    for r in m.shards.iter().flatten() {
        c.merge(&r.counters);
        fails.merge(&r.connect_failures);
        refails.merge(&r.reconnect_failures);
        hists.merge_dumps(&r.hists);
        (lg_cpu, lg_cpu_run) = (lg_cpu + r.cpu_s, lg_cpu_run + r.cpu_run_s);
        (rss_start, rss_ready) = (rss_start + r.rss_start_bytes, rss_ready + r.rss_ready_bytes);
        driver.clone_from(&r.io_driver);
        errors.extend(r.errors.iter().cloned());
    }
    let publishes = plan.scenario != Scenario::Idle;
    let deliveries = c.events + c.slow_events;
    let per_million =
        |cpu: f64| (deliveries > 0).then(|| round(cpu / (deliveries as f64 / 1e6), 3));
    let per_conn = |after: u64, before: u64| {
        (c.established > 0).then(|| round((after as f64 - before as f64) / c.established as f64, 1))
    };
    let server_cpu = m.server_end.cpu_s - m.server_run_start.cpu_s;
    let server_connect_cpu = m.server_connected.cpu_s - m.server_before.cpu_s;
    let mut report = Report {
        schema: SCHEMA,
        scenario: plan.scenario.name(),
        ok: false,
        checks: Vec::new(),
        timing: Timing {
            connect_s: round(m.connect_s, 3),
            run_s: round(m.run_s, 3),
            drain_s: round(m.drain_s, 3),
            total_s: round(m.total_s, 3),
        },
        connections: Connections {
            requested: plan.connections,
            established: c.established,
            failed: fails.total(),
            failures: fails,
            connect_rate_per_s: round(c.established as f64 / m.connect_s.max(1e-9), 1),
            connect_us: hist::summary(&hists.connect),
            dropped_by_server: c.dropped_by_server,
            late_joiners: c.late_joiners,
            worker_processes: m.shards.len(),
            threads_per_process: m
                .shards
                .iter()
                .flatten()
                .map(|r| r.threads)
                .max()
                .unwrap_or(0),
            source_addresses: plan.src_ips.len().max(1),
            tls,
        },
        publish: m
            .publish
            .as_ref()
            .zip(plan.publish.as_ref())
            .map(|(p, x)| PublishFigures {
                rate_target_per_s: x.rate,
                events_accepted: p.sent,
                rate_achieved_per_s: round(p.sent as f64 / p.elapsed_s.max(1e-9), 1),
                requests_sent: p.requests_sent,
                requests_accepted: p.requests_accepted,
                errors: p.errors.clone(),
                response_us: hist::summary(&p.response),
                write_us: hist::summary(&p.write),
                payload_bytes: x.payload,
                conns: x.conns,
                pipeline: x.pipeline,
                batch: x.batch,
            }),
        delivery: publishes.then(|| Delivery {
            events_received: c.events,
            events_expected: c.expected,
            events_per_s: round(deliveries as f64 / receive_window_s(&m, &c), 1),
            lost: c.lost,
            duplicated: c.duplicates,
            subscribers_with_loss: c.subs_with_loss,
            max_lost_per_subscriber: c.max_lost_per_sub,
            heartbeats: c.heartbeats,
            gap_frames: c.gap_frames,
            foreign_events: c.foreign_events,
            bytes: c.bytes,
        }),
        latency_us: publishes.then(|| hist::summary(&hists.latency)),
        latency_hist_us: publishes.then(|| hist::dump(&hists.latency)),
        reconnect: plan.reconnect.as_ref().map(|_| ReconnectFigures {
            reconnects: c.reconnects,
            reconnects_per_s: round(c.reconnects as f64 / m.run_s.max(1e-9), 1),
            failures: refails,
            resumes_with_gap: c.resumes_with_gap,
            resume_gap_events: c.resume_gap_events,
            gap_frames: c.gap_frames,
            reconnect_us: hist::summary(&hists.reconnect),
        }),
        slow: plan.slow.as_ref().map(|_| SlowFigures {
            slow_subscribers: c.slow_subs,
            evicted: c.evicted,
            slow_events_received: c.slow_events,
            slow_lost: c.slow_lost,
            others_latency_before_us: hist::summary(&hists.latency),
            others_latency_during_us: hist::summary(&hists.latency_slow_phase),
        }),
        probe: m.probe.as_ref().map(|t| t.figures()),
        server: Server {
            pids: plan.server_pids.clone(),
            rss_before_bytes: m.server_before.rss_bytes,
            rss_connected_bytes: m.server_connected.rss_bytes,
            rss_end_bytes: m.server_end.rss_bytes,
            rss_per_connection_bytes: (!plan.server_pids.is_empty())
                .then(|| per_conn(m.server_connected.rss_bytes, m.server_before.rss_bytes))
                .flatten(),
            cpu_connect_s: round(server_connect_cpu, 3),
            cpu_us_per_connect: (!plan.server_pids.is_empty() && c.established > 0)
                .then(|| round(server_connect_cpu * 1e6 / c.established as f64, 1)),
            cpu_run_s: round(server_cpu, 3),
            cpu_s_per_million_deliveries: (!plan.server_pids.is_empty())
                .then(|| per_million(server_cpu))
                .flatten(),
            unreadable_pids: m.server_end.unreadable_pids.clone(),
        },
        loadgen: Loadgen {
            cpu_s: round(lg_cpu, 3),
            cpu_run_s: round(lg_cpu_run, 3),
            cpu_s_per_million_deliveries: per_million(lg_cpu_run),
            rss_connected_bytes: rss_ready,
            rss_per_connection_bytes: per_conn(rss_ready, rss_start),
            io_driver: driver,
        },
        errors,
        params: plan,
        environment: env,
    };
    report.checks = crate::checks::judge(&report, &c);
    report.ok = report.checks.iter().all(|ch| ch.ok);
    report
}

/// Seconds from the first publish to the last event received (at least the
/// publishing time), so a slow drain lowers the rate instead of hiding.
fn receive_window_s(m: &Measured, c: &Counters) -> f64 {
    let received = c.last_event_ns.saturating_sub(m.t0_ns) as f64 / 1e9;
    received.max(m.run_s).max(1e-9)
}

pub fn round(x: f64, digits: i32) -> f64 {
    let f = 10f64.powi(digits);
    (x * f).round() / f
}
