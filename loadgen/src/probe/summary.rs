//! What the prober saw, per kind: every probe's time (a few per interval, so kept
//! whole and ranked exactly rather than bucketed), its status, its failure kind; and
//! the figures the report shows.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::report::round;
use crate::stats::Failures;

use super::Kind;

/// One finished probe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sample {
    /// From starting the connect to the answer, the failure, or the timeout.
    pub elapsed_ns: u64,
    /// The status the server answered with, if it answered.
    pub status: Option<u16>,
    /// Why the probe failed (`timeout`, `refused`, `http_503`, ...); `None`: it passed.
    pub failure: Option<String>,
}

/// The probes of one kind.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    elapsed_ns: Vec<u64>,
    statuses: BTreeMap<u16, u64>,
    failures: Failures,
    /// Probes not started because [`super::MAX_OUTSTANDING`] were in flight.
    pub skipped: u64,
}

impl Tally {
    pub fn record(&mut self, s: Sample) {
        self.elapsed_ns.push(s.elapsed_ns);
        if let Some(code) = s.status {
            *self.statuses.entry(code).or_default() += 1;
        }
        if let Some(kind) = &s.failure {
            self.failures.add(kind);
        }
    }

    pub fn figures(&self) -> KindFigures {
        let mut sorted = self.elapsed_ns.clone();
        sorted.sort_unstable();
        let ms = |ns: u64| round(ns as f64 / 1e6, 3);
        KindFigures {
            n: sorted.len() as u64,
            failures: self.failures.total(),
            p50_ms: ms(nearest_rank(&sorted, 0.50)),
            p99_ms: ms(nearest_rank(&sorted, 0.99)),
            max_ms: ms(sorted.last().copied().unwrap_or(0)),
            skipped: self.skipped,
            statuses: self.statuses.clone(),
            failure_kinds: self.failures.clone(),
        }
    }
}

/// The sample at quantile `q` of `sorted` by the nearest-rank rule (the smallest value
/// with at least `q` of the samples at or below it), so p99 of 10 samples is the max.
fn nearest_rank(sorted: &[u64], q: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (q * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// The probes of every kind, indexed by [`Kind`].
#[derive(Debug, Clone, Default)]
pub struct Tallies(pub [Tally; 3]);

impl Tallies {
    pub fn kind(&mut self, k: Kind) -> &mut Tally {
        &mut self.0[k as usize]
    }

    pub fn figures(&self) -> ProbeFigures {
        let f = |k: Kind| self.0[k as usize].figures();
        ProbeFigures {
            healthz: f(Kind::Healthz),
            subscribe: f(Kind::Subscribe),
            publish: f(Kind::Publish),
        }
    }
}

/// The report's `probe` object, keyed by kind.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ProbeFigures {
    pub healthz: KindFigures,
    pub subscribe: KindFigures,
    pub publish: KindFigures,
}

impl ProbeFigures {
    pub fn kinds(&self) -> [(Kind, &KindFigures); 3] {
        [
            (Kind::Healthz, &self.healthz),
            (Kind::Subscribe, &self.subscribe),
            (Kind::Publish, &self.publish),
        ]
    }
}

/// One kind's figures. Times include failed probes (a timeout counts as the timeout),
/// so a stall shows in the max even when every probe in it fails.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct KindFigures {
    /// Probes finished (answered, failed or timed out).
    pub n: u64,
    pub failures: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    /// Probes not started because too many were in flight.
    pub skipped: u64,
    /// Answers by HTTP status.
    pub statuses: BTreeMap<u16, u64>,
    /// Failures by kind.
    pub failure_kinds: Failures,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(ms: u64) -> Sample {
        Sample {
            elapsed_ns: ms * 1_000_000,
            status: Some(200),
            failure: None,
        }
    }

    #[test]
    fn nearest_rank_quantiles() {
        let v: Vec<u64> = (1..=100).collect();
        assert_eq!(nearest_rank(&v, 0.5), 50);
        assert_eq!(nearest_rank(&v, 0.99), 99);
        assert_eq!(nearest_rank(&v[..10], 0.99), 10, "p99 of 10 is the max");
        assert_eq!(nearest_rank(&[7], 0.5), 7);
        assert_eq!(nearest_rank(&[], 0.5), 0);
    }

    #[test]
    fn figures_count_failures_and_their_times() {
        let mut t = Tally::default();
        for ms in [3, 1, 2] {
            t.record(ok(ms));
        }
        t.record(Sample {
            elapsed_ns: 5_000_000_000,
            status: None,
            failure: Some("timeout".into()),
        });
        t.record(Sample {
            elapsed_ns: 1_500_000,
            status: Some(503),
            failure: Some("http_503".into()),
        });
        t.skipped = 2;
        let f = t.figures();
        assert_eq!((f.n, f.failures, f.skipped), (5, 2, 2));
        assert_eq!((f.p50_ms, f.p99_ms, f.max_ms), (2.0, 5000.0, 5000.0));
        assert_eq!(f.statuses, BTreeMap::from([(200, 3), (503, 1)]));
        assert_eq!(f.failure_kinds.0.get("timeout"), Some(&1));
    }

    #[test]
    fn empty_kind_is_all_zero() {
        assert_eq!(Tally::default().figures(), KindFigures::default());
    }

    #[test]
    fn json_is_keyed_by_kind() {
        let mut t = Tallies::default();
        t.kind(Kind::Publish).record(ok(1));
        let v = serde_json::to_value(t.figures()).expect("serialize");
        assert_eq!(v["publish"]["n"], 1);
        assert_eq!(v["publish"]["p99_ms"], 1.0);
        assert_eq!(v["publish"]["statuses"]["200"], 1);
        assert_eq!(v["healthz"]["n"], 0);
    }
}
