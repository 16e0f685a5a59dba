//! Subscriber and publisher authorization with real JWTs signed in the test (HS256, and
//! RS256/ES256 with keys made by `openssl`), over real sockets.

mod common;

use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{Client, Server, Sse};
use jsonwebtoken::{encode, Algorithm, EncodingKey, Header};
use serde_json::json;

const SECRET: &str = "a-test-secret-of-32-bytes-length";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn hs256(claims: serde_json::Value) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        &claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

fn status(server: &Server, query: &str, headers: &[(&str, &str)]) -> u16 {
    Sse::open(server.addr, query, headers).status()
}

fn server(extra: &[&str]) -> Server {
    let mut args = vec!["--workers", "2", "--jwt-secret", SECRET];
    args.extend_from_slice(extra);
    Server::start(&args)
}

#[test]
fn subscribers_need_a_token_that_allows_every_topic() {
    let server = server(&["--public-topic", "lobby"]);
    let token = hs256(json!({"topics": ["news", "chat/*"], "exp": now() + 3600}));
    let bearer = format!("Bearer {token}");
    let auth = [("Authorization", bearer.as_str())];
    let mut none = Sse::open(server.addr, "topic=news", &[]);
    assert_eq!(none.status(), 401);
    assert_eq!(
        common::header(&none.head(), "www-authenticate"),
        Some("Bearer")
    );
    assert_eq!(
        status(
            &server,
            "topic=news",
            &[("Authorization", "Bearer not.a.jwt")]
        ),
        401
    );
    let forged = encode(
        &Header::default(),
        &json!({"topics": ["news"]}),
        &EncodingKey::from_secret(b"another-secret-entirely"),
    )
    .unwrap();
    assert_eq!(
        status(
            &server,
            "topic=news",
            &[("Authorization", &format!("Bearer {forged}"))]
        ),
        401
    );
    let expired = hs256(json!({"topics": ["news"], "exp": now() - 10}));
    assert_eq!(
        status(
            &server,
            "topic=news",
            &[("Authorization", &format!("Bearer {expired}"))]
        ),
        401
    );
    assert_eq!(status(&server, "topic=news", &auth), 200);
    assert_eq!(status(&server, "topic=chat/room1&topic=news", &auth), 200);
    assert_eq!(
        status(&server, "topic=news&topic=sports", &auth),
        403,
        "one topic not allowed refuses all"
    );
    assert_eq!(
        status(&server, "topic=chatroom", &auth),
        403,
        "prefix patterns match on the prefix only"
    );
    assert_eq!(
        status(&server, "topic=lobby", &[]),
        200,
        "public topics need no token"
    );
    assert_eq!(status(&server, "topic=lobby&topic=news", &[]), 401);
    common::eventually("counted", || {
        server.metric("ringcast_requests_total{status=\"401\"}") >= 5
    });
}

#[test]
fn the_token_can_come_in_a_cookie_and_only_in_the_query_when_enabled() {
    let token = hs256(json!({"topics": ["a"]}));
    let server = server(&["--auth-cookie", "sse_token"]);
    let cookie = format!("theme=dark; sse_token={token}");
    assert_eq!(status(&server, "topic=a", &[("Cookie", &cookie)]), 200);
    assert_eq!(
        status(&server, &format!("topic=a&access_token={token}"), &[]),
        401,
        "query tokens off by default"
    );
    let open = Server::start(&[
        "--workers",
        "1",
        "--jwt-secret",
        SECRET,
        "--auth-query-token",
    ]);
    assert_eq!(
        status(&open, &format!("topic=a&access_token={token}"), &[]),
        200
    );
}

#[test]
fn a_stream_ends_when_its_token_expires() {
    let server = server(&[]);
    let token = hs256(json!({"topics": ["t"], "exp": now() + 2}));
    let mut sub = Sse::open(
        server.addr,
        "topic=t",
        &[("Authorization", &format!("Bearer {token}"))],
    );
    assert_eq!(sub.status(), 200);
    common::eventually("subscribed", || server.metric("ringcast_subscribers") == 1);
    server.publish("topic=t", b"before expiry");
    let opened = Instant::now();
    let events = sub.until_closed(Duration::from_secs(10));
    assert_eq!(events.len(), 1);
    assert!(
        opened.elapsed() <= Duration::from_secs(4),
        "closed at expiry, not later: {:?}",
        opened.elapsed()
    );
    common::eventually("counted as auth", || {
        server.metric("ringcast_closes_total{reason=\"auth\"}") == 1
    });
}

#[test]
fn a_publish_claim_limits_where_its_bearer_may_publish() {
    let server = server(&[]);
    let mut sub = Sse::open(
        server.addr,
        "topic=news/a",
        &[(
            "Authorization",
            &format!("Bearer {}", hs256(json!({"topics": ["news/*"]}))),
        )],
    );
    assert_eq!(sub.status(), 200);
    common::eventually("subscribed", || server.metric("ringcast_subscribers") == 1);
    let publisher = format!("Bearer {}", hs256(json!({"publish": ["news/*"]})));
    let reader = format!("Bearer {}", hs256(json!({"topics": ["news/*"]})));
    let mut c = Client::connect(server.addr);
    assert_eq!(
        c.publish("topic=news/a", b"ok", &[("Authorization", &publisher)])
            .0,
        202
    );
    let mut c = Client::connect(server.addr);
    assert_eq!(
        c.publish("topic=sports", b"no", &[("Authorization", &publisher)])
            .0,
        403
    );
    let mut c = Client::connect(server.addr);
    assert_eq!(
        c.publish("topic=news/a", b"no", &[("Authorization", &reader)])
            .0,
        403,
        "no publish claim"
    );
    let mut c = Client::connect(server.addr);
    assert_eq!(
        c.publish("topic=news/a", b"no", &[("Authorization", "Bearer x.y.z")])
            .0,
        401
    );
    assert_eq!(sub.next().data, "ok");
    assert!(
        sub.next_within(Duration::from_millis(200)).is_none(),
        "refused publishes published nothing"
    );
}

/// Makes a key pair with openssl; returns (private PEM, public PEM file path).
fn key_pair(dir: &std::path::Path, algorithm: &[&str]) -> (Vec<u8>, std::path::PathBuf) {
    let private = dir.join("private.pem");
    let public = dir.join("public.pem");
    let ok = Command::new("openssl")
        .arg("genpkey")
        .args(algorithm)
        .arg("-out")
        .arg(&private)
        .stderr(std::process::Stdio::null())
        .status();
    assert!(
        ok.is_ok_and(|s| s.success()),
        "openssl genpkey failed (is openssl installed?)"
    );
    let ok = Command::new("openssl")
        .args(["pkey", "-pubout", "-in"])
        .arg(&private)
        .arg("-out")
        .arg(&public)
        .status();
    assert!(ok.is_ok_and(|s| s.success()));
    (std::fs::read(&private).unwrap(), public)
}

fn public_key_round_trip(name: &str, algorithm: &[&str], alg: Algorithm) {
    let dir = std::env::temp_dir().join(format!("ringcast-auth-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (private, public) = key_pair(&dir, algorithm);
    let server = Server::start(&[
        "--workers",
        "1",
        "--jwt-public-key",
        public.to_str().unwrap(),
    ]);
    let key = match alg {
        Algorithm::RS256 => EncodingKey::from_rsa_pem(&private).unwrap(),
        _ => EncodingKey::from_ec_pem(&private).unwrap(),
    };
    let token = encode(&Header::new(alg), &json!({"topics": ["k"]}), &key).unwrap();
    assert_eq!(
        status(
            &server,
            "topic=k",
            &[("Authorization", &format!("Bearer {token}"))]
        ),
        200
    );
    let hs = hs256(json!({"topics": ["k"]}));
    assert_eq!(
        status(
            &server,
            "topic=k",
            &[("Authorization", &format!("Bearer {hs}"))]
        ),
        401,
        "other algorithms refused"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn rs256_tokens_verify_with_a_public_key_file() {
    public_key_round_trip(
        "rs",
        &["-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"],
        Algorithm::RS256,
    );
}

#[test]
fn es256_tokens_verify_with_a_public_key_file() {
    public_key_round_trip(
        "es",
        &["-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256"],
        Algorithm::ES256,
    );
}
