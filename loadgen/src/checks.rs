//! The scenario's own checks: what must hold for a run to pass. They decide the exit
//! code, so scripts can rely on it.

use crate::plan::Scenario;
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
