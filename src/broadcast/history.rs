//! The per-topic history ring that `Last-Event-ID` resumes replay from.
//!
//! Entries hold the same [`Bytes`] frames the subscribers were sent (a reference count,
//! no copy). The ring is bounded by count, bytes and age, and remembers the highest id it
//! ever dropped, which is how a resume learns that its history no longer reaches back.

use std::collections::VecDeque;

use bytes::Bytes;

/// One retained event.
#[derive(Clone, Debug)]
pub struct Entry {
    pub id: u64,
    /// Milliseconds on the sequencer's clock when it was published; for the age bound.
    pub at_ms: u64,
    pub frame: Bytes,
}

/// The three bounds, all on by default.
#[derive(Clone, Copy, Debug)]
pub struct Bounds {
    pub count: usize,
    pub bytes: usize,
    pub ttl_ms: u64,
}

#[derive(Debug, Default)]
pub struct History {
    /// Oldest first; ids strictly increasing, so a resume point is a binary search.
    entries: VecDeque<Entry>,
    /// Sum of the retained frames' lengths.
    bytes: usize,
    /// The highest id ever dropped from this topic (0: nothing dropped yet). A resume from
    /// an id below this has lost events.
    trimmed_upto: u64,
    /// The ring holds every event of the topic after this id (0: since the process began).
    /// In cluster mode a topic is recorded only while it has local subscribers, so this is
    /// where recording last started.
    since: u64,
}

impl History {
    /// A ring that records events after `id`.
    pub fn starting_after(id: u64) -> History {
        History {
            since: id,
            ..History::default()
        }
    }

    /// Appends an event and trims to the bounds.
    pub fn push(&mut self, entry: Entry, bounds: &Bounds) {
        debug_assert!(
            self.entries.back().is_none_or(|last| last.id < entry.id),
            "history ids must increase: last {:?}, new {}",
            self.entries.back().map(|e| e.id),
            entry.id
        );
        let now = entry.at_ms;
        self.bytes += entry.frame.len();
        self.entries.push_back(entry);
        self.trim(now, bounds);
    }

    /// Drops from the front whatever is over a bound (also called periodically for age).
    pub fn trim(&mut self, now_ms: u64, bounds: &Bounds) {
        while let Some(front) = self.entries.front() {
            let over = self.entries.len() > bounds.count
                || self.bytes > bounds.bytes
                || now_ms.saturating_sub(front.at_ms) > bounds.ttl_ms;
            if !over {
                break;
            }
            let dropped = self.entries.pop_front().expect("front exists");
            self.bytes -= dropped.frame.len();
            self.trimmed_upto = dropped.id;
        }
        if self.entries.capacity() > 64 && self.entries.len() < self.entries.capacity() / 4 {
            self.entries.shrink_to(self.entries.len() * 2);
        }
    }

    /// The retained events with an id greater than `after`, oldest first. O(log n) to find.
    pub fn after(&self, after: u64) -> impl Iterator<Item = &Entry> {
        let start = self.entries.partition_point(|e| e.id <= after);
        self.entries.range(start..)
    }

    /// The newest `n` retained events (all of them if fewer), oldest first.
    pub fn newest(&self, n: usize) -> impl Iterator<Item = &Entry> {
        self.entries.range(self.entries.len().saturating_sub(n)..)
    }

    /// Whether every event of this topic with an id above `after` is still retained.
    pub fn reaches_back_to(&self, after: u64) -> bool {
        self.trimmed_upto <= after && self.since <= after
    }

    /// The id above which this ring holds every event of its topic.
    pub fn complete_above(&self) -> u64 {
        self.trimmed_upto.max(self.since)
    }

    /// The newest id recorded, retained or since trimmed.
    pub fn newest_id(&self) -> Option<u64> {
        let last = self.entries.back().map_or(self.trimmed_upto, |e| e.id);
        (last > 0).then_some(last)
    }

    /// The retained frames' bytes.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    pub fn oldest_id(&self) -> Option<u64> {
        self.entries.front().map(|e| e.id)
    }

    pub fn trimmed_upto(&self) -> u64 {
        self.trimmed_upto
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Heap bytes this ring keeps alive: frames plus the ring's own slots.
    pub fn memory(&self) -> usize {
        self.bytes + self.entries.capacity() * std::mem::size_of::<Entry>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WIDE: Bounds = Bounds {
        count: 1000,
        bytes: 1 << 20,
        ttl_ms: 60_000,
    };

    fn entry(id: u64, at_ms: u64, len: usize) -> Entry {
        Entry {
            id,
            at_ms,
            frame: Bytes::from(vec![b'x'; len]),
        }
    }

    fn ids(h: &History, after: u64) -> Vec<u64> {
        h.after(after).map(|e| e.id).collect()
    }

    #[test]
    fn after_finds_the_resume_point() {
        let mut h = History::default();
        for id in [10, 20, 30, 40] {
            h.push(entry(id, 0, 1), &WIDE);
        }
        assert_eq!(ids(&h, 0), [10, 20, 30, 40]);
        assert_eq!(ids(&h, 10), [20, 30, 40]);
        assert_eq!(ids(&h, 15), [20, 30, 40]);
        assert_eq!(ids(&h, 40), Vec::<u64>::new());
        assert_eq!(ids(&h, u64::MAX), Vec::<u64>::new());
        assert!(h.reaches_back_to(0));
    }

    #[test]
    fn count_bound_trims_oldest_and_remembers_it() {
        let bounds = Bounds { count: 3, ..WIDE };
        let mut h = History::default();
        for id in 1..=5 {
            h.push(entry(id, 0, 1), &bounds);
        }
        assert_eq!(ids(&h, 0), [3, 4, 5]);
        assert_eq!(h.trimmed_upto(), 2);
        assert!(!h.reaches_back_to(1));
        assert!(h.reaches_back_to(2));
        assert_eq!(h.oldest_id(), Some(3));
    }

    #[test]
    fn byte_bound_trims_until_it_fits() {
        let bounds = Bounds { bytes: 250, ..WIDE };
        let mut h = History::default();
        for id in 1..=3 {
            h.push(entry(id, 0, 100), &bounds);
        }
        assert_eq!(ids(&h, 0), [2, 3]);
        assert_eq!(
            h.memory() - h.entries.capacity() * std::mem::size_of::<Entry>(),
            200
        );
        h.push(entry(4, 0, 1000), &bounds);
        assert!(
            h.is_empty(),
            "a frame larger than the bound is not retained"
        );
        assert_eq!(h.trimmed_upto(), 4);
    }

    #[test]
    fn age_bound_trims_on_push_and_on_trim() {
        let bounds = Bounds {
            ttl_ms: 100,
            ..WIDE
        };
        let mut h = History::default();
        h.push(entry(1, 0, 1), &bounds);
        h.push(entry(2, 50, 1), &bounds);
        h.push(entry(3, 150, 1), &bounds);
        assert_eq!(ids(&h, 0), [2, 3]);
        h.trim(1000, &bounds);
        assert!(h.is_empty());
        assert_eq!(h.trimmed_upto(), 3);
    }
}
