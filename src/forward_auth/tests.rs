//! Unit tests of the forward-auth answers and settings.

use super::*;

#[test]
fn urls_are_plain_http_with_host_and_path() {
    let s = Settings::new("http://127.0.0.1:9000/auth?x=1").unwrap();
    assert_eq!(
        (s.addr.to_string(), s.host.as_str(), s.path.as_str()),
        ("127.0.0.1:9000".into(), "127.0.0.1:9000", "/auth?x=1")
    );
    let s = Settings::new("http://127.0.0.1").unwrap();
    assert_eq!((s.addr.port(), s.path.as_str()), (80, "/"));
    let s = Settings::new("http://[::1]:81?q").unwrap();
    assert_eq!(
        (s.addr.port(), s.host.as_str(), s.path.as_str()),
        (81, "[::1]:81", "/?q")
    );
    for bad in [
        "https://h/x",
        "127.0.0.1:80",
        "http://",
        "http://u@h/",
        "http://h:x/",
        "http://h:99999/",
        "http://h/a b",
        "ftp://h/",
    ] {
        let why = Settings::new(bad).expect_err(bad);
        assert!(why.contains("--auth-url"), "{bad}: {why}");
    }
}

fn answer(status: u16, json: bool, body: &str) -> Answer {
    Answer {
        status,
        json,
        body: body.as_bytes().to_vec(),
    }
}

#[test]
fn answers_are_judged_fail_closed() {
    let allow = |g: Grant| (Verdict::Allow(g), Outcome::Allow);
    assert_eq!(judge(answer(200, false, "")), allow(Grant::default()));
    assert_eq!(judge(answer(204, false, "OK")), allow(Grant::default()));
    let (v, o) = judge(answer(
        200,
        true,
        r#"{"topics":["a","chat/*"],"user":"ann","x":1}"#,
    ));
    assert_eq!(o, Outcome::Allow);
    let Verdict::Allow(g) = v else {
        panic!("{v:?}")
    };
    assert_eq!(g.user.as_deref(), Some("ann"));
    assert!(g.allows("a") && g.allows("chat/1") && !g.allows("b"));
    assert_eq!(
        judge(answer(401, false, "")),
        (Verdict::Deny(401), Outcome::Deny)
    );
    assert_eq!(
        judge(answer(403, true, "{}")),
        (Verdict::Deny(403), Outcome::Deny)
    );
    for bad in [
        answer(500, false, ""),
        answer(302, false, ""),
        answer(404, false, ""),
        answer(200, true, "not json"),
        answer(200, false, "{\"topics\": 5}"),
    ] {
        let (v, o) = judge(bad);
        assert!(matches!(v, Verdict::Unavailable(_)), "{v:?}");
        assert_eq!(o, Outcome::Error);
    }
}
