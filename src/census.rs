//! How many subscribers follow each topic in this process, for `GET /topics`, and (with
//! `--subscription-events`) which users, for `GET /topics/T/subscribers`.
//!
//! Each worker keeps its own ordered map of topic to local subscriber count, behind a
//! lock only it writes and the rare topic query reads: a subscribe or close changes a
//! few entries under an uncontended lock, and a query sums the workers' counts. The maps
//! are ordered so a prefix listing is a range walk, not a scan.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

type Counts = BTreeMap<Arc<str>, u32>;
/// Per topic, the users following it and the streams each has.
type Users = BTreeMap<Arc<str>, Counts>;

pub struct Census {
    workers: Box<[Mutex<Counts>]>,
    users: Box<[Mutex<Users>]>,
}

impl Census {
    pub fn new(workers: usize) -> Census {
        Census {
            workers: (0..workers).map(|_| Mutex::default()).collect(),
            users: (0..workers).map(|_| Mutex::default()).collect(),
        }
    }

    /// Worker `worker` has `delta` more (or fewer) streams of `user` on each of `topics`.
    pub fn add_user<'a>(
        &self,
        worker: usize,
        topics: impl IntoIterator<Item = &'a str>,
        user: &Arc<str>,
        delta: i32,
    ) {
        let mut users = lock(&self.users[worker]);
        for topic in topics {
            if !users.contains_key(topic) {
                users.insert(Arc::from(topic), Counts::new());
            }
            let following = users.get_mut(topic).expect("inserted above");
            let n = following.entry(user.clone()).or_default();
            *n = n.saturating_add_signed(delta);
            if *n == 0 {
                following.remove(user);
                if following.is_empty() {
                    users.remove(topic);
                }
            }
        }
    }

    /// Up to `limit` users following `topic` whose names sort after `after`, in name
    /// order, each with its number of streams on every worker.
    pub fn users(&self, topic: &str, after: Option<&str>, limit: usize) -> Vec<(Arc<str>, u64)> {
        let mut merged: BTreeMap<Arc<str>, u64> = BTreeMap::new();
        for users in self.users.iter() {
            let users = lock(users);
            let Some(following) = users.get(topic) else {
                continue;
            };
            for (user, &n) in page(following, "", after).take(limit) {
                *merged.entry(user.clone()).or_default() += u64::from(n);
            }
        }
        merged.into_iter().take(limit).collect()
    }

    /// Every topic's users here, as `topic\nuser` and a stream count (cluster mode
    /// reports this).
    pub fn users_snapshot(&self) -> BTreeMap<String, u64> {
        let mut all: BTreeMap<String, u64> = BTreeMap::new();
        for users in self.users.iter() {
            for (topic, following) in lock(users).iter() {
                for (user, &n) in following {
                    *all.entry(format!("{topic}\n{user}")).or_default() += u64::from(n);
                }
            }
        }
        all
    }

    /// Worker `worker` now has `count` local subscribers of each topic named (0: none).
    pub fn set<'a>(&self, worker: usize, changes: impl IntoIterator<Item = &'a (Arc<str>, usize)>) {
        let mut counts = self.lock(worker);
        for (topic, count) in changes {
            match u32::try_from(*count).unwrap_or(u32::MAX) {
                0 => counts.remove(topic),
                n => counts.insert(topic.clone(), n),
            };
        }
    }

    /// Subscribers of `topic` on every worker.
    pub fn count(&self, topic: &str) -> u64 {
        (0..self.workers.len())
            .map(|w| self.lock(w).get(topic).copied().map_or(0, u64::from))
            .sum()
    }

    /// Up to `limit` topics with subscribers whose names start with `prefix` and sort
    /// after `after`, in name order, with their counts. Each worker contributes at most
    /// `limit` names, which is enough: the first `limit` of the union are among them.
    pub fn list(&self, prefix: &str, after: Option<&str>, limit: usize) -> Vec<(Arc<str>, u64)> {
        let mut merged: BTreeMap<Arc<str>, u64> = BTreeMap::new();
        for w in 0..self.workers.len() {
            let counts = self.lock(w);
            for (topic, &n) in page(&counts, prefix, after).take(limit) {
                *merged.entry(topic.clone()).or_default() += u64::from(n);
            }
        }
        merged.into_iter().take(limit).collect()
    }

    /// Every topic with subscribers here and its count (cluster mode reports this).
    pub fn snapshot(&self) -> BTreeMap<Arc<str>, u64> {
        let mut all: BTreeMap<Arc<str>, u64> = BTreeMap::new();
        for w in 0..self.workers.len() {
            for (topic, &n) in self.lock(w).iter() {
                *all.entry(topic.clone()).or_default() += u64::from(n);
            }
        }
        all
    }

    fn lock(&self, worker: usize) -> MutexGuard<'_, Counts> {
        lock(&self.workers[worker])
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The entries of `counts` under `prefix` after `after`, in order.
fn page<'a>(
    counts: &'a Counts,
    prefix: &'a str,
    after: Option<&str>,
) -> impl Iterator<Item = (&'a Arc<str>, &'a u32)> {
    use std::ops::Bound;
    let start = match after {
        Some(a) if a >= prefix => Bound::Excluded(a),
        _ => Bound::Included(prefix),
    };
    counts
        .range::<str, _>((start, Bound::Unbounded))
        .take_while(move |(topic, _)| topic.starts_with(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn changes(pairs: &[(&str, usize)]) -> Vec<(Arc<str>, usize)> {
        pairs.iter().map(|&(t, n)| (Arc::from(t), n)).collect()
    }

    #[test]
    fn counts_are_summed_over_workers_and_listed_by_prefix_in_order() {
        let c = Census::new(2);
        c.set(0, &changes(&[("user/b", 2), ("user/a", 1), ("room/x", 5)]));
        c.set(1, &changes(&[("user/b", 3), ("user/c", 1), ("zz", 1)]));
        assert_eq!(c.count("user/b"), 5);
        assert_eq!(c.count("nobody"), 0);
        let names = |v: Vec<(Arc<str>, u64)>| -> Vec<(String, u64)> {
            v.into_iter().map(|(t, n)| (t.to_string(), n)).collect()
        };
        assert_eq!(
            names(c.list("user/", None, 10)),
            [
                ("user/a".into(), 1),
                ("user/b".into(), 5),
                ("user/c".into(), 1)
            ]
        );
        assert_eq!(
            names(c.list("user/", Some("user/a"), 1)),
            [("user/b".into(), 5)]
        );
        assert_eq!(names(c.list("", Some("user/c"), 10)), [("zz".into(), 1)]);
        assert_eq!(c.list("", None, 100).len(), 5);
        c.set(1, &changes(&[("user/b", 0)]));
        assert_eq!(c.count("user/b"), 2);
        assert_eq!(c.snapshot().get("user/b"), Some(&2));
    }

    #[test]
    fn users_are_counted_per_topic_over_workers_and_paged_by_name() {
        let c = Census::new(2);
        let (ann, bob): (Arc<str>, Arc<str>) = (Arc::from("ann"), Arc::from("bob"));
        c.add_user(0, ["doc", "chat"], &ann, 1);
        c.add_user(1, ["doc"], &ann, 1);
        c.add_user(1, ["doc"], &bob, 1);
        let named = |v: Vec<(Arc<str>, u64)>| -> Vec<(String, u64)> {
            v.into_iter().map(|(u, n)| (u.to_string(), n)).collect()
        };
        assert_eq!(
            named(c.users("doc", None, 10)),
            [("ann".into(), 2), ("bob".into(), 1)]
        );
        assert_eq!(named(c.users("doc", Some("ann"), 10)), [("bob".into(), 1)]);
        assert_eq!(named(c.users("doc", None, 1)), [("ann".into(), 2)]);
        assert_eq!(c.users_snapshot().get("chat\nann"), Some(&1));
        c.add_user(0, ["doc", "chat"], &ann, -1);
        assert!(c.users("chat", None, 10).is_empty());
        assert_eq!(
            named(c.users("doc", None, 10)),
            [("ann".into(), 1), ("bob".into(), 1)]
        );
        assert!(lock(&c.users[0]).is_empty(), "nothing left behind");
    }
}
