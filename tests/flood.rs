//! Publish floods from one connection (issue 7): twenty thousand pipelined publishes
//! answered in order and delivered once each; a flood whose sender never reads its
//! answers, which must not make the server buffer without bound or stop serving others;
//! and bursts whose sender pauses before reading, which must still get every answer.

mod common;
mod hostile_kit;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{id_of, Server};
use hostile_kit::{parse_responses, round_trip, rss_kib, watch};

/// The tests each start a server and load the machine; one at a time.
static HEAVY: Mutex<()> = Mutex::new(());

fn publish_request(topic: &str, data: &str) -> String {
    format!(
        "POST /publish?topic={topic} HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{data}",
        data.len()
    )
}

/// Polls `/healthz` and publishes on another topic until `stop`; returns the slowest.
fn keep_probing(
    server_addr: std::net::SocketAddr,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Duration> {
    std::thread::spawn(move || {
        let mut slowest = Duration::ZERO;
        while !stop.load(Ordering::Relaxed) {
            let started = Instant::now();
            let (status, body) = common::get(server_addr, "/healthz");
            assert_eq!((status, body.as_str()), (200, "ok\n"));
            let mut c = common::Client::connect(server_addr);
            assert_eq!(c.publish("topic=probe", b"p", &[]).0, 202);
            slowest = slowest.max(started.elapsed());
            std::thread::sleep(Duration::from_millis(50));
        }
        slowest
    })
}

#[test]
fn twenty_thousand_pipelined_publishes_are_answered_and_delivered_in_order() {
    const N: usize = 20_000;
    let _heavy = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    // The subscriber must keep up with a flood on a loaded two-core machine: a deep queue
    // keeps this test about the publisher, not about slow-reader eviction.
    let server = Server::start(&["--workers", "2", "--max-queued-frames", "100000"]);
    let mut sub = watch(&server, "flood");
    let subscriber = std::thread::spawn(move || {
        (0..N)
            .map(|_| {
                let ev = sub.next();
                (ev.id, ev.data)
            })
            .collect::<Vec<_>>()
    });
    let stop = Arc::new(AtomicBool::new(false));
    let prober = keep_probing(server.addr, stop.clone());

    let mut conn = TcpStream::connect(server.addr).unwrap();
    let mut writer_conn = conn.try_clone().unwrap();
    // Everything is written without waiting for a single answer; the reading happens on
    // this thread only so that a full receive buffer cannot deadlock the two sides.
    let writer = std::thread::spawn(move || {
        let all: String = (0..N)
            .map(|i| publish_request("flood", &format!("e{i}")))
            .collect();
        writer_conn.write_all(all.as_bytes()).unwrap();
    });
    let started = Instant::now();
    let mut raw = Vec::new();
    let mut chunk = [0u8; 65536];
    conn.set_read_timeout(Some(common::PATIENCE)).unwrap();
    let responses = loop {
        let parsed = parse_responses(&raw, false).unwrap();
        if parsed.responses.len() >= N {
            break parsed.responses;
        }
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "only {} answers",
            parsed.responses.len()
        );
        let n = conn.read(&mut chunk).expect("answers keep coming");
        assert!(n > 0, "closed after {} answers", parsed.responses.len());
        raw.extend_from_slice(&chunk[..n]);
    };
    writer.join().unwrap();
    assert_eq!(responses.len(), N, "no answer beyond the requests");
    let ids: Vec<u64> = responses
        .iter()
        .map(|r| {
            assert_eq!(r.status, 202, "{}", r.head);
            id_of(&String::from_utf8_lossy(&r.body))
        })
        .collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ids strictly increasing, in request order"
    );

    let events = subscriber.join().unwrap();
    for (i, (id, data)) in events.iter().enumerate() {
        assert_eq!(
            (id, data),
            (&ids[i].to_string(), &format!("e{i}")),
            "event {i}"
        );
    }
    stop.store(true, Ordering::Relaxed);
    let slowest = prober.join().unwrap();
    eprintln!(
        "{N} publishes answered in {:?}; slowest probe {slowest:?}",
        started.elapsed()
    );
    assert!(
        slowest < Duration::from_secs(2),
        "another client waited {slowest:?}"
    );
    // Published: the flood, the probes; nothing twice.
    let probes = server.metric("ringcast_requests_total{status=\"202\"}") - N as u64;
    assert_eq!(hostile_kit::published(&server), N as u64 + probes);
}

#[test]
fn a_flood_that_never_reads_its_answers_is_bounded_and_others_are_served() {
    let _heavy = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let server = Server::start(&["--workers", "2"]);
    let rss_before = rss_kib(server.pid());
    let mut flood = TcpStream::connect(server.addr).unwrap();
    let sock = socket2::SockRef::from(&flood);
    sock.set_recv_buffer_size(4096).unwrap();
    sock.set_send_buffer_size(4096).unwrap();
    flood
        .set_write_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let batch: String = (0..256).map(|_| publish_request("nobody", "x")).collect();

    // Write until the server stops taking requests: a write blocked for a whole second.
    let started = Instant::now();
    let mut written = 0usize;
    let blocked = loop {
        if started.elapsed() > Duration::from_secs(60) || written > 256 << 20 {
            break false;
        }
        match flood.write(batch.as_bytes()) {
            Ok(n) => written += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                break true
            }
            Err(e) => panic!("the flood connection failed: {e}"),
        }
    };
    let per_request = publish_request("nobody", "x").len();
    eprintln!(
        "flood: {} KiB ({} requests) written in {:?}, blocked: {blocked}",
        written >> 10,
        written / per_request,
        started.elapsed()
    );
    assert!(
        blocked,
        "the server went on reading {} MiB of requests whose answers nobody reads",
        written >> 20
    );

    // It stopped reading that connection, and holds only a bounded amount for it.
    let published = hostile_kit::published(&server);
    std::thread::sleep(Duration::from_millis(500));
    let published_later = hostile_kit::published(&server);
    assert_eq!(
        published, published_later,
        "the stalled connection is not being read"
    );
    let rss = rss_kib(server.pid());
    assert!(
        rss < rss_before + 64 * 1024,
        "server RSS {rss_before} -> {rss} KiB"
    );

    // Others are served at once: a health check, a subscriber, a publisher.
    assert_eq!(common::get(server.addr, "/healthz"), (200, "ok\n".into()));
    let trip = round_trip(&server, "other", "still served");
    assert!(trip < Duration::from_secs(2), "round trip took {trip:?}");
    let trip = round_trip(&server, "other", "and again");
    assert!(trip < Duration::from_secs(2), "round trip took {trip:?}");

    // Once the flooder goes away, its connection is released.
    drop(flood);
    common::eventually("the flood connection released", || {
        server.metric("ringcast_connections") == 1
    });
    assert!(!server.log().contains("panicked"), "{}", server.log());
}

/// Pipelines `requests` on a connection with a small receive window, waits until the
/// server has stopped making progress on it (`progress` stalls: it is blocked writing
/// answers nobody reads) and then `linger` more, and only then reads every answer.
/// Returns the statuses and how the connection ended.
fn pause_then_read(
    server: &Server,
    requests: Vec<u8>,
    n: usize,
    progress: impl Fn() -> u64,
    linger: Duration,
) -> (Vec<u16>, &'static str) {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&server.addr.into()).unwrap();
    let mut conn: TcpStream = socket.into();
    let mut writer_conn = conn.try_clone().unwrap();
    let writer = std::thread::spawn(move || writer_conn.write_all(&requests));
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut last = progress();
    loop {
        std::thread::sleep(Duration::from_millis(500));
        let now = progress();
        if now == last {
            break;
        }
        last = now;
        assert!(
            Instant::now() < deadline,
            "the server never stalled on the unread answers"
        );
    }
    std::thread::sleep(linger);

    let mut statuses = Vec::new();
    let (mut raw, mut chunk) = (Vec::new(), vec![0u8; 1 << 16]);
    conn.set_read_timeout(Some(common::PATIENCE)).unwrap();
    let end = loop {
        match conn.read(&mut chunk) {
            Ok(0) => break "a close",
            Ok(k) => raw.extend_from_slice(&chunk[..k]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break "a reset",
            Err(e) => panic!("reading the answers: {e}"),
        }
        let parsed = parse_responses(&raw, false).unwrap();
        statuses.extend(parsed.responses.iter().map(|r| r.status));
        raw.drain(..raw.len() - parsed.rest);
        if statuses.len() >= n {
            break "all answers";
        }
        assert!(
            Instant::now() < deadline + Duration::from_secs(60),
            "answers stopped coming"
        );
    };
    let _ = writer.join().unwrap();
    (statuses, end)
}

/// A client that pipelines a burst of requests and pauses before reading the answers
/// (a GC pause, a busy event loop) has sent every request in time: the keep-alive and
/// handshake timeouts have nothing to say about it, and every request is answered. The
/// server stalls on writing to it meanwhile, which is the server waiting, not the client.
#[test]
fn a_client_that_pauses_before_reading_gets_every_answer() {
    const N: usize = 2000;
    let _heavy = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let server = Server::start(&["--workers", "2", "--keepalive-timeout", "500ms"]);
    // About 4 KiB each: 8 MB of answers, more than the kernel buffers between us.
    let requests = "GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n"
        .repeat(N)
        .into_bytes();
    // Each probe is itself a 200, counted once it has been answered.
    let probes = std::cell::Cell::new(0);
    let served = || {
        let all = server.metric("ringcast_requests_total{status=\"200\"}");
        probes.set(probes.get() + 1);
        all - (probes.get() - 1)
    };
    let (statuses, end) = pause_then_read(&server, requests, N, served, Duration::from_secs(1));
    let ok = statuses.iter().take_while(|&&s| s == 200).count();
    assert!(
        ok == N,
        "{ok} of {N} answered 200, then {:?} and {end}",
        &statuses[ok..statuses.len().min(ok + 3)]
    );
}

/// The same for publishes: every one is answered 202, so that the publisher knows what
/// was published. (Lost answers mean events published that the publisher will retry.)
#[test]
fn a_publisher_that_pauses_before_reading_gets_every_answer() {
    const N: usize = 80_000;
    let _heavy = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    let server = Server::start(&[
        "--workers",
        "2",
        "--handshake-timeout",
        "500ms",
        "--keepalive-timeout",
        "5s",
    ]);
    let requests: String = (0..N).map(|_| publish_request("burst", "b")).collect();
    let published = || hostile_kit::published(&server);
    let (statuses, end) = pause_then_read(
        &server,
        requests.into_bytes(),
        N,
        published,
        Duration::from_secs(1),
    );
    let ok = statuses.iter().take_while(|&&s| s == 202).count();
    let published = hostile_kit::published(&server);
    assert!(
        ok == N,
        "{ok} of {N} publishes answered 202, then {:?} and {end}; the server published \
         {published} events, {} of them without the publisher ever learning it",
        &statuses[ok..statuses.len().min(ok + 3)],
        published.saturating_sub(ok as u64)
    );
}

#[test]
fn a_burst_is_paced_and_evicts_no_reader() {
    const N: usize = 5_000;
    const READERS: usize = 20;
    let _heavy = HEAVY.lock().unwrap_or_else(|e| e.into_inner());
    // A small queue bound, and kernel send buffers too small to hide a backlog: a burst
    // of pipelined publishes fanned out at once would put far more than 64 frames behind
    // every reader. (With the default 128 KiB send buffers the readers on loopback keep
    // up with this burst, the server is never behind, and nothing needs holding back.)
    let server = Server::start(&[
        "--workers",
        "2",
        "--max-queued-frames",
        "64",
        "--sndbuf",
        "4KiB",
    ]);
    let readers: Vec<_> = (0..READERS)
        .map(|_| {
            let mut sub = watch(&server, "burst");
            std::thread::spawn(move || (0..N).map(|_| sub.next().data).collect::<Vec<_>>())
        })
        .collect();

    let mut conn = TcpStream::connect(server.addr).unwrap();
    let mut writer_conn = conn.try_clone().unwrap();
    let writer = std::thread::spawn(move || {
        let all: String = (0..N)
            .map(|i| publish_request("burst", &format!("e{i}")))
            .collect();
        writer_conn.write_all(all.as_bytes()).unwrap();
    });
    let mut raw = Vec::new();
    let mut chunk = [0u8; 65536];
    conn.set_read_timeout(Some(common::PATIENCE)).unwrap();
    let answers = loop {
        let parsed = parse_responses(&raw, false).unwrap();
        if parsed.responses.len() >= N {
            break parsed.responses;
        }
        let n = conn.read(&mut chunk).expect("answers keep coming");
        assert!(n > 0, "closed after {} answers", parsed.responses.len());
        raw.extend_from_slice(&chunk[..n]);
    };
    writer.join().unwrap();
    assert!(answers.iter().all(|r| r.status == 202));

    let expected: Vec<String> = (0..N).map(|i| format!("e{i}")).collect();
    for reader in readers {
        assert_eq!(
            reader.join().unwrap(),
            expected,
            "every reader got every event"
        );
    }
    assert_eq!(
        server.metric("ringcast_closes_total{reason=\"slow\"}"),
        0,
        "a reader was evicted for the server's own backlog"
    );
    // Whether the burst was paced by the publish gate (`ringcast_publish_waits_total`)
    // or by the worker serving the publisher's pipelined requests between fan-out turns
    // is the server's choice; both happen here, run to run. What must hold is above.
}
