//! The wheel's memory: intrusive doubly-linked lists threaded through one `Vec` indexed
//! by key. Owns no arrow of the data flow; it is how [`super::wheel`] keeps a timer per
//! connection without allocating per timer.
//!
//! Every key owns one [`Node`] at index `key`: its deadline and its two links, 16 bytes.
//! Every list (a wheel slot, or one of the wheel's due lists) is circular around a
//! sentinel kept outside the node `Vec`. A link is a `u32` that names one of:
//!
//! ```text
//!   0 ..= MAX_KEY                  a key's node
//!   FIRST_SENTINEL + list          the sentinel of `list` (N sentinels)
//!   DETACHED = u32::MAX            nothing: the links of a key that is on no list
//! ```
//!
//! Sentinels make unlinking branch-free about "am I the head?" and tell, at the moment a
//! list becomes empty, which list it was, so the wheel can clear its occupied bit without
//! storing a level or slot per key.

/// The links of a key that is on no list. Never a valid key or sentinel.
const DETACHED: u32 = u32::MAX;

/// The `prev`/`next` pair of a node or of a list's sentinel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Links {
    prev: u32,
    next: u32,
}

impl Links {
    const DETACHED: Links = Links {
        prev: DETACHED,
        next: DETACHED,
    };
}

/// One key's timer state: all the wheel stores per key (16 bytes, no padding).
#[derive(Clone, Copy, Debug)]
struct Node {
    /// Absolute deadline in ticks; meaningful only while the node is linked.
    deadline: u64,
    /// Neighbours on the key's list, or [`DETACHED`] twice when it is on none.
    links: Links,
}

const _: () = assert!(
    std::mem::size_of::<Node>() == 16,
    "a timer must cost 16 bytes per key"
);

/// `N` circular lists over nodes indexed by key.
#[derive(Clone)]
pub(super) struct Lists<const N: usize> {
    /// Node of key `k` at index `k`. Grown on demand and never shrunk: slab keys are dense
    /// and reused, so the high-water mark of keys is the size of this `Vec`.
    nodes: Vec<Node>,
    /// Sentinel of list `l` at index `l`: `next` is its first key, `prev` its last. An empty
    /// list's sentinel links to itself.
    sentinels: Box<[Links]>,
}

impl<const N: usize> Lists<N> {
    /// The first link value that names a sentinel rather than a key.
    const FIRST_SENTINEL: u32 = DETACHED - N as u32;
    /// The largest key a node can have: every larger `u32` is a sentinel or [`DETACHED`].
    pub(super) const MAX_KEY: u32 = Self::FIRST_SENTINEL - 1;

    /// Lists with room for keys `0..keys` before the node `Vec` has to grow.
    pub(super) fn with_keys(keys: usize) -> Self {
        let sentinels = (0..N)
            .map(|list| {
                let me = Self::sentinel(list);
                Links { prev: me, next: me }
            })
            .collect();
        Lists {
            nodes: vec![
                Node {
                    deadline: 0,
                    links: Links::DETACHED
                };
                keys
            ],
            sentinels,
        }
    }

    fn sentinel(list: usize) -> u32 {
        debug_assert!(list < N, "list {list} out of {N}");
        Self::FIRST_SENTINEL + list as u32
    }

    fn links_mut(&mut self, at: u32) -> &mut Links {
        if at >= Self::FIRST_SENTINEL {
            &mut self.sentinels[(at - Self::FIRST_SENTINEL) as usize]
        } else {
            &mut self.nodes[at as usize].links
        }
    }

    /// Makes sure `key` has a node. `key` must be at most [`Self::MAX_KEY`].
    pub(super) fn reserve_key(&mut self, key: u32) {
        debug_assert!(
            key <= Self::MAX_KEY,
            "key {key} above MAX_KEY {}",
            Self::MAX_KEY
        );
        let needed = key as usize + 1;
        if needed > self.nodes.len() {
            // `resize` grows the capacity geometrically, so growth is amortized O(1).
            self.nodes.resize(
                needed,
                Node {
                    deadline: 0,
                    links: Links::DETACHED,
                },
            );
        }
    }

    /// Whether `key` is on some list. False for keys that never had a node.
    pub(super) fn is_linked(&self, key: u32) -> bool {
        self.nodes
            .get(key as usize)
            .is_some_and(|node| node.links.next != DETACHED)
    }

    /// The deadline of a linked `key`, or `None`.
    pub(super) fn deadline(&self, key: u32) -> Option<u64> {
        let node = self.nodes.get(key as usize)?;
        (node.links.next != DETACHED).then_some(node.deadline)
    }

    /// The deadline stored for `key`, which must have a node.
    pub(super) fn deadline_of(&self, key: u32) -> u64 {
        self.nodes[key as usize].deadline
    }

    /// Stores `deadline` on `key`'s node (which must exist).
    pub(super) fn set_deadline(&mut self, key: u32, deadline: u64) {
        self.nodes[key as usize].deadline = deadline;
    }

    pub(super) fn is_empty(&self, list: usize) -> bool {
        self.sentinels[list].next == Self::sentinel(list)
    }

    /// The first key of `list`, if any.
    pub(super) fn first(&self, list: usize) -> Option<u32> {
        let first = self.sentinels[list].next;
        (first < Self::FIRST_SENTINEL).then_some(first)
    }

    /// Appends a detached `key` (which must have a node) to `list`.
    pub(super) fn push_back(&mut self, list: usize, key: u32) {
        debug_assert!(
            !self.is_linked(key),
            "key {key} pushed on list {list} while linked"
        );
        let me = Self::sentinel(list);
        let last = self.sentinels[list].prev;
        self.nodes[key as usize].links = Links {
            prev: last,
            next: me,
        };
        self.links_mut(last).next = key;
        self.sentinels[list].prev = key;
    }

    /// Takes a linked `key` off its list. Returns the list if that left it empty.
    pub(super) fn unlink(&mut self, key: u32) -> Option<usize> {
        let Links { prev, next } = self.nodes[key as usize].links;
        debug_assert!(next != DETACHED, "unlink of detached key {key}");
        self.links_mut(prev).next = next;
        self.links_mut(next).prev = prev;
        self.nodes[key as usize].links = Links::DETACHED;
        // Both neighbours are the same sentinel only when `key` was the list's last member.
        (prev == next && prev >= Self::FIRST_SENTINEL)
            .then(|| (prev - Self::FIRST_SENTINEL) as usize)
    }

    /// Empties `list` in O(1) and returns a cursor on its former keys, which stay chained
    /// (still counted as linked) until [`Self::take_next`] hands each one out detached.
    /// Nothing may be pushed on `list` until the cursor is exhausted.
    pub(super) fn take_all(&mut self, list: usize) -> u32 {
        let me = Self::sentinel(list);
        let first = self.sentinels[list].next;
        self.sentinels[list] = Links { prev: me, next: me };
        first
    }

    /// The next key of a [`Self::take_all`] chain, now detached, or `None` at its end.
    pub(super) fn take_next(&mut self, cursor: &mut u32) -> Option<u32> {
        let key = *cursor;
        if key >= Self::FIRST_SENTINEL {
            return None;
        }
        let node = &mut self.nodes[key as usize];
        *cursor = node.links.next;
        node.links = Links::DETACHED;
        Some(key)
    }

    /// Moves every key of `from` to the back of `to`, in order, in O(1).
    pub(super) fn append(&mut self, from: usize, to: usize) {
        debug_assert!(from != to, "append of list {from} onto itself");
        let Links {
            prev: last,
            next: first,
        } = self.sentinels[from];
        if first == Self::sentinel(from) {
            return;
        }
        let to_last = self.sentinels[to].prev;
        self.links_mut(to_last).next = first;
        self.links_mut(first).prev = to_last;
        self.links_mut(last).next = Self::sentinel(to);
        self.sentinels[to].prev = last;
        let me = Self::sentinel(from);
        self.sentinels[from] = Links { prev: me, next: me };
    }

    /// Bytes of per-key state currently allocated (the node `Vec`'s capacity; tests only).
    #[cfg(test)]
    pub(super) fn key_bytes(&self) -> usize {
        self.nodes.capacity() * std::mem::size_of::<Node>()
    }

    /// The keys of `list` in order, checking every link on the way (tests only).
    #[cfg(test)]
    pub(super) fn keys(&self, list: usize) -> Vec<u32> {
        let me = Self::sentinel(list);
        let mut keys = Vec::new();
        let (mut prev, mut at) = (me, self.sentinels[list].next);
        while at != me {
            let links = self.nodes[at as usize].links;
            assert_eq!(
                links.prev, prev,
                "key {at} on list {list}: prev link broken"
            );
            keys.push(at);
            (prev, at) = (at, links.next);
        }
        assert_eq!(
            self.sentinels[list].prev, prev,
            "list {list}: sentinel's prev is not its last key"
        );
        keys
    }

    /// How many keys are linked, by scanning every node (tests only).
    #[cfg(test)]
    pub(super) fn count_linked(&self) -> usize {
        self.nodes
            .iter()
            .filter(|node| node.links.next != DETACHED)
            .count()
    }
}
