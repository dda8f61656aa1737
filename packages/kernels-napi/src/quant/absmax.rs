//! `max |x|` over a slice: the scale of every blockwise and row-wise quantizer.
//!
//! NaN elements are ignored (like CUDA `fmaxf` in bitsandbytes' kQuantizeBlockwise);
//! an empty or all-NaN slice gives 0. Max is exact and order-independent on
//! non-NaN values, so every level below returns the same bits. The x86 versions
//! rely on `maxps(a, acc)` returning `acc` when `a` is NaN.

use crate::simd::{Isa, Level};

/// Reference: `m = max(m, |v|)`, skipping NaN (`a > m` is false for NaN).
pub fn absmax_scalar(x: &[f32]) -> f32 {
    let mut m = 0.0f32;
    for &v in x {
        let a = v.abs();
        if a > m {
            m = a;
        }
    }
    m
}

/// `max |x|` with the given instruction set.
pub fn absmax(isa: Isa, x: &[f32]) -> f32 {
    match isa.level() {
        Level::Scalar => absmax_scalar(x),
        // SAFETY (both arms): an `Isa` of this level exists only if the CPU supports it.
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 => unsafe { x86::absmax_avx2(x) },
        #[cfg(target_arch = "x86_64")]
        Level::Avx512 => unsafe { x86::absmax_avx512(x) },
        #[cfg(not(target_arch = "x86_64"))]
        _ => absmax_scalar(x),
    }
}

#[cfg(target_arch = "x86_64")]
pub mod x86 {
    use std::arch::x86_64::*;

    use super::absmax_scalar;

    /// # Safety
    /// The CPU must support AVX-512F.
    #[target_feature(enable = "avx512f")]
    pub unsafe fn absmax_avx512(x: &[f32]) -> f32 {
        let sign = _mm512_set1_epi32(0x7fff_ffff);
        let mut acc = _mm512_setzero_ps();
        let chunks = x.chunks_exact(16);
        let tail = chunks.remainder();
        for c in chunks {
            // SAFETY: `c` has exactly 16 elements.
            let v = unsafe { _mm512_loadu_ps(c.as_ptr()) };
            let a = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(v), sign));
            acc = _mm512_max_ps(a, acc); // NaN in `a` keeps `acc`
        }
        let m = _mm512_reduce_max_ps(acc);
        m.max(absmax_scalar(tail))
    }

    /// # Safety
    /// The CPU must support AVX2.
    #[target_feature(enable = "avx2")]
    pub unsafe fn absmax_avx2(x: &[f32]) -> f32 {
        let sign = _mm256_set1_ps(f32::from_bits(0x7fff_ffff));
        let mut acc = _mm256_setzero_ps();
        let chunks = x.chunks_exact(8);
        let tail = chunks.remainder();
        for c in chunks {
            // SAFETY: `c` has exactly 8 elements.
            let v = unsafe { _mm256_loadu_ps(c.as_ptr()) };
            acc = _mm256_max_ps(_mm256_and_ps(v, sign), acc); // NaN in the first operand keeps `acc`
        }
        let mut lanes = [0.0f32; 8];
        // SAFETY: `lanes` holds 8 f32.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), acc) };
        lanes.iter().fold(absmax_scalar(tail), |m, &v| m.max(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simd;
    use crate::testutil::Rng;

    #[test]
    fn all_levels_agree() {
        let mut rng = Rng::new(7);
        for n in [0usize, 1, 7, 8, 15, 16, 17, 63, 64, 1000, 4097] {
            let mut x = rng.normal_vec(n, 3.0);
            rng.sprinkle_specials(&mut x);
            let want = absmax_scalar(&x);
            for isa in simd::supported() {
                assert_eq!(absmax(isa, &x).to_bits(), want.to_bits(), "n={n} {:?}", isa.level());
            }
        }
    }

    #[test]
    fn ignores_nan_keeps_inf() {
        let x = [f32::NAN, -2.0, 1.0, -0.0];
        assert_eq!(absmax_scalar(&x), 2.0);
        assert_eq!(absmax_scalar(&[f32::NAN; 3]), 0.0);
        assert_eq!(absmax_scalar(&[1.0, f32::NEG_INFINITY]), f32::INFINITY);
        for isa in simd::supported() {
            let mut v = vec![f32::NAN; 40];
            v[33] = -5.0;
            assert_eq!(absmax(isa, &v), 5.0);
        }
    }
}
