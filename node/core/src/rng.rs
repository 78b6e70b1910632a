//! The one seeded pseudo-random generator of the workspace: SplitMix64 (Steele, Lea, Flood
//! 2014). Deterministic for a given seed on every platform, so synthetic series, simulated
//! machines and sampled text can be replayed exactly. Not for anything secret.
//!
//! Only the generator and its standard conversions live here (64 bits, uniform in `[0, 1)` and
//! `(0, 1)`, a standard normal); any other distribution stays beside its user.

/// SplitMix64: a 64-bit state advanced by a fixed odd increment and mixed on output.
///
/// `SplitMix64::new(s)` produces the same series for the same `s` forever; tests rely on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitMix64 {
    state: u64,
}

impl SplitMix64 {
    /// The increment added to the state per draw (2^64 / φ, odd); callers that want a seed
    /// scrambled before use may XOR it in.
    pub const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;

    /// A generator whose state starts at `seed` (the first draw advances it once).
    pub fn new(seed: u64) -> Self {
        Self { state: seed }
    }

    /// Next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(Self::GAMMA);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `[0, 1)` from the top 53 bits (may be exactly 0).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in the open interval `(0, 1)`: the top 53 bits, centred in their bucket, so
    /// neither 0 nor 1 can come out (safe under `ln`).
    pub fn next_f64_open(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// Standard normal (Box–Muller on two [`next_f64_open`](Self::next_f64_open) draws; the
    /// sine half is dropped, so every call takes two draws).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.next_f64_open();
        let u2 = self.next_f64_open();
        (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn series_is_the_published_splitmix64_series() {
        // Reference values of SplitMix64 from seed 0 (Vigna's splitmix64.c).
        let mut r = SplitMix64::new(0);
        assert_eq!(r.next_u64(), 0xE220_A839_7B1D_CDAF);
        assert_eq!(r.next_u64(), 0x6E78_9E6A_A1B9_65F4);
        assert_eq!(r.next_u64(), 0x06C4_5D18_8009_454F);
    }

    #[test]
    fn same_seed_same_series_and_uniforms_stay_in_range() {
        let mut a = SplitMix64::new(42);
        let mut b = SplitMix64::new(42);
        for _ in 0..1000 {
            let x = a.next_f64();
            assert!((0.0..1.0).contains(&x), "{x}");
            let y = a.next_f64_open();
            assert!(y > 0.0 && y < 1.0, "{y}");
            assert_eq!(b.next_f64().to_bits(), x.to_bits());
            assert_eq!(b.next_f64_open().to_bits(), y.to_bits());
        }
    }

    #[test]
    fn normal_has_zero_mean_and_unit_variance() {
        let mut r = SplitMix64::new(7);
        let n = 100_000;
        let xs: Vec<f64> = (0..n).map(|_| r.normal()).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(
            mean.abs() < 0.02 && (var - 1.0).abs() < 0.03,
            "{mean} {var}"
        );
    }
}
