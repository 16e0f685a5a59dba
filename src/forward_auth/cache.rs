//! A worker's memory of allowing answers (`--auth-cache-ttl`): the same credentials
//! asking the same thing within the TTL are not asked about again.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use super::{Action, Credentials, Grant};

/// Entries per worker. A full cache first drops what expired, then everything: a burst
/// of distinct sessions past this is asked about, never refused for want of room.
const MAX_ENTRIES: usize = 16_384;

pub struct Cache {
    entries: HashMap<Vec<u8>, (Instant, Grant)>,
}

/// What an answer is reused for: the action, the three forwarded credentials and the
/// topics (not the address or the rest of the URL, which the answer may not depend on
/// when a TTL is set).
pub fn key(action: Action, who: &Credentials, topics: &[&str]) -> Vec<u8> {
    let mut key = Vec::with_capacity(64);
    key.extend_from_slice(action.name().as_bytes());
    for part in [&who.cookie, &who.authorization, &who.origin] {
        // A length prefix, so that no two different tuples make the same key.
        match part {
            Some(v) => {
                key.extend_from_slice(&(v.len() as u32).to_le_bytes());
                key.extend_from_slice(v);
            }
            None => key.extend_from_slice(&u32::MAX.to_le_bytes()),
        }
    }
    for topic in topics {
        key.push(0);
        key.extend_from_slice(topic.as_bytes());
    }
    key
}

impl Cache {
    pub fn new() -> Cache {
        Cache {
            entries: HashMap::new(),
        }
    }

    pub fn get(&mut self, key: &[u8]) -> Option<Grant> {
        let (expires, grant) = self.entries.get(key)?;
        if Instant::now() < *expires {
            return Some(grant.clone());
        }
        self.entries.remove(key);
        None
    }

    pub fn put(&mut self, key: Vec<u8>, grant: Grant, ttl: Duration) {
        let now = Instant::now();
        if self.entries.len() >= MAX_ENTRIES {
            self.entries.retain(|_, (expires, _)| *expires > now);
        }
        if self.entries.len() >= MAX_ENTRIES {
            self.entries.clear();
        }
        self.entries.insert(key, (now + ttl, grant));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_tell_credentials_apart_and_entries_expire() {
        let who = |c: &str| Credentials {
            cookie: Some(c.as_bytes().to_vec()),
            ..Credentials::default()
        };
        let k = key(Action::Subscribe, &who("s=1"), &["a"]);
        assert_ne!(k, key(Action::Subscribe, &who("s=2"), &["a"]));
        assert_ne!(k, key(Action::Publish, &who("s=1"), &["a"]));
        assert_ne!(k, key(Action::Subscribe, &who("s=1"), &["a", "b"]));
        assert_ne!(k, key(Action::Subscribe, &Credentials::default(), &["a"]));
        let mut cache = Cache::new();
        let grant = Grant {
            topics: None,
            user: Some("ann".into()),
        };
        cache.put(k.clone(), grant.clone(), Duration::from_secs(60));
        assert_eq!(cache.get(&k), Some(grant.clone()));
        cache.put(k.clone(), grant, Duration::ZERO);
        assert_eq!(cache.get(&k), None);
        for i in 0..MAX_ENTRIES + 10 {
            cache.put(
                i.to_le_bytes().to_vec(),
                Grant::default(),
                Duration::from_secs(60),
            );
        }
        assert!(cache.entries.len() <= MAX_ENTRIES);
    }
}
