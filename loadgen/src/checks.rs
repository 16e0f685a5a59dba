//! The scenario's own checks: what must hold for a run to pass. They decide the exit
//! code, so scripts can rely on it.

use crate::plan::Scenario;
use crate::probe::Kind;
use crate::report::{Check, Report};
use crate::stats::Counters;

fn check(name: &'static str, ok: bool, detail: String) -> Check {
    Check { name, ok, detail }
}

/// Every check that applies to the report's scenario.
pub fn judge(r: &Report, c: &Counters) -> Vec<Check> {
    let n = u64::from(r.params.connections);
    let mut out = vec![
        check(
            "all_connections_established",
            r.connections.established == n,
            format!(
                "{} of {n} established; failures {:?}",
                r.connections.established, r.connections.failures.0
            ),
        ),
        check(
            "no_connection_dropped_by_server",
            c.dropped_by_server == 0,
            format!("{} closed by the server", c.dropped_by_server),
        ),
        check(
            "all_workers_reported",
            r.errors.is_empty(),
            r.errors.join("; "),
        ),
    ];
    out.extend(probe_checks(r));
    if r.params.scenario == Scenario::Idle {
        return out;
    }
    let accepted = r.publish.as_ref().map_or(0, |p| p.events_accepted);
    let errors = r.publish.as_ref().map_or(0, |p| p.errors.total());
    out.push(check(
        "events_published",
        accepted > 0,
        format!("{accepted} accepted"),
    ));
    out.push(check(
        "no_publish_error",
        errors == 0,
        format!("{errors} failed publishes"),
    ));
    out.push(check(
        "no_event_lost",
        c.lost == 0,
        format!(
            "{} lost over {} subscribers (max {} per subscriber)",
            c.lost, c.subs_with_loss, c.max_lost_per_sub
        ),
    ));
    out.push(check(
        "no_event_duplicated",
        c.duplicates == 0,
        format!("{} duplicates", c.duplicates),
    ));
    if r.params.scenario == Scenario::Reconnect {
        out.push(check(
            "reconnects_happened",
            c.reconnects > 0,
            format!("{} reconnects", c.reconnects),
        ));
        out.push(check(
            "no_resume_gap",
            c.resume_gap_events == 0 && c.gap_frames == 0,
            format!(
                "{} events skipped at {} resumes; {} gap notices",
                c.resume_gap_events, c.resumes_with_gap, c.gap_frames
            ),
        ));
    }
    out
}

/// Probes are reported, not judged, unless `--probe-max-ms` is given: then each kind
/// probed must have finished probes, none failed, and its slowest within the limit.
fn probe_checks(r: &Report) -> Vec<Check> {
    let Some(plan) = &r.params.probe else {
        return Vec::new();
    };
    let Some(limit) = plan.max_ms else {
        return Vec::new();
    };
    // A prober that never reported has no probes: every kind fails on n = 0.
    let figures = r.probe.clone().unwrap_or_default();
    figures
        .kinds()
        .into_iter()
        .filter(|(k, _)| *k != Kind::Publish || plan.publish.is_some())
        .map(|(k, f)| {
            check(
                probe_check_name(k),
                f.n > 0 && f.failures == 0 && f.max_ms <= limit as f64,
                format!(
                    "{} probes, {} failed {:?}, max {} ms (limit {limit} ms)",
                    f.n, f.failures, f.failure_kinds.0, f.max_ms
                ),
            )
        })
        .collect()
}

fn probe_check_name(k: Kind) -> &'static str {
    match k {
        Kind::Healthz => "probe_healthz_within_max",
        Kind::Subscribe => "probe_subscribe_within_max",
        Kind::Publish => "probe_publish_within_max",
    }
}
