//! Readings from `/proc`: a process's resident memory and CPU time (the server's,
//! summed over `--server-pid` values, and loadgen's own), and what the environment
//! section of the report says about the host.

use std::fs;

use serde::{Deserialize, Serialize};

/// Resident set size of `pid` in bytes (`VmRSS`), `None` if it cannot be read.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// User + system CPU seconds of `pid`, all its threads, from `/proc/<pid>/stat`.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces and parentheses; fields restart after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace();
    // After ')': state is field 3, so utime (14) and stime (15) are the 12th and 13th.
    let utime: u64 = fields.nth(11)?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / crate::sys::clock_ticks_per_second() as f64)
}

/// A reading of a set of processes; a pid that cannot be read is named, not skipped
/// silently.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    pub rss_bytes: u64,
    pub cpu_s: f64,
    pub unreadable_pids: Vec<u32>,
}

pub fn read(pids: &[u32]) -> Reading {
    let mut r = Reading::default();
    for &pid in pids {
        match (rss_bytes(pid), cpu_seconds(pid)) {
            (Some(rss), Some(cpu)) => {
                r.rss_bytes += rss;
                r.cpu_s += cpu;
            }
            _ => r.unreadable_pids.push(pid),
        }
    }
    r
}

/// The host and build a run happened on.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Environment {
    pub kernel: String,
    pub cpu_model: String,
    /// CPUs this process may use.
    pub cores: usize,
    pub memory_bytes: u64,
    pub open_file_limit: u64,
    pub loadgen_version: String,
    pub rustc: String,
    pub monoio: String,
    pub io_uring: bool,
    /// Command line of each `--server-pid` (what was measured).
    pub server_cmdlines: Vec<String>,
    pub hostname: String,
    /// Seconds since the Unix epoch at the start of the run.
    pub started_unix_s: u64,
}

pub fn environment(server_pids: &[u32], open_file_limit: u64) -> Environment {
    let read = |p: &str| fs::read_to_string(p).unwrap_or_default().trim().to_owned();
    let cpu_model = read("/proc/cpuinfo")
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or_else(|| "unknown".to_owned(), |(_, v)| v.trim().to_owned());
    let memory_bytes = read("/proc/meminfo")
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024);
    let server_cmdlines = server_pids
        .iter()
        .map(|pid| {
            read(&format!("/proc/{pid}/cmdline"))
                .replace('\0', " ")
                .trim()
                .to_owned()
        })
        .collect();
    Environment {
        kernel: read("/proc/sys/kernel/osrelease"),
        cpu_model,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        memory_bytes,
        open_file_limit,
        loadgen_version: env!("CARGO_PKG_VERSION").to_owned(),
        rustc: env!("LOADGEN_RUSTC_VERSION").to_owned(),
        monoio: "0.2.4".to_owned(),
        io_uring: monoio::utils::detect_uring(),
        server_cmdlines,
        hostname: read("/proc/sys/kernel/hostname"),
        started_unix_s: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_own_process() {
        let me = std::process::id();
        let rss = rss_bytes(me).expect("own RSS");
        assert!(rss > 100_000, "rss {rss}");
        // Burn a little CPU so the reading cannot be a constant.
        let before = cpu_seconds(me).expect("own CPU");
        let mut x = 0u64;
        let start = std::time::Instant::now();
        while start.elapsed().as_millis() < 150 {
            x = x.wrapping_mul(31).wrapping_add(7);
        }
        std::hint::black_box(x);
        assert!(cpu_seconds(me).unwrap() > before, "CPU time did not move");
        let r = read(&[me, u32::MAX]);
        assert_eq!(r.unreadable_pids, vec![u32::MAX]);
        assert!(r.rss_bytes > 0);
    }
}
