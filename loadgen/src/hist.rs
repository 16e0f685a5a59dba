//! Latency histograms: HDR histograms in microseconds, one per thread on the receive
//! path, serialized as raw `(value, count)` pairs between processes and merged exactly.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

/// Highest latency recorded: one hour in µs; anything longer is clamped, and no run
/// lasts that long.
const MAX_US: u64 = 3_600_000_000;
/// Three significant digits: 0.1% resolution, enough to tell p99.9 from max.
const SIGFIGS: u8 = 3;

pub type Hist = Histogram<u64>;

/// A new, empty latency histogram (µs).
pub fn new_hist() -> Hist {
    // Bounds and precision are constants within what hdrhistogram accepts.
    Histogram::new_with_bounds(1, MAX_US, SIGFIGS).unwrap_or_else(|_| unreachable_bounds())
}

#[cold]
fn unreachable_bounds() -> Hist {
    // new_with_max never fails for a max of at least 2 and sigfigs <= 5.
    Histogram::new_with_max(MAX_US, SIGFIGS).unwrap_or_else(|_| std::process::abort())
}

/// Records one latency in ns (rounded up to whole µs; values beyond range clamp).
#[inline]
pub fn record_ns(h: &mut Hist, ns: u64) {
    h.saturating_record(ns.div_ceil(1000).max(1));
}

/// A histogram as it travels between processes: every non-empty bucket as
/// `[highest equivalent value, count]`. Re-recording those values into a histogram of
/// the same bounds lands each count in its original bucket, so merging is exact.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HistDump(pub Vec<(u64, u64)>);

pub fn dump(h: &Hist) -> HistDump {
    HistDump(
        h.iter_recorded()
            .map(|v| (v.value_iterated_to(), v.count_at_value()))
            .collect(),
    )
}

/// Adds the counts of `d` into `h`.
pub fn merge(h: &mut Hist, d: &HistDump) {
    for &(value, count) in &d.0 {
        // Clamped like live records, so a dump from a foreign build cannot fail.
        let _ = h.record_n(value.clamp(1, MAX_US), count);
    }
}

/// The figures a report shows of a latency histogram, in µs.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub count: u64,
    pub min: u64,
    pub mean: f64,
    pub p50: u64,
    pub p90: u64,
    pub p99: u64,
    pub p999: u64,
    pub max: u64,
}

pub fn summary(h: &Hist) -> Summary {
    if h.is_empty() {
        return Summary::default();
    }
    let q = |x| h.value_at_quantile(x);
    Summary {
        count: h.len(),
        min: h.min(),
        mean: (h.mean() * 10.0).round() / 10.0,
        p50: q(0.5),
        p90: q(0.9),
        p99: q(0.99),
        p999: q(0.999),
        max: h.max(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filled(seed: u64, n: u64) -> Hist {
        let mut h = new_hist();
        let mut x = seed;
        for _ in 0..n {
            // xorshift: a spread of values over many buckets, from 1 ns to about 16 s.
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            record_ns(&mut h, (x % (1 << 34)) >> (x % 24));
        }
        h
    }

    #[test]
    fn merging_dumps_equals_adding_histograms() {
        let parts = [filled(1, 10_000), filled(2, 5_000), filled(3, 1)];
        let mut direct = new_hist();
        let mut merged = new_hist();
        for p in &parts {
            direct.add(p).expect("same bounds");
            // Through JSON, as between processes.
            let text = serde_json::to_string(&dump(p)).expect("serialize");
            merge(
                &mut merged,
                &serde_json::from_str(&text).expect("deserialize"),
            );
        }
        assert_eq!(merged.len(), 15_001);
        assert_eq!(dump(&merged), dump(&direct), "bucket counts differ");
        assert_eq!(summary(&merged), summary(&direct));
        assert!(
            summary(&merged).p99 > summary(&merged).p50,
            "spread expected"
        );
    }

    #[test]
    fn empty_and_clamped() {
        let mut h = new_hist();
        assert_eq!(summary(&h), Summary::default());
        record_ns(&mut h, 0);
        record_ns(&mut h, u64::MAX);
        let s = summary(&h);
        assert_eq!((s.count, s.min), (2, 1));
        assert!(
            s.max >= MAX_US && s.max < MAX_US + MAX_US / 500,
            "max {}",
            s.max
        );
    }
}
