//! The live page at `GET /`, in headless Chromium (Debian's `chromium`, driven by
//! playwright-core from tests/clients/page_e2e.mjs): connect, publish through the form
//! and from outside, survive the server ending the stream (resume, and a gap), watch the
//! server panel, and leave a screenshot in `target/page/` for a reviewer. Over plaintext
//! HTTP, and over HTTPS with a test CA (Chromium accepts the server's key by its pin,
//! Node's `fetch` trusts the CA: see [`Served::trust`]). How the page is served (types,
//! tags, base path) is tests/page_http.rs.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::transport::{Served, Transport};
use serde_json::Value;

/// Where the test's artifacts go: `target/page/`, next to the binaries' profile folder.
fn artifacts() -> PathBuf {
    let bin = Path::new(env!("CARGO_BIN_EXE_ringcast"));
    bin.parent()
        .and_then(Path::parent)
        .expect("the binary lives in target/<profile>/")
        .join("page")
}

const INSTALL_HINT: &str = "the browser test needs node, Debian's chromium and \
    playwright-core: run tests/clients/install.sh (or apt-get install chromium, and \
    npm install in tests/clients)";

/// Runs the browser program against `server`; returns what it printed.
fn run_browser(server: &Served, page: &str, screenshot: &Path) -> Value {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut node = Command::new("node");
    let mut child = server
        .trust(&mut node)
        .arg(dir.join("tests/clients/page_e2e.mjs"))
        .current_dir(dir.join("tests/clients"))
        .env("RINGCAST_PAGE", format!("{}{page}", server.url()))
        .env("SCREENSHOT", screenshot)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run node ({e}); {INSTALL_HINT}"));
    let started = Instant::now();
    let limit = Duration::from_secs(150);
    while child.try_wait().unwrap().is_none() {
        if started.elapsed() > limit {
            let _ = child.kill();
            panic!("the browser program ran over {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let seen: Value = stdout
        .lines()
        .rev()
        .find_map(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no JSON from the browser program: {stdout}\n{stderr}"));
    if let Some(error) = seen.get("error") {
        panic!(
            "the browser program failed: {}\n{INSTALL_HINT}\nsteps done: {}\nserver log:\n{}",
            error.as_str().unwrap_or_default(),
            seen["steps"],
            server.server.log()
        );
    }
    seen
}

/// The strings of a JSON array.
fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn the_page_shows_ringcast_working_in_a_real_browser() {
    the_page_works(Transport::Plain);
}

#[test]
fn the_page_shows_ringcast_working_in_a_real_browser_over_https() {
    the_page_works(Transport::Tls);
}

fn the_page_works(transport: Transport) {
    // The server itself ends every stream after about 3 s (with a `retry:` of 1 to 2 s),
    // and keeps 5 events per topic, so that the page reconnects twice: once resuming
    // without loss, once after more events than the history holds (a gap).
    let server = Served::start(
        transport,
        &[
            "--workers",
            "2",
            "--base-path",
            "/demo",
            "--max-lifetime",
            "3s",
            "--retry",
            "1s",
            "--history",
            "5",
        ],
    );
    let dir = artifacts();
    std::fs::create_dir_all(&dir).unwrap();
    let screenshot = dir.join(format!("page{}.png", transport.suffix()));
    let _ = std::fs::remove_file(&screenshot);
    let seen = run_browser(&server, "/demo", &screenshot);

    assert_eq!(seen["pageStatus"], 200);
    assert_eq!(
        seen["finalUrl"].as_str().unwrap(),
        format!("{}/demo/", server.url()),
        "redirected into the base path, on the same origin (https over TLS)"
    );
    assert!(
        seen["consoleErrors"].as_array().unwrap().is_empty(),
        "the page ran cleanly under its policy: {}",
        seen["consoleErrors"]
    );
    assert!(
        seen["statsConnections"].as_u64().unwrap() >= 2,
        "the panel counts the page's own two streams: {}",
        seen["statsConnections"]
    );
    assert!(seen["deliveredPerSecond"].as_f64().unwrap() > 0.0);
    assert!(seen["sparklinePoints"].as_u64().unwrap() >= 3);
    assert_eq!(
        seen["focusAfterData"], "publish-button",
        "Tab goes from the data to the button"
    );

    // What the list shows, newest first: every event sent to the topic while the page
    // listened, the missed one included, each once, in id order.
    let events = seen["events"].as_array().unwrap();
    let shown = |data: &str| events.iter().find(|e| e["data"] == data);
    let form = shown("hello from the form").expect("the form's event");
    assert_eq!(form["name"], "greeting");
    assert!(seen["publishResult"]
        .as_str()
        .unwrap()
        .contains(form["id"].as_str().unwrap()));
    let curl = shown("hello from curl").expect("the curl-style event");
    assert_eq!(
        (&curl["name"], &curl["id"]),
        (&"message".into(), &seen["curlId"])
    );
    assert_eq!(
        seen["stateWhenMissedPublished"], "reconnecting",
        "the event was published while the page was away"
    );
    let missed = shown("missed while away").expect("the missed event, after the resume");
    assert_eq!(
        (&missed["name"], &missed["id"]),
        (&"update".into(), &seen["missedId"])
    );
    let ids: Vec<u64> = events
        .iter()
        .filter(|e| e["name"] != "gap")
        .map(|e| e["id"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(
        ids.windows(2).all(|w| w[0] > w[1]),
        "newest on top, each once: {ids:?}"
    );
    assert_eq!(
        ids.len(),
        2 + 1 + 30 + 5,
        "form, curl, missed, 30 batched, 5 retained"
    );

    // More events while away than the history keeps: an in-band gap, said on the page.
    let lost = strings(&seen["lostIds"]);
    assert!(shown("lost-4").is_none() && shown("lost-5").is_some());
    assert!(events.iter().any(|e| e["name"] == "gap"));
    let gap_text = seen["gapText"].as_str().unwrap();
    assert!(
        gap_text.contains("lost") && gap_text.contains(&lost[5]),
        "the notice names the oldest retained id: {gap_text}"
    );
    assert_eq!(seen["lastIdShown"], lost[9].as_str());

    // The status went through every state, counting the retry down.
    let states: Vec<(String, String)> = seen["states"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["state"].as_str().unwrap().into(),
                s["text"].as_str().unwrap().into(),
            )
        })
        .collect();
    let mut order: Vec<&str> = states.iter().map(|(s, _)| s.as_str()).collect();
    order.dedup();
    // connecting, open, then (reconnecting, open) for each end of the stream: at least
    // the two the test waited for, maybe more on a slow machine.
    assert!(
        order.len() >= 6
            && order.len().is_multiple_of(2)
            && order[..2] == ["connecting", "open"]
            && order[2..].chunks(2).all(|c| c == ["reconnecting", "open"]),
        "{states:?}"
    );
    let countdown: Vec<&str> = states
        .iter()
        .filter(|(s, _)| s == "reconnecting")
        .map(|(_, t)| t.as_str())
        .collect();
    assert!(
        countdown
            .iter()
            .any(|t| t.starts_with("Reconnecting in 0.") || t.starts_with("Reconnecting in 1.0")),
        "counts down from the server's retry (1 s): {countdown:?}"
    );

    // The live region spoke of status changes, the gap and the publish; never of events.
    let announced = strings(&seen["announced"]).join(" | ");
    for said in [
        "Connected to topic",
        "Connection lost",
        "Reconnected",
        "Some events were lost",
        "Published as id",
    ] {
        assert!(announced.contains(said), "{said:?} in {announced}");
    }
    for unsaid in ["hello from curl", "lost-9", "batch"] {
        assert!(!announced.contains(unsaid), "{unsaid:?} in {announced}");
    }

    // A flood bigger than the cap leaves the newest 200 on the page.
    let flood = &seen["afterFlood"];
    assert_eq!(flood["shown"], 200, "{flood}");
    assert_eq!(flood["newest"], "flood-249");

    let png = std::fs::read(&screenshot).expect("the screenshot");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000);
    eprintln!("screenshot: {}", screenshot.display());
}
