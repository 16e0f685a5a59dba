//! A worker process (`loadgen --child`): reads its plan from stdin, runs its
//! subscribers on one monoio runtime per thread, follows the parent's commands, and
//! writes progress, `Ready` and finally its results as JSON lines on stdout.

use std::io::{BufRead, Write};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use crate::control::{Control, Progress};
use crate::protocol::{ChildPlan, FromChild, ShardResult, Snapshot, ToChild};
use crate::stats::Hists;
use crate::sys;
use crate::tls::Connector;
use crate::worker::{self, Share, ThreadResult};

/// How often the main thread looks at its threads.
const POLL: Duration = Duration::from_millis(100);
/// Progress lines per second to the parent: 2, enough for a live display.
const PROGRESS_EVERY: u32 = 5;
/// Descriptors a worker needs besides its connections (rings, pipes, stdio).
const FD_RESERVE: u64 = 64;

/// Runs the worker process; returns its exit code.
pub fn run() -> i32 {
    let mut line = String::new();
    if std::io::stdin().lock().read_line(&mut line).is_err() {
        return fail("cannot read the plan from stdin");
    }
    let cp: ChildPlan = match serde_json::from_str(&line) {
        Ok(cp) => cp,
        Err(e) => return fail(&format!("bad plan: {e}")),
    };
    let limit = sys::raise_nofile_limit().unwrap_or(1024);
    if u64::from(cp.count) + FD_RESERVE > limit {
        return fail(&format!(
            "{} connections do not fit the open-file limit {limit}",
            cp.count
        ));
    }
    // One TLS client config for the process, shared by its threads.
    let tls = match Connector::for_endpoint(&cp.plan, &cp.plan.subscribe) {
        Ok(tls) => tls,
        Err(e) => return fail(&e),
    };
    let cpu_start = sys::own_cpu_seconds();
    let ctl = Arc::new(Control::new(cp.deadline_ns));
    let threads = cp.plan.threads.min(cp.count).max(1);
    let (progress, handles) = start_threads(&cp, &ctl, threads, &tls);
    let rss_start = baseline_rss(&progress);
    ctl.allow_connects();
    let cpu_at_start = follow_commands(ctl.clone(), cpu_start);
    let rss_ready = watch(&cp, &progress);
    let results: Vec<ThreadResult> = handles.into_iter().filter_map(|h| h.join().ok()).collect();
    let cpu_end = sys::own_cpu_seconds();
    let cpu_run = cpu_end - cpu_at_start.lock().map_or(cpu_start, |v| *v);
    let mut r = merge(results, threads);
    (r.rss_start_bytes, r.rss_ready_bytes, r.rss_end_bytes) = (rss_start, rss_ready, own_rss());
    (r.cpu_s, r.cpu_run_s) = (cpu_end - cpu_start, cpu_run);
    send(&FromChild::Result(Box::new(r)));
    0
}

/// RSS once every runtime is up (rings, timers, threads), before any connection.
fn baseline_rss(progress: &[Arc<Progress>]) -> u64 {
    let give_up = sys::mono_ns() + 5_000_000_000;
    while !progress
        .iter()
        .all(|p| p.started.load(Relaxed) || p.finished.load(Relaxed))
        && sys::mono_ns() < give_up
    {
        std::thread::sleep(Duration::from_millis(1));
    }
    own_rss()
}

fn fail(msg: &str) -> i32 {
    send(&FromChild::Error(msg.to_owned()));
    1
}

fn own_rss() -> u64 {
    crate::procfs::rss_bytes(std::process::id()).unwrap_or(0)
}

/// Writes one message line; a parent that went away ends the process.
fn send(msg: &FromChild) {
    let mut out = std::io::stdout().lock();
    let ok = serde_json::to_writer(&mut out, msg).is_ok()
        && out.write_all(b"\n").is_ok()
        && out.flush().is_ok();
    if !ok {
        std::process::exit(1);
    }
}

type Handles = Vec<std::thread::JoinHandle<ThreadResult>>;

/// Splits the worker's subscribers, rate and in-flight budget evenly over threads.
fn start_threads(
    cp: &ChildPlan,
    ctl: &Arc<Control>,
    threads: u32,
    tls: &Option<Connector>,
) -> (Vec<Arc<Progress>>, Handles) {
    let plan = Arc::new(cp.plan.clone());
    let mut progress = Vec::new();
    let mut handles = Vec::new();
    let mut first = cp.first;
    for t in 0..threads {
        let count = cp.count / threads + u32::from(t < cp.count % threads);
        let share = Share {
            first,
            count,
            rate: cp.connect_rate * f64::from(count) / f64::from(cp.count),
            inflight: cp.connect_inflight.div_ceil(threads),
        };
        first += count;
        let p = Arc::new(Progress::default());
        progress.push(p.clone());
        let (plan, ctl, tls) = (plan.clone(), ctl.clone(), tls.clone());
        let spawned = std::thread::Builder::new()
            .name(format!("loadgen-{t}"))
            .spawn(move || worker::run_thread(plan, ctl, p, share, tls));
        match spawned {
            Ok(h) => handles.push(h),
            Err(e) => send(&FromChild::Error(format!("cannot start thread {t}: {e}"))),
        }
    }
    (progress, handles)
}

/// Applies the parent's commands as they come; stdin closing means stop. Returns
/// where the CPU time at `Start` will be stored.
fn follow_commands(ctl: Arc<Control>, cpu_start: f64) -> Arc<std::sync::Mutex<f64>> {
    let cpu_at_start = Arc::new(std::sync::Mutex::new(cpu_start));
    let slot = cpu_at_start.clone();
    let spawned = std::thread::Builder::new()
        .name("loadgen-stdin".into())
        .spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { break };
                match serde_json::from_str::<ToChild>(&line) {
                    Ok(ToChild::Start { t0_ns }) => {
                        if let Ok(mut v) = slot.lock() {
                            *v = sys::own_cpu_seconds();
                        }
                        ctl.start(t0_ns);
                    }
                    Ok(ToChild::Drain {
                        final_seq,
                        deadline_ns,
                    }) => ctl.drain(final_seq, deadline_ns),
                    Ok(ToChild::Stop) | Err(_) => break,
                }
            }
            ctl.stop();
        });
    if spawned.is_err() {
        std::process::exit(1);
    }
    cpu_at_start
}

/// Sends progress and `Ready` until every thread has finished; returns the RSS at
/// `Ready`.
fn watch(cp: &ChildPlan, progress: &[Arc<Progress>]) -> u64 {
    let mut rss_ready = 0;
    let mut polls = 0u32;
    while !progress.iter().all(|p| p.finished.load(Relaxed)) {
        std::thread::sleep(POLL);
        polls += 1;
        let snap = snapshot(progress);
        if rss_ready == 0 && snap.settled >= u64::from(cp.count) {
            rss_ready = own_rss();
            send(&FromChild::Ready {
                rss_bytes: rss_ready,
            });
        }
        if polls.is_multiple_of(PROGRESS_EVERY) {
            send(&FromChild::Progress(snap));
        }
    }
    rss_ready
}

fn snapshot(progress: &[Arc<Progress>]) -> Snapshot {
    let mut s = Snapshot::default();
    for p in progress {
        s.live += p.live.load(Relaxed);
        s.settled += p.settled.load(Relaxed);
        s.failed += p.failed.load(Relaxed);
        s.events += p.events.load(Relaxed);
        s.p99_us = s.p99_us.max(p.p99_us.load(Relaxed));
    }
    s
}

fn merge(results: Vec<ThreadResult>, threads: u32) -> ShardResult {
    let mut r = ShardResult {
        threads,
        ..ShardResult::default()
    };
    let mut hists = Hists::default();
    for t in results {
        r.counters.merge(&t.counters);
        r.connect_failures.merge(&t.connect_failures);
        r.reconnect_failures.merge(&t.reconnect_failures);
        hists.add(&t.hists);
        r.tls = r.tls.or(t.tls);
        r.errors.extend(t.error);
    }
    r.hists = hists.dump();
    r.io_driver = if monoio::utils::detect_uring() {
        "io_uring"
    } else {
        "epoll"
    }
    .to_owned();
    r
}
