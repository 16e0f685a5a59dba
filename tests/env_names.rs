//! Environment variables as a user sets them: `--foo-bar` reads `RINGCAST_FOO_BAR`, an
//! old plural name still works with a warning, and a `RINGCAST_*` name that no flag
//! reads is named in a warning at start instead of being silently ignored.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};

use common::{exchange, header, status_of, PATIENCE};

/// A `ringcast --listen 127.0.0.1:0 --workers 1` with exactly the `RINGCAST_*`
/// variables given (none inherited from the test's own environment), killed when dropped.
struct Started {
    child: Child,
    addr: SocketAddr,
    /// Every stderr line up to and including the start line.
    log: String,
}

impl Started {
    fn with_env(vars: &[(&str, &str)]) -> Started {
        let mut command = Command::new(env!("CARGO_BIN_EXE_ringcast"));
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("RINGCAST_") {
                command.env_remove(key);
            }
        }
        let mut child = command
            .envs(vars.iter().copied())
            .args(["--listen", "127.0.0.1:0", "--workers", "1"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ringcast");
        let stderr = child.stderr.take().expect("stderr piped");
        let (tx, rx) = std::sync::mpsc::channel();
        // The reader keeps draining stderr after the start line, so the server never
        // blocks on a full pipe.
        std::thread::spawn(move || {
            let mut log = String::new();
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                log.push_str(&line);
                log.push('\n');
                let addr = line
                    .split_whitespace()
                    .find_map(|f| f.strip_prefix("listen="));
                if let Some(addr) = addr {
                    if let Some(tx) = tx.take() {
                        let addr: SocketAddr = addr.parse().expect("listen= address");
                        let _ = tx.send(Ok((addr, log.clone())));
                    }
                }
            }
            if let Some(tx) = tx {
                let _ = tx.send(Err(log));
            }
        });
        match rx.recv_timeout(PATIENCE) {
            Ok(Ok((addr, log))) => Started { child, addr, log },
            other => {
                let _ = child.kill();
                let _ = child.wait();
                panic!("ringcast did not start: {other:?}");
            }
        }
    }

    /// A CORS preflight for `GET /events` from `origin`: the status and the head.
    fn preflight(&self, origin: &str) -> (u16, String) {
        let raw = exchange(
            self.addr,
            format!(
                "OPTIONS /events?topic=t HTTP/1.1\r\nHost: t\r\nOrigin: {origin}\r\n\
                 Access-Control-Request-Method: GET\r\nConnection: close\r\n\r\n"
            )
            .as_bytes(),
        );
        let head = raw.split_once("\r\n\r\n").map_or(&*raw, |(h, _)| h);
        (status_of(head), head.to_owned())
    }

    fn warnings(&self) -> Vec<&str> {
        self.log
            .lines()
            .filter(|l| l.contains(" level=warn "))
            .collect()
    }
}

impl Drop for Started {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The part of a log line after its timestamp.
fn without_ts(line: &str) -> &str {
    line.split_once(' ').map_or(line, |(_, rest)| rest)
}

#[test]
fn the_flag_named_variable_applies_and_a_misspelt_one_is_named() {
    let server = Started::with_env(&[("RINGCAST_CORS_ORIGIN", "*"), ("RINGCAST_HEARTBEET", "1s")]);
    let (status, head) = server.preflight("https://app.example.com");
    assert_eq!(status, 204, "{head}");
    assert_eq!(
        header(&head, "access-control-allow-origin"),
        Some("*"),
        "{head}"
    );
    assert_eq!(
        server
            .warnings()
            .into_iter()
            .map(without_ts)
            .collect::<Vec<_>>(),
        [
            "level=warn msg=\"environment variable names no flag; ignored\" \
             variable=RINGCAST_HEARTBEET did_you_mean=RINGCAST_HEARTBEAT flag=--heartbeat"
        ],
        "{}",
        server.log
    );
}

#[test]
fn the_old_plural_name_still_applies_with_a_warning() {
    let server = Started::with_env(&[("RINGCAST_CORS_ORIGINS", "https://app.example.com")]);
    let (status, head) = server.preflight("https://app.example.com");
    assert_eq!(status, 204, "{head}");
    assert_eq!(
        header(&head, "access-control-allow-origin"),
        Some("https://app.example.com"),
        "{head}"
    );
    assert_eq!(server.preflight("https://other.example.com").0, 403);
    assert_eq!(
        server
            .warnings()
            .into_iter()
            .map(without_ts)
            .collect::<Vec<_>>(),
        [
            "level=warn msg=\"deprecated environment variable; rename it\" \
             variable=RINGCAST_CORS_ORIGINS use_instead=RINGCAST_CORS_ORIGIN flag=--cors-origin"
        ],
        "{}",
        server.log
    );
}

#[test]
fn without_cors_variables_there_is_no_cors_and_no_warning() {
    // RINGCAST_BIN is the test suite's own (scripts/test exports it): not a warning.
    let server = Started::with_env(&[("RINGCAST_BIN", "/bin/true"), ("RINGCAST_DRAIN", "1s")]);
    let (_, head) = server.preflight("https://app.example.com");
    assert_eq!(header(&head, "access-control-allow-origin"), None, "{head}");
    assert!(server.warnings().is_empty(), "{}", server.log);
}
