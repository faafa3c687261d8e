//! A small deterministic random number generator for simulations: `wameter
//! gen`'s synthetic traffic and the sandbox's failure and fault draws.
//!
//! SplitMix64 (Steele, Lea, Flood 2014) is written out here rather than
//! taken from `rand`, because `rand`'s general-purpose generators do not
//! promise identical streams across versions, and the same seed must give
//! the same traffic forever.

/// SplitMix64: tiny, fast, reproducible.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitMix64(pub u64);

impl SplitMix64 {
    /// The next 64 random bits.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`); the modulo bias is irrelevant at the
    /// sizes simulations use.
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    /// True with probability `p` percent.
    pub fn percent(&mut self, p: u64) -> bool {
        self.below(100) < p
    }
}

#[cfg(test)]
mod tests {
    use super::SplitMix64;

    #[test]
    fn splitmix_matches_the_reference_stream() {
        // First outputs for seed 1234567 from the reference C implementation.
        let mut random = SplitMix64(1_234_567);
        assert_eq!(random.next(), 6_457_827_717_110_365_317);
        assert_eq!(random.next(), 3_203_168_211_198_807_973);
    }

    #[test]
    fn percent_bounds() {
        let mut random = SplitMix64(7);
        assert!((0..1000).all(|_| !random.percent(0)));
        assert!((0..1000).all(|_| random.percent(100)));
    }
}
