//! The passes between two groups of a flush: narrow batches at the head of the inbox,
//! and the express pass behind a batch left over; on connections with no socket.

use super::*;
use crate::stream::delivery::tests::{setup, writes, LIMITS, ROOMY};
use smallvec::smallvec;

/// A batch of one event `id` to `topic`, with frame `data: {id}`.
fn batch_to(id: u64, topic: &str, heavy: bool) -> Arc<Batch> {
    Arc::new(Batch {
        events: vec![Event {
            id,
            topics: smallvec![Arc::from(topic)],
            frame: Bytes::from(format!("data: {id}\n\n")),
        }],
        published_at: Instant::now(),
        heavy,
        notice: None,
    })
}

/// A batch with no event and the notice `: notice` to every subscriber.
fn notice_to_all() -> Arc<Batch> {
    Arc::new(Batch {
        events: Vec::new(),
        published_at: Instant::now(),
        heavy: false,
        notice: Some((None, Bytes::from_static(b": notice\n\n"))),
    })
}

/// A streaming connection on `topic`.
fn subscriber(hub: &mut Hub, conns: &mut Slab<Conn>, topic: &str) -> u32 {
    subscriber_on(hub, conns, &[topic])
}

/// A streaming connection on `topics`.
fn subscriber_on(hub: &mut Hub, conns: &mut Slab<Conn>, topics: &[&str]) -> u32 {
    let mut conn = Conn::new(-1, 0);
    conn.enter(Phase::Stream);
    let key = conns.insert(conn) as u32;
    for (i, topic) in topics.iter().enumerate() {
        let link = hub.subscribe(topic, key, i as u32);
        conns[key as usize].links.push(link);
    }
    key
}

fn frames(conn: &Conn) -> Vec<&[u8]> {
    conn.out.frames().map(|f| &f[..]).collect()
}

#[test]
fn between_flush_groups_narrow_batches_go_out_and_pass_a_wide_one_only_where_it_is_not_for() {
    let (mut hub, mut conns) = setup(HEAVY);
    let n = subscriber(&mut hub, &mut conns, "n");
    let m = subscriber(&mut hub, &mut conns, "m");
    let both = subscriber_on(&mut hub, &mut conns, &["m", "t"]);
    let mut dirty = DirtyList::default();
    let inbox = Inbox::default();
    let mut fanout = Fanout::default();

    // Two narrow batches, then a wide one, then two more narrow ones: the first two go
    // in order; event 4 passes the wide event 3, whose topic its subscriber does not
    // follow; event 5 goes only to the subscriber of "m" that does not follow "t".
    for batch in [
        batch_to(1, "n", false),
        batch_to(2, "m", false),
        batch_to(3, "t", true),
        batch_to(4, "n", false),
        batch_to(5, "m", false),
    ] {
        inbox.push(batch);
    }
    let queued = fanout.run_narrow(&inbox, &hub, &mut conns, &mut dirty, &ROOMY);
    assert_eq!(queued, 5, "1, 2 twice, 4, 5 once");
    assert_eq!(frames(&conns[n as usize]), [b"data: 1\n\n", b"data: 4\n\n"]);
    assert_eq!(frames(&conns[m as usize]), [b"data: 2\n\n", b"data: 5\n\n"]);
    assert_eq!(frames(&conns[both as usize]), [b"data: 2\n\n"]);
    assert!(frames(&conns[0]).is_empty(), "the wide topic's event waits");
    assert_eq!(
        fanout.run_narrow(&inbox, &hub, &mut conns, &mut dirty, &ROOMY),
        0,
        "nothing new"
    );

    let mut writes = writes();
    fanout.run(&inbox, &hub, &mut conns, &mut writes, &ROOMY);
    assert!(!fanout.pending(&inbox));
    assert_eq!((inbox.events(), inbox.heavy(), inbox.narrow()), (0, 0, 0));
    assert_eq!(frames(&conns[0]), [b"data: 3\n\n"]);
    assert_eq!(frames(&conns[n as usize]), [b"data: 1\n\n", b"data: 4\n\n"]);
    assert_eq!(frames(&conns[m as usize]), [b"data: 2\n\n", b"data: 5\n\n"]);
    assert_eq!(
        frames(&conns[both as usize]),
        [b"data: 2\n\n", b"data: 3\n\n", b"data: 5\n\n"]
    );
}

#[test]
fn a_narrow_event_behind_a_fan_out_left_over_goes_out_between_flush_groups_in_order() {
    // Two events to a topic whose every event takes a whole turn's budget, then one to
    // a topic of one subscriber, and one to that topic and the wide one.
    let (mut hub, mut conns) = setup(FANOUT_BUDGET);
    let alone = subscriber(&mut hub, &mut conns, "n");
    let both = subscriber_on(&mut hub, &mut conns, &["n", "t"]);
    let after = subscriber(&mut hub, &mut conns, "m");
    let mut writes = writes();
    let inbox = Inbox::default();
    for batch in [
        batch_to(1, "t", true),
        batch_to(2, "t", true),
        batch_to(3, "n", false),
        batch_to(4, "m", false),
    ] {
        inbox.push(batch);
    }
    let mut fanout = Fanout::default();
    fanout.run(&inbox, &hub, &mut conns, &mut writes, &ROOMY);
    // Between two groups of the flush:
    fanout.run_narrow(&inbox, &hub, &mut conns, writes.dirty(), &ROOMY);
    assert!(fanout.pending(&inbox), "event 2 waits for the next turn");
    assert_eq!(
        frames(&conns[alone as usize]),
        [b"data: 3\n\n"],
        "expressed"
    );
    assert_eq!(
        frames(&conns[after as usize]),
        [b"data: 4\n\n"],
        "expressed"
    );
    assert_eq!(
        frames(&conns[both as usize]),
        [b"data: 1\n\n"],
        "on the wide topic too: event 3 waits behind event 2"
    );
    let listed: Vec<u32> = writes.dirty().iter().map(|d| d.key).collect();
    assert_eq!(listed[..2], [alone, after], "in the prompt lane");
    // Only event 3 is still counted (by its subscriber on both topics), besides event 2.
    assert_eq!((inbox.events(), inbox.heavy()), (1, 0));

    for _ in 0..3 {
        fanout.run(&inbox, &hub, &mut conns, &mut writes, &ROOMY);
    }
    assert!(!fanout.pending(&inbox));
    assert_eq!((inbox.events(), inbox.heavy()), (0, 0));
    assert_eq!(frames(&conns[alone as usize]), [b"data: 3\n\n"], "once");
    assert_eq!(frames(&conns[after as usize]), [b"data: 4\n\n"], "once");
    assert_eq!(
        frames(&conns[both as usize]),
        [b"data: 1\n\n", b"data: 2\n\n", b"data: 3\n\n"]
    );
}

#[test]
fn nothing_passes_a_notice_or_an_earlier_event_to_its_topic() {
    let (mut hub, mut conns) = setup(FANOUT_BUDGET);
    let first = subscriber(&mut hub, &mut conns, "n");
    let second = subscriber(&mut hub, &mut conns, "m");
    let mut writes = writes();
    let inbox = Inbox::default();
    inbox.push(batch_to(1, "t", true));
    inbox.push(batch_to(2, "t", true));
    // Event 3 to "n" waits in a heavy batch (published to "t" too); event 4, to "n"
    // alone, must not pass it.
    inbox.push(Arc::new(Batch {
        events: vec![Event {
            id: 3,
            topics: smallvec![Arc::from("t"), Arc::from("n")],
            frame: Bytes::from_static(b"data: 3\n\n"),
        }],
        published_at: Instant::now(),
        heavy: true,
        notice: None,
    }));
    inbox.push(batch_to(4, "n", false));
    // A notice to every subscriber; event 5 must not pass it.
    inbox.push(notice_to_all());
    inbox.push(batch_to(5, "m", false));
    let mut fanout = Fanout::default();
    fanout.run(&inbox, &hub, &mut conns, &mut writes, &ROOMY);
    // Between two groups of the flush:
    fanout.run_narrow(&inbox, &hub, &mut conns, writes.dirty(), &ROOMY);
    assert!(frames(&conns[first as usize]).is_empty());
    assert!(frames(&conns[second as usize]).is_empty());
    for _ in 0..4 {
        fanout.run(&inbox, &hub, &mut conns, &mut writes, &ROOMY);
    }
    assert!(!fanout.pending(&inbox));
    assert_eq!(
        frames(&conns[first as usize]),
        [&b"data: 3\n\n"[..], b"data: 4\n\n", b": notice\n\n"]
    );
    assert_eq!(
        frames(&conns[second as usize]),
        [&b": notice\n\n"[..], b"data: 5\n\n"]
    );
}

#[test]
fn a_pass_between_flush_groups_takes_the_inboxs_wait_with_the_batches() {
    let (mut hub, mut conns) = setup(0);
    subscriber(&mut hub, &mut conns, "n");
    let (inbox, mut dirty, mut fanout) =
        (Inbox::default(), DirtyList::default(), Fanout::default());
    inbox.push(batch_to(1, "n", false));
    inbox.notify();
    std::thread::sleep(Duration::from_millis(5));
    assert!(inbox.waiting() >= Duration::from_millis(5));
    assert_eq!(
        fanout.run_narrow(&inbox, &hub, &mut conns, &mut dirty, &LIMITS),
        1
    );
    assert_eq!(inbox.waiting(), Duration::ZERO, "nothing waits any more");
}

#[test]
fn a_notice_at_the_head_waits_for_the_turn_and_nothing_passes_it() {
    let (mut hub, mut conns) = setup(0);
    let n = subscriber(&mut hub, &mut conns, "n");
    let (inbox, mut dirty, mut fanout) =
        (Inbox::default(), DirtyList::default(), Fanout::default());
    inbox.push(notice_to_all());
    inbox.push(batch_to(2, "n", false));
    assert_eq!(
        fanout.run_narrow(&inbox, &hub, &mut conns, &mut dirty, &LIMITS),
        0
    );
    assert!(frames(&conns[n as usize]).is_empty());

    let mut writes = writes();
    fanout.run(&inbox, &hub, &mut conns, &mut writes, &LIMITS);
    assert!(!fanout.pending(&inbox));
    assert_eq!(
        frames(&conns[n as usize]),
        [&b": notice\n\n"[..], b"data: 2\n\n"]
    );
}
