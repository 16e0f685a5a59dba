//! Randomized model test: the wheel against a plain reference (a `BTreeMap` of
//! deadline → keys) over many random inserts, cancels, reschedules inside drains,
//! abandoned drains and advances of every size. After every operation the keys returned,
//! `elapsed`, `len`, the deadlines and the `next_expiry` bound must match the model, and
//! the wheel's own invariants must hold.

use std::collections::{BTreeMap, BTreeSet};

use super::wheel::Wheel;

/// SplitMix64: a tiny deterministic PRNG, so a failing seed replays exactly.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0; the modulo bias is irrelevant here).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// A number of up to `bits` random bits, with `bits` itself uniform: small and huge
    /// distances are equally likely, so every level gets traffic.
    fn spread(&mut self, max_bits: u64) -> u64 {
        let bits = self.below(max_bits + 1);
        self.next() & ((1u64 << bits) - 1)
    }
}

/// What the wheel must do, written the obvious way.
#[derive(Default)]
struct Model {
    elapsed: u64,
    draining: bool,
    /// Deadline → scheduled keys.
    by_deadline: BTreeMap<u64, BTreeSet<u32>>,
    /// Key → deadline, for the same keys.
    deadlines: BTreeMap<u32, u64>,
    /// Keys inserted at or before `elapsed`: they belong to the next drain.
    late: BTreeSet<u32>,
    /// Keys the current drain must still return.
    current: BTreeSet<u32>,
    /// Those of `current` that were late when the drain began: they come first.
    current_late: BTreeSet<u32>,
}

impl Model {
    fn cancel(&mut self, key: u32) -> bool {
        let Some(deadline) = self.deadlines.remove(&key) else {
            return false;
        };
        let keys = self.by_deadline.get_mut(&deadline).expect("indexed");
        keys.remove(&key);
        if keys.is_empty() {
            self.by_deadline.remove(&deadline);
        }
        self.late.remove(&key);
        self.current.remove(&key);
        self.current_late.remove(&key);
        true
    }

    fn insert(&mut self, key: u32, deadline: u64) {
        self.cancel(key);
        self.deadlines.insert(key, deadline);
        self.by_deadline.entry(deadline).or_default().insert(key);
        if deadline <= self.elapsed {
            self.late.insert(key);
        }
    }

    fn due_by(&self, now: u64) -> impl Iterator<Item = u32> + '_ {
        self.by_deadline
            .range(..=now)
            .flat_map(|(_, keys)| keys.iter().copied())
    }

    /// Applies `poll(now)` and checks the wheel's answer `got` against it.
    fn poll(&mut self, now: u64, got: Option<u32>) {
        if !self.draining {
            self.draining = true;
            self.elapsed = self.elapsed.max(now);
            self.current = self.due_by(self.elapsed).collect();
            self.current_late = std::mem::take(&mut self.late);
        } else if now > self.elapsed {
            self.elapsed = now;
            let fresh: Vec<u32> = self
                .due_by(now)
                .filter(|k| !self.late.contains(k))
                .collect();
            self.current.extend(fresh);
        }
        let Some(key) = got else {
            assert!(
                self.current.is_empty(),
                "poll({now}) = None; due still {:?}",
                self.current
            );
            self.draining = false;
            return;
        };
        assert!(
            self.current.contains(&key),
            "poll({now}) = {key}, not due; due {:?}",
            self.current
        );
        if self.current_late.is_empty() {
            let deadline = self.deadlines[&key];
            let min = self.current.iter().map(|k| self.deadlines[k]).min();
            assert_eq!(
                Some(deadline),
                min,
                "poll({now}) = {key} out of deadline order"
            );
        } else {
            assert!(
                self.current_late.contains(&key),
                "poll({now}) = {key} before the late keys"
            );
        }
        self.cancel(key);
    }

    fn earliest(&self) -> Option<u64> {
        self.by_deadline.keys().next().copied()
    }
}

/// Drives a wheel and a model through the same random operations.
struct Run {
    rng: Rng,
    wheel: Wheel,
    model: Model,
    /// Keys are drawn from `0..keys`: few, so reschedules and reuse are common.
    keys: u64,
}

impl Run {
    fn deadline(&mut self) -> u64 {
        let now = self.model.elapsed;
        match self.rng.below(20) {
            0..=1 => now - self.rng.below(now.min(1 << 20) + 1),
            2 => now,
            3 => u64::MAX - self.rng.spread(20),
            // Just before, at or after a digit boundary of `elapsed` at some level.
            4..=6 => {
                let bits = 6 * (1 + self.rng.below(10));
                (now | ((1u64 << bits) - 1))
                    .saturating_add(self.rng.below(3))
                    .saturating_sub(1)
            }
            _ => now.saturating_add(self.rng.spread(40)),
        }
    }

    fn now(&mut self) -> u64 {
        let now = self.model.elapsed;
        // Jumping straight to a far deadline (the end of time) would end the run's
        // interesting part: everything after it would be in the past.
        let near = |t: u64| t.saturating_sub(now) < 1 << 40;
        match self.rng.below(10) {
            0 => now - self.rng.below(now.min(100) + 1),
            1 => self.model.earliest().filter(|&t| near(t)).unwrap_or(now),
            2 => self.wheel.next_expiry().filter(|&t| near(t)).unwrap_or(now),
            _ => now.saturating_add(self.rng.spread(36)),
        }
    }

    fn key(&mut self) -> u32 {
        self.rng.below(self.keys) as u32
    }

    fn insert(&mut self, key: u32, deadline: u64) {
        self.wheel.insert(key, deadline);
        self.model.insert(key, deadline);
    }

    fn cancel(&mut self, key: u32) {
        let got = self.wheel.cancel(key);
        assert_eq!(got, self.model.cancel(key), "cancel({key})");
    }

    fn poll(&mut self, now: u64) -> Option<u32> {
        let got = self.wheel.poll(now);
        self.model.poll(now, got);
        got
    }

    /// A whole drain, with random changes between its polls: re-arming the key just
    /// returned (often at `now`), cancelling or moving other keys, due or not.
    fn drain(&mut self, now: u64) {
        let mut polls = 0;
        while let Some(key) = self.poll(now) {
            polls += 1;
            assert!(
                polls <= 2 * self.keys,
                "drain at {now} did not end after {polls} polls"
            );
            match self.rng.below(6) {
                0 => self.insert(key, now),
                1 => {
                    let deadline = self.deadline();
                    self.insert(key, deadline);
                }
                2 => {
                    let other = self.key();
                    self.cancel(other);
                }
                3 => {
                    let (other, deadline) = (self.key(), self.deadline());
                    self.insert(other, deadline);
                }
                _ => {}
            }
            self.check();
        }
        self.check();
    }

    fn step(&mut self) {
        match self.rng.below(20) {
            0..=6 => {
                let (key, deadline) = (self.key(), self.deadline());
                self.insert(key, deadline);
            }
            7..=8 => {
                let key = self.key();
                self.cancel(key);
            }
            9..=14 => {
                let now = self.now();
                self.drain(now);
            }
            _ => {
                // A single poll: a drain abandoned (or continued) with a random `now`.
                let now = self.now();
                self.poll(now);
            }
        }
        self.check();
    }

    fn check(&self) {
        let (wheel, model) = (&self.wheel, &self.model);
        assert_eq!(wheel.elapsed(), model.elapsed, "elapsed");
        assert_eq!(wheel.len(), model.deadlines.len(), "len");
        for key in 0..self.keys as u32 {
            let want = model.deadlines.get(&key).copied();
            assert_eq!(wheel.deadline(key), want, "deadline({key})");
        }
        let next = wheel.next_expiry();
        match model.earliest() {
            None => assert_eq!(next, None, "next_expiry of an empty wheel"),
            Some(earliest) => {
                let next = next.expect("next_expiry is None with keys scheduled");
                assert!(
                    next <= earliest,
                    "next_expiry {next} after the earliest deadline {earliest}"
                );
                if earliest > model.elapsed {
                    assert!(
                        next > model.elapsed,
                        "next_expiry {next} <= elapsed {} with nothing due",
                        model.elapsed
                    );
                }
            }
        }
        wheel.assert_invariants();
    }
}

fn run(seed: u64, keys: u64, steps: usize) {
    let mut run = Run {
        rng: Rng(seed),
        wheel: Wheel::new(),
        model: Model::default(),
        keys,
    };
    // Start anywhere below 2^52, so high digits of `elapsed` are often non-zero.
    let start = run.rng.spread(52);
    run.drain(start);
    for step in 0..steps {
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run.step()));
        if let Err(panic) = result {
            eprintln!(
                "model test failed: seed {seed}, keys {keys}, step {step}, {:?}",
                run.wheel
            );
            std::panic::resume_unwind(panic);
        }
    }
    // Everything left fires by the end of time, exactly once, within two drains (the
    // first returns what is due, the second what was inserted late before it).
    for _ in 0..2 {
        while run.poll(u64::MAX).is_some() {}
        run.check();
    }
    assert!(
        run.wheel.is_empty(),
        "seed {seed}: keys left after the end of time"
    );
}

#[test]
fn matches_the_model_with_few_keys() {
    for seed in 0..12 {
        run(seed, 24, 6_000);
    }
}

#[test]
fn matches_the_model_with_more_keys() {
    for seed in 100..104 {
        run(seed, 1_500, 6_000);
    }
}
