//! Hostile input after a subscribe's head: a subscriber has nothing more to say, so what
//! it sends is never run as a request, a little of it is tolerated, and a subscriber
//! that keeps sending is closed once it has sent more than the server's discard budget
//! (`MAX_DISCARD`, 64 KiB: "bytes a streaming subscriber may send us before it is
//! closed"), counted as `rejected`.

mod common;
mod hostile_kit;

use std::io::{ErrorKind, Read, Write};
use std::time::{Duration, Instant};

use common::Server;
use hostile_kit::{assert_silent, published, watch};

#[test]
fn requests_pipelined_behind_a_subscribe_are_never_run() {
    let server = Server::start(&["--workers", "2"]);
    let mut smug = watch(&server, "smug");
    let publish = "POST /publish?topic=smug HTTP/1.1\r\nHost: t\r\nContent-Length: 1\r\n\r\nx";
    let mut sub = common::Sse::open(server.addr, "topic=s", &[]);
    // Behind the head in the same write, and later on the open stream.
    sub.stream.write_all(publish.as_bytes()).unwrap();
    assert_eq!(sub.status(), 200);
    sub.stream.write_all(publish.as_bytes()).unwrap();
    assert_silent(
        &mut smug,
        Duration::from_millis(300),
        "a request sent on a stream",
    );
    assert_eq!(published(&server), 0);
    // A little junk is tolerated: the stream still works.
    let (status, body) = server.publish("topic=s", b"after");
    assert_eq!(status, 202);
    let ev = sub.next();
    assert_eq!(
        (ev.data.as_str(), ev.id),
        ("after", common::id_of(&body).to_string())
    );
}

#[test]
fn a_subscriber_that_keeps_sending_is_closed_after_the_discard_budget() {
    let server = Server::start(&["--workers", "1"]);
    let mut sub = watch(&server, "junk");
    sub.stream.set_nonblocking(true).unwrap();
    let junk = vec![b'j'; 64 << 10];
    let (mut sent, mut closed) = (0usize, false);
    let started = Instant::now();
    // 64 KiB may be sent; the kernel buffers in between hold a few MiB more. 64 MiB is
    // far past both, and ten seconds far past the time it takes to send them here.
    while sent < 64 << 20 && started.elapsed() < Duration::from_secs(10) {
        match sub.stream.write(&junk) {
            Ok(n) => sent += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                let mut buf = [0u8; 4096];
                match sub.stream.read(&mut buf) {
                    Ok(0) => {
                        closed = true;
                        break;
                    }
                    Err(e) if e.kind() != ErrorKind::WouldBlock => {
                        closed = true;
                        break;
                    }
                    _ => std::thread::sleep(Duration::from_millis(5)),
                }
            }
            Err(_) => {
                closed = true;
                break;
            }
        }
    }
    assert!(
        closed,
        "the server read and discarded {} MiB from a subscriber and kept it open",
        sent >> 20
    );
    common::eventually("counted as rejected", || {
        server.metric("ringcast_closes_total{reason=\"rejected\"}") == 1
    });
}
