//! The publish checks: topics, grants, single and batch bodies.

use super::*;

fn single(s: &Sequencer, t: &Target, body: &[u8], max: usize) -> Result<u64, Refusal> {
    super::single(t, body, max).map(|v| locally(s, &v))
}

fn batch(s: &Sequencer, t: &Target, body: &[u8], max: usize) -> Result<(u64, usize), Refusal> {
    super::batch(t, body, max).map(|v| (locally(s, &v), v.len()))
}
use crate::broadcast::history::Bounds;

fn seq() -> Sequencer {
    let bounds = Bounds {
        count: 100,
        bytes: 1 << 20,
        ttl_ms: 60_000,
    };
    Sequencer::starting_at(Box::new([]), bounds, 1)
}

fn target(q: &str) -> Target {
    Target::from_query(Some(q.as_bytes()), 64).unwrap()
}

#[test]
fn loopback_publishes_freely_and_others_need_a_credential() {
    let lo: IpAddr = "127.0.0.1".parse().unwrap();
    let far: IpAddr = "10.1.2.3".parse().unwrap();
    let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
    let status = |r: Result<Option<Grant>, Refusal>| r.map_err(|e| e.status);
    assert_eq!(status(authorize(lo, None, None, None)), Ok(None));
    assert_eq!(status(authorize(mapped, None, None, None)), Ok(None));
    assert_eq!(
        status(authorize(far, None, None, None)),
        Err(403),
        "nothing could authenticate"
    );
    assert_eq!(status(authorize(far, None, Some("s3cret"), None)), Err(401));
    assert_eq!(
        status(authorize(far, Some(b"Bearer nope"), Some("s3cret"), None)),
        Err(401)
    );
    assert_eq!(
        status(authorize(far, Some(b"Bearer s3cret"), Some("s3cret"), None)),
        Ok(None)
    );
    assert_eq!(
        status(authorize(lo, Some(b"Bearer nope"), Some("s3cret"), None)),
        Err(401)
    );
}

#[test]
fn a_jwt_publish_claim_limits_the_topics() {
    use jsonwebtoken::{encode, EncodingKey, Header};
    let auth = Auth::hs256(b"k", "c".into(), false);
    let far: IpAddr = "10.1.2.3".parse().unwrap();
    let sign = |v: serde_json::Value| {
        format!(
            "Bearer {}",
            encode(&Header::default(), &v, &EncodingKey::from_secret(b"k")).unwrap()
        )
    };
    let publisher = sign(serde_json::json!({"publish": ["news/*"]}));
    let grant = authorize(far, Some(publisher.as_bytes()), None, Some(&auth)).unwrap();
    let mut t = target("topic=news/a");
    t.grant = grant;
    assert!(single(&seq(), &t, b"x", 10).is_ok());
    t.topics = vec!["sports".into()];
    assert_eq!(single(&seq(), &t, b"x", 10).unwrap_err().status, 403);
    let reader = sign(serde_json::json!({"topics": ["news/*"]}));
    assert_eq!(
        authorize(far, Some(reader.as_bytes()), None, Some(&auth))
            .unwrap_err()
            .status,
        403
    );
    assert_eq!(
        authorize(far, Some(b"Bearer x.y.z"), None, Some(&auth))
            .unwrap_err()
            .status,
        401
    );
}

#[test]
fn event_names_are_checked() {
    assert_eq!(
        target("topic=a&event=update").event.as_deref(),
        Some("update")
    );
    for bad in [
        "event=",
        "event=a%0Ab",
        "event=a%0Db",
        "event=a%00b",
        "event=%FF",
    ] {
        assert_eq!(
            Target::from_query(Some(bad.as_bytes()), 64),
            Err(QueryError::BadEventName),
            "{bad}"
        );
    }
    let long = format!("event={}", "e".repeat(65));
    assert_eq!(
        Target::from_query(Some(long.as_bytes()), 64),
        Err(QueryError::BadEventName)
    );
}

#[test]
fn single_publish_checks_size_and_utf8() {
    let s = seq();
    assert_eq!(single(&s, &target("topic=a"), b"hi", 10), Ok(1));
    assert_eq!(
        single(&s, &target("topic=a"), b"12345678901", 10)
            .unwrap_err()
            .status,
        413
    );
    assert_eq!(
        single(&s, &target("topic=a"), b"\xff", 10)
            .unwrap_err()
            .status,
        400
    );
    assert_eq!(single(&s, &target(""), b"x", 10).unwrap_err().status, 400);
}

#[test]
fn sys_topics_are_refused_in_both_forms() {
    let s = seq();
    let err = single(&s, &target("topic=a&topic=sys:stats"), b"x", 100).unwrap_err();
    assert_eq!(err.status, 403);
    assert!(err.why.contains("sys:stats"), "{}", err.why);
    assert_eq!(
        single(&s, &target("topic=sys:x"), b"x", 100)
            .unwrap_err()
            .status,
        403
    );
    let body =
        b"{\"topic\":\"a\",\"data\":\"1\"}\n{\"topic\":[\"b\",\"sys:stats\"],\"data\":\"2\"}";
    let err = batch(&s, &target(""), body, 100).unwrap_err();
    assert_eq!(err.status, 403);
    assert!(err.why.starts_with("line 2:"), "{}", err.why);
    let err = batch(&s, &target("topic=sys:stats"), b"{\"data\":\"x\"}", 100).unwrap_err();
    assert_eq!(
        err.status, 403,
        "the query's topics apply to lines without one"
    );
    assert_eq!(s.last_id(), 0, "nothing was published");
    assert!(!reserved_topic("sys") && !reserved_topic("system:x") && reserved_topic("sys:"));
}

#[test]
fn a_bad_batch_line_publishes_nothing_and_is_named() {
    let s = seq();
    let body = b"{\"topic\":\"a\",\"data\":\"1\"}\n{\"topic\":\"a b\",\"data\":\"2\"}\n";
    let err = batch(&s, &target(""), body, 100).unwrap_err();
    assert_eq!(err.status, 400);
    assert!(err.why.starts_with("line 2:"), "{}", err.why);
    assert_eq!(s.last_id(), 0, "nothing was published");
    let body =
        b"{\"topic\":[\"a\",\"b\"],\"event\":\"e\",\"data\":\"x\\ny\"}\n\n{\"data\":\"z\"}\n";
    assert_eq!(batch(&s, &target("topic=c"), body, 100), Ok((1, 2)));
    let err = batch(
        &s,
        &target(""),
        b"{\"topic\":\"a\",\"data\":\"x\",\"evnet\":\"typo\"}",
        100,
    )
    .unwrap_err();
    assert!(err.why.contains("unknown field"), "{}", err.why);
    assert_eq!(
        batch(&s, &target(""), b"{\"data\":\"x\"}", 100)
            .unwrap_err()
            .why,
        "line 1: no topic"
    );
}
