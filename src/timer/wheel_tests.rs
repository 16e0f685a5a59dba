//! Table tests of the wheel: level boundaries from several starting ticks, and scripted
//! scenarios (firing, rescheduling and cancelling inside a drain, the past, wrap-around).
//! Every row says what must hold; the randomized model test is in `wheel_model`.

use std::ops::{Range, RangeInclusive};

use super::wheel::{Wheel, LEVELS, MAX_KEY};

/// The key the boundary rows schedule.
const KEY: u32 = 7;

/// Ticks every boundary row starts from: zero, the ends of level-0 and level-1 blocks, the
/// end of the 2^36 range, and a far tick whose high digits are all non-zero, so the low
/// levels have wrapped around many times before the key is scheduled.
const STARTS: [u64; 6] = [
    0,
    1,
    63,
    4095,
    (1 << 36) - 1,
    (1 << 40) + (1 << 20) + 12_345,
];

/// A wheel that has advanced (empty) to `start`.
fn wheel_at(start: u64) -> Wheel {
    let mut wheel = Wheel::new();
    assert_eq!(wheel.poll(start), None, "an empty wheel returns nothing");
    assert_eq!(wheel.elapsed(), start, "poll moves elapsed to now");
    wheel
}

/// Polls until `None`; the keys returned, in order.
fn drain(wheel: &mut Wheel, now: u64) -> Vec<u32> {
    std::iter::from_fn(|| wheel.poll(now))
        .take(1_000_000)
        .collect()
}

/// Checks one row for every start: `KEY` scheduled at `start + offset` fires once, exactly
/// at its deadline, whether reached in one jump, by sleeping until `next_expiry`, or by
/// overshooting; a cancelled key never fires; the key can be reused after firing.
fn fires_exactly_at(must: &str, start: u64, offset: u64) {
    let Some(deadline) = start.checked_add(offset) else {
        return;
    };
    let ctx = format!("{must} [start {start}, deadline {deadline}]");

    let mut wheel = wheel_at(start);
    wheel.insert(KEY, deadline);
    assert_eq!(
        (wheel.len(), wheel.deadline(KEY)),
        (1, Some(deadline)),
        "{ctx}"
    );
    let first = wheel.next_expiry();
    assert!(
        first.is_some_and(|t| t <= deadline),
        "{ctx}: next_expiry {first:?}"
    );
    if deadline > start {
        assert_eq!(wheel.poll(deadline - 1), None, "{ctx}: fired a tick early");
        assert_eq!(wheel.poll(deadline - 1), None, "{ctx}: drain did not end");
        wheel.assert_invariants();
    }
    assert_eq!(
        drain(&mut wheel, deadline),
        [KEY],
        "{ctx}: not fired once at its deadline"
    );
    assert_eq!(
        drain(&mut wheel, deadline),
        [] as [u32; 0],
        "{ctx}: fired twice"
    );
    assert_eq!(
        (wheel.len(), wheel.next_expiry()),
        (0, None),
        "{ctx}: not empty after"
    );
    wheel.assert_invariants();

    // Reuse: the same key, scheduled again from the firing tick, fires again.
    if let Some(again) = deadline.checked_add(offset.max(1)) {
        wheel.insert(KEY, again);
        assert_eq!(wheel.poll(again - 1), None, "{ctx}: reused key fired early");
        assert_eq!(
            drain(&mut wheel, again),
            [KEY],
            "{ctx}: reused key did not fire"
        );
    }

    let mut wheel = wheel_at(start);
    wheel.insert(KEY, deadline);
    let mut wakes = 0;
    loop {
        let t = wheel
            .next_expiry()
            .unwrap_or_else(|| panic!("{ctx}: lost the key"));
        assert!(
            t <= deadline,
            "{ctx}: next_expiry {t} is after the deadline"
        );
        wakes += 1;
        assert!(
            wakes <= LEVELS,
            "{ctx}: {wakes} wake-ups to reach the deadline"
        );
        match drain(&mut wheel, t)[..] {
            [] => wheel.assert_invariants(),
            [KEY] => break assert_eq!(t, deadline, "{ctx}: fired when woken at {t}"),
            ref other => panic!("{ctx}: woken at {t}, got {other:?}"),
        }
    }

    let mut wheel = wheel_at(start);
    wheel.insert(KEY, deadline);
    assert!(wheel.cancel(KEY), "{ctx}: cancel of a scheduled key");
    assert!(!wheel.cancel(KEY), "{ctx}: second cancel");
    assert_eq!(
        drain(&mut wheel, u64::MAX),
        [] as [u32; 0],
        "{ctx}: cancelled key fired"
    );

    let mut wheel = wheel_at(start);
    wheel.insert(KEY, deadline);
    assert_eq!(
        drain(&mut wheel, u64::MAX),
        [KEY],
        "{ctx}: overshooting lost the key"
    );
}

/// One test per row; each row runs from every tick in `STARTS`.
macro_rules! boundaries {
    ($($(#[doc = $must:literal])+ $name:ident: $offset:expr;)*) => {$(
        #[test]
        fn $name() {
            for start in STARTS {
                fires_exactly_at(concat!($($must),+), start, $offset);
            }
        }
    )*};
}

boundaries! {
    /// a deadline equal to elapsed fires at the next poll
    offset_0: 0;
    /// the next tick fires there (level 0)
    offset_1: 1;
    /// the last tick level 0 can hold from tick 0
    offset_63: 63;
    /// the first tick past level 0 from tick 0
    offset_64: 64;
    /// one past the first level-1 slot start
    offset_65: 65;
    /// the last tick levels 0-1 can hold from tick 0
    offset_4095: 4095;
    /// the first tick past level 1 from tick 0 (level 2)
    offset_4096: 4096;
    /// one past the first level-2 slot start
    offset_4097: 4097;
    /// the start of level 3
    offset_2_pow_18: 1 << 18;
    /// the start of level 4
    offset_2_pow_24: 1 << 24;
    /// the start of level 5
    offset_2_pow_30: 1 << 30;
    /// the end of tokio's 6-level range: still exact here
    offset_2_pow_36_minus_1: (1 << 36) - 1;
    /// the first tick beyond 2^36 (level 6 here, where tokio clamps)
    offset_2_pow_36: 1 << 36;
    /// one past it
    offset_2_pow_36_plus_1: (1 << 36) + 1;
    /// far beyond 2^36: still fires exactly once at its deadline
    offset_2_pow_42_plus_1: (1 << 42) + 1;
    /// the top level (10), which only holds 4 bits
    offset_2_pow_60_plus_3: (1 << 60) + 3;
    /// the last tick a u64 can name (from start 0; other starts overflow and skip)
    offset_u64_max: u64::MAX;
}

/// One step of a scripted scenario.
#[derive(Clone, Debug)]
enum Step {
    Insert(u32, u64),
    InsertRange(Range<u32>, u64),
    Cancel(u32, bool),
    /// One `poll(now)` and the key it must return.
    Poll(u64, Option<u32>),
    /// Polls until `None`: exactly these keys, each once, in any order.
    Drain(u64, &'static [u32]),
    DrainRange(u64, Range<u32>),
    /// Polls until `None`, re-inserting every returned key at `now`: exactly this many
    /// keys come back before the drain ends (it must not loop).
    DrainRearming(u64, usize),
    Deadline(u32, Option<u64>),
    Len(usize),
    Elapsed(u64),
    Expiry(RangeInclusive<u64>),
    NoExpiry,
}
use Step::*;

fn run(must: &str, steps: &[Step]) {
    let mut wheel = Wheel::new();
    for (i, step) in steps.iter().enumerate() {
        let ctx = format!("{must} [step {i}: {step:?}]");
        match step.clone() {
            Insert(key, deadline) => wheel.insert(key, deadline),
            InsertRange(keys, deadline) => keys.for_each(|key| wheel.insert(key, deadline)),
            Cancel(key, was) => assert_eq!(wheel.cancel(key), was, "{ctx}"),
            Poll(now, want) => assert_eq!(wheel.poll(now), want, "{ctx}"),
            Drain(now, want) => assert_same_keys(drain(&mut wheel, now), want.to_vec(), &ctx),
            DrainRange(now, want) => assert_same_keys(drain(&mut wheel, now), want.collect(), &ctx),
            DrainRearming(now, want) => {
                let mut got = 0;
                while let Some(key) = wheel.poll(now) {
                    got += 1;
                    assert!(got <= want, "{ctx}: drain did not end after {got} keys");
                    wheel.insert(key, now);
                }
                assert_eq!(got, want, "{ctx}");
            }
            Deadline(key, want) => assert_eq!(wheel.deadline(key), want, "{ctx}"),
            Len(want) => assert_eq!((wheel.len(), wheel.is_empty()), (want, want == 0), "{ctx}"),
            Elapsed(want) => assert_eq!(wheel.elapsed(), want, "{ctx}"),
            Expiry(want) => {
                let got = wheel.next_expiry();
                assert!(got.is_some_and(|t| want.contains(&t)), "{ctx}: got {got:?}");
            }
            NoExpiry => assert_eq!(wheel.next_expiry(), None, "{ctx}"),
        }
        wheel.assert_invariants();
    }
}

fn assert_same_keys(mut got: Vec<u32>, mut want: Vec<u32>, ctx: &str) {
    got.sort_unstable();
    want.sort_unstable();
    assert_eq!(got, want, "{ctx}");
}

/// One test per scenario; the doc comment is what must hold.
macro_rules! scripts {
    ($($(#[doc = $must:literal])+ $name:ident: [$($step:expr),* $(,)?];)*) => {$(
        #[test]
        fn $name() {
            run(concat!($($must),+), &[$($step),*]);
        }
    )*};
}

const FAR: u64 = 1 << 40;

scripts! {
    /// a deadline before elapsed fires at the next poll, at the same now, once; next_expiry
    /// is the earliest such deadline (or lower, after a cancel), never later
    insert_in_the_past: [
        Poll(1000, None), Insert(1, 5), Deadline(1, Some(5)), Len(1), Expiry(0..=5),
        Poll(1000, Some(1)), Poll(1000, None), Len(0), NoExpiry, Elapsed(1000),
        Insert(2, 7), Expiry(7..=7), Insert(3, 900), Expiry(7..=7), Cancel(2, true),
        Expiry(0..=900), Poll(1000, Some(3)), Poll(1000, None), NoExpiry,
    ];
    /// 10,000 keys with one deadline all fire once, in a single drain, not a tick early
    many_keys_in_one_slot: [
        InsertRange(0..10_000, 5000), Len(10_000), Expiry(1..=5000), Poll(4999, None),
        DrainRange(5000, 0..10_000), Len(0), Drain(FAR, &[]),
    ];
    /// 10,000 keys due in one level-0 slot (no cascade) also fire once in one drain
    many_keys_in_one_level_0_slot: [
        InsertRange(0..10_000, 40), Expiry(40..=40), DrainRange(41, 0..10_000), Len(0),
    ];
    /// a key re-armed at now inside a drain is returned by the next drain, not this one
    reschedule_at_now_while_firing: [
        Insert(1, 10), Insert(2, 11), Poll(11, Some(1)), Insert(1, 11), Poll(11, Some(2)),
        Poll(11, None), Deadline(1, Some(11)), Poll(11, Some(1)), Poll(11, None), Len(0),
    ];
    /// re-arming every returned key at now ends the drain after each key once
    rearming_at_now_cannot_loop: [
        InsertRange(0..100, 30), Insert(100, 20), DrainRearming(30, 101),
        Len(101), DrainRearming(30, 101), Len(101),
    ];
    /// a key moved later from inside a drain fires at its new deadline and only there
    reschedule_later_while_firing: [
        Insert(1, 10), Insert(2, 20), Poll(20, Some(1)), Insert(1, 30), Poll(20, Some(2)),
        Poll(20, None), Deadline(1, Some(30)), Poll(29, None), Poll(30, Some(1)), Len(0),
    ];
    /// a due key moved later before it is returned waits for its new deadline
    reschedule_due_key_before_returned: [
        Insert(1, 10), Insert(2, 11), Poll(11, Some(1)), Insert(2, 40), Poll(11, None),
        Poll(39, None), Poll(40, Some(2)), Poll(40, None),
    ];
    /// a due key cancelled before it is returned is never returned
    cancel_while_firing: [
        Insert(1, 10), Insert(2, 11), Insert(3, 12), Poll(12, Some(1)), Cancel(2, true),
        Poll(12, Some(3)), Poll(12, None), Cancel(2, false), Len(0), Drain(FAR, &[]),
    ];
    /// the key just returned is no longer scheduled
    cancel_the_key_just_returned: [
        Insert(1, 10), Poll(10, Some(1)), Cancel(1, false), Deadline(1, None), Len(0),
    ];
    /// a key fires again after reuse, for a later or a past deadline
    key_reuse_after_fire: [
        Insert(1, 64), Drain(64, &[1]), Insert(1, 64 + 4096), Poll(4159, None),
        Poll(4160, Some(1)), Poll(4160, None), Insert(1, 1), Poll(4160, Some(1)), Len(0),
    ];
    /// after a jump of 2^40 ticks, keys scheduled again fire at their exact ticks
    wrap_around: [
        Insert(1, 100), Drain(FAR, &[1]), Elapsed(FAR), Insert(1, FAR + 64),
        Insert(2, FAR + 1), Poll(FAR, None), Poll(FAR + 63, Some(2)), Poll(FAR + 63, None),
        Poll(FAR + 64, Some(1)), Insert(3, FAR + 4096 * 64 + 1), Poll(FAR + 4096 * 64, None),
        Poll(FAR + 4096 * 64 + 1, Some(3)),
    ];
    /// the last ticks a u64 can name fire, in order, from a far start
    end_of_time: [
        Poll(FAR + 5, None), Insert(1, u64::MAX), Insert(2, u64::MAX - 1),
        Poll(u64::MAX - 2, None), Poll(u64::MAX - 1, Some(2)), Poll(u64::MAX - 1, None),
        Poll(u64::MAX, Some(1)), Poll(u64::MAX, None), Insert(3, u64::MAX),
        Poll(u64::MAX, Some(3)), Len(0),
    ];
    /// a larger now in the middle of a drain adds the keys due by then to that drain
    larger_now_mid_drain_extends_it: [
        Insert(1, 10), Insert(2, 20), Poll(10, Some(1)), Poll(20, Some(2)), Poll(20, None),
    ];
    /// within a drain keys come in deadline order, across levels
    deadline_order_within_a_drain: [
        Insert(4, 4099), Insert(3, 300), Insert(1, 5), Insert(2, 70), Insert(5, 1 << 20),
        Poll(FAR, Some(1)), Poll(FAR, Some(2)), Poll(FAR, Some(3)), Poll(FAR, Some(4)),
        Poll(FAR, Some(5)), Poll(FAR, None),
    ];
    /// keys inserted in the past come first, in insertion order, then keys due by advancing
    late_keys_come_first: [
        Poll(100, None), Insert(3, 150), Insert(1, 50), Insert(2, 40), Poll(200, Some(1)),
        Poll(200, Some(2)), Poll(200, Some(3)), Poll(200, None),
    ];
    /// a drain abandoned before None resumes, and keys put in the past meanwhile follow it
    abandoned_drain_resumes: [
        Insert(1, 10), Insert(2, 11), Poll(11, Some(1)), Insert(3, 5), Poll(12, Some(2)),
        Poll(12, None), Poll(12, Some(3)), Poll(12, None),
    ];
    /// a smaller now moves nothing and fires nothing
    smaller_now_is_a_no_op: [
        Poll(100, None), Insert(1, 150), Poll(50, None), Elapsed(100), Poll(149, None),
        Poll(150, Some(1)),
    ];
    /// next_expiry is exact for a level-0 key and tracks inserts and cancels
    next_expiry_exact_at_level_0: [
        NoExpiry, Insert(1, 40), Expiry(40..=40), Insert(2, 30), Expiry(30..=30),
        Cancel(2, true), Expiry(40..=40), Cancel(1, true), NoExpiry,
    ];
    /// for a higher-level key next_expiry is the start of its slot: early, never late
    next_expiry_is_the_slot_start_above_level_0: [
        Insert(1, 1500), Expiry(1472..=1472), Poll(1472, None), Expiry(1500..=1500),
        Poll(1500, Some(1)), NoExpiry,
    ];
    /// inserting a key twice keeps one entry at the last deadline
    insert_twice_keeps_one_entry: [
        Insert(1, 100), Insert(1, 100), Len(1), Insert(1, 7000), Len(1), Poll(6999, None),
        Drain(7000, &[1]),
    ];
    /// unknown keys, even beyond every node, are neither scheduled nor cancellable
    unknown_keys: [
        Cancel(5, false), Cancel(1_000_000, false), Deadline(1_000_000, None), Len(0),
        Insert(3, 9), Cancel(2, false), Deadline(4, None), Len(1),
    ];
}

#[test]
fn per_key_state_is_16_bytes() {
    let wheel = Wheel::with_capacity(100_000);
    assert_eq!(
        wheel.key_bytes(),
        16 * 100_000,
        "bytes of wheel state for 100k keys"
    );
    assert!(wheel.is_empty(), "with_capacity schedules nothing");
}

#[test]
fn max_key_leaves_room_for_the_list_heads() {
    assert_eq!(
        MAX_KEY,
        u32::MAX - 707,
        "11 levels × 64 slots + 2 due lists + DETACHED"
    );
}

#[test]
#[should_panic(expected = "above MAX_KEY")]
fn a_key_above_max_key_is_refused() {
    Wheel::new().insert(MAX_KEY + 1, 10);
}
