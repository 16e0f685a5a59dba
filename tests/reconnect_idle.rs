//! A browser's EventSource reconnecting to an idle server gets its response head at once.
//!
//! The case: a subscriber connects, stays 1.1 s, closes, and a new connection subscribes.
//! At 526297e the io_uring loop lost the wake-up for the new stream in about one try in
//! four and answered it only at the first connection's heartbeat deadline, 13-14 s later:
//! the loop yielded through its eventfd doorbell while the doorbell's watcher task still
//! waited for the loop to take the previous ring, so nobody watched the doorbell. The
//! bound here (1 s) is far above a loaded machine's scheduling noise and far below the
//! defect.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::Server;

const ROUNDS: usize = 20;
const HEAD_WITHIN: Duration = Duration::from_secs(1);

/// Sends a subscribe head and returns the stream and how long the response head took.
fn subscribe(addr: SocketAddr) -> (TcpStream, Duration) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let started = Instant::now();
    s.write_all(b"GET /events?topic=X HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while common::find(&head, b"\r\n\r\n").is_none() {
        let n = s
            .read(&mut buf)
            .expect("the response head (read timed out)");
        assert!(n > 0, "closed before the head");
        head.extend_from_slice(&buf[..n]);
    }
    assert!(head.starts_with(b"HTTP/1.1 200 OK\r\n"), "{head:?}");
    (s, started.elapsed())
}

/// Every round's two heads, as (first, reconnect) durations.
fn rounds(args: &[&str]) -> Vec<(Duration, Duration)> {
    let server = Server::start(args);
    (0..ROUNDS)
        .map(|_| {
            let (first, a) = subscribe(server.addr);
            std::thread::sleep(Duration::from_millis(1100));
            drop(first);
            let (second, b) = subscribe(server.addr);
            drop(second);
            (a, b)
        })
        .collect()
}

#[test]
fn a_reconnect_after_an_idle_second_gets_its_head_at_once() {
    let configs: [&[&str]; 4] = [
        &["--workers", "1", "--driver", "uring"],
        &["--workers", "2", "--driver", "uring"],
        &["--workers", "1", "--driver", "legacy"],
        &["--workers", "2", "--driver", "legacy"],
    ];
    // The four servers run side by side: 20 rounds take about 25 s each.
    let runs: Vec<_> = configs
        .iter()
        .map(|args| {
            let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
            std::thread::spawn(move || {
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                (args.join(" "), rounds(&args))
            })
        })
        .collect();
    for run in runs {
        let (args, times) = run.join().expect("a round panicked");
        let slow: Vec<_> = times
            .iter()
            .enumerate()
            .filter(|(_, (a, b))| *a > HEAD_WITHIN || *b > HEAD_WITHIN)
            .collect();
        assert!(
            slow.is_empty(),
            "{args}: heads over {HEAD_WITHIN:?}: {slow:?}"
        );
    }
}
