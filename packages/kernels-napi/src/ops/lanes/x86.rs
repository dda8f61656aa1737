//! AVX2 (8 lanes) and AVX-512 (16 lanes) implementations of `Simd`.
//!
//! SAFETY (every `unsafe` block in this file): a value of `Avx2` / `Avx512` exists
//! only if `new_unchecked`'s caller checked that the CPU has the features, and
//! loads/stores go through slices whose length is asserted first (masked ones
//! touch only the lanes inside the slice).

use std::arch::x86_64::*;

use super::Simd;

const RNE: i32 = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;

/// Proof that the CPU has AVX2 and FMA.
#[derive(Clone, Copy, Debug)]
pub struct Avx2(());

impl Avx2 {
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[inline(always)]
    pub unsafe fn new_unchecked() -> Avx2 {
        Avx2(())
    }
}

/// Proof that the CPU has AVX-512F/BW/VL, AVX2 and FMA.
#[derive(Clone, Copy, Debug)]
pub struct Avx512(());

impl Avx512 {
    /// # Safety
    /// The CPU must support AVX-512F/BW/VL, AVX2 and FMA.
    #[inline(always)]
    pub unsafe fn new_unchecked() -> Avx512 {
        Avx512(())
    }
}

/// Horizontal sum of 8 lanes: (lo4 + hi4), then pairs, then the last two.
#[inline(always)]
fn sum256(a: __m256) -> f32 {
    unsafe {
        let s = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps::<1>(a));
        let s = _mm_add_ps(s, _mm_movehl_ps(s, s));
        _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)))
    }
}

#[inline(always)]
fn max256(a: __m256) -> f32 {
    unsafe {
        let s = _mm_max_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps::<1>(a));
        let s = _mm_max_ps(s, _mm_movehl_ps(s, s));
        _mm_cvtss_f32(_mm_max_ss(s, _mm_movehdup_ps(s)))
    }
}

/// The two 256-bit halves of a 512-bit vector.
#[inline(always)]
fn halves(a: __m512) -> (__m256, __m256) {
    unsafe { (_mm512_castps512_ps256(a), _mm256_castpd_ps(_mm512_extractf64x4_pd::<1>(_mm512_castps_pd(a)))) }
}

/// Lanes 0..n of an AVX2 mask (n < 8): all-ones where lane < n.
#[inline(always)]
fn mask256(n: usize) -> __m256i {
    unsafe { _mm256_cmpgt_epi32(_mm256_set1_epi32(n as i32), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7)) }
}

impl Simd for Avx2 {
    type R = __m256;
    const W: usize = 8;
    #[inline(always)]
    fn load_part(self, s: &[f32], fill: f32) -> __m256 {
        assert!(s.len() < 8);
        // Masked-off lanes are not accessed (no fault past the slice's end).
        unsafe {
            let m = mask256(s.len());
            _mm256_blendv_ps(_mm256_set1_ps(fill), _mm256_maskload_ps(s.as_ptr(), m), _mm256_castsi256_ps(m))
        }
    }
    #[inline(always)]
    fn store_part(self, d: &mut [f32], x: __m256) {
        assert!(d.len() < 8);
        unsafe { _mm256_maskstore_ps(d.as_mut_ptr(), mask256(d.len()), x) }
    }
    #[inline(always)]
    fn splat(self, x: f32) -> __m256 {
        unsafe { _mm256_set1_ps(x) }
    }
    #[inline(always)]
    fn load(self, s: &[f32]) -> __m256 {
        assert!(s.len() >= 8);
        unsafe { _mm256_loadu_ps(s.as_ptr()) }
    }
    #[inline(always)]
    fn store(self, d: &mut [f32], x: __m256) {
        assert!(d.len() >= 8);
        unsafe { _mm256_storeu_ps(d.as_mut_ptr(), x) }
    }
    #[inline(always)]
    fn add(self, a: __m256, b: __m256) -> __m256 {
        unsafe { _mm256_add_ps(a, b) }
    }
    #[inline(always)]
    fn sub(self, a: __m256, b: __m256) -> __m256 {
        unsafe { _mm256_sub_ps(a, b) }
    }
    #[inline(always)]
    fn mul(self, a: __m256, b: __m256) -> __m256 {
        unsafe { _mm256_mul_ps(a, b) }
    }
    #[inline(always)]
    fn div(self, a: __m256, b: __m256) -> __m256 {
        unsafe { _mm256_div_ps(a, b) }
    }
    #[inline(always)]
    fn fma(self, a: __m256, b: __m256, c: __m256) -> __m256 {
        unsafe { _mm256_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    fn max(self, a: __m256, b: __m256) -> __m256 {
        unsafe { _mm256_max_ps(a, b) }
    }
    #[inline(always)]
    fn min(self, a: __m256, b: __m256) -> __m256 {
        unsafe { _mm256_min_ps(a, b) }
    }
    #[inline(always)]
    fn abs(self, a: __m256) -> __m256 {
        unsafe { _mm256_andnot_ps(_mm256_set1_ps(-0.0), a) }
    }
    #[inline(always)]
    fn sqrt(self, a: __m256) -> __m256 {
        unsafe { _mm256_sqrt_ps(a) }
    }
    #[inline(always)]
    fn round(self, a: __m256) -> __m256 {
        unsafe { _mm256_round_ps::<RNE>(a) }
    }
    #[inline(always)]
    fn lt_select(self, a: __m256, b: __m256, t: __m256, f: __m256) -> __m256 {
        unsafe { _mm256_blendv_ps(f, t, _mm256_cmp_ps::<_CMP_LT_OQ>(a, b)) }
    }
    #[inline(always)]
    fn scale2(self, p: __m256, n: __m256) -> __m256 {
        unsafe {
            let n = _mm256_cvtps_epi32(n);
            let n1 = _mm256_srai_epi32::<1>(n);
            let bias = _mm256_set1_epi32(127);
            let e1 = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(n1, bias)));
            let e2 = _mm256_castsi256_ps(_mm256_slli_epi32::<23>(_mm256_add_epi32(_mm256_sub_epi32(n, n1), bias)));
            _mm256_mul_ps(_mm256_mul_ps(p, e1), e2)
        }
    }
    #[inline(always)]
    fn sum(self, a: __m256) -> f32 {
        sum256(a)
    }
    #[inline(always)]
    fn hmax(self, a: __m256) -> f32 {
        max256(a)
    }
}

impl Simd for Avx512 {
    type R = __m512;
    const W: usize = 16;
    #[inline(always)]
    fn load_part(self, s: &[f32], fill: f32) -> __m512 {
        assert!(s.len() < 16);
        // Masked-off lanes are not accessed (no fault past the slice's end).
        unsafe { _mm512_mask_loadu_ps(_mm512_set1_ps(fill), (1u16 << s.len()) - 1, s.as_ptr()) }
    }
    #[inline(always)]
    fn store_part(self, d: &mut [f32], x: __m512) {
        assert!(d.len() < 16);
        unsafe { _mm512_mask_storeu_ps(d.as_mut_ptr(), (1u16 << d.len()) - 1, x) }
    }
    #[inline(always)]
    fn splat(self, x: f32) -> __m512 {
        unsafe { _mm512_set1_ps(x) }
    }
    #[inline(always)]
    fn load(self, s: &[f32]) -> __m512 {
        assert!(s.len() >= 16);
        unsafe { _mm512_loadu_ps(s.as_ptr()) }
    }
    #[inline(always)]
    fn store(self, d: &mut [f32], x: __m512) {
        assert!(d.len() >= 16);
        unsafe { _mm512_storeu_ps(d.as_mut_ptr(), x) }
    }
    #[inline(always)]
    fn add(self, a: __m512, b: __m512) -> __m512 {
        unsafe { _mm512_add_ps(a, b) }
    }
    #[inline(always)]
    fn sub(self, a: __m512, b: __m512) -> __m512 {
        unsafe { _mm512_sub_ps(a, b) }
    }
    #[inline(always)]
    fn mul(self, a: __m512, b: __m512) -> __m512 {
        unsafe { _mm512_mul_ps(a, b) }
    }
    #[inline(always)]
    fn div(self, a: __m512, b: __m512) -> __m512 {
        unsafe { _mm512_div_ps(a, b) }
    }
    #[inline(always)]
    fn fma(self, a: __m512, b: __m512, c: __m512) -> __m512 {
        unsafe { _mm512_fmadd_ps(a, b, c) }
    }
    #[inline(always)]
    fn max(self, a: __m512, b: __m512) -> __m512 {
        unsafe { _mm512_max_ps(a, b) }
    }
    #[inline(always)]
    fn min(self, a: __m512, b: __m512) -> __m512 {
        unsafe { _mm512_min_ps(a, b) }
    }
    #[inline(always)]
    fn abs(self, a: __m512) -> __m512 {
        unsafe { _mm512_abs_ps(a) }
    }
    #[inline(always)]
    fn sqrt(self, a: __m512) -> __m512 {
        unsafe { _mm512_sqrt_ps(a) }
    }
    #[inline(always)]
    fn round(self, a: __m512) -> __m512 {
        unsafe { _mm512_roundscale_ps::<RNE>(a) }
    }
    #[inline(always)]
    fn lt_select(self, a: __m512, b: __m512, t: __m512, f: __m512) -> __m512 {
        unsafe { _mm512_mask_blend_ps(_mm512_cmp_ps_mask::<_CMP_LT_OQ>(a, b), f, t) }
    }
    #[inline(always)]
    fn scale2(self, p: __m512, n: __m512) -> __m512 {
        // vscalefps: p * 2^floor(n), one rounding, subnormals included.
        unsafe { _mm512_scalef_ps(p, n) }
    }
    #[inline(always)]
    fn sum(self, a: __m512) -> f32 {
        let (lo, hi) = halves(a);
        sum256(unsafe { _mm256_add_ps(lo, hi) })
    }
    #[inline(always)]
    fn hmax(self, a: __m512) -> f32 {
        let (lo, hi) = halves(a);
        max256(unsafe { _mm256_max_ps(lo, hi) })
    }
}
