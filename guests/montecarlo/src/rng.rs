//! [`Rng`]: xoshiro256++ with one seeded stream per slice, and standard normals.

/// The increment of splitmix64 (2⁶⁴ / φ, odd).
const GOLDEN_GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

/// A xoshiro256++ pseudo-random generator (Blackman & Vigna), with standard normal draws.
///
/// [`Rng::new`] seeds it for stream `stream` of seed `seed`: its 256-bit state is four
/// consecutive outputs of the splitmix64 sequence started at `seed`, namely outputs
/// `4·stream + 1` to `4·stream + 4`. Different streams of a seed thus start from different
/// states (splitmix64 outputs are distinct over its period of 2⁶⁴), at effectively random
/// points of xoshiro256++'s period of 2²⁵⁶ − 1, so their sequences do not overlap in
/// practice and behave as independent. This is the seeding the xoshiro authors recommend.
#[derive(Debug, Clone)]
pub struct Rng {
    /// The xoshiro256++ state (never all zero).
    state: [u64; 4],
    /// The second normal of the last polar-method pair, not returned yet.
    spare: Option<f64>,
}

impl Rng {
    /// The generator of stream `stream` of `seed` (the pricer uses the slice index as the
    /// stream).
    pub fn new(seed: u64, stream: u32) -> Self {
        let mut splitmix =
            seed.wrapping_add(u64::from(stream).wrapping_mul(4).wrapping_mul(GOLDEN_GAMMA));
        let state = [(); 4].map(|()| splitmix64(&mut splitmix));
        // splitmix64's output function is a bijection and its states are distinct, so at
        // most one of the four words can be zero: the state is never all zero.
        Self { state, spare: None }
    }

    /// The next 64 random bits.
    #[inline]
    pub fn next_u64(&mut self) -> u64 {
        let s = &mut self.state;
        let result = s[0].wrapping_add(s[3]).rotate_left(23).wrapping_add(s[0]);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }

    /// A uniform draw in `[0, 1)`, a multiple of 2⁻⁵³ (the top 53 bits of
    /// [`next_u64`](Rng::next_u64)).
    #[inline]
    pub fn next_f64(&mut self) -> f64 {
        const SCALE: f64 = 1.0 / (1u64 << 53) as f64;
        (self.next_u64() >> 11) as f64 * SCALE
    }

    /// A standard normal draw, N(0, 1), by the Marsaglia polar method: draws points
    /// uniformly in the square `[-1, 1)²` until one falls strictly inside the unit disc
    /// (excluding its centre), then turns it into two independent normals; the second one
    /// is returned by the next call.
    #[inline]
    pub fn normal(&mut self) -> f64 {
        if let Some(z) = self.spare.take() {
            return z;
        }
        loop {
            let u = 2.0 * self.next_f64() - 1.0;
            let v = 2.0 * self.next_f64() - 1.0;
            let s = u * u + v * v;
            if s < 1.0 && s > 0.0 {
                let factor = (-2.0 * s.ln() / s).sqrt();
                self.spare = Some(v * factor);
                return u * factor;
            }
        }
    }
}

/// splitmix64 (Steele, Lea & Flood): advances `state` and returns its next output.
fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(GOLDEN_GAMMA);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix64_reference_values() {
        // The first outputs of splitmix64 seeded with 1234567 (from the reference C code).
        let mut state = 1_234_567;
        let outputs = [(); 3].map(|()| splitmix64(&mut state));
        assert_eq!(
            outputs,
            [
                6_457_827_717_110_365_317,
                3_203_168_211_198_807_973,
                9_817_491_932_198_370_423
            ]
        );
    }

    #[test]
    fn xoshiro256plusplus_reference_values() {
        // xoshiro256++ from the state {1, 2, 3, 4} (as in the reference C code's tests).
        let mut rng = Rng {
            state: [1, 2, 3, 4],
            spare: None,
        };
        let outputs = [(); 4].map(|()| rng.next_u64());
        assert_eq!(
            outputs,
            [
                41_943_041,
                58_720_359,
                3_588_806_011_781_223,
                3_591_011_842_654_386
            ]
        );
    }

    #[test]
    fn streams_are_reproducible_and_distinct() {
        let draws = |seed, stream| {
            let mut rng = Rng::new(seed, stream);
            [(); 8].map(|()| rng.next_u64())
        };
        assert_eq!(draws(42, 3), draws(42, 3));
        assert_ne!(draws(42, 3), draws(42, 4));
        assert_ne!(draws(42, 3), draws(43, 3));
    }

    #[test]
    fn stream_states_are_consecutive_splitmix64_outputs() {
        let mut state = 42;
        let outputs: Vec<u64> = (0..12).map(|_| splitmix64(&mut state)).collect();
        for stream in 0..3 {
            let start = 4 * stream as usize;
            assert_eq!(Rng::new(42, stream).state, outputs[start..start + 4]);
        }
    }

    #[test]
    fn uniforms_in_range_with_the_right_mean() {
        let mut rng = Rng::new(1, 0);
        let n = 100_000;
        let mut sum = 0.0;
        for _ in 0..n {
            let u = rng.next_f64();
            assert!((0.0..1.0).contains(&u));
            sum += u;
        }
        // Mean 1/2, standard deviation of the mean √(1/12/n) ≈ 0.0009.
        assert!((sum / n as f64 - 0.5).abs() < 0.004);
    }

    #[test]
    fn normals_have_the_right_moments() {
        let mut rng = Rng::new(7, 0);
        let n = 200_000;
        let (mut sum, mut sum_sq, mut sum_4, mut below) = (0.0, 0.0, 0.0, 0);
        for _ in 0..n {
            let z = rng.normal();
            sum += z;
            sum_sq += z * z;
            sum_4 += z * z * z * z;
            below += usize::from(z < 1.0);
        }
        let n = n as f64;
        // Each within about 4 standard errors.
        assert!((sum / n).abs() < 0.01, "mean {}", sum / n);
        assert!((sum_sq / n - 1.0).abs() < 0.013, "variance {}", sum_sq / n);
        assert!((sum_4 / n - 3.0).abs() < 0.1, "kurtosis {}", sum_4 / n);
        // P(Z < 1) = 0.841344746...
        assert!((below as f64 / n - 0.841_344_746).abs() < 0.004);
    }

    #[test]
    fn streams_are_uncorrelated() {
        let (mut a, mut b) = (Rng::new(42, 0), Rng::new(42, 1));
        let n = 100_000;
        let mut sum_ab = 0.0;
        for _ in 0..n {
            sum_ab += a.normal() * b.normal();
        }
        // The correlation estimate has standard deviation 1/√n ≈ 0.003.
        assert!((sum_ab / n as f64).abs() < 0.013);
    }
}
