//! TLS on the listener (`--tls-cert`, `--tls-key`), driven by a rustls client: the exact
//! stream bytes, publishing, resume, heartbeats, the drain, key updates from the client,
//! close_notify, every cipher suite in both versions, certificate reloads, and hostile
//! input (plaintext on the TLS port, truncated, stalled and garbage handshakes, records
//! that do not open). Nothing may panic the server or leave a connection open.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::tls::{exchange, publish, Pki, TlsStream};
use common::{eventually, Server, Sse, PATIENCE};

fn start(pki: &Pki, extra: &[&str]) -> Server {
    let mut args: Vec<String> = pki.args();
    args.extend(extra.iter().map(|s| s.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    Server::start(&args)
}

fn subscribe(pki: &Pki, server: &Server, query: &str, headers: &[(&str, &str)]) -> Sse<TlsStream> {
    let stream = pki.connect(server.addr, &pki.client());
    let mut sse = Sse::over(stream, query, headers);
    assert_eq!(sse.status(), 200);
    sse
}

/// The `--plain-listen` address, from the server's log.
fn plain_addr(server: &Server) -> SocketAddr {
    let log = server.log();
    log.split_whitespace()
        .find_map(|f| f.strip_prefix("plain_listen="))
        .unwrap_or_else(|| panic!("no plain_listen in the log: {log}"))
        .parse()
        .expect("an address")
}

fn closes(server: &Server, reason: &str) -> u64 {
    let plain = plain_addr(server);
    let (status, text) = common::get(plain, "/metrics");
    assert_eq!(status, 200);
    let key = format!("ringcast_closes_total{{reason=\"{reason}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&key))
        .map_or(0, |v| v.trim().parse().unwrap())
}

/// A metric summed over workers, read over the plaintext listener.
fn metric(server: &Server, name: &str) -> u64 {
    common::metric_at(plain_addr(server), name)
}

#[test]
fn a_tls_stream_carries_exactly_the_bytes_of_a_plaintext_one() {
    let pki = Pki::new("bytes");
    let server = start(&pki, &["--plain-listen", "127.0.0.1:0"]);
    let mut secure = subscribe(&pki, &server, "topic=same", &[]);
    let mut plain = Sse::open(plain_addr(&server), "topic=same", &[]);
    assert_eq!(plain.status(), 200);
    let mut publisher = pki.connect(server.addr, &pki.client());
    for body in ["first", "second\nline", ""] {
        let (status, answer) = publish(&mut publisher, "topic=same", body);
        assert_eq!(status, 202, "{answer}");
    }
    let events = secure.take(3);
    assert_eq!(plain.take(3), events);
    assert_eq!(events[1].data, "second\nline");
    assert_eq!(secure.head(), plain.head());
    assert_eq!(secure.wire_body(), plain.wire_body());
    assert_eq!(metric(&server, "ringcast_tls_handshakes_total"), 2);
}

#[test]
fn publish_resume_and_heartbeats_over_tls() {
    let pki = Pki::new("resume");
    let server = start(
        &pki,
        &["--plain-listen", "127.0.0.1:0", "--heartbeat", "200ms"],
    );
    let mut publisher = pki.connect(server.addr, &pki.client());
    let mut ids = Vec::new();
    for n in 0..3 {
        let (status, answer) = publish(&mut publisher, "topic=r", &format!("e{n}"));
        assert_eq!(status, 202, "{answer}");
        ids.push(answer);
    }
    let mut live = subscribe(&pki, &server, "topic=r&replay=3", &[]);
    let replayed = live.take(3);
    let last_id = replayed[0].id.clone();
    assert_eq!(
        replayed.iter().map(|e| e.data.as_str()).collect::<Vec<_>>(),
        ["e0", "e1", "e2"]
    );
    let mut resumed = subscribe(&pki, &server, "topic=r", &[("Last-Event-ID", &last_id)]);
    let rest = resumed.take(2);
    assert_eq!(
        rest.iter().map(|e| e.data.as_str()).collect::<Vec<_>>(),
        ["e1", "e2"]
    );
    // Idle: heartbeats, and no event.
    let deadline = Instant::now() + PATIENCE;
    while resumed.comments < 2 {
        assert!(Instant::now() < deadline, "no heartbeats");
        assert_eq!(resumed.next_within(Duration::from_millis(100)), None);
    }
    let (status, _) = publish(&mut publisher, "topic=r", "e3");
    assert_eq!(status, 202);
    assert_eq!(resumed.next().data, "e3");
    assert_eq!(live.next().data, "e3");
}

#[test]
fn a_drained_tls_stream_ends_with_its_last_chunk_then_close_notify() {
    let pki = Pki::new("drain");
    let server = start(&pki, &["--drain", "200ms"]);
    let mut sse = subscribe(&pki, &server, "topic=d", &[]);
    sse.body();
    server.signal(libc::SIGTERM);
    sse.until_closed(PATIENCE);
    assert!(
        sse.ended,
        "no last chunk: {:?}",
        String::from_utf8_lossy(sse.wire_body())
    );
    // rustls reports an end without close_notify as UnexpectedEof.
    assert_eq!(sse.error, None, "the stream did not end with close_notify");
}

#[test]
fn a_client_key_update_mid_stream_is_applied_and_answered() {
    let pki = Pki::new("keyupdate");
    let server = start(&pki, &["--plain-listen", "127.0.0.1:0"]);
    let mut sse = subscribe(&pki, &server, "topic=k", &[]);
    let mut publisher = pki.connect(server.addr, &pki.client());
    for round in 0..3 {
        // The client asks for new keys both ways: the server must open what follows
        // with the client's next keys, and seal with its own next ones.
        sse.stream.conn.refresh_traffic_keys().expect("TLS 1.3");
        sse.stream.flush().unwrap();
        publisher.conn.refresh_traffic_keys().expect("TLS 1.3");
        let (status, answer) = publish(&mut publisher, "topic=k", &format!("after {round}"));
        assert_eq!(status, 202, "{answer}");
        assert_eq!(sse.next().data, format!("after {round}"));
    }
    assert_eq!(closes(&server, "tls"), 0);
}

#[test]
fn an_http10_client_offering_alpn_http10_gets_its_close_delimited_stream() {
    let pki = Pki::new("http10");
    let server = start(&pki, &[]);
    // curl --http1.0 offers ALPN `http/1.0` alone.
    let mut config = (*pki.client()).clone();
    config.alpn_protocols = vec![b"http/1.0".to_vec()];
    let mut stream = pki.connect(server.addr, &std::sync::Arc::new(config));
    assert_eq!(stream.conn.alpn_protocol(), Some(&b"http/1.0"[..]));
    let request = "GET /events?topic=old HTTP/1.0\r\nAccept: text/event-stream\r\n\r\n";
    stream.write_all(request.as_bytes()).unwrap();
    stream.flush().unwrap();
    let mut publisher = pki.connect(server.addr, &pki.client());
    let (mut got, deadline) = (Vec::new(), Instant::now() + PATIENCE);
    let mut published = false;
    while common::find(&got, b"data: from 1.1\n\n").is_none() {
        assert!(
            Instant::now() < deadline,
            "{:?}",
            String::from_utf8_lossy(&got)
        );
        if !published && common::find(&got, b"\r\n\r\n").is_some() {
            let (status, _) = publish(&mut publisher, "topic=old", "from 1.1");
            assert_eq!(status, 202);
            published = true;
        }
        let mut buf = [0u8; 4096];
        match stream.read(&mut buf) {
            Ok(0) => panic!("closed: {:?}", String::from_utf8_lossy(&got)),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(e) => panic!("{e}"),
        }
    }
    let text = String::from_utf8_lossy(&got).to_ascii_lowercase();
    assert!(text.starts_with("http/1.1 200"), "{text}");
    assert!(
        !text.contains("transfer-encoding"),
        "an HTTP/1.0 body is close-delimited: {text}"
    );
}

#[test]
fn close_notify_from_a_subscriber_closes_it_as_peer() {
    let pki = Pki::new("notify");
    let server = start(&pki, &["--plain-listen", "127.0.0.1:0"]);
    let mut sse = subscribe(&pki, &server, "topic=n", &[]);
    sse.body();
    // Each look at /metrics is a connection that closes as `peer` too.
    let peer_before = closes(&server, "peer");
    sse.stream.conn.send_close_notify();
    sse.stream.flush().unwrap();
    eventually("the subscriber closed", || {
        metric(&server, "ringcast_subscribers") == 0
    });
    assert!(closes(&server, "peer") > peer_before + 1);
    assert_eq!(closes(&server, "tls"), 0);
}

#[test]
fn every_cipher_suite_of_both_versions_streams_and_publishes() {
    use rustls::crypto::aws_lc_rs::cipher_suite as suite;
    let pki = Pki::new("suites");
    let server = start(&pki, &[]);
    let v13: &[&'static rustls::SupportedProtocolVersion] = &[&rustls::version::TLS13];
    let v12: &[&'static rustls::SupportedProtocolVersion] = &[&rustls::version::TLS12];
    let cases = [
        (suite::TLS13_AES_128_GCM_SHA256, v13),
        (suite::TLS13_AES_256_GCM_SHA384, v13),
        (suite::TLS13_CHACHA20_POLY1305_SHA256, v13),
        (suite::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256, v12),
        (suite::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384, v12),
        (suite::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256, v12),
    ];
    for (n, (cipher, versions)) in cases.into_iter().enumerate() {
        let mut provider = rustls::crypto::aws_lc_rs::default_provider();
        provider.cipher_suites = vec![cipher];
        let config = pki.client_with(provider, versions);
        let topic = format!("topic=s{n}");
        let mut sse = Sse::over(pki.connect(server.addr, &config), &topic, &[]);
        assert_eq!(sse.status(), 200, "{cipher:?}");
        let mut publisher = pki.connect(server.addr, &config);
        assert_eq!(
            publisher.conn.negotiated_cipher_suite().map(|s| s.suite()),
            Some(cipher.suite())
        );
        // A body over one record's worth (16 KiB), so answers and frames span records.
        let big = "x".repeat(40 << 10);
        for body in ["one", big.as_str()] {
            let (status, answer) = publish(&mut publisher, &topic, body);
            assert_eq!(status, 202, "{cipher:?}: {answer}");
            assert_eq!(sse.next().data, body, "{cipher:?}");
        }
    }
}

#[test]
fn sighup_reloads_the_certificate_for_new_connections_only() {
    let pki = Pki::new("reload");
    let server = start(&pki, &[]);
    let first = pki.connect(server.addr, &pki.client());
    let first_cert = first.conn.peer_certificates().unwrap()[0].clone();
    let mut live = subscribe(&pki, &server, "topic=h", &[]);
    let second_cert = pki.issue();
    assert_ne!(first_cert, second_cert);
    server.signal(libc::SIGHUP);
    eventually("the reload", || {
        server.log().contains("TLS certificate reloaded")
    });
    let after = pki.connect(server.addr, &pki.client());
    assert_eq!(after.conn.peer_certificates().unwrap()[0], second_cert);
    // A bad file on reload: the certificate in use stays, and the log says why.
    std::fs::write(&pki.cert, "not a certificate").unwrap();
    server.signal(libc::SIGHUP);
    eventually("the failed reload", || {
        server.log().contains("not reloaded")
    });
    let again = pki.connect(server.addr, &pki.client());
    assert_eq!(again.conn.peer_certificates().unwrap()[0], second_cert);
    // The stream that began before the reloads goes on.
    let mut publisher = pki.connect(server.addr, &pki.client());
    let (status, _) = publish(&mut publisher, "topic=h", "still here");
    assert_eq!(status, 202);
    assert_eq!(live.next().data, "still here");
}

#[test]
fn a_bad_certificate_file_stops_the_start_and_names_the_file() {
    let pki = Pki::new("badfile");
    std::fs::write(&pki.key, "no key here").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ringcast"))
        .args(["--listen", "127.0.0.1:0"])
        .args(pki.args())
        .output()
        .expect("run ringcast");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&pki.key.display().to_string()) && stderr.contains("--tls-key"),
        "{stderr}"
    );
}

/// The first bytes a rustls client sends: its ClientHello record.
fn client_hello(pki: &Pki) -> Vec<u8> {
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut conn = rustls::ClientConnection::new(pki.client(), name).unwrap();
    let mut hello = Vec::new();
    conn.write_tls(&mut hello).unwrap();
    hello
}

/// Reads until the server closes; fails the test if it does not within PATIENCE.
fn closed_by_server(mut sock: TcpStream) -> Vec<u8> {
    sock.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let (mut got, deadline) = (Vec::new(), Instant::now() + PATIENCE);
    loop {
        assert!(
            Instant::now() < deadline,
            "the server left the connection open"
        );
        let mut buf = [0u8; 4096];
        match sock.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return got,
        }
    }
}

#[test]
fn hostile_input_on_the_tls_port_is_closed_with_a_reason() {
    let pki = Pki::new("hostile");
    let server = start(
        &pki,
        &[
            "--plain-listen",
            "127.0.0.1:0",
            "--handshake-timeout",
            "500ms",
        ],
    );
    // Plaintext HTTP: a 400 that says why, then the close.
    let mut sock = TcpStream::connect(server.addr).unwrap();
    sock.write_all(b"GET /events?topic=x HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let answer = String::from_utf8_lossy(&closed_by_server(sock)).to_string();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(answer.contains("TLS"), "{answer}");
    eventually("plaintext counted", || closes(&server, "plaintext") == 1);

    // A handshake cut short by the client.
    let hello = client_hello(&pki);
    let mut sock = TcpStream::connect(server.addr).unwrap();
    sock.write_all(&hello[..hello.len() / 2]).unwrap();
    sock.shutdown(std::net::Shutdown::Write).unwrap();
    closed_by_server(sock);

    // A handshake that stalls halfway: closed at the handshake timeout.
    let mut sock = TcpStream::connect(server.addr).unwrap();
    sock.write_all(&hello[..hello.len() / 2]).unwrap();
    let began = Instant::now();
    closed_by_server(sock);
    assert!(
        began.elapsed() >= Duration::from_millis(400),
        "closed before the timeout"
    );
    eventually("the stalled handshake counted", || {
        closes(&server, "handshake_timeout") == 1
    });

    // Garbage that claims to be a handshake record.
    let mut sock = TcpStream::connect(server.addr).unwrap();
    let mut garbage = vec![22u8, 3, 1, 0, 64];
    garbage.extend((0..64u8).map(|i| i.wrapping_mul(37)));
    sock.write_all(&garbage).unwrap();
    closed_by_server(sock);
    eventually("the refused handshake counted", || {
        closes(&server, "tls") == 1
    });

    // A subscriber whose records do not open: a forged application-data record.
    let mut sse = subscribe(&pki, &server, "topic=g", &[]);
    sse.body();
    let mut forged = vec![23u8, 3, 3, 0, 40];
    forged.extend([0x5a; 40]);
    sse.stream.sock.write_all(&forged).unwrap();
    eventually("the forged record closed it", || {
        closes(&server, "tls") == 2
    });
    assert!(sse.until_closed(PATIENCE).is_empty());

    // A request-phase connection sending a forged record instead of a request.
    let mut conn = pki.connect(server.addr, &pki.client());
    conn.sock.write_all(&forged).unwrap();
    closed_by_server(conn.sock);
    eventually("counted", || closes(&server, "tls") == 3);

    // Still serving.
    let mut publisher = pki.connect(server.addr, &pki.client());
    let (status, _) = exchange(&mut publisher, b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(status, 200);
    eventually("every hostile connection gone", || {
        metric(&server, "ringcast_connections") <= 2
    });
}

/// A small deterministic generator (xorshift), so a failing case can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Sends `bytes`, half-closes, and waits for the server to close (or to have said its
/// piece): a server that hangs a connection fails `closed_by_server`.
fn send_and_wait(addr: SocketAddr, bytes: &[u8]) {
    let mut sock = TcpStream::connect(addr).unwrap();
    let _ = sock.write_all(bytes);
    let _ = sock.shutdown(std::net::Shutdown::Write);
    closed_by_server(sock);
}

#[test]
fn mutated_handshakes_and_records_never_panic_the_server_or_hang_a_connection() {
    let pki = Pki::new("mutate");
    let server = start(&pki, &["--plain-listen", "127.0.0.1:0"]);
    let hello = client_hello(&pki);
    let mut rng = Rng(0x5eed_1234_abcd_0042);
    // ClientHellos with a few bytes changed, cut short, or with garbage after them.
    for _ in 0..150 {
        let mut bytes = hello.clone();
        for _ in 0..1 + rng.below(8) {
            let at = rng.below(bytes.len());
            bytes[at] = rng.next() as u8;
        }
        match rng.below(4) {
            0 => bytes.truncate(rng.below(bytes.len())),
            1 => bytes.extend((0..rng.below(200)).map(|_| rng.next() as u8)),
            _ => {}
        }
        send_and_wait(server.addr, &bytes);
    }
    // After a real handshake and request: forged, damaged and cut records.
    for case in 0..40 {
        let mut conn = pki.connect(server.addr, &pki.client());
        let request = match case % 2 {
            0 => "GET /events?topic=m HTTP/1.1\r\nHost: t\r\n\r\n",
            _ => "POST /publish?topic=m HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\nabc",
        };
        conn.write_all(request.as_bytes()).unwrap();
        conn.flush().unwrap();
        // A real record, sealed by the client, then damaged on the wire.
        let mut record = Vec::new();
        conn.conn.writer().write_all(b"more bytes").unwrap();
        conn.conn.write_tls(&mut record).unwrap();
        let at = rng.below(record.len());
        record[at] ^= 1 << rng.below(8);
        if rng.below(2) == 0 {
            record.truncate(rng.below(record.len()));
        }
        let _ = conn.sock.write_all(&record);
        let _ = conn.sock.shutdown(std::net::Shutdown::Write);
        closed_by_server(conn.sock);
    }
    let mut publisher = pki.connect(server.addr, &pki.client());
    let (status, _) = exchange(&mut publisher, b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(status, 200);
    eventually("every mutated connection gone", || {
        metric(&server, "ringcast_connections") <= 2
    });
}

#[test]
fn the_epoll_driver_seals_opens_and_updates_keys_too() {
    let pki = Pki::new("epoll");
    let server = start(
        &pki,
        &["--driver", "legacy", "--plain-listen", "127.0.0.1:0"],
    );
    assert!(server.log().contains("driver=epoll"), "{}", server.log());
    let mut sse = subscribe(&pki, &server, "topic=e", &[]);
    let mut publisher = pki.connect(server.addr, &pki.client());
    let big = "y".repeat(40 << 10);
    for (round, body) in ["small", big.as_str()].into_iter().enumerate() {
        sse.stream.conn.refresh_traffic_keys().expect("TLS 1.3");
        sse.stream.flush().unwrap();
        let (status, answer) = publish(&mut publisher, "topic=e", body);
        assert_eq!(status, 202, "round {round}: {answer}");
        assert_eq!(sse.next().data, body, "round {round}");
    }
    sse.stream.conn.send_close_notify();
    sse.stream.flush().unwrap();
    eventually("the subscriber closed", || {
        metric(&server, "ringcast_subscribers") == 0
    });
    assert_eq!(closes(&server, "tls"), 0);
}

#[test]
fn a_returning_client_resumes_with_its_ticket_even_after_a_reload() {
    use rustls::HandshakeKind;
    let pki = Pki::new("resume-ticket");
    let server = start(&pki, &[]);
    let config = pki.client();
    let mut first = pki.connect(server.addr, &config);
    assert_eq!(first.conn.handshake_kind(), Some(HandshakeKind::Full));
    // The ticket comes after the handshake: an exchange reads it.
    let (status, _) = exchange(&mut first, b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(status, 200);
    let second = pki.connect(server.addr, &config);
    assert_eq!(second.conn.handshake_kind(), Some(HandshakeKind::Resumed));
    // The ticket keys outlive a certificate reload.
    let mut third = pki.connect(server.addr, &config);
    let (status, _) = exchange(&mut third, b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(status, 200);
    pki.issue();
    server.signal(libc::SIGHUP);
    eventually("the reload", || {
        server.log().contains("TLS certificate reloaded")
    });
    let mut fourth = pki.connect(server.addr, &config);
    assert_eq!(fourth.conn.handshake_kind(), Some(HandshakeKind::Resumed));
    // A resumed session updates its keys like a full one (its secrets are captured the
    // same way).
    fourth.conn.refresh_traffic_keys().expect("TLS 1.3");
    let (status, _) = exchange(&mut fourth, b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(status, 200);
    let (status, _) = exchange(&mut fourth, b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(status, 200);
}
