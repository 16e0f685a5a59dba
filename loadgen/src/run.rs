//! The parent process: starts worker processes (one per `--conns-per-process`
//! subscribers), walks the run through its phases (connect, hold or publish, drain,
//! stop), reads the server from `/proc` between phases, and gathers the workers'
//! results. Every wait is bounded by the run's hard deadline.

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::Arc;
use std::time::Duration;

use crate::plan::{Plan, Scenario};
use crate::probe::summary::Tallies;
use crate::probe::Prober;
use crate::procfs::{self, Reading};
use crate::progress::Line;
use crate::protocol::{ChildPlan, FromChild, ShardResult, Snapshot, ToChild};
use crate::publisher::{self, Live, Outcome};
use crate::sys::{self, mono_ns};

/// Pause between "all connected" and the first publish, so the server has registered
/// every subscription it has answered.
const SETTLE: Duration = Duration::from_millis(300);
/// Publishing starts this long after `Start` is sent, so every worker knows t0 first.
const T0_LEAD_NS: u64 = 5_000_000;
/// Extra time, past the hard deadline, that workers get to send their results.
const RESULT_GRACE_NS: u64 = 5_000_000_000;

/// What the phases measured, for the report.
pub struct Measured {
    pub shards: Vec<Option<ShardResult>>,
    pub publish: Option<Outcome>,
    pub server_before: Reading,
    pub server_connected: Reading,
    pub server_run_start: Reading,
    pub server_end: Reading,
    /// Publishing start (CLOCK_MONOTONIC ns; idle: end of the connect phase).
    pub t0_ns: u64,
    pub own_cpu_run_s: f64,
    pub own_cpu_s: f64,
    pub connect_s: f64,
    pub run_s: f64,
    pub drain_s: f64,
    pub total_s: f64,
    /// The admission prober's samples (`None`: not probing, or it failed to run).
    pub probe: Option<Tallies>,
    pub errors: Vec<String>,
}

enum Event {
    Msg(usize, FromChild),
    Gone(usize),
}

/// The worker processes and what they said last.
struct Shards {
    children: Vec<Child>,
    stdins: Vec<Option<ChildStdin>>,
    rx: Receiver<Event>,
    progress: Vec<Snapshot>,
    ready: Vec<bool>,
    results: Vec<Option<ShardResult>>,
    gone: Vec<bool>,
    errors: Vec<String>,
}

/// Runs the plan; returns everything measured.
pub fn run(plan: &Plan, quiet: bool) -> Measured {
    let start = mono_ns();
    let cpu0 = sys::own_cpu_seconds();
    let deadline = start + plan.deadline_ms * 1_000_000;
    let mut line = Line::new(plan, quiet);
    let server_before = procfs::read(&plan.server_pids);
    // The prober runs from the start of the connect phase to the end of the drain.
    let (prober, prober_error) = match Prober::start(plan, deadline + RESULT_GRACE_NS) {
        Ok(p) => (p, None),
        Err(e) => (None, Some(e)),
    };
    let mut shards = Shards::spawn(plan, deadline);
    shards.errors.extend(prober_error);
    // 1. Connect: until every worker is Ready (or gone, or out of time).
    let ready_by = deadline.min(start + ramp_ns(plan));
    shards.pump(&mut line, ready_by, |s| {
        s.ready.iter().zip(&s.gone).all(|(r, g)| *r || *g)
    });
    let connected_at = mono_ns();
    // 2. Hold (idle) or publish, then drain.
    let phase = if plan.scenario == Scenario::Idle {
        hold(plan, &mut shards, &mut line, connected_at, deadline)
    } else {
        publish_and_drain(plan, &mut shards, &mut line, deadline)
    };
    // 3. Results: every worker reports once it has finished.
    shards.pump(&mut line, deadline + RESULT_GRACE_NS, |s| {
        s.gone.iter().all(|g| *g)
    });
    let drain_end = mono_ns();
    if let Some(p) = &prober {
        p.stop();
    }
    let server_end = procfs::read(&plan.server_pids);
    line.finish();
    shards.reap();
    let probe = prober.and_then(|p| p.finish().map_err(|e| shards.errors.push(e)).ok());
    let own_cpu = sys::own_cpu_seconds();
    let secs = |a: u64, b: u64| b.saturating_sub(a) as f64 / 1e9;
    Measured {
        shards: shards.results,
        publish: phase.publish,
        server_before,
        server_connected: phase.server_connected,
        server_run_start: phase.server_run_start,
        server_end,
        t0_ns: phase.t0,
        own_cpu_run_s: own_cpu - phase.cpu_run0,
        own_cpu_s: own_cpu - cpu0,
        connect_s: secs(start, connected_at),
        run_s: secs(phase.t0, phase.run_end),
        drain_s: secs(phase.run_end, drain_end),
        total_s: secs(start, drain_end),
        probe,
        errors: shards.errors,
    }
}

/// What the middle phase measured.
struct PhaseFigures {
    publish: Option<Outcome>,
    server_connected: Reading,
    server_run_start: Reading,
    /// Start of the measured phase (publishing start; idle: all connected).
    t0: u64,
    run_end: u64,
    cpu_run0: f64,
}

/// idle: hold the connections, read the server's memory at the end of the hold
/// (while every connection is still open), then stop.
fn hold(
    plan: &Plan,
    shards: &mut Shards,
    line: &mut Line,
    connected_at: u64,
    deadline: u64,
) -> PhaseFigures {
    let server_run_start = procfs::read(&plan.server_pids);
    let cpu_run0 = sys::own_cpu_seconds();
    let hold_end = deadline.min(connected_at + plan.duration_ms * 1_000_000);
    shards.pump(line, hold_end, |s| s.gone.iter().all(|g| *g));
    let run_end = mono_ns();
    let server_connected = procfs::read(&plan.server_pids);
    shards.broadcast(&ToChild::Stop);
    PhaseFigures {
        publish: None,
        server_connected,
        server_run_start,
        t0: connected_at,
        run_end,
        cpu_run0,
    }
}

/// fanout, reconnect, slow: settle, publish for the duration, tell the workers the
/// last seq of each topic so they can finish as soon as everything arrived.
fn publish_and_drain(
    plan: &Plan,
    shards: &mut Shards,
    line: &mut Line,
    deadline: u64,
) -> PhaseFigures {
    let server_connected = procfs::read(&plan.server_pids);
    shards.pump(line, mono_ns() + SETTLE.as_nanos() as u64, |_| false);
    let server_run_start = procfs::read(&plan.server_pids);
    let cpu_run0 = sys::own_cpu_seconds();
    let t0 = mono_ns() + T0_LEAD_NS;
    let outcome = publish_phase(plan, shards, line, t0, deadline);
    let run_end = mono_ns();
    let final_seq = outcome
        .as_ref()
        .map_or_else(|_| vec![0; plan.topics as usize], |o| o.final_seq.clone());
    let drain_by = deadline.min(run_end + plan.drain_timeout_ms * 1_000_000);
    shards.broadcast(&ToChild::Drain {
        final_seq,
        deadline_ns: drain_by,
    });
    let publish = outcome.map_err(|e| shards.errors.push(e)).ok();
    PhaseFigures {
        publish,
        server_connected,
        server_run_start,
        t0,
        run_end,
        cpu_run0,
    }
}

/// Time allowed for every first connect: the ramp at the connect rate, the connect
/// timeout, and slack for process start-up.
fn ramp_ns(plan: &Plan) -> u64 {
    let ramp = f64::from(plan.connections) / plan.connect_rate;
    ((ramp + 5.0) * 1e9) as u64 + plan.connect_timeout_ms * 1_000_000
}

/// Publishes for the duration on its own thread while progress keeps flowing.
fn publish_phase(
    plan: &Plan,
    shards: &mut Shards,
    line: &mut Line,
    t0: u64,
    deadline: u64,
) -> Result<Outcome, String> {
    let end = deadline.min(t0 + plan.duration_ms * 1_000_000);
    shards.broadcast(&ToChild::Start { t0_ns: t0 });
    let live = Arc::new(Live::default());
    let (plan_arc, live2) = (Arc::new(plan.clone()), live.clone());
    let handle = std::thread::Builder::new()
        .name("loadgen-publisher".into())
        .spawn(move || publisher::run(plan_arc, t0, end, live2))
        .map_err(|e| format!("cannot start the publisher thread: {e}"))?;
    line.set_publisher(live.clone());
    shards.pump(line, deadline, |_| handle.is_finished());
    live.stop.store(true, std::sync::atomic::Ordering::Relaxed);
    handle
        .join()
        .map_err(|_| "the publisher thread panicked".to_owned())?
}

impl Shards {
    fn spawn(plan: &Plan, deadline_ns: u64) -> Shards {
        let per = plan.conns_per_process.max(1);
        let n = plan.connections.div_ceil(per);
        let (tx, rx) = mpsc::channel();
        let mut s = Shards {
            children: Vec::new(),
            stdins: Vec::new(),
            rx,
            progress: Vec::new(),
            ready: Vec::new(),
            results: Vec::new(),
            gone: Vec::new(),
            errors: Vec::new(),
        };
        let mut first = 0;
        for k in 0..n {
            let count = plan.connections / n + u32::from(k < plan.connections % n);
            let cp = ChildPlan {
                plan: plan.clone(),
                first,
                count,
                connect_rate: plan.connect_rate * f64::from(count) / f64::from(plan.connections),
                connect_inflight: plan.connect_inflight.div_ceil(n),
                deadline_ns,
            };
            first += count;
            s.progress.push(Snapshot::default());
            s.ready.push(false);
            s.results.push(None);
            if let Err(e) = s.start_one(k as usize, &cp, tx.clone()) {
                s.errors.push(format!("worker process {k}: {e}"));
                s.gone.push(true);
                s.stdins.push(None);
            }
        }
        s
    }

    fn start_one(
        &mut self,
        k: usize,
        cp: &ChildPlan,
        tx: mpsc::Sender<Event>,
    ) -> Result<(), String> {
        let exe =
            std::env::current_exe().map_err(|e| format!("cannot find own executable: {e}"))?;
        let mut child = Command::new(exe)
            .arg("--child")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot start: {e}"))?;
        let mut stdin = child.stdin.take().ok_or("no stdin")?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let plan_line = serde_json::to_string(cp).map_err(|e| e.to_string())?;
        writeln!(stdin, "{plan_line}").map_err(|e| format!("cannot send the plan: {e}"))?;
        std::thread::Builder::new()
            .name(format!("loadgen-shard-{k}"))
            .spawn(move || {
                for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                    if let Ok(msg) = serde_json::from_str(&line) {
                        let _ = tx.send(Event::Msg(k, msg));
                    }
                }
                let _ = tx.send(Event::Gone(k));
            })
            .map_err(|e| format!("cannot start a reader thread: {e}"))?;
        self.children.push(child);
        self.stdins.push(Some(stdin));
        self.gone.push(false);
        Ok(())
    }

    fn broadcast(&mut self, msg: &ToChild) {
        let Ok(text) = serde_json::to_string(msg) else {
            return;
        };
        for stdin in self.stdins.iter_mut().flatten() {
            // A worker that already exited is reported by its missing result.
            let _ = writeln!(stdin, "{text}");
        }
    }

    /// Handles worker messages until `until` (CLOCK_MONOTONIC ns), until `done` holds,
    /// refreshing the progress line.
    fn pump(&mut self, line: &mut Line, until: u64, done: impl Fn(&Shards) -> bool) {
        while !done(self) && mono_ns() < until {
            match self.rx.recv_timeout(Duration::from_millis(100)) {
                Ok(Event::Msg(k, msg)) => self.handle(k, msg),
                Ok(Event::Gone(k)) => self.gone[k] = true,
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
            line.tick(&self.progress);
        }
    }

    fn handle(&mut self, k: usize, msg: FromChild) {
        match msg {
            FromChild::Progress(s) => self.progress[k] = s,
            FromChild::Ready { .. } => self.ready[k] = true,
            FromChild::Result(r) => {
                self.progress[k].live = 0;
                self.results[k] = Some(*r);
            }
            FromChild::Error(e) => self.errors.push(format!("worker process {k}: {e}")),
        }
    }

    /// Closes the workers' stdin (which stops any still running), then waits for
    /// them; one that does not exit within the grace period is killed (by its own
    /// handle, so only processes this run started).
    fn reap(&mut self) {
        self.stdins.iter_mut().for_each(|s| drop(s.take()));
        let give_up = mono_ns() + 2_000_000_000;
        for (k, child) in self.children.iter_mut().enumerate() {
            while matches!(child.try_wait(), Ok(None)) && mono_ns() < give_up {
                std::thread::sleep(Duration::from_millis(20));
            }
            if matches!(child.try_wait(), Ok(None)) {
                self.errors
                    .push(format!("worker process {k} did not exit; killed"));
                let _ = child.kill();
                let _ = child.wait();
            }
        }
        for (k, r) in self.results.iter().enumerate() {
            if r.is_none() {
                self.errors
                    .push(format!("worker process {k} sent no result"));
            }
        }
    }
}
