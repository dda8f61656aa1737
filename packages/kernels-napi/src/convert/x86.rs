//! F16C / AVX-512 versions of the conversions in `convert.rs`.
//!
//! f16 uses the hardware converters with an explicit round-to-nearest-even
//! immediate (not MXCSR). bf16 is integer arithmetic on the f32 bits, the same
//! formula as the scalar code. Tails (n not a multiple of the width) use the
//! scalar functions, which the tests check against the hardware on all inputs.

use std::arch::x86_64::*;

use super::{Conv, bf16_to_f32_scalar, f16_to_f32_scalar, f32_to_bf16_scalar, f32_to_f16_scalar};

const RNE: i32 = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;

/// bf16 bits of 16 f32 (in i32 lanes): round to nearest even; NaN -> sign | 0x7FC0.
#[inline]
#[target_feature(enable = "avx512f")]
fn bf16_bits_avx512(v: __m512) -> __m512i {
    let b = _mm512_castps_si512(v);
    let hi = _mm512_srli_epi32(b, 16);
    let lsb = _mm512_and_si512(hi, _mm512_set1_epi32(1));
    let rounded = _mm512_srli_epi32(_mm512_add_epi32(b, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7FFF))), 16);
    let nan = _mm512_cmp_ps_mask::<_CMP_UNORD_Q>(v, v);
    let quiet = _mm512_or_si512(_mm512_and_si512(hi, _mm512_set1_epi32(0x8000)), _mm512_set1_epi32(0x7FC0));
    _mm512_mask_mov_epi32(rounded, nan, quiet)
}

/// # Safety
/// The CPU must support AVX-512F/BW/VL. `conv` is `F32ToF16` or `F32ToBf16`;
/// `out.len() == x.len()`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub unsafe fn narrow_avx512(conv: Conv, x: &[f32], out: &mut [u16]) {
    let xs = x.chunks_exact(16);
    let tail = xs.remainder();
    let done = x.len() - tail.len();
    for (x16, o16) in xs.zip(out.chunks_exact_mut(16)) {
        // SAFETY: `x16` has 16 f32 and `o16` 16 u16.
        unsafe {
            let v = _mm512_loadu_ps(x16.as_ptr());
            let h = if conv == Conv::F32ToF16 {
                _mm512_cvtps_ph::<RNE>(v)
            } else {
                _mm512_cvtepi32_epi16(bf16_bits_avx512(v))
            };
            _mm256_storeu_si256(o16.as_mut_ptr().cast(), h);
        }
    }
    narrow_tail(conv, tail, &mut out[done..]);
}

/// # Safety
/// The CPU must support AVX-512F/BW/VL. `conv` is `F16ToF32` or `Bf16ToF32`;
/// `out.len() == x.len()`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub unsafe fn widen_avx512(conv: Conv, x: &[u16], out: &mut [f32]) {
    let xs = x.chunks_exact(16);
    let tail = xs.remainder();
    let done = x.len() - tail.len();
    for (x16, o16) in xs.zip(out.chunks_exact_mut(16)) {
        // SAFETY: `x16` has 16 u16 and `o16` 16 f32.
        unsafe {
            let h = _mm256_loadu_si256(x16.as_ptr().cast());
            let v = if conv == Conv::F16ToF32 {
                _mm512_cvtph_ps(h)
            } else {
                _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16))
            };
            _mm512_storeu_ps(o16.as_mut_ptr(), v);
        }
    }
    widen_tail(conv, tail, &mut out[done..]);
}

/// bf16 bits of 8 f32 (in i32 lanes), as `bf16_bits_avx512`.
#[inline]
#[target_feature(enable = "avx2")]
fn bf16_bits_avx2(v: __m256) -> __m256i {
    let b = _mm256_castps_si256(v);
    let hi = _mm256_srli_epi32(b, 16);
    let lsb = _mm256_and_si256(hi, _mm256_set1_epi32(1));
    let rounded = _mm256_srli_epi32(_mm256_add_epi32(b, _mm256_add_epi32(lsb, _mm256_set1_epi32(0x7FFF))), 16);
    let nan = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_UNORD_Q>(v, v));
    let quiet = _mm256_or_si256(_mm256_and_si256(hi, _mm256_set1_epi32(0x8000)), _mm256_set1_epi32(0x7FC0));
    _mm256_blendv_epi8(rounded, quiet, nan)
}

/// # Safety
/// The CPU must support AVX2, FMA and F16C. As `narrow_avx512` otherwise.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn narrow_avx2(conv: Conv, x: &[f32], out: &mut [u16]) {
    let xs = x.chunks_exact(16);
    let tail = xs.remainder();
    let done = x.len() - tail.len();
    for (x16, o16) in xs.zip(out.chunks_exact_mut(16)) {
        // SAFETY: `x16` has 16 f32 and `o16` 16 u16.
        unsafe {
            let v0 = _mm256_loadu_ps(x16.as_ptr());
            let v1 = _mm256_loadu_ps(x16.as_ptr().add(8));
            if conv == Conv::F32ToF16 {
                _mm_storeu_si128(o16.as_mut_ptr().cast(), _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(v0));
                _mm_storeu_si128(o16.as_mut_ptr().add(8).cast(), _mm256_cvtps_ph::<_MM_FROUND_TO_NEAREST_INT>(v1));
            } else {
                // packus works within 128-bit lanes: [a0..3 b0..3 | a4..7 b4..7]; reorder qwords.
                let p = _mm256_packus_epi32(bf16_bits_avx2(v0), bf16_bits_avx2(v1));
                let p = _mm256_permute4x64_epi64::<0b11_01_10_00>(p);
                _mm256_storeu_si256(o16.as_mut_ptr().cast(), p);
            }
        }
    }
    narrow_tail(conv, tail, &mut out[done..]);
}

/// # Safety
/// The CPU must support AVX2, FMA and F16C. As `widen_avx512` otherwise.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn widen_avx2(conv: Conv, x: &[u16], out: &mut [f32]) {
    let xs = x.chunks_exact(8);
    let tail = xs.remainder();
    let done = x.len() - tail.len();
    for (x8, o8) in xs.zip(out.chunks_exact_mut(8)) {
        // SAFETY: `x8` has 8 u16 and `o8` 8 f32.
        unsafe {
            let h = _mm_loadu_si128(x8.as_ptr().cast());
            let v = if conv == Conv::F16ToF32 {
                _mm256_cvtph_ps(h)
            } else {
                _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16))
            };
            _mm256_storeu_ps(o8.as_mut_ptr(), v);
        }
    }
    widen_tail(conv, tail, &mut out[done..]);
}

fn narrow_tail(conv: Conv, x: &[f32], out: &mut [u16]) {
    let f = if conv == Conv::F32ToF16 { f32_to_f16_scalar } else { f32_to_bf16_scalar };
    x.iter().zip(out).for_each(|(&v, o)| *o = f(v));
}

fn widen_tail(conv: Conv, x: &[u16], out: &mut [f32]) {
    let f = if conv == Conv::F16ToF32 { f16_to_f32_scalar } else { bf16_to_f32_scalar };
    x.iter().zip(out).for_each(|(&v, o)| *o = f(v));
}
