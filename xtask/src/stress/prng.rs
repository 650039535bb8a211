//! A tiny seeded generator for the harness's schedule (spawn order, start jitter, kill
//! victims and instants): SplitMix64, as in Steele, Lea and Flood, "Fast splittable
//! pseudorandom number generators" (2014). Deterministic for a seed, so `--seed`
//! repeats a schedule; nothing here needs to be unpredictable.

/// A SplitMix64 stream.
#[derive(Clone, Debug)]
pub struct Prng {
    state: u64,
}

const GOLDEN_GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

impl Prng {
    /// The stream of `seed`.
    pub fn new(seed: u64) -> Prng {
        Prng { state: seed }
    }

    /// An independent stream for one round, so the schedule of round `k` does not
    /// depend on how many numbers earlier rounds drew.
    pub fn for_round(seed: u64, round: usize) -> Prng {
        let mut mixer = Prng::new(seed ^ (round as u64).wrapping_add(1).wrapping_mul(GOLDEN_GAMMA));
        Prng::new(mixer.next_u64())
    }

    /// The next 64 bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(GOLDEN_GAMMA);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..bound` (rejection sampling, so no modulo bias); 0 when `bound`
    /// is 0.
    pub fn below(&mut self, bound: u64) -> u64 {
        if bound == 0 {
            return 0;
        }
        let zone = u64::MAX - u64::MAX % bound;
        loop {
            let x = self.next_u64();
            if x < zone {
                return x % bound;
            }
        }
    }

    /// Fisher–Yates.
    pub fn shuffle<T>(&mut self, items: &mut [T]) {
        for i in (1..items.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            items.swap(i, j);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_repeats_its_stream_and_rounds_differ() {
        let draw = |mut p: Prng| (0..5).map(|_| p.below(1000)).collect::<Vec<_>>();
        assert_eq!(draw(Prng::new(7)), draw(Prng::new(7)));
        assert_ne!(draw(Prng::new(7)), draw(Prng::new(8)));
        assert_eq!(draw(Prng::for_round(7, 3)), draw(Prng::for_round(7, 3)));
        assert_ne!(draw(Prng::for_round(7, 3)), draw(Prng::for_round(7, 4)));
    }

    #[test]
    fn splitmix_matches_the_reference_values() {
        // Reference output of SplitMix64 seeded with 1234567 (as published with the
        // xoshiro generators' seeding code).
        let mut p = Prng::new(1234567);
        assert_eq!(p.next_u64(), 6457827717110365317);
        assert_eq!(p.next_u64(), 3203168211198807973);
    }

    #[test]
    fn below_stays_in_range_and_shuffle_permutes() {
        let mut p = Prng::new(1);
        assert!((0..1000).all(|_| p.below(6) < 6));
        assert_eq!(p.below(0), 0);
        let mut items: Vec<u32> = (0..8).collect();
        p.shuffle(&mut items);
        let mut sorted = items.clone();
        sorted.sort();
        assert_eq!(sorted, (0..8).collect::<Vec<_>>());
    }
}
