//! Workload W of spec 30 §8.3: the access pattern the evaluated-bundle LRU is judged on.
//!
//! 10 000 `ensure_type_loaded` calls over 116 types from a seeded generator: 90 % of the
//! calls pick uniformly among 8 hot types, 10 % uniformly among all 116. The sequence is
//! a pure function of the seed, so the hit rate it yields is exact and repeatable: the
//! lifecycle tests gate on it and `cargo xtask bench` prints it.

/// The parameters of a skewed access workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Workload {
    /// Number of calls.
    pub calls: usize,
    /// Number of distinct types.
    pub types: usize,
    /// Number of hot types (types `0..hot`).
    pub hot: usize,
    /// Share of calls on the hot types, in percent.
    pub hot_percent: u64,
    /// Generator seed.
    pub seed: u64,
}

impl Workload {
    /// Workload W: 10 000 calls, 116 types, 90 % on 8 hot ones.
    pub const W: Workload = Workload {
        calls: 10_000,
        types: 116,
        hot: 8,
        hot_percent: 90,
        seed: 0x5eed_f00d,
    };

    /// The type index of every call, in order.
    ///
    /// ```
    /// use fen_lifecycle::loader::Workload;
    /// let calls: Vec<usize> = Workload::W.sequence().collect();
    /// assert_eq!(calls.len(), 10_000);
    /// assert!(calls.iter().all(|&t| t < 116));
    /// assert_eq!(calls, Workload::W.sequence().collect::<Vec<_>>());
    /// ```
    pub fn sequence(self) -> impl Iterator<Item = usize> {
        let mut rng = SplitMix64(self.seed);
        (0..self.calls).map(move |_| {
            if rng.below(100) < self.hot_percent {
                rng.below(self.hot as u64) as usize
            } else {
                rng.below(self.types as u64) as usize
            }
        })
    }
}

/// SplitMix64 (Steele, Lea, Flood 2014): small, fast and well distributed; enough for
/// a benchmark's access pattern, and it keeps the sequence independent of any crate's
/// generator versioning.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (Lemire's multiply-shift; the bias is below 2^-50 for the
    /// small `n` used here).
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next()) * u128::from(n)) >> 64) as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mix_matches_the_definition() {
        let calls: Vec<usize> = Workload::W.sequence().collect();
        let hot = calls.iter().filter(|&&t| t < 8).count();
        // 90 % on the hot set, plus the cold draws that land on it (10 % × 8/116).
        let expected = 0.90 + 0.10 * 8.0 / 116.0;
        let share = hot as f64 / calls.len() as f64;
        assert!((share - expected).abs() < 0.01, "hot share {share}");
        let distinct: std::collections::HashSet<_> = calls.iter().collect();
        assert_eq!(distinct.len(), 116, "every type is touched");
    }

    #[test]
    fn another_seed_gives_another_sequence() {
        let other = Workload {
            seed: 1,
            ..Workload::W
        };
        assert_ne!(
            Workload::W.sequence().take(50).collect::<Vec<_>>(),
            other.sequence().take(50).collect::<Vec<_>>()
        );
    }
}
