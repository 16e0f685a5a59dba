//! The fan-out's delivery policy, bounds and lanes, on connections with no socket.

use super::*;
use smallvec::smallvec;
use std::sync::Arc;

const BOUND: usize = 8;
/// Frames of 9 bytes: the byte bound is never the one hit, unless a test sets it.
pub(super) const LIMITS: Bound = Bound {
    frames: BOUND,
    bytes: 1 << 20,
    now: 1000,
    stuck_after: 100,
    held_after: 10,
};

/// [`LIMITS`] with room for every frame a fan-out test queues: nobody is evicted.
pub(super) const ROOMY: Bound = Bound {
    frames: 1 << 20,
    ..LIMITS
};

/// The worker's writes, over an epoll plane (the tests' connections have no socket).
pub(super) fn writes() -> Writes {
    Writes::new(crate::stream::plane::Plane::epoll().expect("epoll"))
}

pub(super) fn setup(n: usize) -> (Hub, Slab<Conn>) {
    let (mut hub, mut conns) = (Hub::default(), Slab::new());
    for _ in 0..n {
        let mut conn = Conn::new(-1, 0);
        conn.enter(Phase::Stream);
        let key = conns.insert(conn) as u32;
        let link = hub.subscribe("t", key, 0);
        conns[key as usize].links.push(link);
    }
    (hub, conns)
}

/// Publishes events `ids` to every subscriber; returns who was found over its bound.
fn publish(hub: &Hub, conns: &mut Slab<Conn>, ids: std::ops::RangeInclusive<u64>) -> Vec<u32> {
    publish_found(hub, conns, ids).evict
}

fn publish_found(hub: &Hub, conns: &mut Slab<Conn>, ids: std::ops::RangeInclusive<u64>) -> Found {
    let (mut dirty, mut found) = (DirtyList::default(), Found::default());
    for id in ids {
        let event = Event {
            id,
            topics: smallvec![Arc::from("t")],
            frame: Bytes::from_static(b"data: x\n\n"),
        };
        fan_out(hub, conns, &mut dirty, &mut found, &event, &LIMITS);
    }
    found
}

#[test]
fn a_reader_whose_write_is_stuck_is_over_its_bound() {
    let (hub, mut conns) = setup(2);
    conns[0].set(flags::WRITING);
    conns[1].set(flags::BLOCKED);
    for (_, conn) in conns.iter_mut() {
        conn.stalled_since = LIMITS.now - LIMITS.held_after;
    }
    assert!(publish(&hub, &mut conns, 1..=BOUND as u64).is_empty());
    assert_eq!(
        publish(&hub, &mut conns, BOUND as u64 + 1..=BOUND as u64 + 1),
        [0, 1]
    );
    assert!(conns.iter().all(|(_, c)| c.has(flags::EVICT)));
}

#[test]
fn a_reader_whose_write_made_progress_lately_gets_more_room() {
    let (hub, mut conns) = setup(2);
    conns[0].set(flags::WRITING);
    conns[1].set(flags::BLOCKED);
    for (_, conn) in conns.iter_mut() {
        conn.stalled_since = LIMITS.now - LIMITS.held_after + 1;
    }
    let room = (BOUND * BOUND_WHILE_READING) as u64;
    assert!(publish(&hub, &mut conns, 1..=room).is_empty());
    assert_eq!(publish(&hub, &mut conns, room + 1..=room + 1), [0, 1]);
}

#[test]
fn frames_waiting_only_for_the_worker_get_more_room() {
    let (hub, mut conns) = setup(1);
    let room = (BOUND * BOUND_WHILE_READING) as u64;
    assert!(publish(&hub, &mut conns, 1..=room).is_empty());
    assert_eq!(conns[0].out.len(), room as usize);
    assert_eq!(publish(&hub, &mut conns, room + 1..=room + 1), [0]);
}

#[test]
fn a_reader_whose_write_just_started_after_a_long_wait_for_the_worker_gets_more_room() {
    // Their last progress was long ago, but only because their frames waited in the
    // bulk lane. Subscriber 0's write has just started; 1's has not.
    let (hub, mut conns) = setup(2);
    for (_, conn) in conns.iter_mut() {
        conn.stalled_since = LIMITS.now - 50 * LIMITS.held_after;
    }
    conns[0].set(flags::WRITING);
    conns[0].last_write = LIMITS.now;
    assert!(!conns[0].stuck(LIMITS.now, LIMITS.held_after));
    assert!(
        !conns[1].stuck(LIMITS.now, LIMITS.held_after),
        "no write in flight"
    );
    assert!(publish(&hub, &mut conns, 1..=2 * BOUND as u64).is_empty());
    // Once that write has sat in the kernel as long, 0 is held to its bound.
    let later = Bound {
        now: LIMITS.now + LIMITS.held_after,
        ..LIMITS
    };
    assert!(conns[0].stuck(later.now, later.held_after));
    let (mut dirty, mut found) = (DirtyList::default(), Found::default());
    let event = Event {
        id: 2 * BOUND as u64 + 1,
        topics: smallvec![Arc::from("t")],
        frame: Bytes::from_static(b"data: x\n\n"),
    };
    fan_out(&hub, &mut conns, &mut dirty, &mut found, &event, &later);
    assert_eq!(found.evict, [0]);
}

#[test]
fn dirty_connections_are_listed_once_with_the_time_they_began_to_wait() {
    let (hub, mut conns) = setup(3);
    let (mut dirty, mut found) = (DirtyList::default(), Found::default());
    for (id, now) in [(1, 10), (2, 20)] {
        dirty.begin_turn(now);
        let event = Event {
            id,
            topics: smallvec![Arc::from("t")],
            frame: Bytes::from_static(b"data: x\n\n"),
        };
        fan_out(&hub, &mut conns, &mut dirty, &mut found, &event, &LIMITS);
    }
    let listed: Vec<(u32, u32)> = dirty.iter().map(|d| (d.key, d.since)).collect();
    assert_eq!(listed, [(0, 10), (1, 10), (2, 10)]);
}

#[test]
fn a_backlog_left_for_the_next_turn_shows_in_the_inboxs_wait() {
    // One event costs the whole turn's budget; the second waits for the next turn.
    let (hub, mut conns) = setup(FANOUT_BUDGET);
    let mut writes = writes();
    let inbox = Inbox::default();
    let published_at = Instant::now() - Duration::from_millis(300);
    for id in 1..=2 {
        let events = vec![Event {
            id,
            topics: smallvec![Arc::from("t")],
            frame: Bytes::from_static(b"data: x\n\n"),
        }];
        let batch = Batch {
            events,
            published_at,
            heavy: true,
            notice: None,
        };
        inbox.push(Arc::new(batch));
    }
    let mut fanout = Fanout::default();
    let queued = fanout.run(&inbox, &hub, &mut conns, &mut writes, &ROOMY);
    assert_eq!(queued, FANOUT_BUDGET as u64);
    assert!(fanout.pending(&inbox));
    assert!(
        inbox.waiting() >= Duration::from_millis(300),
        "the event left over was published 300 ms ago: {:?}",
        inbox.waiting()
    );
    fanout.run(&inbox, &hub, &mut conns, &mut writes, &ROOMY);
    assert!(!fanout.pending(&inbox));
    assert_eq!(inbox.waiting(), Duration::ZERO, "caught up");
}

#[test]
fn a_narrow_topics_subscriber_is_listed_ahead_of_a_wide_fan_out() {
    let (mut hub, mut conns) = setup(HEAVY);
    let mut alone = Conn::new(-1, 0);
    alone.enter(Phase::Stream);
    let key = conns.insert(alone) as u32;
    let link = hub.subscribe("n", key, 0);
    conns[key as usize].links.push(link);
    let (mut dirty, mut found) = (DirtyList::default(), Found::default());
    for (id, topic) in [(1, "t"), (2, "n")] {
        let event = Event {
            id,
            topics: smallvec![Arc::from(topic)],
            frame: Bytes::from_static(b"data: x\n\n"),
        };
        fan_out(&hub, &mut conns, &mut dirty, &mut found, &event, &LIMITS);
    }
    let listed: Vec<u32> = dirty.iter().map(|d| d.key).collect();
    assert_eq!(listed.len(), HEAVY + 1);
    assert_eq!(
        listed[0], key,
        "the one-subscriber topic's write goes first"
    );
    assert_eq!(listed[1..], (0..HEAVY as u32).collect::<Vec<_>>());
}

#[test]
fn a_reader_holding_its_byte_bound_is_over_it() {
    let (hub, mut conns) = setup(1);
    conns[0].set(flags::WRITING);
    conns[0].stalled_since = LIMITS.now - LIMITS.held_after;
    let (mut dirty, mut found) = (DirtyList::default(), Found::default());
    let bound = Bound {
        bytes: 25,
        ..LIMITS
    };
    for id in 1..=4 {
        let event = Event {
            id,
            topics: smallvec![Arc::from("t")],
            frame: Bytes::from_static(b"data: x\n\n"),
        };
        fan_out(&hub, &mut conns, &mut dirty, &mut found, &event, &bound);
    }
    // 9, 18, 27 bytes queued; the fourth frame finds 27 >= 25.
    assert_eq!((conns[0].out.len(), found.evict.as_slice()), (3, &[0][..]));
}

#[test]
fn a_topic_is_hot_while_most_of_its_readers_hold_over_half_their_bound() {
    let n = HOT_MIN + 2;
    let (hub, mut conns) = setup(n);
    let half = (BOUND / 2) as u64;
    assert!(publish_found(&hub, &mut conns, 1..=half).flips.is_empty());
    // All but two past half their bound: hot, reported once.
    conns[0].out = Default::default();
    conns[1].out = Default::default();
    let found = publish_found(&hub, &mut conns, half + 1..=half + 1);
    assert_eq!(found.flips, [(Arc::from("t"), true)]);
    assert!(publish_found(&hub, &mut conns, half + 2..=half + 2)
        .flips
        .is_empty());
    // Written out: cool again at the next fan-out.
    for key in 0..n {
        conns[key].out = Default::default();
    }
    let found = publish_found(&hub, &mut conns, half + 3..=half + 3);
    assert_eq!(found.flips, [(Arc::from("t"), false)]);
}

#[test]
fn few_deep_readers_or_stuck_ones_never_make_a_topic_hot() {
    // Fewer than HOT_MIN, all deep: evicted at their bound, never pacing anyone.
    let (hub, mut conns) = setup(HOT_MIN - 1);
    let found = publish_found(&hub, &mut conns, 1..=BOUND as u64);
    assert!(found.flips.is_empty());
    // Enough of them, but stuck (a write in the kernel, no progress for
    // `stuck_after`): not hot.
    let (hub, mut conns) = setup(HOT_MIN * 2);
    for (_, conn) in conns.iter_mut() {
        conn.set(flags::WRITING);
        conn.stalled_since = LIMITS.now - LIMITS.stuck_after;
    }
    let found = publish_found(&hub, &mut conns, 1..=BOUND as u64);
    assert!(found.flips.is_empty(), "stuck readers made the topic hot");
    // The same readers, progressing a tick ago: hot.
    for (_, conn) in conns.iter_mut() {
        conn.stalled_since = LIMITS.now - 1;
    }
    let found = publish_found(&hub, &mut conns, BOUND as u64 + 1..=BOUND as u64 + 1);
    assert_eq!(found.flips, [(Arc::from("t"), true)]);
}
