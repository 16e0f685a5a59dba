//! How the live page is served, without a browser: content types, tags and `304`,
//! `HEAD`, the `sys:` reservation, the `sys:stats` stream, and `--base-path`. The page
//! itself, in a browser, is tests/page.rs.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{exchange, header, status_of, Client, Server, PATIENCE};
use serde_json::Value;

/// Every asset of the page and its exact content type.
const ASSETS: [(&str, &str); 4] = [
    ("/", "text/html; charset=utf-8"),
    ("/app.js", "text/javascript; charset=utf-8"),
    ("/style.css", "text/css; charset=utf-8"),
    ("/favicon.svg", "image/svg+xml"),
];

/// Sends one request on a fresh connection that asks to be closed; returns the head and
/// the body.
fn request(
    server: &Server,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> (String, String) {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    let raw = exchange(server.addr, req.as_bytes());
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    (head.to_string(), body.to_string())
}

fn etag_of(head: &str) -> String {
    header(head, "etag")
        .unwrap_or_else(|| panic!("no ETag in {head}"))
        .to_string()
}

#[test]
fn every_asset_has_its_type_a_strong_tag_and_a_strict_policy() {
    let server = Server::start(&["--workers", "1", "--retry", "2500ms"]);
    for (path, content_type) in ASSETS {
        let (head, body) = request(&server, "GET", path, &[]);
        assert_eq!(status_of(&head), 200, "{path}: {head}");
        assert_eq!(header(&head, "content-type"), Some(content_type), "{path}");
        assert_eq!(header(&head, "cache-control"), Some("no-cache"), "{path}");
        assert_eq!(
            header(&head, "x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
        assert_eq!(
            header(&head, "content-length").map(|n| n.parse::<usize>().unwrap()),
            Some(body.len()),
            "{path}"
        );
        let etag = etag_of(&head);
        assert!(
            etag.starts_with('"') && etag.ends_with('"') && etag.len() > 8,
            "{path}: a strong tag, got {etag}"
        );
        let csp = header(&head, "content-security-policy").expect("a CSP");
        for directive in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
        ] {
            assert!(csp.contains(directive), "{path}: {csp}");
        }
        assert!(!csp.contains("unsafe"), "{path}: {csp}");
    }
    let (_, html) = request(&server, "GET", "/", &[]);
    assert!(
        html.contains(r#"<meta name="ringcast-retry-ms" content="2500">"#),
        "the page carries the server's retry hint"
    );
    assert!(
        !html.contains("<script>") && !html.contains(" style="),
        "no inline script or style: the policy would block them"
    );
    let (_, js) = request(&server, "GET", "/app.js", &[]);
    assert!(js.contains("new EventSource("));
    // Relative URLs only, so that the page works under any --base-path.
    for (name, text) in [("index.html", &html), ("app.js", &js)] {
        for absolute in ["=\"/", "\"/events", "\"/publish", "'/", "`/"] {
            assert!(
                !text.contains(absolute),
                "{name} has an absolute URL ({absolute})"
            );
        }
    }
}

#[test]
fn a_matching_tag_gets_304_and_head_gets_the_head_alone() {
    let server = Server::start(&["--workers", "1"]);
    for (path, _) in ASSETS {
        let (head, body) = request(&server, "GET", path, &[]);
        let etag = etag_of(&head);
        let weak = format!("W/{etag}");
        let listed = format!("\"stale\", {etag}");
        for validator in [etag.as_str(), &weak, &listed, "*"] {
            let (h, b) = request(&server, "GET", path, &[("If-None-Match", validator)]);
            assert_eq!(status_of(&h), 304, "{path} with {validator}: {h}");
            assert_eq!(header(&h, "etag"), Some(etag.as_str()), "{path}");
            assert_eq!(header(&h, "cache-control"), Some("no-cache"), "{path}");
            assert_eq!(
                header(&h, "content-length"),
                None,
                "{path}: a 304 has no framing"
            );
            assert_eq!(header(&h, "content-type"), None, "{path}");
            assert!(b.is_empty(), "{path}: a 304 has no body");
        }
        let (h, b) = request(&server, "GET", path, &[("If-None-Match", "\"stale\"")]);
        assert_eq!(
            (status_of(&h), b.len()),
            (200, body.len()),
            "{path}: a stale tag"
        );

        let (h, b) = request(&server, "HEAD", path, &[]);
        assert_eq!(status_of(&h), 200, "{path}");
        assert_eq!(header(&h, "etag"), Some(etag.as_str()), "{path}");
        assert_eq!(
            header(&h, "content-length"),
            Some(body.len().to_string().as_str()),
            "{path}: HEAD says how long GET's body is"
        );
        assert!(b.is_empty(), "{path}: HEAD has no body, got {b:?}");
        let (h, _) = request(&server, "POST", path, &[("Content-Length", "0")]);
        assert_eq!(status_of(&h), 405, "{path}");
        assert_eq!(header(&h, "allow"), Some("GET, HEAD"), "{path}");
    }
    // A 304 on a keep-alive connection leaves it usable: the next answer parses.
    let (head, _) = request(&server, "GET", "/style.css", &[]);
    let etag = etag_of(&head);
    let mut c = Client::connect(server.addr);
    let revalidate = format!("GET /style.css HTTP/1.1\r\nHost: t\r\nIf-None-Match: {etag}\r\n\r\n");
    c.stream.write_all(revalidate.as_bytes()).unwrap();
    assert_eq!(c.response(), (304, String::new()));
    c.stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    assert_eq!(c.response(), (200, "ok\n".to_string()));
}

#[test]
fn the_pages_tag_changes_with_the_retry_it_carries() {
    let tags = |retry: &str| {
        let server = Server::start(&["--workers", "1", "--retry", retry]);
        let html = etag_of(&request(&server, "GET", "/", &[]).0);
        let js = etag_of(&request(&server, "GET", "/app.js", &[]).0);
        (html, js)
    };
    let (html_a, js_a) = tags("1s");
    let (html_b, js_b) = tags("2s");
    assert_ne!(
        html_a, html_b,
        "a cached page must not keep an old retry value"
    );
    assert_eq!(
        js_a, js_b,
        "the script does not depend on the configuration"
    );
}

#[test]
fn sys_topics_are_the_servers_own() {
    let server = Server::start(&["--workers", "1"]);
    for query in [
        "topic=sys:stats",
        "topic=ok&topic=sys:mine",
        "topic=sys%3Astats",
    ] {
        let (status, body) = server.publish(query, b"forged");
        assert_eq!(status, 403, "{query}: {body}");
        assert!(body.contains("reserved"), "{body}");
    }
    let mut c = Client::connect(server.addr);
    let batch = b"{\"topic\":\"ok\",\"data\":\"1\"}\n{\"topic\":\"sys:stats\",\"data\":\"2\"}";
    let (status, body) = c.publish("", batch, &[("Content-Type", "application/x-ndjson")]);
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("line 2"), "{body}");
    assert_eq!(server.metric("ringcast_events_published_total"), 0);
    // Topics that merely look alike are ordinary.
    assert_eq!(server.publish("topic=sys", b"x").0, 202);
    assert_eq!(server.publish("topic=system:x", b"x").0, 202);
}

#[test]
fn stats_arrive_once_a_second_only_while_someone_watches() {
    let server = Server::start(&["--workers", "2"]);
    // Nobody watches: nothing is published (and no topic is created).
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(server.metric("ringcast_events_published_total"), 0);
    assert_eq!(server.metric("ringcast_topics"), 0);

    let mut stats = server.subscribe("topic=sys:stats");
    let started = Instant::now();
    let mut snapshots = Vec::new();
    for _ in 0..3 {
        let ev = stats.next();
        assert_eq!(ev.event, "stats");
        let json: Value = serde_json::from_str(&ev.data)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", ev.data));
        snapshots.push((ev.id.parse::<u64>().unwrap(), json, started.elapsed()));
    }
    let spread = snapshots[2].2 - snapshots[0].2;
    assert!(
        spread >= Duration::from_millis(1500),
        "about one a second, not a flood: 3 in {spread:?}"
    );
    assert!(
        snapshots.windows(2).all(|w| w[0].0 < w[1].0),
        "ids increase"
    );
    for (_, s, _) in &snapshots {
        assert!(s["connections"].as_u64().unwrap() >= 1, "{s}");
        assert!(s["subscribers"].as_u64().unwrap() >= 1, "{s}");
        assert_eq!(s["workers"], 2, "{s}");
        assert!(s["uptime_s"].as_u64().unwrap() < 60, "{s}");
    }
    let later = &snapshots[2].1;
    assert_eq!(
        (
            later["published_per_s"].as_f64(),
            later["delivered_per_s"].as_f64()
        ),
        (Some(0.0), Some(0.0)),
        "the stream leaves its own events out: {later}"
    );

    // Traffic shows in the rates.
    let mut sub = server.subscribe("topic=busy");
    sub.head();
    common::eventually("subscribed", || server.metric("ringcast_subscribers") == 2);
    let mut c = Client::connect(server.addr);
    let batch: String = (0..50)
        .map(|i| format!("{{\"topic\":\"busy\",\"data\":\"{i}\"}}\n"))
        .collect();
    let (status, _) = c.publish(
        "",
        batch.as_bytes(),
        &[("Content-Type", "application/x-ndjson")],
    );
    assert_eq!(status, 202);
    let deadline = Instant::now() + PATIENCE;
    let busy = loop {
        assert!(Instant::now() < deadline, "no snapshot showed the traffic");
        let s: Value = serde_json::from_str(&stats.next().data).unwrap();
        if s["published_per_s"].as_f64().unwrap_or(0.0) > 0.0 {
            break s;
        }
    };
    let (published, delivered) = (
        busy["published_per_s"].as_f64().unwrap(),
        busy["delivered_per_s"].as_f64().unwrap(),
    );
    assert!(
        (10.0..=100.0).contains(&published) && (10.0..=100.0).contains(&delivered),
        "50 events published and delivered within about a second: {busy}"
    );

    // Nobody watches any more: the stream stops.
    drop(stats);
    common::eventually("the watcher's close", || {
        server.metric("ringcast_subscribers") == 1
    });
    std::thread::sleep(Duration::from_millis(300));
    let before = server.metric("ringcast_events_published_total");
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(
        server.metric("ringcast_events_published_total"),
        before,
        "nothing is published once nobody watches"
    );
}

/// Subscribes at `path` (a full target) over a raw socket; returns the stream.
fn raw_subscribe(server: &Server, target: &str) -> TcpStream {
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    write!(s, "GET {target} HTTP/1.1\r\nHost: t\r\n\r\n").unwrap();
    s
}

/// Reads from `s` until what arrived contains `want`.
fn read_until(s: &mut TcpStream, want: &str) -> String {
    let mut got = Vec::new();
    let mut chunk = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains(want) {
        let n = s.read(&mut chunk).expect("read");
        assert!(n > 0, "closed early: {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8_lossy(&got).into_owned()
}

#[test]
fn a_base_path_moves_every_endpoint_under_it() {
    let server = Server::start(&["--workers", "1", "--base-path", "/sse/"]);
    let status = |method: &str, path: &str| status_of(&request(&server, method, path, &[]).0);

    // The bare prefix redirects to the page's directory, keeping the query.
    let (head, _) = request(&server, "GET", "/sse", &[]);
    assert_eq!(status_of(&head), 308, "{head}");
    assert_eq!(header(&head, "location"), Some("/sse/"));
    let (head, _) = request(&server, "GET", "/sse?topic=a", &[]);
    assert_eq!(header(&head, "location"), Some("/sse/?topic=a"));

    // Under it: everything.
    let (head, html) = request(&server, "GET", "/sse/", &[]);
    assert_eq!(status_of(&head), 200);
    assert!(html.contains("<title>ringcast"), "the page");
    for path in [
        "/sse/app.js",
        "/sse/style.css",
        "/sse/favicon.svg",
        "/sse/healthz",
        "/sse/metrics",
    ] {
        assert_eq!(status("GET", path), 200, "{path}");
    }
    assert_eq!(status("HEAD", "/sse/healthz"), 200);
    let (head, _) = request(&server, "OPTIONS", "/sse/events", &[]);
    assert_eq!(
        (status_of(&head), header(&head, "allow")),
        (204, Some("GET, OPTIONS"))
    );
    let mut stream = raw_subscribe(&server, "/sse/events?topic=a");
    read_until(&mut stream, "retry:");
    let mut c = Client::connect(server.addr);
    let req = "POST /sse/publish?topic=a HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello";
    c.stream.write_all(req.as_bytes()).unwrap();
    assert_eq!(c.response().0, 202);
    read_until(&mut stream, "data: hello\n\n");

    // Outside it: nothing, including the paths that would exist at the root.
    for path in [
        "/",
        "/events?topic=a",
        "/healthz",
        "/metrics",
        "/app.js",
        "/ssex",
        "/ssex/",
        "/SSE/",
    ] {
        assert_eq!(status("GET", path), 404, "{path}");
    }
    assert_eq!(status("POST", "/publish?topic=a"), 404);
}

/// Worker 0 takes the `sys:stats` snapshots, and publishes reach only the workers with
/// subscribers of their topics: with the only watcher on worker 1, nothing but its own
/// clock may wake worker 0 (it once parked for good after the first snapshot). Which
/// worker a connection lands on is the kernel's choice, so four fresh servers make a
/// watcher on worker 1 all but certain.
#[test]
fn stats_keep_coming_whichever_worker_the_watcher_is_on() {
    for round in 0..4 {
        let server = Server::start(&["--workers", "2"]);
        // Past the first housekeeping, so that worker 0 has parked with nothing to do.
        std::thread::sleep(Duration::from_millis(1200));
        let mut stats = server.subscribe("topic=sys:stats");
        for n in 0..3 {
            let ev = stats
                .next_within(Duration::from_secs(3))
                .unwrap_or_else(|| panic!("round {round}: snapshot {n} did not come within 3 s"));
            assert_eq!(ev.event, "stats");
        }
    }
}
