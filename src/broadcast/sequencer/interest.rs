//! Which workers have local subscribers of a topic, so that a publish is handed only to
//! them: a worker with none of its topics' subscribers is neither queued to nor woken.
//!
//! A worker sets its bit for a topic under the sequencer's lock before it reads where
//! its new subscriber's live events start, and clears it when its last local subscriber
//! of the topic leaves. Every event after that starting point is therefore queued to the
//! worker; a stale bit costs one queued batch that the worker finds nobody for.

use smallvec::SmallVec;

/// A set of worker indexes, one bit each (inline up to 64 workers).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Workers(SmallVec<[u64; 1]>);

impl Workers {
    pub fn insert(&mut self, worker: usize) {
        let (word, bit) = (worker / 64, worker % 64);
        if self.0.len() <= word {
            self.0.resize(word + 1, 0);
        }
        self.0[word] |= 1 << bit;
    }

    pub fn remove(&mut self, worker: usize) {
        if let Some(w) = self.0.get_mut(worker / 64) {
            *w &= !(1 << (worker % 64));
        }
    }

    pub fn contains(&self, worker: usize) -> bool {
        self.0
            .get(worker / 64)
            .is_some_and(|w| w & (1 << (worker % 64)) != 0)
    }

    pub fn is_empty(&self) -> bool {
        self.0.iter().all(|&w| w == 0)
    }

    /// Adds every worker of `other`.
    pub fn extend(&mut self, other: &Workers) {
        if self.0.len() < other.0.len() {
            self.0.resize(other.0.len(), 0);
        }
        for (w, o) in self.0.iter_mut().zip(&other.0) {
            *w |= o;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_past_the_first_word_and_back() {
        let mut w = Workers::default();
        assert!(w.is_empty());
        for i in [0, 63, 64, 200] {
            w.insert(i);
            assert!(w.contains(i), "{i}");
        }
        assert!(!w.contains(1) && !w.contains(65) && !w.contains(1000));
        let mut other = Workers::default();
        other.insert(5);
        w.extend(&other);
        assert!(w.contains(5));
        for i in [0, 5, 63, 64, 200] {
            w.remove(i);
        }
        assert!(w.is_empty(), "{w:?}");
        w.remove(9999);
        assert!(w.is_empty());
    }
}
