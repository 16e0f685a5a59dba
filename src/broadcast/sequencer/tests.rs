//! Table tests of the sequencer: ids, order, resume and gaps.

use super::*;

const BOUNDS: Bounds = Bounds {
    count: 3,
    bytes: 1 << 20,
    ttl_ms: 3_600_000,
};

fn seq(workers: usize) -> (Sequencer, Vec<Arc<Inbox>>) {
    let inboxes: Vec<Arc<Inbox>> = (0..workers).map(|_| Arc::new(Inbox::default())).collect();
    (
        Sequencer::starting_at(inboxes.clone().into(), BOUNDS, 100),
        inboxes,
    )
}

fn publish(s: &Sequencer, topics: &[&str], data: &str) -> u64 {
    let topics = topics.iter().copied().collect();
    s.publish(vec![NewEvent {
        topics,
        draft: Draft::new(None, data.as_bytes()),
    }])
}

/// The replayed frames' event blocks (without their chunk framing).
fn replayed(r: &Replay) -> Vec<String> {
    r.frames
        .iter()
        .map(|f| String::from_utf8(crate::broadcast::frame::unchunked(f).to_vec()).unwrap())
        .collect()
}

/// The ids of the events queued in `inbox`, in queue order.
fn queued(inbox: &Inbox) -> Vec<u64> {
    std::iter::from_fn(|| inbox.pop())
        .flat_map(|b| b.events.iter().map(|e| e.id).collect::<Vec<_>>())
        .collect()
}

#[test]
fn ids_are_consecutive_and_every_inbox_sees_the_same_order() {
    let (s, inboxes) = seq(2);
    s.watch(0, &["a", "b"]);
    s.watch(1, &["a", "b"]);
    assert_eq!(publish(&s, &["a"], "1"), 100);
    assert_eq!(publish(&s, &["b"], "2"), 101);
    assert_eq!(s.last_id(), 101);
    for inbox in &inboxes {
        assert_eq!(queued(inbox), [100, 101]);
    }
}

#[test]
fn a_publish_is_handed_only_to_workers_watching_its_topics() {
    let (s, inboxes) = seq(3);
    assert_eq!(s.watch(0, &["a"]), 99, "nothing published yet");
    s.watch(1, &["b"]);
    publish(&s, &["a"], "1");
    publish(&s, &["b"], "2");
    publish(&s, &["a", "b"], "3");
    publish(&s, &["nobody"], "4");
    assert_eq!(queued(&inboxes[0]), [100, 102]);
    assert_eq!(queued(&inboxes[1]), [101, 102]);
    assert_eq!(queued(&inboxes[2]), [] as [u64; 0], "no subscriber there");
    // Worker 2 starts watching: everything after the id it is given reaches it.
    assert_eq!(s.watch(2, &["a"]), 103);
    assert!(s.is_watched("a") && !s.is_watched("nobody"));
    publish(&s, &["a"], "5");
    assert_eq!(queued(&inboxes[0]), [104]);
    assert_eq!(queued(&inboxes[2]), [104]);
    // Worker 0 leaves `a`; worker 2 still has it.
    s.unwatch(0, ["a"]);
    publish(&s, &["a"], "6");
    assert_eq!(queued(&inboxes[0]), [] as [u64; 0]);
    assert_eq!(queued(&inboxes[2]), [105]);
    s.unwatch(2, ["a"]);
    assert!(!s.is_watched("a"));
    // History is kept whoever watches: a resume still finds every event.
    assert_eq!(s.resume(&["a"], b"103").frames.len(), 2);
}

#[test]
fn batches_to_heavy_topics_are_marked_for_the_publish_gate() {
    let (s, inboxes) = seq(1);
    s.watch(0, &["wide", "narrow"]);
    s.heavy_topics().mark(&Arc::from("wide"), true);
    publish(&s, &["narrow"], "1");
    assert_eq!(inboxes[0].heavy(), 0);
    publish(&s, &["wide"], "2");
    publish(&s, &["narrow", "wide"], "3");
    assert_eq!(inboxes[0].heavy(), 2);
    // From the cluster's stream as well.
    let inboxes: Vec<Arc<Inbox>> = vec![Arc::new(Inbox::default())];
    let s = Sequencer::clustered(inboxes.clone().into(), BOUNDS);
    s.watch(0, &["wide"]);
    s.heavy_topics().mark(&Arc::from("wide"), true);
    let stamped = Stamped {
        id: 10,
        topics: ["wide".to_string()].into_iter().collect(),
        draft: Draft::new(None, b"x"),
    };
    s.publish_ordered(vec![stamped], 10);
    assert_eq!(inboxes[0].heavy(), 1);
}

#[test]
fn resume_replays_after_the_id_across_topics_once() {
    let (s, _) = seq(1);
    publish(&s, &["a"], "x");
    publish(&s, &["a", "b"], "y");
    publish(&s, &["b"], "z");
    let r = s.resume(&["a", "b"], b"100");
    assert_eq!(r.gap, None);
    assert_eq!(
        replayed(&r),
        ["id: 101\ndata: y\n\n", "id: 102\ndata: z\n\n"]
    );
    assert_eq!(r.upto, 102);
}

#[test]
fn resume_reports_a_gap_when_history_was_trimmed() {
    let (s, _) = seq(1);
    for i in 0..5 {
        publish(&s, &["a"], &i.to_string());
    }
    let r = s.resume(&["a"], b"100");
    assert_eq!(r.gap, Some(Some(102)));
    assert_eq!(r.frames.len(), 3);
    assert_eq!(
        s.resume(&["a"], b"101").gap,
        None,
        "101 is the trim point itself"
    );
}

#[test]
fn ids_this_server_could_not_have_issued_are_gaps() {
    let (s, _) = seq(1);
    publish(&s, &["a"], "x");
    for bad in [
        &b"abc"[..],
        b"-1",
        b"+100",
        b"99999999999999999999999",
        b"101",
        b" 100",
        b"98",
    ] {
        let r = s.resume(&["a"], bad);
        assert_eq!(
            r.gap,
            Some(Some(100)),
            "id {:?}",
            String::from_utf8_lossy(bad)
        );
        assert_eq!(
            r.frames.len(),
            1,
            "everything retained is replayed after a gap"
        );
    }
    assert_eq!(
        s.resume(&["a"], b"99").gap,
        None,
        "the id just before the first is exact"
    );
}

#[test]
fn parse_id_is_strict_decimal() {
    assert_eq!(parse_id(b"0"), Some(0));
    assert_eq!(parse_id(b"18446744073709551615"), Some(u64::MAX));
    assert_eq!(parse_id(b"18446744073709551616"), None);
    assert_eq!(parse_id(b""), None);
    assert_eq!(parse_id(b"1e3"), None);
}

/// The ids in replayed frames, in order.
fn replayed_ids(r: &Replay) -> Vec<u64> {
    replayed(r)
        .iter()
        .map(|f| {
            f.strip_prefix("id: ")
                .unwrap()
                .split('\n')
                .next()
                .unwrap()
                .parse()
                .unwrap()
        })
        .collect()
}

#[test]
fn recent_merges_the_last_n_events_of_the_topics_in_id_order() {
    let (s, _) = seq(1);
    publish(&s, &["a"], "100"); // trimmed from a (count bound 3)
    publish(&s, &["b"], "101");
    publish(&s, &["a", "b"], "102");
    publish(&s, &["c"], "103");
    publish(&s, &["a"], "104");
    publish(&s, &["a"], "105");
    publish(&s, &["x"], "106");
    let r = s.recent(&["a", "b", "c"], 3);
    assert_eq!(replayed_ids(&r), [103, 104, 105]);
    assert_eq!((r.upto, r.gap, r.remote), (106, None, None));
    // An event on two topics comes once; the count is capped at the history bound.
    assert_eq!(replayed_ids(&s.recent(&["a", "b"], 2)), [104, 105]);
    assert_eq!(
        replayed_ids(&s.recent(&["a", "b", "c"], 1000)),
        [103, 104, 105],
        "capped at 3"
    );
    assert_eq!(replayed_ids(&s.recent(&["b"], 3)), [101, 102]);
    assert!(s.recent(&["nothing"], 3).frames.is_empty());
}

#[test]
fn clustered_recent_asks_the_stream_when_local_history_may_miss_some() {
    let inboxes: Vec<Arc<Inbox>> = vec![Arc::new(Inbox::default())];
    let s = Sequencer::clustered(inboxes.into(), BOUNDS);
    let stamp = |id: u64, topic: &str| Stamped {
        id,
        topics: [topic.to_string()].into_iter().collect(),
        draft: Draft::new(None, b"x"),
    };
    s.publish_ordered(vec![stamp(10, "a")], 10);
    s.watch(0, &["a"]);
    s.publish_ordered(vec![stamp(20, "a"), stamp(30, "a")], 30);
    // Recorded since 10: the last two are known to be the last two, not the last three.
    let r = s.recent(&["a"], 2);
    assert_eq!((replayed_ids(&r), r.remote), (vec![20, 30], None));
    assert_eq!(s.recent(&["a"], 3).remote, Some(Start::Last(3)));
    // A topic not recorded here at all.
    let r = s.recent(&["a", "b"], 1);
    assert_eq!(
        (r.frames.len(), r.remote, r.upto),
        (0, Some(Start::Last(1)), 30)
    );
}
