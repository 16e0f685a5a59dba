//! Every connection kind over TLS: scenarios against a small rustls SSE server started
//! by the test ([`tls_server`]), trusted through `--ca` or `--insecure`; and the two
//! ways an https run fails: neither flag given, and a CA that did not sign the
//! server's certificate.

mod common;
mod tls_server;

use std::collections::BTreeSet;
use std::process::Command;

use serde_json::Value;

use common::{
    assert_all_connected, assert_complete_delivery, assert_passed, assert_probes_answered, loadgen,
    u, ONE_AT_A_TIME,
};
use tls_server::{Ca, TlsServer};

/// What a certificate from another CA fails with, in every failure map.
const UNKNOWN_ISSUER: &str = "tls: invalid peer certificate: UnknownIssuer";

/// Runs `scenario` against `server`, named by `host` in the URL.
fn run(server: &TlsServer, host: &str, scenario: &str, extra: &[&str]) -> (i32, Value) {
    let url = server.url(host);
    let mut args = vec![scenario, "--server", &url];
    args.extend_from_slice(extra);
    loadgen(&args)
}

fn split(args: &str) -> Vec<&str> {
    args.split_whitespace().collect()
}

/// The report says TLS was on, and what the first handshake settled on.
fn assert_tls_reported(r: &Value) {
    assert_eq!(r["params"]["tls"], true);
    let tls = &r["connections"]["tls"];
    assert_eq!(tls["version"], "TLSv1_3", "{tls:#}");
    assert_eq!(tls["alpn"], "http/1.1", "{tls:#}");
    let suite = tls["cipher_suite"].as_str().unwrap_or("");
    assert!(suite.starts_with("TLS13_"), "{tls:#}");
}

#[test]
fn idle_over_https_with_ca() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let ca = Ca::new("idle");
    let server = TlsServer::start(&ca);
    let mut args = split("-n 200 -d 1s --connect-rate 2000 --ca");
    args.push(ca.path());
    let (code, r) = run(&server, "127.0.0.1", "idle", &args);
    assert_all_connected(&r, 200);
    assert_eq!(
        u(&r, "/connections/connect_us/count"),
        200,
        "every handshake timed"
    );
    assert_tls_reported(&r);
    assert_passed(code, &r);
    // An IP address is checked against the certificate's IP name, and sends no SNI.
    assert_eq!(server.sni_seen(), BTreeSet::from([None]));
}

/// Subscribers, pipelined NDJSON batches and all three probe kinds over TLS, to a DNS
/// name (so with SNI).
#[test]
fn fanout_over_https_pipelined_batched_and_probed() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let ca = Ca::new("fanout");
    let server = TlsServer::start(&ca);
    let mut args = split(
        "-n 100 -t 5 -r 500 -d 2s --pub-conns 2 --pub-pipeline 4 --pub-batch 5 \
         --probe-interval 200ms --probe-max-ms 4000 --ca",
    );
    args.push(ca.path());
    let (code, r) = run(&server, "localhost", "fanout", &args);
    assert_all_connected(&r, 100);
    assert_complete_delivery(&r);
    let accepted = u(&r, "/publish/events_accepted");
    assert_eq!(u(&r, "/delivery/events_expected"), 20 * accepted);
    assert_eq!(accepted, 5 * u(&r, "/publish/requests_accepted"));
    assert_probes_answered(&r);
    assert_tls_reported(&r);
    assert_passed(code, &r);
    assert_eq!(
        server.sni_seen(),
        BTreeSet::from([Some("localhost".to_owned())])
    );
}

/// Drops and resumes with Last-Event-ID over TLS, trusting any certificate.
#[test]
fn reconnect_over_https_insecure() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let ca = Ca::new("reconnect"); // signs the server's certificate; loadgen is not told
    let server = TlsServer::start(&ca);
    let args = split(
        "-n 100 -t 4 -r 400 -d 3s --reconnect-fraction 0.2 --reconnect-interval 500ms --insecure",
    );
    let (code, r) = run(&server, "127.0.0.1", "reconnect", &args);
    assert_all_connected(&r, 100);
    assert!(u(&r, "/reconnect/reconnects") >= 40, "{:#}", r["reconnect"]);
    assert_eq!(
        u(&r, "/reconnect/resume_gap_events"),
        0,
        "{:#}",
        r["reconnect"]
    );
    assert_complete_delivery(&r);
    assert_tls_reported(&r);
    assert_eq!(r["params"]["tls_trust"], "insecure");
    assert_passed(code, &r);
}

/// Slow readers stop reading TLS records mid-stream and resume in the drain; the
/// others lose nothing.
#[test]
fn slow_over_https_with_ca() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let ca = Ca::new("slow");
    let server = TlsServer::start(&ca);
    let mut args = split("-n 20 -t 1 -r 500 -p 1KiB -d 3s --slow-share 0.25 --slow-after 1s --ca");
    args.push(ca.path());
    let (code, r) = run(&server, "127.0.0.1", "slow", &args);
    assert_all_connected(&r, 20);
    assert_eq!(u(&r, "/slow/slow_subscribers"), 5);
    assert!(u(&r, "/slow/others_latency_during_us/count") > 0);
    assert_complete_delivery(&r);
    assert_passed(code, &r);
}

#[test]
fn https_without_ca_or_insecure_says_which_flag() {
    let out = Command::new(env!("CARGO_BIN_EXE_loadgen"))
        .args(["idle", "--server", "https://127.0.0.1:1", "-n", "1"])
        .output()
        .expect("run loadgen");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("https:// needs --ca FILE") && stderr.contains("or --insecure"),
        "{stderr}"
    );
}

/// A CA that did not sign the server's certificate: every connect of every kind
/// fails the handshake, named as such, and the run fails.
#[test]
fn a_wrong_ca_fails_every_connect() {
    let _one = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let (ca, other) = (Ca::new("right"), Ca::new("wrong"));
    let server = TlsServer::start(&ca);
    let mut args = split("-n 20 -t 2 -r 100 -d 1s --drain-timeout 1s --probe-interval 200ms --ca");
    args.push(other.path());
    let (code, r) = run(&server, "127.0.0.1", "fanout", &args);
    assert_eq!(
        (code, r["ok"].as_bool()),
        (1, Some(false)),
        "{:#}",
        r["checks"]
    );
    let failures = &r["connections"]["failures"];
    assert_eq!(failures[UNKNOWN_ISSUER], 20, "{failures:#}");
    assert_eq!(u(&r, "/connections/established"), 0);
    let errors = &r["publish"]["errors"];
    assert!(errors[UNKNOWN_ISSUER].as_u64() > Some(0), "{errors:#}");
    for kind in ["healthz", "subscribe", "publish"] {
        let p = &r["probe"][kind];
        let n = p["n"].as_u64().unwrap_or(0);
        assert!(n > 0, "{kind}: {p:#}");
        assert_eq!(p["failure_kinds"][UNKNOWN_ISSUER], n, "{kind}: {p:#}");
    }
    assert!(r["connections"]["tls"].is_null(), "no handshake completed");
}
