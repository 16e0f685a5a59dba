//! Each worker's map from topic to its local subscribers.
//!
//! A topic's subscribers are a dense `Vec` of connection keys, so a fan-out is a linear
//! walk. Removal is O(1): each connection remembers, per topic, its position in that
//! `Vec` (a [`Link`]), and the entry swapped into the hole is re-pointed.

use std::cell::Cell;
use std::sync::Arc;

use rustc_hash::FxHashMap;
use slab::Slab;

/// A subscriber's membership in one topic: the topic's slot and its position in the
/// topic's subscriber list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Link {
    pub topic: u32,
    pub pos: u32,
}

/// One entry of a topic's subscriber list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Sub {
    /// The connection's slab key.
    pub conn: u32,
    /// Which of the connection's links points back here.
    pub link: u32,
}

/// After a removal, the subscriber that moved into the freed position: its link `link`
/// must now say `pos`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Moved {
    pub conn: u32,
    pub link: u32,
    pub pos: u32,
}

/// Local subscribers from which a topic is heavy: its publishes are held first when the
/// worker falls behind (see `Shared::publish_capacity`), and its subscribers' writes
/// wait in the bulk lane (see `stream::DirtyList`). At 64, a fan-out of a topic that is
/// not heavy costs under 1% of a turn's fan-out budget, and fits in two turns' batches.
pub const HEAVY: usize = 64;

struct Topic {
    name: Arc<str>,
    subs: Vec<Sub>,
    /// Whether most of its subscribers had deep queues at its last fan-out (set by the
    /// fan-out, read by the publish gate through `Shared`).
    hot: Cell<bool>,
}

#[derive(Default)]
pub struct Hub {
    by_name: FxHashMap<Arc<str>, u32>,
    topics: Slab<Topic>,
    /// Total subscriptions (a connection on three topics counts three).
    subscriptions: usize,
    /// Topics with at least [`HEAVY`] subscribers.
    heavy: usize,
    /// Hot topics that lost their last subscriber since the last [`Hub::take_changes`].
    cooled: Vec<Arc<str>>,
    /// Topics that became heavy (`true`) or stopped being heavy, since then.
    crossed: Vec<(Arc<str>, bool)>,
    /// Topics that lost their last subscriber since then.
    emptied: Vec<Arc<str>>,
    /// Topics whose subscriber count changed since then, with the new count.
    counts: Vec<(Arc<str>, usize)>,
}

/// What changed in the hub's topic flags since the last look, for `Shared`'s mirrors.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Changes {
    /// Hot topics that lost their last local subscriber (no fan-out will cool them).
    pub cooled: Vec<Arc<str>>,
    /// Topics that became heavy (`true`) or stopped being heavy.
    pub crossed: Vec<(Arc<str>, bool)>,
    /// Topics that lost their last local subscriber.
    pub emptied: Vec<Arc<str>>,
    /// Topics whose local subscriber count changed, with the new count (for `Census`).
    pub counts: Vec<(Arc<str>, usize)>,
}

impl Hub {
    /// Adds connection `conn` to `topic` as its link number `link`.
    pub fn subscribe(&mut self, topic: &str, conn: u32, link: u32) -> Link {
        let slot = match self.by_name.get(topic) {
            Some(&slot) => slot,
            None => {
                let name: Arc<str> = Arc::from(topic);
                let slot = self.topics.insert(Topic {
                    name: name.clone(),
                    subs: Vec::new(),
                    hot: Cell::new(false),
                }) as u32;
                self.by_name.insert(name, slot);
                slot
            }
        };
        let topic = &mut self.topics[slot as usize];
        topic.subs.push(Sub { conn, link });
        if topic.subs.len() == HEAVY {
            self.heavy += 1;
            self.crossed.push((topic.name.clone(), true));
        }
        self.counts.push((topic.name.clone(), topic.subs.len()));
        let subs = &topic.subs;
        self.subscriptions += 1;
        Link {
            topic: slot,
            pos: (subs.len() - 1) as u32,
        }
    }

    /// Removes the subscription at `link`; returns the entry that moved into its place.
    pub fn unsubscribe(&mut self, link: Link) -> Option<Moved> {
        let topic = &mut self.topics[link.topic as usize];
        let pos = link.pos as usize;
        debug_assert!(
            pos < topic.subs.len(),
            "link {link:?} past {} subscribers",
            topic.subs.len()
        );
        topic.subs.swap_remove(pos);
        if topic.subs.len() == HEAVY - 1 {
            self.heavy -= 1;
            self.crossed.push((topic.name.clone(), false));
        }
        self.subscriptions -= 1;
        self.counts.push((topic.name.clone(), topic.subs.len()));
        if topic.subs.is_empty() {
            let topic = self.topics.remove(link.topic as usize);
            self.by_name.remove(&topic.name);
            if topic.hot.get() {
                self.cooled.push(topic.name.clone());
            }
            self.emptied.push(topic.name);
            return None;
        }
        if topic.subs.capacity() > 64 && topic.subs.len() < topic.subs.capacity() / 4 {
            topic.subs.shrink_to(topic.subs.len() * 2);
        }
        topic.subs.get(pos).map(|s| Moved {
            conn: s.conn,
            link: s.link,
            pos: link.pos,
        })
    }

    /// The shared name of the topic in `slot`.
    pub fn topic_key(&self, slot: u32) -> &Arc<str> {
        &self.topics[slot as usize].name
    }

    /// The name of the topic in `slot`.
    pub fn topic_name(&self, slot: u32) -> &str {
        &self.topics[slot as usize].name
    }

    /// The local subscribers of `topic`.
    pub fn subscribers(&self, topic: &str) -> &[Sub] {
        match self.by_name.get(topic) {
            Some(&slot) => &self.topics[slot as usize].subs,
            None => &[],
        }
    }

    /// The slot of `topic` and its local subscribers; `None` when it has none.
    pub fn slot(&self, topic: &str) -> Option<(u32, &[Sub])> {
        let slot = *self.by_name.get(topic)?;
        Some((slot, &self.topics[slot as usize].subs))
    }

    /// The local subscribers of `topic` and its hot flag; `None` when it has none.
    pub fn entry(&self, topic: &str) -> Option<(&[Sub], &Cell<bool>)> {
        let t = &self.topics[*self.by_name.get(topic)? as usize];
        Some((&t.subs, &t.hot))
    }

    /// The flag changes since the last call (subscribes and removals make them; the
    /// fan-out reports hot flags itself).
    pub fn take_changes(&mut self) -> Changes {
        Changes {
            cooled: std::mem::take(&mut self.cooled),
            crossed: std::mem::take(&mut self.crossed),
            emptied: std::mem::take(&mut self.emptied),
            counts: std::mem::take(&mut self.counts),
        }
    }

    pub fn topics(&self) -> usize {
        self.topics.len()
    }

    pub fn subscriptions(&self) -> usize {
        self.subscriptions
    }

    /// Topics with fewer than [`HEAVY`] subscribers here.
    pub fn narrow_topics(&self) -> usize {
        self.topics.len() - self.heavy
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A model of connections' link tables, kept consistent the way the worker does.
    fn apply(links: &mut [Vec<Link>], moved: Option<Moved>) {
        if let Some(m) = moved {
            links[m.conn as usize][m.link as usize].pos = m.pos;
        }
    }

    fn conns_of(hub: &Hub, topic: &str) -> Vec<u32> {
        let mut v: Vec<u32> = hub.subscribers(topic).iter().map(|s| s.conn).collect();
        v.sort_unstable();
        v
    }

    #[test]
    fn removal_repoints_the_moved_subscriber() {
        let mut hub = Hub::default();
        let mut links: Vec<Vec<Link>> = vec![Vec::new(); 4];
        for conn in 0..4u32 {
            links[conn as usize].push(hub.subscribe("a", conn, 0));
        }
        links[2].push(hub.subscribe("b", 2, 1));
        let moved = hub.unsubscribe(links[0][0]);
        apply(&mut links, moved);
        assert_eq!(moved.map(|m| m.conn), Some(3));
        assert_eq!(conns_of(&hub, "a"), [1, 2, 3]);
        // Every remaining link still points at its own entry.
        for (conn, ls) in links.iter().enumerate().skip(1) {
            for (i, l) in ls.iter().enumerate() {
                let sub = hub.topics[l.topic as usize].subs[l.pos as usize];
                assert_eq!(
                    sub,
                    Sub {
                        conn: conn as u32,
                        link: i as u32
                    }
                );
            }
        }
        assert_eq!(hub.subscriptions(), 4);
    }

    #[test]
    fn an_empty_topic_is_dropped_and_its_slot_reused() {
        let mut hub = Hub::default();
        let l = hub.subscribe("a", 7, 0);
        assert_eq!(hub.topics(), 1);
        assert_eq!(hub.unsubscribe(l), None);
        assert_eq!(hub.topics(), 0);
        assert!(hub.subscribers("a").is_empty());
        let l2 = hub.subscribe("b", 8, 0);
        assert_eq!(l2.topic, l.topic);
        assert_eq!(conns_of(&hub, "b"), [8]);
    }

    #[test]
    fn crossing_the_heavy_line_is_reported_each_way_once() {
        let mut hub = Hub::default();
        let links: Vec<Link> = (0..HEAVY as u32)
            .map(|c| hub.subscribe("a", c, 0))
            .collect();
        hub.subscribe("b", 100, 0);
        let name: Arc<str> = Arc::from("a");
        assert_eq!(hub.take_changes().crossed, [(name.clone(), true)]);
        assert_eq!(hub.narrow_topics(), 1, "b");
        hub.subscribe("a", 99, 0);
        assert!(hub.take_changes().crossed.is_empty());
        let mut links = links;
        let _ = hub.unsubscribe(links.pop().unwrap());
        assert!(hub.take_changes().crossed.is_empty(), "still {HEAVY}");
        assert_eq!(hub.narrow_topics(), 1);
        let _ = hub.unsubscribe(links.pop().unwrap());
        assert_eq!(hub.take_changes().crossed, [(name, false)]);
        assert_eq!(hub.narrow_topics(), 2);
    }
}
