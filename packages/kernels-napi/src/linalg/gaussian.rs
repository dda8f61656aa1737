//! The Gaussian test matrix of `rsvd`: xoshiro128** (Blackman & Vigna) seeded through splitmix32, normal
//! samples by Box-Muller with both outputs used. The same generator as core-tensor's
//! `src/random/rng.ts` (`Xoshiro128` + `fillNormal`), word for word, so the native kernel and the
//! TS reference draw the same Ω (f64 `ln`/`cos`/`sin` may differ in the last ulp between libm and V8,
//! which the f32 rounding of each sample almost always hides).

pub struct Xoshiro128 {
    s: [u32; 4],
}

impl Xoshiro128 {
    /// The generator of `new Xoshiro128(seed, stream)` in rng.ts.
    pub fn new(seed: u32, stream: u32) -> Xoshiro128 {
        let mut x = seed ^ stream.wrapping_mul(0x9e37_79b9);
        let mut s = [0u32; 4];
        for v in s.iter_mut() {
            x = x.wrapping_add(0x9e37_79b9);
            let mut z = x;
            z = (z ^ (z >> 16)).wrapping_mul(0x85eb_ca6b);
            z = (z ^ (z >> 13)).wrapping_mul(0xc2b2_ae35);
            *v = z ^ (z >> 16);
        }
        if s == [0; 4] {
            s[0] = 1;
        }
        Xoshiro128 { s }
    }

    pub fn next_u32(&mut self) -> u32 {
        let s = &mut self.s;
        let r = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 9;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(11);
        r
    }

    /// Uniform in [0, 1) with 24 bits.
    pub fn next_float(&mut self) -> f64 {
        (self.next_u32() >> 8) as f64 * (1.0 / (1u32 << 24) as f64)
    }

    /// Fills `out` with N(0, 1) samples, each rounded once to f32 (rng.ts `fillNormal`).
    pub fn fill_normal(&mut self, out: &mut [f32]) {
        for pair in out.chunks_mut(2) {
            let u1 = 1.0 - self.next_float(); // (0, 1]: ln never sees 0
            let u2 = self.next_float();
            let r = (-2.0 * u1.ln()).sqrt();
            let a = 2.0 * std::f64::consts::PI * u2;
            pair[0] = (r * a.cos()) as f32;
            if pair.len() > 1 {
                pair[1] = (r * a.sin()) as f32;
            }
        }
    }
}
