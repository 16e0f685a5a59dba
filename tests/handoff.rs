//! The hand-off of published events to workers loses nothing, whatever routing it does
//! (issue 14): while publishes run, subscribers keep joining and leaving topics on both
//! workers, and every subscriber gets every event of its topics published after its head
//! was answered, exactly once, in id order.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use common::{id_of, Client, Server};

const TOPICS: usize = 4;
/// How long publishing runs.
const PUBLISHING: Duration = Duration::from_secs(3);
/// Subscribers opening and closing at once, each for 20-200 ms.
const CHURNERS: usize = 6;

/// One accepted publish: its topic, its id, and when its request was sent.
struct Published {
    topic: usize,
    id: u64,
    sent: Instant,
}

/// What one subscriber saw: its topics, when its head was answered, the events it got.
struct Seen {
    topics: Vec<usize>,
    head_at: Instant,
    /// (id, topic) in the order received.
    events: Vec<(u64, usize)>,
}

fn topic_name(prefix: &str, t: usize) -> String {
    format!("{prefix}{t}")
}

fn query(prefix: &str, topics: &[usize]) -> String {
    let parts: Vec<String> = topics
        .iter()
        .map(|&t| format!("topic={}", topic_name(prefix, t)))
        .collect();
    parts.join("&")
}

/// The topic an event's data names (`<topic>:<n>`).
fn topic_of(data: &str) -> usize {
    data.split(':').next().unwrap().parse().unwrap()
}

/// A small deterministic generator, so a failure can be rerun as it was.
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

/// Subscribes to 1-2 topics for 20-200 ms at a time until `done`.
fn churn(
    server_addr: std::net::SocketAddr,
    prefix: String,
    seed: u64,
    done: Arc<AtomicBool>,
) -> Vec<Seen> {
    let mut rng = seed;
    let mut seen = Vec::new();
    while !done.load(Ordering::Acquire) {
        let first = (next(&mut rng) % TOPICS as u64) as usize;
        let mut topics = vec![first];
        if next(&mut rng).is_multiple_of(2) {
            topics.push((first + 1) % TOPICS);
        }
        let stay = Duration::from_millis(20 + next(&mut rng) % 180);
        let mut sse = common::sse::Sse::open(server_addr, &query(&prefix, &topics), &[]);
        assert_eq!(sse.status(), 200);
        let head_at = Instant::now();
        let mut events = Vec::new();
        while head_at.elapsed() < stay {
            if let Some(e) = sse.next_within(Duration::from_millis(10)) {
                events.push((e.id.parse().unwrap(), topic_of(&e.data)));
            }
        }
        seen.push(Seen {
            topics,
            head_at,
            events,
        });
    }
    seen
}

#[test]
fn subscribers_joining_and_leaving_on_both_workers_get_every_event_once_in_order() {
    scenario("narrow", 0);
}

/// The same with topic 0 made heavy by 200 more subscribers (more than
/// `broadcast::hub::HEAVY` on each worker, whichever worker they land on): its writes
/// go in the bulk lane and the others' in the prompt
/// lane, its publishes pass the heavy-topic gate, and the stayer on every topic has
/// frames of both lanes in one queue.
#[test]
fn with_one_topic_a_wide_fan_out_every_event_still_arrives_once_in_order() {
    scenario("wide", 200);
}

/// The same with a third publisher sending topic 0's events in NDJSON bursts of 120,
/// beside 160 subscribers of topic 0 that keep reading: one burst's fan-out (about
/// 9,600 frames on each worker) outlasts a turn's budget (8 Ki frames), so batches are
/// left over from turn to turn, and the other topics' events behind them go out between
/// flush groups to the subscribers nothing left over is for (`stream::delivery`'s
/// express pass). The stayer on every topic and the churners on topic 0 must wait.
#[test]
fn with_bursts_left_over_from_turn_to_turn_every_event_still_arrives_once_in_order() {
    scenario_with("burst", 160, true, 120);
}

/// Subscribers in their own threads, churning and staying, while two publishers run;
/// `wide` more subscribers on topic 0 that stay for the whole run, reading nothing (the
/// events of a few seconds fit in their socket buffers).
fn scenario(name: &str, wide: usize) {
    scenario_with(name, wide, false, 0);
}

/// As [`scenario`]; the `wide` subscribers keep reading (and discarding) if `reading`,
/// and with `burst` > 0 a third publisher sends topic 0's events `burst` at a time.
fn scenario_with(name: &str, wide: usize, reading: bool, burst: usize) {
    let server = Server::start(&["--workers", "2"]);
    let addr = server.addr;
    let prefix = format!("handoff{}-{name}-", std::process::id());
    let wide: Vec<_> = (0..wide)
        .map(|_| {
            let mut sse = common::sse::Sse::open(addr, &query(&prefix, &[0]), &[]);
            assert_eq!(sse.status(), 200);
            sse.stream
        })
        .collect();
    let draining = Arc::new(AtomicBool::new(true));
    let drainer = reading.then(|| {
        let draining = draining.clone();
        thread::spawn(move || drain(wide, &draining))
    });

    let done = Arc::new(AtomicBool::new(false));
    // The last id published on each topic, known once publishing is over.
    let last_ids: Arc<OnceLock<Vec<u64>>> = Arc::new(OnceLock::new());
    // Subscribers that stay for the whole run, one per topic and one on all of them,
    // reading all along, until the last event of their topics.
    let stayers: Vec<_> = (0..TOPICS)
        .map(|t| vec![t])
        .chain([(0..TOPICS).collect()])
        .map(|topics: Vec<usize>| {
            let (prefix, last_ids) = (prefix.clone(), last_ids.clone());
            let mut sse = common::sse::Sse::open(addr, &query(&prefix, &topics), &[]);
            assert_eq!(sse.status(), 200);
            let head_at = Instant::now();
            thread::spawn(move || {
                let mut events: Vec<(u64, usize)> = Vec::new();
                let mut quiet_since = Instant::now();
                loop {
                    if let Some(last) = last_ids.get() {
                        let last = topics.iter().map(|&t| last[t]).max().unwrap_or(0);
                        if events.last().is_some_and(|&(id, _)| id >= last) {
                            break;
                        }
                        assert!(
                            quiet_since.elapsed() < Duration::from_secs(5),
                            "a stayer on {topics:?} stalled at {:?}, {} events in, before {last}",
                            events.last(),
                            events.len()
                        );
                    }
                    if let Some(e) = sse.next_within(Duration::from_millis(20)) {
                        events.push((e.id.parse().unwrap(), topic_of(&e.data)));
                        quiet_since = Instant::now();
                    }
                }
                Seen {
                    topics,
                    head_at,
                    events,
                }
            })
        })
        .collect();
    let churners: Vec<_> = (0..CHURNERS)
        .map(|i| {
            let (prefix, done) = (prefix.clone(), done.clone());
            thread::spawn(move || churn(addr, prefix, 0x9e37_79b9_7f4a_7c15 ^ (i as u64 + 1), done))
        })
        .collect();

    let bursts = (burst > 0).then(|| {
        let prefix = prefix.clone();
        thread::spawn(move || publish_bursts(addr, &prefix, burst))
    });
    // Two publishers, each over one keep-alive connection (they land on either worker).
    let publishers: Vec<_> = (0..2)
        .map(|p| {
            let prefix = prefix.clone();
            thread::spawn(move || {
                let mut client = Client::connect(addr);
                let (start, mut out, mut n) = (Instant::now(), Vec::new(), 0usize);
                while start.elapsed() < PUBLISHING {
                    let topic = (n * 2 + p) % TOPICS;
                    let sent = Instant::now();
                    let body = format!("{topic}:{p}-{n}");
                    let q = format!("topic={}", topic_name(&prefix, topic));
                    let (status, answer) = client.publish(&q, body.as_bytes(), &[]);
                    assert_eq!(status, 202, "{answer}");
                    out.push(Published {
                        topic,
                        id: id_of(&answer),
                        sent,
                    });
                    n += 1;
                    if n.is_multiple_of(16) {
                        thread::sleep(Duration::from_millis(1));
                    }
                }
                out
            })
        })
        .collect();

    let mut published: Vec<Published> = publishers
        .into_iter()
        .chain(bursts)
        .flat_map(|p| p.join().expect("publisher"))
        .collect();
    done.store(true, Ordering::Release);
    published.sort_by_key(|p| p.id);
    let by_topic: BTreeMap<usize, Vec<&Published>> =
        published.iter().fold(BTreeMap::new(), |mut m, p| {
            m.entry(p.topic).or_default().push(p);
            m
        });
    assert!(published.len() > 200, "only {} publishes", published.len());
    let last: Vec<u64> = (0..TOPICS)
        .map(|t| by_topic.get(&t).and_then(|p| p.last()).map_or(0, |p| p.id))
        .collect();
    last_ids.set(last).expect("set once");

    let mut seen: Vec<Seen> = churners
        .into_iter()
        .flat_map(|c| c.join().expect("churner"))
        .collect();
    for stayer in stayers {
        seen.push(stayer.join().expect("stayer"));
    }
    draining.store(false, Ordering::Release);
    if let Some(drainer) = drainer {
        drainer.join().expect("drainer");
    }
    assert!(seen.len() > 30, "only {} subscriptions", seen.len());

    let mut delivered = 0;
    for s in &seen {
        let ids: Vec<u64> = s.events.iter().map(|&(id, _)| id).collect();
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "not once and in order on {:?}: {} events, around {:?}",
            s.topics,
            ids.len(),
            ids.windows(2).find(|w| w[0] >= w[1])
        );
        for &(id, topic) in &s.events {
            assert!(
                s.topics.contains(&topic),
                "event {id} of topic {topic} reached {:?}",
                s.topics
            );
        }
        let Some(&last) = ids.last() else { continue };
        // Everything of its topics sent after its head, up to the last event it read.
        let missing: Vec<u64> = published
            .iter()
            .filter(|p| s.topics.contains(&p.topic) && p.sent > s.head_at && p.id <= last)
            .map(|p| p.id)
            .filter(|id| ids.binary_search(id).is_err())
            .collect();
        assert!(
            missing.is_empty(),
            "{:?} missed {} events, first {:?}, of {} received",
            s.topics,
            missing.len(),
            missing.first(),
            ids.len()
        );
        delivered += ids.len();
    }
    assert!(
        delivered > published.len(),
        "{delivered} deliveries of {} events",
        published.len()
    );
}

/// Reads and discards what `streams` receive until `draining` is cleared.
fn drain(streams: Vec<std::net::TcpStream>, draining: &AtomicBool) {
    use std::io::Read;
    for s in &streams {
        s.set_nonblocking(true).expect("nonblocking");
    }
    let mut scratch = vec![0u8; 1 << 16];
    while draining.load(Ordering::Acquire) {
        let mut got = 0;
        for mut s in &streams {
            if let Ok(n) = s.read(&mut scratch) {
                got += n;
            }
        }
        if got == 0 {
            thread::sleep(Duration::from_millis(1));
        }
    }
}

/// Publishes topic 0's events in NDJSON batches of `burst` for [`PUBLISHING`].
fn publish_bursts(addr: std::net::SocketAddr, prefix: &str, burst: usize) -> Vec<Published> {
    let mut client = Client::connect(addr);
    let topic = topic_name(prefix, 0);
    let (start, mut out) = (Instant::now(), Vec::new());
    let mut n = 0;
    while start.elapsed() < PUBLISHING {
        let body: String = (0..burst)
            .map(|i| format!("{{\"topic\":\"{topic}\",\"data\":\"0:b{n}-{i}\"}}\n"))
            .collect();
        let sent = Instant::now();
        let ndjson = [("Content-Type", "application/x-ndjson")];
        let (status, answer) = client.publish("", body.as_bytes(), &ndjson);
        assert_eq!(status, 202, "{answer}");
        let ids = answer
            .trim_start_matches("{\"ids\":[")
            .trim_end_matches("]}")
            .split(',')
            .map(|id| id.trim_matches('"').parse().expect("an id"));
        out.extend(ids.map(|id| Published { topic: 0, id, sent }));
        n += 1;
        thread::sleep(Duration::from_millis(20));
    }
    out
}
