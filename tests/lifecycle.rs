//! The connection lifecycle driven by the timer wheel: heartbeats, slow-reader eviction,
//! maximum lifetime, and the shutdown drain on a real process. Timers are configured
//! in tens of milliseconds; assertions allow generous slack for a shared machine.

mod common;

use std::io::Read;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{Server, Sse};

#[test]
fn a_quiet_stream_gets_heartbeats_and_a_busy_one_does_not() {
    let server = Server::start(&["--workers", "1", "--heartbeat", "300ms"]);
    let mut quiet = server.subscribe("topic=quiet");
    let mut busy = server.subscribe("topic=busy");
    quiet.head();
    busy.head();
    let opened = Instant::now();
    common::eventually("subscribed", || server.metric("ringcast_subscribers") == 2);
    // Events every 50 ms for 1.5 s: far more often than the heartbeat interval.
    let publishing = Instant::now();
    let mut first_heartbeat = None;
    while publishing.elapsed() < Duration::from_millis(1500) {
        server.publish("topic=busy", b"tick");
        while busy.next_within(Duration::from_millis(50)).is_some() {}
        quiet.next_within(Duration::from_millis(1));
        if first_heartbeat.is_none() && quiet.comments > 0 {
            first_heartbeat = Some(opened.elapsed());
        }
    }
    let first = first_heartbeat.expect("the quiet stream got a heartbeat");
    assert!(
        first >= Duration::from_millis(280),
        "not before the interval: {first:?}"
    );
    assert!(
        first <= Duration::from_millis(1200),
        "within the interval plus slack: {first:?}"
    );
    assert!(
        quiet.comments >= 2,
        "one per interval while quiet: {}",
        quiet.comments
    );
    assert_eq!(
        busy.comments, 0,
        "a stream that receives events gets no heartbeat"
    );
    let body = String::from_utf8_lossy(quiet.body()).into_owned();
    assert!(body.contains("\n:\n"), "{body:?}");
    assert!(
        !body.contains(":\n\n"),
        "a heartbeat is one comment line, no blank line: {body:?}"
    );
}

#[test]
fn a_reader_that_stops_is_evicted_while_the_others_keep_everything() {
    // The reading client has room to lag on a loaded test machine (a 256 KiB kernel send
    // buffer, then 512 queued frames of 1 KiB); the stopped one, whose receive window is
    // 4 KiB, passes that long before the 2,000th event (2 MB).
    let server = Server::start(&["--workers", "1", "--max-queued-frames", "512"]);
    // The slow client reads its head and then never again, with a tiny receive buffer.
    let slow = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    slow.set_recv_buffer_size(4096).unwrap();
    slow.connect(&server.addr.into()).unwrap();
    let mut slow: TcpStream = slow.into();
    std::io::Write::write_all(
        &mut slow,
        b"GET /events?topic=s HTTP/1.1\r\nHost: t\r\n\r\n",
    )
    .unwrap();
    let mut head = [0u8; 200];
    let _ = slow.read(&mut head).unwrap();
    let mut reader = server.subscribe("topic=s");
    reader.head();
    common::eventually("subscribed", || server.metric("ringcast_subscribers") == 2);
    let payload = vec![b'x'; 1024];
    let events = 2000;
    let publisher = std::thread::spawn({
        let addr = server.addr;
        let payload = payload.clone();
        move || {
            let mut c = common::Client::connect(addr);
            for _ in 0..events {
                assert_eq!(c.publish("topic=s", &payload, &[]).0, 202);
            }
        }
    });
    let got = reader.take(events);
    publisher.join().unwrap();
    assert!(got.iter().all(|e| e.data.len() == 1024));
    common::eventually("the slow reader evicted", || {
        server.metric("ringcast_closes_total{reason=\"slow\"}") == 1
    });
    assert_eq!(
        server.metric("ringcast_subscribers"),
        1,
        "the reader is still subscribed"
    );
    // The evicted connection is reset: reading drains what was delivered, then ends.
    slow.set_read_timeout(Some(common::PATIENCE)).unwrap();
    let mut sink = [0u8; 65536];
    loop {
        match slow.read(&mut sink) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
    }
}

#[test]
fn streams_end_at_their_maximum_lifetime_with_a_jittered_retry() {
    let server = Server::start(&[
        "--workers",
        "1",
        "--max-lifetime",
        "500ms",
        "--retry",
        "1000ms",
    ]);
    let mut subs: Vec<Sse> = (0..10).map(|_| server.subscribe("topic=l")).collect();
    let opened = Instant::now();
    let mut retries = Vec::new();
    for s in &mut subs {
        s.head();
        let events = s.until_closed(Duration::from_secs(10));
        assert!(events.is_empty());
        assert!(s.ended, "a planned close ends with the last chunk");
        let body = String::from_utf8_lossy(s.body()).into_owned();
        let last = body.trim_end().rsplit('\n').next().unwrap().to_string();
        let ms: u64 = last
            .strip_prefix("retry: ")
            .unwrap_or_else(|| panic!("no final retry in {body:?}"))
            .parse()
            .unwrap();
        assert!(
            (1000..2000).contains(&ms),
            "retry {ms} is the base plus jitter below it"
        );
        retries.push(ms);
    }
    assert!(
        opened.elapsed() >= Duration::from_millis(400),
        "not before the lifetime (minus jitter)"
    );
    retries.sort_unstable();
    retries.dedup();
    assert!(
        retries.len() > 1,
        "jitter differs between connections: {retries:?}"
    );
    common::eventually("counted", || {
        server.metric("ringcast_closes_total{reason=\"lifetime\"}") == 10
    });
}

#[test]
fn sigterm_drains_every_subscriber_with_a_retry_then_exits_zero() {
    let mut server = Server::start(&["--workers", "2", "--drain", "1s"]);
    let mut subs: Vec<Sse> = (0..200).map(|_| server.subscribe("topic=bye")).collect();
    for s in &mut subs {
        s.head();
    }
    common::eventually("subscribed", || {
        server.metric("ringcast_subscribers") == 200
    });
    let (_, body) = server.publish("topic=bye", b"before the signal");
    let id = common::id_of(&body);
    server.signal(libc::SIGTERM);
    let signalled = Instant::now();
    common::eventually("healthz says draining", || {
        let mut probe = TcpStream::connect(server.addr);
        match probe.as_mut() {
            // The listeners are shut during the drain; refused connects also mean draining.
            Err(_) => true,
            Ok(s) => {
                s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
                std::io::Write::write_all(
                    s,
                    b"GET /healthz HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
                )
                .unwrap();
                let raw = common::read_to_close(s);
                raw.is_empty() || raw.starts_with("HTTP/1.1 503")
            }
        }
    });
    for s in &mut subs {
        let events = s.until_closed(Duration::from_secs(10));
        assert_eq!(
            events.len(),
            1,
            "the event published before the signal arrives: {:?} LOG {}",
            String::from_utf8_lossy(s.body()),
            server.log()
        );
        assert_eq!(events[0].id, id.to_string());
        let body = String::from_utf8_lossy(s.body()).into_owned();
        assert!(
            s.ended,
            "the drain ends each stream with the last chunk: {body:?}"
        );
        let hint = body
            .strip_suffix('\n')
            .and_then(|b| b.rsplit_once("\n\nretry: "))
            .map(|(_, ms)| ms)
            .unwrap_or_else(|| panic!("a retry hint after the event, last: {body:?}"));
        assert!(hint.parse::<u64>().is_ok(), "{body:?}");
    }
    let status = server
        .wait_exit(Duration::from_secs(10))
        .expect("the process exits");
    assert!(status.success(), "exit status {status:?}");
    assert!(
        signalled.elapsed() < Duration::from_secs(4),
        "within the drain period plus slack: {:?}",
        signalled.elapsed()
    );
}
