//! TEMPORARY stand-in (replaced by the hierarchical wheel from the `wheel` branch).
use std::collections::{BTreeSet, HashMap};
#[derive(Default)]
pub struct Wheel {
    by_key: HashMap<u32, u64>,
    set: BTreeSet<(u64, u32)>,
    elapsed: u64,
}
impl Wheel {
    pub fn new() -> Self {
        Self::default()
    }
    pub fn insert(&mut self, key: u32, deadline: u64) {
        self.cancel(key);
        let d = deadline.max(self.elapsed + 1);
        self.by_key.insert(key, d);
        self.set.insert((d, key));
    }
    pub fn cancel(&mut self, key: u32) -> bool {
        match self.by_key.remove(&key) {
            Some(d) => {
                self.set.remove(&(d, key));
                true
            }
            None => false,
        }
    }
    pub fn poll(&mut self, now: u64) -> Option<u32> {
        self.elapsed = self.elapsed.max(now);
        let &(d, k) = self.set.iter().next()?;
        if d > now {
            return None;
        }
        self.cancel(k);
        Some(k)
    }
    pub fn next_expiry(&self) -> Option<u64> {
        self.set.iter().next().map(|e| e.0)
    }
}
