//! Topics flagged by workers, for the publish gate: the hot ones and the heavy ones.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use rustc_hash::FxHashMap;

/// Topics that some worker has flagged, each with the number of workers that did: the
/// hot topics (most of a worker's subscribers of it held more than half their queue
/// bound at its last fan-out) and the heavy ones (a worker has at least
/// `broadcast::hub::HEAVY` subscribers of it). Workers report only changes, so the map
/// is touched rarely. Every publish asks whether its topics are heavy; while no topic is
/// flagged (notifications: every topic has a few subscribers), the answer takes no lock.
#[derive(Default)]
pub struct TopicFlags {
    map: Mutex<FxHashMap<Arc<str>, usize>>,
    /// Topics in `map`, readable without its lock.
    flagged: AtomicUsize,
}

impl TopicFlags {
    /// One worker's flag for `topic` changed to `on`.
    pub fn mark(&self, topic: &Arc<str>, on: bool) {
        let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        match (on, map.get_mut(topic)) {
            (true, Some(workers)) => *workers += 1,
            (true, None) => {
                map.insert(topic.clone(), 1);
            }
            (false, Some(workers)) if *workers > 1 => *workers -= 1,
            (false, Some(_)) => {
                map.remove(topic);
            }
            (false, None) => debug_assert!(false, "{topic} unflagged but was not flagged"),
        }
        self.flagged.store(map.len(), Ordering::Release);
    }

    /// Whether any worker flags any of `topics`.
    pub fn any<'a>(&self, topics: impl IntoIterator<Item = &'a str>) -> bool {
        if self.flagged.load(Ordering::Acquire) == 0 {
            return false;
        }
        let map = self.map.lock().unwrap_or_else(|e| e.into_inner());
        !map.is_empty() && topics.into_iter().any(|t| map.contains_key(t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_topic_stays_flagged_until_every_worker_that_flagged_it_unflags_it() {
        let flags = TopicFlags::default();
        let (a, b): (Arc<str>, Arc<str>) = (Arc::from("a"), Arc::from("b"));
        assert!(!flags.any(["a"]));
        flags.mark(&a, true);
        flags.mark(&a, true);
        assert!(flags.any(["b", "a"]));
        assert!(!flags.any(["b"]));
        flags.mark(&a, false);
        assert!(flags.any(["a"]), "one worker still flags it");
        flags.mark(&a, false);
        assert!(!flags.any(["a"]));
        flags.mark(&b, true);
        assert!(flags.any(["b"]) && !flags.any(["a"]));
    }
}
