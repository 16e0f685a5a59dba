//! The forward-auth bench's two helpers in one std-only program (built by
//! `benches/forward_auth.sh` with plain `rustc -O`, no crates):
//!
//! - `bench auth PORT DELAY_US`: a keep-alive HTTP/1.1 auth server on 127.0.0.1 that
//!   answers every request `200` after DELAY_US microseconds (a thread per connection;
//!   ringcast opens at most --auth-max-conns per worker).
//! - `bench drive ADDR N CONCURRENCY PID`: N subscribes (`GET /events`) to ringcast at
//!   ADDR from CONCURRENCY threads, each reading the response head and closing; prints
//!   the wall time, the rate, and PID's CPU time (utime + stime from /proc) over the run.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    match args.get(1).map(String::as_str) {
        Some("auth") => auth(args[2].parse().unwrap(), args[3].parse().unwrap()),
        Some("drive") => drive(
            &args[2],
            args[3].parse().unwrap(),
            args[4].parse().unwrap(),
            args[5].parse().unwrap(),
        ),
        _ => {
            eprintln!("usage: bench auth PORT DELAY_US | bench drive ADDR N CONCURRENCY PID");
            std::process::exit(2);
        }
    }
}

fn auth(port: u16, delay_us: u64) {
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind the auth port");
    println!("ready");
    for stream in listener.incoming().flatten() {
        std::thread::spawn(move || answer(stream, Duration::from_micros(delay_us)));
    }
}

fn answer(mut stream: TcpStream, delay: Duration) {
    let _ = stream.set_nodelay(true);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        while let Some(end) = find(&buf, b"\r\n\r\n") {
            buf.drain(..end + 4);
            std::thread::sleep(delay);
            if stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
                .is_err()
            {
                return;
            }
        }
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

/// utime + stime of `pid`, in seconds.
fn cpu(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("the server's stat");
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    // After the name: state is field 3, utime 14 and stime 15 (1-based, man proc).
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    ticks as f64 / 100.0
}

fn drive(addr: &str, n: usize, concurrency: usize, pid: u32) {
    let next = Arc::new(AtomicUsize::new(0));
    let ok = Arc::new(AtomicUsize::new(0));
    let (cpu0, t0) = (cpu(pid), Instant::now());
    let threads: Vec<_> = (0..concurrency)
        .map(|_| {
            let (next, ok, addr) = (next.clone(), ok.clone(), addr.to_string());
            std::thread::spawn(move || loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= n {
                    return;
                }
                if subscribe(&addr, i) {
                    ok.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let wall = t0.elapsed().as_secs_f64();
    // Let the server see the last closes before its CPU is read.
    std::thread::sleep(Duration::from_millis(300));
    let used = cpu(pid) - cpu0;
    let ok = ok.load(Ordering::Relaxed);
    println!(
        "subscribes={n} ok={ok} wall_s={wall:.3} per_s={:.0} server_cpu_s={used:.2} cpu_us_per_subscribe={:.1}",
        n as f64 / wall,
        used * 1e6 / n as f64
    );
}

/// One subscribe: true when its answer is `200`.
fn subscribe(addr: &str, i: usize) -> bool {
    let Ok(mut s) = TcpStream::connect(addr) else {
        return false;
    };
    let _ = s.set_nodelay(true);
    let _ = s.set_read_timeout(Some(Duration::from_secs(10)));
    let req = format!(
        "GET /events?topic=t{} HTTP/1.1\r\nHost: bench\r\nCookie: session=s{}\r\n\r\n",
        i % 100,
        i % 1000
    );
    if s.write_all(req.as_bytes()).is_err() {
        return false;
    }
    let mut buf = Vec::new();
    let mut chunk = [0u8; 1024];
    while find(&buf, b"\r\n\r\n").is_none() {
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return false,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    buf.starts_with(b"HTTP/1.1 200 ")
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}
