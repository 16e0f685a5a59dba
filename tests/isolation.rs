//! A subscriber that stops reading costs only itself (issue 18): it is evicted as `slow`
//! at its own queue bound, its publisher is not paced for it, and publishers to other
//! topics, on its worker or the other, do not notice it.

mod common;
mod hostile_kit;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::FromRawFd;
use std::time::{Duration, Instant};

use common::Server;
use hostile_kit::parse_responses;

/// A connection with a small receive buffer, as a phone on a bad network has.
#[allow(unsafe_code)] // a socket option must be set before connect
fn connect_with_rcvbuf(addr: SocketAddr, rcvbuf: i32) -> TcpStream {
    let SocketAddr::V4(v4) = addr else {
        panic!("the test server listens on IPv4")
    };
    // SAFETY: plain socket calls on a descriptor this function owns until it hands it
    // to the TcpStream.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(fd >= 0, "socket");
        let size = &rcvbuf as *const i32 as *const libc::c_void;
        let len = std::mem::size_of::<i32>() as libc::socklen_t;
        assert_eq!(
            libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, size, len),
            0
        );
        let sa = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: v4.port().to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(*v4.ip()).to_be(),
            },
            sin_zero: [0; 8],
        };
        let sa_len = std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t;
        let rc = libc::connect(fd, &sa as *const _ as *const libc::sockaddr, sa_len);
        assert_eq!(rc, 0, "connect");
        TcpStream::from_raw_fd(fd)
    }
}

fn publish_request(topic: &str, data: &str) -> String {
    format!(
        "POST /publish?topic={topic} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{data}",
        data.len()
    )
}

#[test]
fn a_reader_that_stopped_reading_is_evicted_without_pacing_anyone() {
    const N: usize = 2_000;
    const PIPELINED: usize = 20;
    let server = Server::start(&["--workers", "2"]);

    // The stuck reader: it reads its response head, then nothing more.
    let mut stuck = connect_with_rcvbuf(server.addr, 4096);
    stuck
        .write_all(b"GET /events?topic=stuck HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut head = [0u8; 256];
    stuck.set_read_timeout(Some(common::PATIENCE)).unwrap();
    assert!(stuck.read(&mut head).unwrap() > 0, "no response head");
    common::eventually("the stuck reader subscribed", || {
        server.metric("ringcast_subscribers") == 1
    });

    // Publishers of another topic, timing every answer, back to back. Four keep-alive connections,
    // used in turn: SO_REUSEPORT spreads them over both workers, so some share the
    // stuck reader's worker and some do not; none may notice it.
    let mut probes: Vec<common::Client> = (0..4)
        .map(|_| common::Client::connect(server.addr))
        .collect();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let prober = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut took = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let probe = &mut probes[took.len() % 4];
                let started = Instant::now();
                assert_eq!(probe.publish("topic=other", b"probe", &[]).0, 202);
                took.push(started.elapsed());
            }
            took
        })
    };

    // The stuck reader's publisher: 2,000 single 1 KiB POSTs, 20 per write.
    let started = Instant::now();
    let mut conn = TcpStream::connect(server.addr).unwrap();
    // Without it, the tail of each 20-request write waits for a delayed ACK (40 ms).
    conn.set_nodelay(true).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let data = "x".repeat(1024);
    let one = publish_request("stuck", &data);
    let (mut raw, mut chunk, mut answered) = (Vec::new(), [0u8; 65536], 0);
    let mut slowest = (Duration::ZERO, 0);
    for round in 0..N / PIPELINED {
        let round_started = Instant::now();
        conn.write_all(one.repeat(PIPELINED).as_bytes()).unwrap();
        let want = answered + PIPELINED;
        while answered < want {
            let n = conn.read(&mut chunk).expect("publish answers within 10 s");
            assert!(n > 0, "publisher closed after {answered} answers");
            raw.extend_from_slice(&chunk[..n]);
            let parsed = parse_responses(&raw, false).unwrap();
            assert!(parsed.responses.iter().all(|r| r.status == 202));
            answered = parsed.responses.len();
        }
        slowest = slowest.max((round_started.elapsed(), round));
    }
    eprintln!("slowest round of {PIPELINED}: {slowest:?}");
    let publishing = started.elapsed();
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut took = prober.join().unwrap();

    assert!(
        publishing < Duration::from_secs(10),
        "{N} publishes took {publishing:?}: the stuck reader paced its publisher"
    );
    common::eventually("the stuck reader evicted as slow", || {
        server.metric("ringcast_closes_total{reason=\"slow\"}") == 1
    });
    took.sort();
    eprintln!(
        "{N} publishes in {publishing:?}; other topic: {} answers, median {:?}, max {:?}",
        took.len(),
        took[took.len() / 2],
        took.last()
    );
    let p99 = took[(took.len() * 99 / 100).min(took.len() - 1)];
    assert!(
        p99 < Duration::from_millis(50),
        "another topic's publishes: p99 {p99:?} over {} answers (max {:?})",
        took.len(),
        took.last()
    );
    drop(stuck);
}
