//! The flush: its lanes, its saturation sample, and where it stops for a request; and
//! the reap's two queues.

use std::io::Write;
use std::os::fd::{AsRawFd, IntoRawFd};
use std::os::unix::net::UnixStream;
use std::rc::Rc;

use super::plane::{Completion, Op};
use super::reap::REAP_BUDGET;
use super::*;

const FRAME: &[u8] = b"data: x\n\n";

/// `n` streaming subscribers on socket pairs (kept open by the returned peers), each
/// with `frames` copies of `frame` queued, listed in the bulk or the prompt lane.
fn subscribers_with(
    writes: &mut Writes,
    conns: &mut Slab<Conn>,
    n: usize,
    (frame, frames): (&Bytes, usize),
    bulk: bool,
) -> Vec<UnixStream> {
    let mut peers = Vec::new();
    for _ in 0..n {
        let (ours, theirs) = UnixStream::pair().expect("socketpair");
        ours.set_nonblocking(true).expect("nonblocking");
        // The descriptor stays open for the rest of the test process.
        let mut conn = Conn::new(ours.into_raw_fd(), 0);
        conn.enter(Phase::Stream);
        let key = conns.insert(conn) as u32;
        let conn = &mut conns[key as usize];
        for _ in 0..frames {
            conn.queue(frame);
        }
        match bulk {
            true => writes.dirty().mark(conn, key),
            false => writes.dirty().mark_prompt(conn, key),
        }
        peers.push(theirs);
    }
    peers
}

/// As [`subscribers_with`], with `frames` small frames each.
fn subscribers(
    writes: &mut Writes,
    conns: &mut Slab<Conn>,
    n: usize,
    frames: usize,
    bulk: bool,
) -> Vec<UnixStream> {
    let frame = Bytes::from_static(FRAME);
    subscribers_with(writes, conns, n, (&frame, frames), bulk)
}

const BATCH: usize = 32;
const DEEP: usize = 4;

fn flush(writes: &mut Writes, conns: &mut Slab<Conn>, readers: &Readers) -> Flushed {
    writes.flush(conns, BATCH, DEEP, (1, 1000), readers, None)
}

#[test]
fn a_bulk_flush_stops_when_a_waiting_connection_has_a_request_in() {
    let mut writes = Writes::new(Plane::epoll().expect("epoll"));
    let mut conns = Slab::new();
    let _peers = subscribers(&mut writes, &mut conns, 2 * BATCH, 1, true);
    let readers = Rc::new(Readers::default());
    let (mut publisher, ours) = UnixStream::pair().expect("socketpair");
    let _listed = readers.reading(ours.as_raw_fd());

    // Nothing came in: a whole batch is written, in groups.
    let whole = flush(&mut writes, &mut conns, &readers);
    assert_eq!((whole.started, whole.cut), (BATCH as u64, false));
    assert_eq!(writes.dirty().len(), BATCH);

    // A request is in: the flush ends after its first group.
    publisher.write_all(b"POST /publish").expect("write");
    let cut = flush(&mut writes, &mut conns, &readers);
    assert!(cut.cut);
    assert!(
        cut.started >= 1 && cut.started < BATCH as u64,
        "started {}",
        cut.started
    );
    assert_eq!(writes.dirty().len(), BATCH - cut.started as usize);

    // With nobody listed, the bulk lane is not looked at between writes.
    let unlisted = flush(&mut writes, &mut conns, &Readers::default());
    assert!(!unlisted.cut);
    assert!(writes.dirty().is_empty());
}

#[test]
fn a_frame_queued_between_groups_is_written_before_the_bulk_lane_goes_on() {
    let mut writes = Writes::new(Plane::epoll().expect("epoll"));
    let mut conns = Slab::new();
    let _peers = subscribers(&mut writes, &mut conns, 2 * BATCH, 1, true);
    // A subscriber of a narrow topic with nothing queued yet.
    let (ours, mut theirs) = UnixStream::pair().expect("socketpair");
    ours.set_nonblocking(true).expect("nonblocking");
    theirs.set_nonblocking(true).expect("nonblocking");
    let mut conn = Conn::new(ours.into_raw_fd(), 0);
    conn.enter(Phase::Stream);
    let narrow = conns.insert(conn) as u32;

    // After the first group, an event for it comes in; later looks find nothing.
    let (mut looks, mut bulk_written) = (0, 0);
    let mut refill = |conns: &mut Slab<Conn>, dirty: &mut DirtyList| {
        looks += 1;
        if looks > 1 {
            return false;
        }
        bulk_written = conns.iter().filter(|(_, c)| c.has(flags::WRITING)).count();
        let conn = &mut conns[narrow as usize];
        conn.queue(&Bytes::from_static(b"data: narrow\n\n"));
        dirty.mark_prompt(conn, narrow);
        true
    };
    let flushed = writes.flush(
        &mut conns,
        BATCH,
        DEEP,
        (1, 1000),
        &Readers::default(),
        Some(&mut refill),
    );
    assert!(
        looks > 1,
        "the bulk lane went in groups: looked {looks} times"
    );
    assert!(
        (1..BATCH).contains(&bulk_written),
        "it came after the first group: {bulk_written} written before"
    );
    assert_eq!(
        flushed.started,
        BATCH as u64 + 1,
        "a batch of bulk writes, and it"
    );
    let mut got = [0u8; 64];
    let n = std::io::Read::read(&mut theirs, &mut got).expect("written at once");
    assert_eq!(&got[..n], b"data: narrow\n\n");
    assert_eq!(
        writes.dirty().len(),
        BATCH,
        "the bulk lane's second batch waits"
    );
}

#[test]
fn saturation_is_judged_in_each_lane_alone() {
    let mut writes = Writes::new(Plane::epoll().expect("epoll"));
    let mut conns = Slab::new();
    // Twenty notifications with one frame each, beside five wide fan-out subscribers
    // holding more than `DEEP` frames: the fan-out is saturated, whatever the prompt
    // lane holds.
    let _quiet = subscribers(&mut writes, &mut conns, 20, 1, false);
    let _deep = subscribers(&mut writes, &mut conns, 5, DEEP + 1, true);
    let flushed = flush(&mut writes, &mut conns, &Readers::default());
    assert_eq!(flushed.saturated, Some(true));

    // Shallow queues in both lanes: not saturated.
    let mut writes = Writes::new(Plane::epoll().expect("epoll"));
    let _quiet = subscribers(&mut writes, &mut conns, 20, 1, false);
    let _bulk = subscribers(&mut writes, &mut conns, 5, DEEP, true);
    let flushed = flush(&mut writes, &mut conns, &Readers::default());
    assert_eq!(flushed.saturated, Some(false));
}

#[test]
fn connections_are_never_listed_as_waiting_on_the_epoll_plane() {
    // A long bulk flush (32 writes of 64 KiB) would list waiting connections on
    // io_uring; the epoll loop idles 1 ms after a busy turn, so a cut there starves the
    // bulk lane (BENCHMARKS.md, "Not on the epoll driver").
    let mut writes = Writes::new(Plane::epoll().expect("epoll"));
    let mut conns = Slab::new();
    let big = Bytes::from(vec![b'x'; 64 << 10]);
    let _peers = subscribers_with(&mut writes, &mut conns, BATCH, (&big, 1), true);
    let readers = Readers::default();
    let start = Instant::now();
    let flushed = flush(&mut writes, &mut conns, &readers);
    assert_eq!(flushed.started, BATCH as u64);
    assert!(start.elapsed() > GROUP_TIME, "the flush was long");
    assert!(!readers.busy());
}

fn completion(key: u32, op: Op) -> Completion {
    Completion {
        token: Token { key, gen: 0 },
        op,
        res: 0,
    }
}

#[test]
fn peer_closes_are_split_from_the_writes_and_both_keep_their_order() {
    let mut done = Collected {
        writes: vec![completion(7, Op::Write)],
        closes: vec![completion(0, Op::Watch)],
    };
    done.writes.extend([
        completion(1, Op::Watch),
        completion(2, Op::Write),
        completion(3, Op::Watch),
        completion(4, Op::Writable),
        completion(5, Op::Write),
        completion(6, Op::Watch),
    ]);
    // Only what came after the first entry is new.
    done.split_closes(1);
    let keys = |v: &[Completion]| v.iter().map(|c| c.token.key).collect::<Vec<_>>();
    assert_eq!(keys(&done.writes), [7, 2, 4, 5]);
    assert_eq!(keys(&done.closes), [0, 1, 3, 6]);
}

#[test]
fn a_write_completion_is_collected_however_many_peer_closes_wait() {
    let mut writes = Writes::new(Plane::epoll().expect("epoll"));
    let mut conns = Slab::new();
    let _peers = subscribers(&mut writes, &mut conns, 1, 1, true);
    // A burst of hang-ups, more than a turn collects, left over from the last turn.
    let closes = (1..=2 * REAP_BUDGET as u32)
        .map(|key| completion(key, Op::Watch))
        .collect();
    let left = Collected {
        writes: Vec::new(),
        closes,
    };
    writes.keep(left, (0, 0));
    // The subscriber's write completes (on the epoll plane, within the flush).
    assert_eq!(
        flush(&mut writes, &mut conns, &Readers::default()).started,
        1
    );
    let done = writes.collect();
    let got: Vec<_> = done.writes.iter().map(|c| (c.token.key, c.op)).collect();
    assert_eq!(got, [(0, Op::Write)], "the write waited behind the closes");
    assert_eq!(done.closes.len(), 2 * REAP_BUDGET);
}
