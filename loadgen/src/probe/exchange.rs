//! One probe: a new connection (with its TLS handshake, for https), one request, and
//! the answer its kind waits for — a complete response (health, publish) or a response
//! head (subscribe) — all within the probe timeout, timed from the start of the connect.

use std::net::SocketAddr;
use std::time::Duration;

use monoio::net::TcpStream;

use crate::plan::{Plan, Probe};
use crate::response::{self, Body};
use crate::stats::io_kind;
use crate::sys::mono_ns;
use crate::tls::{Connector, Stream};
use crate::{publisher, subscriber, Status};

use super::summary::Sample;
use super::Kind;

/// Data of the publish probes: not loadgen's payload, so a server without topics (the
/// floor) that hands it to every subscriber has it counted as a foreign event, never
/// as a loss or a duplicate.
const PROBE_DATA: &[u8] = b"loadgen-probe";
/// Bytes read per call; answers here are a few hundred bytes.
const READ_BYTES: usize = 4096;

/// Where a probe of one kind goes and the bytes it sends, built once per run.
#[derive(Debug, Clone)]
pub struct Request {
    pub kind: Kind,
    pub addr: SocketAddr,
    /// The endpoint's TLS connector; `None` for plain http.
    pub tls: Option<Connector>,
    pub bytes: Vec<u8>,
}

/// The requests of one round: health and subscribe to the subscribe template's host,
/// publish to the publish template's (when the plan has one).
pub fn requests(plan: &Plan, probe: &Probe) -> Result<Vec<Request>, String> {
    let topic = probe.topic.as_bytes();
    let sub_tls = Connector::for_endpoint(plan, &plan.subscribe)?;
    let mut health = format!("GET {} HTTP/1.1\r\nHost: ", probe.healthz_path).into_bytes();
    health.extend_from_slice(plan.subscribe.host.as_bytes());
    health.extend_from_slice(b"\r\nConnection: close\r\n\r\n");
    let mut out = vec![
        Request {
            kind: Kind::Healthz,
            addr: plan.subscribe.addr,
            tls: sub_tls.clone(),
            bytes: health,
        },
        Request {
            kind: Kind::Subscribe,
            addr: plan.subscribe.addr,
            tls: sub_tls,
            bytes: subscriber::connect::subscribe_request(plan, topic, b""),
        },
    ];
    if let Some(p) = &probe.publish {
        let mut bytes = Vec::new();
        publisher::write_request(p, topic, PROBE_DATA, &mut Vec::new(), &mut bytes);
        out.push(Request {
            kind: Kind::Publish,
            addr: p.endpoint.addr,
            tls: Connector::for_endpoint(plan, &p.endpoint)?,
            bytes,
        });
    }
    Ok(out)
}

/// Runs one probe; a probe past `timeout` fails with the timeout as its time.
pub async fn probe(req: &Request, timeout: Duration) -> Sample {
    let start = mono_ns();
    let answer = monoio::time::timeout(timeout, exchange(req)).await;
    let elapsed_ns = mono_ns().saturating_sub(start);
    let (status, failure) = match answer {
        Err(_) => {
            return Sample {
                elapsed_ns: timeout.as_nanos() as u64,
                status: None,
                failure: Some("timeout".into()),
            }
        }
        Ok(Err(kind)) => (None, Some(kind)),
        Ok(Ok(code)) => (Some(code), judge(req.kind, code).err()),
    };
    Sample {
        elapsed_ns,
        status,
        failure,
    }
}

/// Connects, sends, reads until [`answered`]; the connection closes when dropped.
async fn exchange(req: &Request) -> Result<u16, String> {
    let tcp = TcpStream::connect_addr(req.addr)
        .await
        .map_err(|e| io_kind(&e))?;
    let _ = tcp.set_nodelay(true);
    let mut stream = Stream::open(tcp, req.tls.as_ref())
        .await
        .map_err(|e| io_kind(&e))?;
    let (res, _) = stream.write_all(req.bytes.clone()).await;
    res.map_err(|e| io_kind(&e))?;
    let (mut acc, mut buf) = (Vec::new(), Vec::with_capacity(READ_BYTES));
    loop {
        if let Some(code) = answered(req.kind, &mut acc, false)? {
            return Ok(code);
        }
        let (res, b) = stream.read(buf).await;
        buf = b;
        match res.map_err(|e| io_kind(&e))? {
            0 => return answered(req.kind, &mut acc, true)?.ok_or_else(|| "closed".into()),
            n => acc.extend_from_slice(&buf[..n]),
        }
    }
}

/// The status once `acc` holds what a probe of `kind` waits for. A subscribe is
/// answered by its head. So is a health request whose body runs until close: a server
/// that streams to any GET (the floor) would otherwise never finish it.
fn answered(kind: Kind, acc: &mut Vec<u8>, eof: bool) -> Result<Option<u16>, String> {
    let head = match response::parse_head(acc) {
        Ok(Status::Complete(h)) => h,
        Ok(Status::Partial) => return Ok(None),
        Err(_) => return Err("bad_response".into()),
    };
    let head_is_enough = match kind {
        Kind::Subscribe => true,
        Kind::Healthz => head.body == Body::UntilClose,
        Kind::Publish => false,
    };
    if head_is_enough {
        return Ok(Some(head.status));
    }
    Ok(publisher::complete(acc, eof)?.map(|(code, _)| code))
}

/// Whether an answer passes: health 200, or 404 from a server without that path;
/// subscribe 200; publish 2xx. `Err` is the failure kind.
fn judge(kind: Kind, code: u16) -> Result<(), String> {
    let ok = match kind {
        Kind::Healthz => matches!(code, 200 | 404),
        Kind::Subscribe => code == 200,
        Kind::Publish => (200..300).contains(&code),
    };
    if ok {
        Ok(())
    } else {
        Err(format!("http_{code}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    macro_rules! answered_tests {
        ($($name:ident: $kind:expr, $input:expr, $eof:expr => $want:expr;)*) => {$(
            #[test]
            fn $name() {
                let mut acc = $input.to_vec();
                assert_eq!(answered($kind, &mut acc, $eof), $want);
            }
        )*};
    }

    answered_tests! {
        subscribe_at_head: Kind::Subscribe, b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n", false => Ok(Some(200));
        subscribe_partial: Kind::Subscribe, b"HTTP/1.1 200 OK\r\n", false => Ok(None);
        health_waits_for_body: Kind::Healthz, b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok", false => Ok(None);
        health_complete: Kind::Healthz, b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n", false => Ok(Some(200));
        health_404: Kind::Healthz, b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", false => Ok(Some(404));
        health_stream_at_head: Kind::Healthz, b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r\n", false => Ok(Some(200));
        publish_complete: Kind::Publish, b"HTTP/1.1 202 Accepted\r\nContent-Length: 2\r\n\r\n{}", false => Ok(Some(202));
        publish_until_close: Kind::Publish, b"HTTP/1.0 200 OK\r\n\r\nqueued", true => Ok(Some(200));
        garbage: Kind::Publish, b"SSH-2.0\r\n\r\n", false => Err("bad_response".into());
    }

    #[test]
    fn judging() {
        assert_eq!(judge(Kind::Healthz, 404), Ok(()));
        assert_eq!(judge(Kind::Healthz, 503), Err("http_503".into()));
        assert_eq!(judge(Kind::Subscribe, 204), Err("http_204".into()));
        assert_eq!(judge(Kind::Publish, 201), Ok(()));
        assert_eq!(judge(Kind::Publish, 429), Err("http_429".into()));
    }

    #[test]
    fn requests_follow_the_templates() {
        let plan = crate::cli::tests::plan_of(&[
            "fanout",
            "--target",
            "nchan",
            "--server",
            "http://127.0.0.1:8081",
            "--topic-prefix",
            "p-",
            "--probe-interval",
            "100ms",
        ]);
        let probe = plan.probe.clone().expect("probing");
        let reqs = requests(&plan, &probe).expect("plain http needs no TLS set-up");
        let text: Vec<String> = reqs
            .iter()
            .map(|r| String::from_utf8_lossy(&r.bytes).into_owned())
            .collect();
        assert_eq!(
            text[0],
            "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:8081\r\nConnection: close\r\n\r\n"
        );
        assert!(
            text[1].starts_with("GET /sub/p-probe HTTP/1.1\r\n"),
            "{}",
            text[1]
        );
        assert!(
            text[2].starts_with("POST /pub/p-probe HTTP/1.1\r\n"),
            "{}",
            text[2]
        );
        assert!(text[2].contains("Accept: text/json\r\n"));
        assert!(text[2].ends_with("\r\n\r\nloadgen-probe"));
        assert!(reqs.iter().all(|r| r.addr.port() == 8081));
    }
}
