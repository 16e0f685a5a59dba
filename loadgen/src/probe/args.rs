//! The prober's flags, common to every scenario, and their resolution into
//! [`Probe`].

use std::time::Duration;

use clap::Args;

use crate::plan::{Probe, Publish};
use crate::units::parse_duration;

/// Shortest interval accepted: below it, with rounds overlapping, the prober would
/// itself become a connection load on the server it is meant to observe.
pub const MIN_INTERVAL: Duration = Duration::from_millis(10);

#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// Every interval, time a health request, a subscribe and a publish, each on a new
    /// connection (off by default), e.g. 200ms.
    #[arg(long, value_parser = parse_duration)]
    pub probe_interval: Option<Duration>,
    /// A probe not answered within this fails; its time is recorded as this.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub probe_timeout: Duration,
    /// Path of the health probe (a 404 counts as answered).
    #[arg(long, default_value = "/healthz")]
    pub probe_healthz_path: String,
    /// Fail the run when a probe kind's slowest probe takes over N ms, or a probe fails.
    #[arg(long, value_name = "N")]
    pub probe_max_ms: Option<u64>,
}

impl ProbeArgs {
    /// The prober's plan, `None` without `--probe-interval`. `publish` is the template
    /// the publish probes use; `topic_prefix` is the run's.
    pub fn resolve(
        &self,
        topic_prefix: &str,
        publish: Option<Publish>,
    ) -> Result<Option<Probe>, String> {
        let Some(interval) = self.probe_interval else {
            return match self.probe_max_ms {
                Some(_) => Err("--probe-max-ms needs --probe-interval".into()),
                None => Ok(None),
            };
        };
        if interval < MIN_INTERVAL {
            return Err(format!(
                "--probe-interval must be at least {} ms",
                MIN_INTERVAL.as_millis()
            ));
        }
        if self.probe_timeout.is_zero() {
            return Err("--probe-timeout must be above 0".into());
        }
        let path = &self.probe_healthz_path;
        if !path.starts_with('/') || path.bytes().any(|b| !b.is_ascii_graphic()) {
            return Err(format!(
                "--probe-healthz-path {path:?}: expected a path like /healthz"
            ));
        }
        Ok(Some(Probe {
            interval_ms: interval.as_millis() as u64,
            timeout_ms: self.probe_timeout.as_millis() as u64,
            healthz_path: path.clone(),
            topic: format!("{topic_prefix}probe"),
            publish,
            max_ms: self.probe_max_ms,
        }))
    }
}
