//! Hostile input on the TLS listener: plaintext HTTP, handshakes cut short, stalled or
//! garbage, records that do not open (from a subscriber and from a request-phase
//! connection), and mutated ClientHellos and records. Each gets its close reason;
//! nothing may panic the server or leave a connection open.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::tls::{closes, exchange, metric, start, subscribe, Pki};
use common::{eventually, PATIENCE};

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
        match common::read_once(&mut sock, &mut got) {
            Ok(Some(0)) | Err(_) => return got,
            Ok(_) => {}
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
