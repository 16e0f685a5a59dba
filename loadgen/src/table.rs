//! The human table printed at the end of a run.

use std::fmt::Write;

use crate::hist::Summary;
use crate::plan::Trust;
use crate::probe::summary::KindFigures;
use crate::report::Report;

fn lat(s: &Summary) -> String {
    format!(
        "p50 {} | p90 {} | p99 {} | p99.9 {} | max {} us  (n={})",
        s.p50, s.p90, s.p99, s.p999, s.max, s.count
    )
}

fn probe(f: &KindFigures) -> String {
    let skipped = if f.skipped > 0 {
        format!(", {} skipped (too many in flight)", f.skipped)
    } else {
        String::new()
    };
    format!(
        "p50 {} | p99 {} | max {} ms  (n={}, {} failed {:?}, status {:?}{skipped})",
        f.p50_ms, f.p99_ms, f.max_ms, f.n, f.failures, f.failure_kinds.0, f.statuses
    )
}

/// The first TLS session and what the run trusted.
fn tls(r: &Report) -> String {
    let trust = match &r.params.tls_trust {
        Some(Trust::Ca(path)) => format!("--ca {}", path.display()),
        Some(Trust::Insecure) => "--insecure".to_owned(),
        None => "-".to_owned(),
    };
    match &r.connections.tls {
        Some(n) => format!(
            "{} {} {}, ALPN {} (first connection; handshake in connect latency; trust {trust})",
            n.version,
            n.cipher_suite,
            n.key_exchange,
            n.alpn.as_deref().unwrap_or("none")
        ),
        None => format!("no handshake completed (trust {trust})"),
    }
}

fn opt(x: Option<f64>, unit: &str) -> String {
    x.map_or_else(|| "-".to_owned(), |v| format!("{v} {unit}"))
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / (1024.0 * 1024.0))
}

/// Renders the report as aligned `name  value` rows under section headings.
pub fn render(r: &Report) -> String {
    let mut rows: Vec<(String, String)> = Vec::new();
    let mut row = |k: &str, v: String| rows.push((k.to_owned(), v));
    let c = &r.connections;
    row(
        "connections",
        format!(
            "{} / {} established, {} failed {:?}",
            c.established, c.requested, c.failed, c.failures.0
        ),
    );
    row(
        "connect rate",
        format!(
            "{} /s over {} s ({} process(es) x {} thread(s))",
            c.connect_rate_per_s, r.timing.connect_s, c.worker_processes, c.threads_per_process
        ),
    );
    row("connect latency", lat(&c.connect_us));
    if r.params.tls {
        row("tls", tls(r));
    }
    row("dropped by server", c.dropped_by_server.to_string());
    if c.late_joiners > 0 {
        row(
            "joined late",
            format!(
                "{} connected after publishing began (losses counted from their first event)",
                c.late_joiners
            ),
        );
    }
    if let Some(p) = &r.publish {
        row(
            "published",
            format!(
                "{} events at {} /s (target {}), {} B payload, errors {:?}",
                p.events_accepted,
                p.rate_achieved_per_s,
                p.rate_target_per_s,
                p.payload_bytes,
                p.errors.0
            ),
        );
        row(
            "publisher",
            format!(
                "{} connection(s), pipeline {}, batch {}",
                p.conns, p.pipeline, p.batch
            ),
        );
        if p.batch > 1 {
            row(
                "publish requests",
                format!(
                    "{} sent, {} accepted, {} events each",
                    p.requests_sent, p.requests_accepted, p.batch
                ),
            );
        }
        row("publish answer", lat(&p.response_us));
        row("publish write", lat(&p.write_us));
    }
    if let Some(d) = &r.delivery {
        row(
            "delivered",
            format!(
                "{} of {} expected, {} /s",
                d.events_received, d.events_expected, d.events_per_s
            ),
        );
        row(
            "lost / duplicated",
            format!(
                "{} / {} ({} subscribers with loss, max {})",
                d.lost, d.duplicated, d.subscribers_with_loss, d.max_lost_per_subscriber
            ),
        );
        row(
            "heartbeats / gaps",
            format!("{} / {}", d.heartbeats, d.gap_frames),
        );
    }
    if let Some(l) = &r.latency_us {
        row("latency", lat(l));
    }
    if let Some(x) = &r.reconnect {
        row(
            "reconnects",
            format!(
                "{} ({} /s), failures {:?}",
                x.reconnects, x.reconnects_per_s, x.failures.0
            ),
        );
        row(
            "resume gaps",
            format!(
                "{} events at {} resumes, {} gap notices",
                x.resume_gap_events, x.resumes_with_gap, x.gap_frames
            ),
        );
        row("reconnect latency", lat(&x.reconnect_us));
    }
    if let Some(s) = &r.slow {
        row(
            "slow subscribers",
            format!(
                "{} ({} evicted, {} events received, {} not received)",
                s.slow_subscribers, s.evicted, s.slow_events_received, s.slow_lost
            ),
        );
        row("others before", lat(&s.others_latency_before_us));
        row("others during", lat(&s.others_latency_during_us));
    }
    if let Some(p) = &r.probe {
        for (kind, f) in p.kinds() {
            row(&format!("probe {}", kind.name()), probe(f));
        }
    }
    let s = &r.server;
    if !s.pids.is_empty() {
        row(
            "server RSS",
            format!(
                "{} -> {} connected ({} per connection)",
                mib(s.rss_before_bytes),
                mib(s.rss_connected_bytes),
                opt(s.rss_per_connection_bytes, "B")
            ),
        );
        row(
            "server CPU",
            format!(
                "{} s ({} per million deliveries); connecting {} s ({} per connection)",
                s.cpu_run_s,
                opt(s.cpu_s_per_million_deliveries, "s"),
                s.cpu_connect_s,
                opt(s.cpu_us_per_connect, "us")
            ),
        );
    }
    let l = &r.loadgen;
    row(
        "loadgen CPU",
        format!(
            "{} s in run, {} s total ({} per million deliveries)",
            l.cpu_run_s,
            l.cpu_s,
            opt(l.cpu_s_per_million_deliveries, "s")
        ),
    );
    row(
        "loadgen RSS",
        format!(
            "{} connected ({} per connection), {}",
            mib(l.rss_connected_bytes),
            opt(l.rss_per_connection_bytes, "B"),
            l.io_driver
        ),
    );
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
    let scheme = if r.params.subscribe.tls {
        "https"
    } else {
        "http"
    };
    let mut out = format!(
        "loadgen {} against {scheme}://{} ({}), {} s\n",
        r.scenario, r.params.subscribe.host, r.params.target, r.timing.total_s
    );
    for (k, v) in &rows {
        let _ = writeln!(out, "  {k:<width$}  {v}");
    }
    for ch in &r.checks {
        let _ = writeln!(
            out,
            "  [{}] {}: {}",
            if ch.ok { "ok" } else { "FAIL" },
            ch.name,
            ch.detail
        );
    }
    for e in &r.errors {
        let _ = writeln!(out, "  error: {e}");
    }
    let _ = writeln!(out, "{}", if r.ok { "PASS" } else { "FAIL" });
    out
}
