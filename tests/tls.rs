//! TLS on the listener (`--tls-cert`, `--tls-key`), driven by a rustls client: the exact
//! stream bytes, publishing, resume, heartbeats, the drain, key updates from the client,
//! close_notify, every cipher suite in both versions, HTTP/1.0, the epoll driver,
//! certificate reloads and ticket resumption. Hostile input is tests/tls_hostile.rs.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::tls::{closes, exchange, metric, plain_addr, publish, start, subscribe, Pki};
use common::{eventually, Sse, PATIENCE};

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
        if common::read_once(&mut stream, &mut got).unwrap() == Some(0) {
            panic!("closed: {:?}", String::from_utf8_lossy(&got));
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
