//! The per-worker hierarchical timing wheel: owns the "expired timers" step of the worker
//! loop, `deadline reached ──► key handed back to the worker`.
//!
//! Keys are slab indices; each has at most one deadline. The worker keeps the reasons in
//! the connection and re-checks them when the key fires (coarse, lazy timers), so the
//! wheel only ever answers "which keys are due now".
//!
//! # Geometry
//!
//! Level `l` has 64 slots of `64^l` ticks each. A key with deadline `d > elapsed` lives at
//! the level of the highest 6-bit digit in which `d` and `elapsed` differ, in the slot
//! named by `d`'s digit there:
//!
//! ```text
//!   level = msb(elapsed ^ d) / 6        slot = (d >> 6·level) & 63
//! ```
//!
//! So `d` agrees with `elapsed` above that level and its digit is ahead of `elapsed`'s
//! (slots at or below `elapsed`'s digit are empty; slot 0 never holds a key):
//! every key sits in a slot that starts after `elapsed`, and the lowest occupied level's
//! first occupied slot (a scan of the 11 bitmap words, then one `trailing_zeros`) holds
//! the earliest deadlines.
//! When time reaches a slot of level `l > 0`, its keys are re-placed relative to the new
//! `elapsed` and land on lower levels (cascade); a level-0 slot holds a single tick, so it
//! is due as a whole. Advancing over any idle gap touches only occupied slots: at most one
//! slot per level per key, never one step per tick.
//!
//! # Draining
//!
//! [`Wheel::poll`] hands due keys back one at a time. A *drain* is the run of `poll`
//! calls up to and including the one that returns `None`. The first call of a drain
//! moves time to `now` and collects every key due by then; the rest pop them.
//!
//! A key inserted (or rescheduled) with a deadline at or before [`Wheel::elapsed`] —
//! during a drain that means at or before its `now` — is returned by the **next** drain,
//! never the current one. So a caller that re-arms every returned key at `now` still sees
//! its drain end, and each key fires at most once per drain.

use super::list::Lists;

/// Bits of a deadline resolved per level: 64 slots, so a level's occupancy is one `u64`.
const SLOT_BITS: u32 = 6;
/// Slots per level.
const SLOTS: usize = 1 << SLOT_BITS;
const SLOT_MASK: u64 = SLOTS as u64 - 1;
/// 11 levels × 6 bits = 66 bits ≥ 64: every `u64` deadline has an exact slot, so there is
/// no "beyond the range" clamp and no rare path that re-cascades a key in place. The five
/// levels above tokio's six cost 5 × 64 empty list heads (2.5 KiB per wheel), nothing
/// per key, and levels nobody uses are never scanned past the first occupied one.
pub(super) const LEVELS: usize = 11;
/// Lists `0..SLOT_LISTS` are the slots, level-major: list `level * SLOTS + slot`.
const SLOT_LISTS: usize = LEVELS * SLOTS;
/// Keys due in the current drain, in the order they came due.
const EXPIRED: usize = SLOT_LISTS;
/// Keys inserted at or before `elapsed`: they join the next drain.
const LATE: usize = SLOT_LISTS + 1;
const LISTS: usize = SLOT_LISTS + 2;

/// The largest key the wheel accepts; the `u32`s above it name list heads.
pub const MAX_KEY: u32 = Lists::<LISTS>::MAX_KEY;

/// A hierarchical timing wheel of `u32` keys with one deadline each, in ticks.
///
/// Time is in ticks (`u64`) since the wheel was created; the worker converts `Instant`s
/// to ticks (the tick length, e.g. 10 ms, is the worker's choice and not the wheel's
/// concern).
///
/// Memory: 16 bytes per key up to the largest key ever inserted (its deadline and two
/// `u32` links, in one `Vec` indexed by key; grown geometrically, so up to twice that is
/// allocated unless [`Wheel::with_capacity`] sized it), plus about 5.7 KiB of list heads
/// and bitmaps per wheel. Nothing is allocated per timer.
#[derive(Clone)]
pub struct Wheel {
    /// Current time: every key in a slot has a deadline after it; every due key is on
    /// `EXPIRED` or `LATE`. Only moves forward.
    elapsed: u64,
    /// Per-key nodes and the `LISTS` lists: the slots, then `EXPIRED` and `LATE`.
    lists: Lists<LISTS>,
    /// Bit `s` of `occupied[l]` is set iff slot `s` of level `l` holds a key, so the next
    /// slot to come due is found without walking empty ones.
    occupied: [u64; LEVELS],
    /// Scheduled keys, on any list.
    len: usize,
    /// Between the first `poll` of a drain and the one that returns `None`.
    draining: bool,
    /// At most the smallest deadline on `EXPIRED` and `LATE` (it can go stale low after a
    /// cancel); `u64::MAX` once both are empty. Keeps [`Wheel::next_expiry`] a true lower
    /// bound for keys inserted in the past without scanning them.
    pending_min: u64,
}

impl Wheel {
    /// An empty wheel at tick 0.
    pub fn new() -> Self {
        Self::with_capacity(0)
    }

    /// An empty wheel at tick 0 with node room for keys `0..keys`.
    pub fn with_capacity(keys: usize) -> Self {
        Wheel {
            elapsed: 0,
            lists: Lists::with_keys(keys),
            occupied: [0; LEVELS],
            len: 0,
            draining: false,
            pending_min: u64::MAX,
        }
    }

    /// Schedules `key` to fire at `deadline` (ticks). If `key` is already scheduled it is
    /// moved (reschedule). A deadline at or before [`Wheel::elapsed`] fires at the next
    /// drain (never lost, never fired twice). O(1).
    ///
    /// # Panics
    ///
    /// If `key > MAX_KEY` (`u32::MAX - 707`): those values mark list heads. Keys are slab
    /// indices, and node storage for such a key alone would take 64 GiB.
    pub fn insert(&mut self, key: u32, deadline: u64) {
        assert!(
            key <= MAX_KEY,
            "timer key {key} is above MAX_KEY ({MAX_KEY})"
        );
        if self.lists.is_linked(key) {
            self.detach(key);
        } else {
            self.lists.reserve_key(key);
            self.len += 1;
        }
        self.lists.set_deadline(key, deadline);
        let list = if deadline <= self.elapsed {
            self.pending_min = self.pending_min.min(deadline);
            LATE
        } else {
            self.occupy(deadline)
        };
        self.lists.push_back(list, key);
    }

    /// Unschedules `key`; returns whether it was scheduled. O(1).
    pub fn cancel(&mut self, key: u32) -> bool {
        if !self.lists.is_linked(key) {
            return false;
        }
        self.detach(key);
        self.len -= 1;
        true
    }

    /// The deadline `key` is scheduled for, including a due key not yet returned.
    pub fn deadline(&self, key: u32) -> Option<u64> {
        self.lists.deadline(key)
    }

    /// How many keys are scheduled (including due keys not yet returned).
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Current time in ticks: the largest `now` passed to [`Wheel::poll`].
    pub fn elapsed(&self) -> u64 {
        self.elapsed
    }

    /// Moves time forward to `now` (a smaller `now` leaves it) and returns the next due
    /// key, or `None` at the end of the drain. Call until `None`.
    ///
    /// Between calls the caller may insert, cancel or reschedule any key, including the
    /// one just returned and due keys not yet returned (a cancelled one is not returned).
    /// Keys come out in deadline order, except that keys inserted in the past come first,
    /// in insertion order. A larger `now` in the middle of a drain extends it with the
    /// keys that came due in between; keys inserted at or before `elapsed` during the
    /// drain wait for the next one (see the module docs), so a drain always ends.
    pub fn poll(&mut self, now: u64) -> Option<u32> {
        if !self.draining {
            self.draining = true;
            self.lists.append(LATE, EXPIRED);
            self.advance(now);
        } else if now > self.elapsed {
            self.advance(now);
        }
        let Some(key) = self.lists.first(EXPIRED) else {
            debug_assert!(
                self.len > 0 || (self.next_slot().is_none() && self.lists.is_empty(LATE)),
                "len 0 but keys remain: occupied {:x?}",
                self.occupied
            );
            self.draining = false;
            return None;
        };
        self.detach(key);
        self.len -= 1;
        Some(key)
    }

    /// A tick at or before the earliest deadline (exact when that key is in a level-0
    /// slot, else the start of its slot), or `None` when empty. Nothing due is later than
    /// it, and when nothing is due yet it is after `elapsed`, so the worker may sleep
    /// until then; polling at it at most `LEVELS` times reaches the earliest deadline.
    pub fn next_expiry(&self) -> Option<u64> {
        if !self.lists.is_empty(EXPIRED) || !self.lists.is_empty(LATE) {
            return Some(self.pending_min);
        }
        let (level, slot) = self.next_slot()?;
        Some(self.slot_start(level, slot))
    }

    /// Takes a linked key off its list and keeps the occupancy summaries true.
    fn detach(&mut self, key: u32) {
        match self.lists.unlink(key) {
            Some(list) if list < SLOT_LISTS => {
                self.occupied[list / SLOTS] &= !(1 << (list % SLOTS));
            }
            Some(_) if self.lists.is_empty(EXPIRED) && self.lists.is_empty(LATE) => {
                self.pending_min = u64::MAX;
            }
            _ => {}
        }
    }

    /// Marks the slot for `deadline > elapsed` occupied and returns its list.
    fn occupy(&mut self, deadline: u64) -> usize {
        let level = level_for(self.elapsed, deadline);
        let slot = digit(deadline, level);
        debug_assert!(
            slot > digit(self.elapsed, level),
            "deadline {deadline} at level {level} slot {slot} is not ahead of elapsed {}",
            self.elapsed
        );
        self.occupied[level] |= 1 << slot;
        level * SLOTS + slot
    }

    /// The earliest occupied slot: the lowest occupied level's lowest occupied slot.
    fn next_slot(&self) -> Option<(usize, usize)> {
        let level = self.occupied.iter().position(|&bits| bits != 0)?;
        Some((level, self.occupied[level].trailing_zeros() as usize))
    }

    /// The first tick of `slot` at `level`, in the level-sized block holding `elapsed`.
    fn slot_start(&self, level: usize, slot: usize) -> u64 {
        let shift = SLOT_BITS * level as u32;
        let block = u64::MAX.checked_shl(shift + SLOT_BITS).unwrap_or(0);
        (self.elapsed & block) | (slot as u64) << shift
    }

    /// Moves `elapsed` to `now`, emptying each slot that starts by then, earliest first.
    fn advance(&mut self, now: u64) {
        while let Some((level, slot)) = self.next_slot() {
            let start = self.slot_start(level, slot);
            if start > now {
                break;
            }
            debug_assert!(
                start > self.elapsed,
                "slot {slot} of level {level} starts at {start}, not after elapsed {}",
                self.elapsed
            );
            self.elapsed = start;
            self.cascade(level, slot);
        }
        self.elapsed = self.elapsed.max(now);
    }

    /// Empties a slot that has just come due (`elapsed` is its first tick).
    fn cascade(&mut self, level: usize, slot: usize) {
        let list = level * SLOTS + slot;
        if level == 0 {
            // A level-0 slot is one tick wide: every key in it is due now, in one splice.
            self.lists.append(list, EXPIRED);
            self.occupied[0] &= !(1 << slot);
            self.pending_min = self.pending_min.min(self.elapsed);
            return;
        }
        debug_assert!(
            !self.lists.is_empty(list),
            "level {level} slot {slot} is marked occupied but holds no key"
        );
        // Unhook the whole slot at once, then re-place its keys: cheaper than unlinking
        // each one from a list that is being emptied anyway.
        let mut chain = self.lists.take_all(list);
        self.occupied[level] &= !(1 << slot);
        while let Some(key) = self.lists.take_next(&mut chain) {
            let deadline = self.lists.deadline_of(key);
            let target = if deadline <= self.elapsed {
                self.pending_min = self.pending_min.min(deadline);
                EXPIRED
            } else {
                self.occupy(deadline)
            };
            debug_assert!(
                target < list || target == EXPIRED,
                "key {key} (deadline {deadline}) cascaded from list {list} to list {target}"
            );
            self.lists.push_back(target, key);
        }
    }
}

impl Default for Wheel {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for Wheel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wheel")
            .field("elapsed", &self.elapsed)
            .field("len", &self.len)
            .field("draining", &self.draining)
            .field("next_expiry", &self.next_expiry())
            .finish_non_exhaustive()
    }
}

/// The level of a key with `deadline > elapsed`: the highest 6-bit digit where they differ.
fn level_for(elapsed: u64, deadline: u64) -> usize {
    debug_assert!(
        deadline > elapsed,
        "level_for({elapsed}, {deadline}): not in the future"
    );
    // `| 1` keeps `ilog2` defined even if the assertion above were ever false.
    (((elapsed ^ deadline) | 1).ilog2() / SLOT_BITS) as usize
}

/// The slot index `tick` falls in at `level`.
fn digit(tick: u64, level: usize) -> usize {
    ((tick >> (SLOT_BITS * level as u32)) & SLOT_MASK) as usize
}

#[cfg(test)]
impl Wheel {
    /// Walks every list and checks the wheel's invariants (tests only; O(keys + slots)).
    pub(super) fn assert_invariants(&self) {
        let seen = self.assert_slots() + self.assert_due_lists();
        assert_eq!(seen, self.len, "keys on lists vs len");
        assert_eq!(self.lists.count_linked(), self.len, "linked nodes vs len");
    }

    /// Each slot's bit is set iff it holds keys, and each key is in the slot its deadline
    /// names relative to `elapsed`. Returns the number of keys in slots.
    fn assert_slots(&self) -> usize {
        let mut seen = 0;
        for list in 0..SLOT_LISTS {
            let (level, slot) = (list / SLOTS, list % SLOTS);
            let keys = self.lists.keys(list);
            let bit = self.occupied[level] >> slot & 1 == 1;
            let n = keys.len();
            assert_eq!(bit, n > 0, "level {level} slot {slot}: bit {bit}, {n} keys");
            for key in keys {
                let (deadline, elapsed) = (self.lists.deadline_of(key), self.elapsed);
                assert!(deadline > elapsed, "key {key} in level {level} slot {slot}: deadline {deadline} <= elapsed {elapsed}");
                let want = level_for(elapsed, deadline);
                let home = (want, digit(deadline, want));
                assert_eq!(
                    (level, slot),
                    home,
                    "key {key} deadline {deadline} elapsed {elapsed}"
                );
            }
            seen += n;
        }
        seen
    }

    /// Due keys are at or before `elapsed` and no earlier than `pending_min`. Returns
    /// their number.
    fn assert_due_lists(&self) -> usize {
        let due: Vec<u32> = [EXPIRED, LATE]
            .into_iter()
            .flat_map(|l| self.lists.keys(l))
            .collect();
        for &key in &due {
            let (deadline, elapsed, min) =
                (self.lists.deadline_of(key), self.elapsed, self.pending_min);
            assert!(
                deadline <= elapsed,
                "due key {key}: deadline {deadline} > elapsed {elapsed}"
            );
            assert!(
                min <= deadline,
                "pending_min {min} > due key {key}'s deadline {deadline}"
            );
        }
        due.len()
    }

    /// Bytes of per-key state allocated (tests only).
    pub(super) fn key_bytes(&self) -> usize {
        self.lists.key_bytes()
    }
}
