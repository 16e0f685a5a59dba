//! Third-party client programs under test (`tests/clients/`, installed with pinned versions
//! by `tests/clients/install.sh`): how to start one, wait on it, and collect the one JSON
//! document it prints. A missing runtime or module fails the test with how to install it.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;

/// How long a client program may take to start and subscribe. A browser launched while
/// the rest of the suite loads both cores has been seen to need more than `PATIENCE`;
/// the server's part (answering the subscribe) is not what this bounds.
pub const CLIENT_START: Duration = Duration::from_secs(90);

/// Where the client programs and their installed modules live.
pub const CLIENTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/clients");

/// A client program under test, in its own process group so that nothing it starts
/// outlives the test.
pub struct Running {
    child: Child,
    stdout: Option<JoinHandle<String>>,
    stderr: Arc<Mutex<String>>,
}

impl Running {
    pub fn spawn(command: &mut Command) -> Running {
        let mut child = (command.stdin(Stdio::null()))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {command:?}: {e}"));
        let mut out = child.stdout.take().expect("piped");
        let mut err = child.stderr.take().expect("piped");
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = err.read_to_string(&mut text);
            sink.lock().unwrap().push_str(&text);
        });
        let stdout = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = out.read_to_string(&mut text);
            text
        });
        Running {
            child,
            stdout: Some(stdout),
            stderr,
        }
    }

    /// Polls `done` until it holds; fails if the client exits first or `within` runs out.
    pub fn wait_for(&mut self, what: &str, within: Duration, mut done: impl FnMut() -> bool) {
        let deadline = Instant::now() + within;
        while !done() {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                let out = self.stdout.take().map(|h| h.join().unwrap());
                panic!(
                    "the client exited ({status}) while waiting for {what}\nstdout: {}\nstderr: {}",
                    out.unwrap_or_default(),
                    self.stderr.lock().unwrap()
                );
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits (at most `limit`) for the client to exit with success; returns its report
    /// and its raw stdout.
    pub fn finish<R: DeserializeOwned>(mut self, limit: Duration) -> (R, String) {
        let deadline = Instant::now() + limit;
        let status: ExitStatus = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            assert!(Instant::now() < deadline, "the client did not exit");
            std::thread::sleep(Duration::from_millis(20));
        };
        let json = self.stdout.take().expect("once").join().unwrap();
        let stderr = self.stderr.lock().unwrap().clone();
        let report = serde_json::from_str(&json).unwrap_or_else(|e| {
            panic!("no report from the client ({e}; {status})\nstdout: {json}\nstderr: {stderr}")
        });
        assert!(
            status.success(),
            "client {status}: {json}\nstderr: {stderr}"
        );
        (report, json)
    }

    fn signal_group(&self, signal: i32) {
        // SAFETY: kill(2) on the process group of a child we started (its pid is the
        // group id, from `process_group(0)`) and have not yet reaped.
        unsafe { libc::kill(-(self.child.id() as i32), signal) };
    }
}

impl Drop for Running {
    /// Asks politely first (Playwright closes the browser on SIGTERM), then kills.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        self.signal_group(libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.signal_group(libc::SIGKILL);
        let _ = self.child.wait();
    }
}

/// `node tests/clients/<script>`, after checking that node and `modules` are there.
pub fn node_program(script: &str, modules: &[&str]) -> Command {
    require_on_path(
        "node",
        "install Node.js 20 or later, then run tests/clients/install.sh",
    );
    for module in modules {
        let manifest = Path::new(CLIENTS).join(format!("node_modules/{module}/package.json"));
        assert!(
            manifest.exists(),
            "the node module `{module}` is missing from tests/clients/node_modules: \
             run tests/clients/install.sh (npm ci with the pinned package-lock.json)"
        );
    }
    let mut command = Command::new("node");
    command.current_dir(CLIENTS).arg(script);
    command
}

/// `python tests/clients/<script>` with the venv's interpreter when there is one, else
/// `python3`, after checking that it can `import <imports>`.
pub fn python_program(script: &str, imports: &str) -> Command {
    let venv = Path::new(CLIENTS).join(".venv/bin/python");
    let python = if venv.exists() {
        venv.into_os_string()
    } else {
        require_on_path("python3", "install Python 3.11 or later");
        "python3".into()
    };
    let status = Command::new(&python)
        .args(["-c", &format!("import {imports}")])
        .stderr(Stdio::null())
        .status();
    assert!(
        status.is_ok_and(|s| s.success()),
        "{python:?} cannot import {imports}: run tests/clients/install.sh \
         (it makes tests/clients/.venv from tests/clients/requirements.txt)"
    );
    let mut command = Command::new(python);
    command.current_dir(CLIENTS).arg(script);
    command
}

/// Fails the test, saying how to install `program`, unless it is on PATH.
pub fn require_on_path(program: &str, how: &str) {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let found = std::env::split_paths(&path).any(|dir| dir.join(program).is_file());
    assert!(found, "`{program}` is not on PATH: {how}");
}
