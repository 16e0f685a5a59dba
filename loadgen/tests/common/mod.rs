//! The harness of loadgen's integration tests: a ringcast server started per test, and
//! loadgen run against it, with assertions on its JSON report.
//!
//! The server binary comes from `RINGCAST_BIN`, or else from the target directory of
//! the test (`target/debug/ringcast`); without it the tests fail and say how to build it.

#![allow(dead_code)] // each test binary uses part of it
use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::Duration;

use serde_json::Value;

/// The machine has two cores: one scenario at a time, or the runs measure each other.
pub static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

pub fn server_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("RINGCAST_BIN") {
        return PathBuf::from(p);
    }
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/scenarios-<hash> -> target/<profile>/ringcast
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .expect("target directory");
    dir.join("ringcast")
}

/// A ringcast server on a free loopback port, stopped (by its own handle) on drop.
pub struct Server {
    child: Child,
    port: u16,
}

impl Server {
    pub fn start() -> Server {
        let bin = server_bin();
        assert!(
            bin.exists(),
            "ringcast server binary not found at {}: run `cargo build --bin ringcast` first (or set RINGCAST_BIN)",
            bin.display()
        );
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let mut child = Command::new(&bin)
            .args(["--listen", &format!("127.0.0.1:{port}"), "--workers", "2"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
        let stderr = child.stderr.take().expect("server stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if line.contains("listen=") {
                    let _ = tx.send(());
                }
            }
        });
        let mut server = Server { child, port };
        if rx.recv_timeout(Duration::from_secs(10)).is_err() {
            server.stop();
            panic!("{} did not log listen= within 10 s", bin.display());
        }
        server
    }

    fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs loadgen with `args`; returns its exit code and its JSON report.
pub fn loadgen(args: &[&str]) -> (i32, Value) {
    let dir = std::env::temp_dir().join(format!("loadgen-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let json = dir.join(format!(
        "{}.json",
        args.join("_").replace(['/', ':', ' '], "-")
    ));
    let _ = std::fs::remove_file(&json);
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(args)
        .args(["--quiet", "--deadline", "60s", "--json"])
        .arg(&json)
        .output()
        .expect("run loadgen");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let text = std::fs::read_to_string(&json)
        .unwrap_or_else(|e| panic!("no JSON report ({e}); stdout:\n{stdout}\nstderr:\n{stderr}"));
    let report: Value = serde_json::from_str(&text).expect("valid JSON");
    let _ = std::fs::remove_file(&json);
    let _ = std::fs::remove_dir(&dir);
    println!("{stdout}");
    (out.status.code().unwrap_or(-1), report)
}

pub fn run_scenario(server: &Server, scenario: &str, extra: &[&str]) -> (i32, Value) {
    let url = format!("http://127.0.0.1:{}", server.port);
    let pid = server.child.id().to_string();
    let mut args = vec![scenario, "--server", &url, "--server-pid", &pid];
    args.extend_from_slice(extra);
    loadgen(&args)
}

pub fn u(v: &Value, path: &str) -> u64 {
    v.pointer(path)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("{path} missing in {v:#}"))
}

pub fn assert_all_connected(r: &Value, n: u64) {
    assert_eq!(
        u(r, "/connections/established"),
        n,
        "{:#}",
        r["connections"]
    );
    assert_eq!(u(r, "/connections/failed"), 0, "{:#}", r["connections"]);
    assert_eq!(u(r, "/connections/dropped_by_server"), 0);
}

pub fn assert_complete_delivery(r: &Value) {
    let expected = u(r, "/delivery/events_expected");
    assert!(expected > 0, "nothing was published: {:#}", r["publish"]);
    assert_eq!(
        u(r, "/delivery/events_received"),
        expected,
        "{:#}",
        r["delivery"]
    );
    assert_eq!(u(r, "/delivery/lost"), 0);
    assert_eq!(u(r, "/delivery/duplicated"), 0);
    let timed = u(r, "/latency_us/count")
        + r.pointer("/slow/others_latency_during_us/count")
            .and_then(Value::as_u64)
            .unwrap_or(0);
    assert_eq!(timed, expected, "every delivery has a latency");
}

/// The run passed every check and loadgen exited 0.
/// Every probe kind ran, and none failed.
pub fn assert_probes_answered(r: &Value) {
    for kind in ["healthz", "subscribe", "publish"] {
        let p = &r["probe"][kind];
        assert!(u(r, &format!("/probe/{kind}/n")) > 0, "{kind}: {p:#}");
        assert_eq!(u(r, &format!("/probe/{kind}/failures")), 0, "{kind}: {p:#}");
    }
}

pub fn assert_passed(code: i32, r: &Value) {
    assert_eq!(
        (code, r["ok"].as_bool()),
        (0, Some(true)),
        "{:#}",
        r["checks"]
    );
}
