//! Test helpers: a tiny deterministic RNG (no `rand` crate here) and edge values.

pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// xorshift64*.
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }

    /// Roughly normal (sum of 4 uniforms), scaled.
    pub fn normal_vec(&mut self, n: usize, scale: f32) -> Vec<f32> {
        (0..n).map(|_| ((0..4).map(|_| self.uniform()).sum::<f32>() - 2.0) * scale).collect()
    }

    /// Random f32 bit patterns: every class (NaN, inf, subnormal, huge) shows up.
    pub fn bits_vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| f32::from_bits(self.next_u64() as u32)).collect()
    }

    /// Overwrite ~1/16 of `x` with edge values (zeros, subnormals, NaN, ±inf, ±1).
    pub fn sprinkle_specials(&mut self, x: &mut [f32]) {
        const SPECIAL: [f32; 10] =
            [0.0, -0.0, 1.0e-40, -1.0e-45, f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 1.0, -1.0, f32::MIN_POSITIVE];
        for v in x.iter_mut() {
            if self.below(16) == 0 {
                *v = SPECIAL[self.below(SPECIAL.len())];
            }
        }
    }
}

/// Bit-level equality of f32 slices (NaN payloads included), with a useful message.
pub fn assert_bits_eq(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g.to_bits(), w.to_bits(), "{what}: element {i}: got {g:e}, want {w:e}");
    }
}
