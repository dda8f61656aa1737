//! AVX2 / AVX-512 versions of the blockwise-8 loops in `blockwise8.rs`.
//!
//! Quantize: the scalar 8-step binary search, 8 or 16 lanes at a time, each
//! step a gather of the midpoint at `pos + step - 1` and a compare. Dequantize:
//! a gather from the 256-entry code and one multiply. Same operations as the
//! scalar code, so the results are bit-identical.

use std::arch::x86_64::*;

use super::{Midpoints, quantize_run_scalar};
use crate::quant::absmax::x86::{absmax_avx2, absmax_avx512};

const STEPS: [i32; 8] = [128, 64, 32, 16, 8, 4, 2, 1];

/// # Safety
/// The CPU must support AVX-512F/BW/VL. `x` starts at a block boundary;
/// `codes`/`absmax` are sized as in `quantize_blockwise8`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub unsafe fn quantize_blocks_avx512(x: &[f32], mids: &Midpoints, bs: usize, codes: &mut [u8], absmax: &mut [f32]) {
    let m = mids.0.as_ptr();
    for ((xb, qb), am) in x.chunks(bs).zip(codes.chunks_mut(bs)).zip(absmax.iter_mut()) {
        *am = unsafe { absmax_avx512(xb) };
        let inv = 1.0 / *am;
        let vinv = _mm512_set1_ps(inv);
        let xs = xb.chunks_exact(16);
        let (tail, done) = (xs.remainder(), xb.len() / 16 * 16);
        for (x16, q16) in xs.zip(qb.chunks_exact_mut(16)) {
            // SAFETY: `x16` has 16 f32, `q16` 16 bytes; gathered indices are
            // `pos + step - 1 <= 254` into the 256-entry midpoint table.
            unsafe {
                let s = _mm512_mul_ps(_mm512_loadu_ps(x16.as_ptr()), vinv);
                let mut pos = _mm512_setzero_si512();
                for step in STEPS {
                    let idx = _mm512_add_epi32(pos, _mm512_set1_epi32(step - 1));
                    let mid = _mm512_i32gather_ps::<4>(idx, m);
                    let gt = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(s, mid); // false for NaN
                    pos = _mm512_mask_add_epi32(pos, gt, pos, _mm512_set1_epi32(step));
                }
                _mm_storeu_si128(q16.as_mut_ptr().cast(), _mm512_cvtepi32_epi8(pos));
            }
        }
        quantize_run_scalar(tail, inv, mids, &mut qb[done..]);
    }
}

/// # Safety
/// The CPU must support AVX-512F/BW/VL; `code.len() == 256`. Slices as in
/// `dequantize_blockwise8`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub unsafe fn dequantize_blocks_avx512(codes: &[u8], absmax: &[f32], code: &[f32], bs: usize, out: &mut [f32]) {
    for ((ob, qb), &am) in out.chunks_mut(bs).zip(codes.chunks(bs)).zip(absmax) {
        let vam = _mm512_set1_ps(am);
        let os = ob.chunks_exact_mut(16);
        let done = os.len() * 16;
        for (o16, q16) in os.zip(qb.chunks_exact(16)) {
            // SAFETY: 16 bytes in, 16 f32 out; indices are bytes, < 256 = code.len().
            unsafe {
                let idx = _mm512_cvtepu8_epi32(_mm_loadu_si128(q16.as_ptr().cast()));
                let v = _mm512_i32gather_ps::<4>(idx, code.as_ptr());
                _mm512_storeu_ps(o16.as_mut_ptr(), _mm512_mul_ps(v, vam));
            }
        }
        super::dequantize_blocks_scalar(&qb[done..], &[am], code, bs, &mut ob[done..]);
    }
}

/// # Safety
/// The CPU must support AVX2, FMA and F16C. Slices as in `quantize_blocks_avx512`.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn quantize_blocks_avx2(x: &[f32], mids: &Midpoints, bs: usize, codes: &mut [u8], absmax: &mut [f32]) {
    let m = mids.0.as_ptr();
    for ((xb, qb), am) in x.chunks(bs).zip(codes.chunks_mut(bs)).zip(absmax.iter_mut()) {
        *am = unsafe { absmax_avx2(xb) };
        let inv = 1.0 / *am;
        let vinv = _mm256_set1_ps(inv);
        let xs = xb.chunks_exact(8);
        let (tail, done) = (xs.remainder(), xb.len() / 8 * 8);
        for (x8, q8) in xs.zip(qb.chunks_exact_mut(8)) {
            // SAFETY: `x8` has 8 f32, `q8` 8 bytes; gathered indices are <= 254.
            unsafe {
                let s = _mm256_mul_ps(_mm256_loadu_ps(x8.as_ptr()), vinv);
                let mut pos = _mm256_setzero_si256();
                for step in STEPS {
                    let idx = _mm256_add_epi32(pos, _mm256_set1_epi32(step - 1));
                    let mid = _mm256_i32gather_ps::<4>(m, idx);
                    let gt = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_GT_OQ>(s, mid));
                    pos = _mm256_add_epi32(pos, _mm256_and_si256(gt, _mm256_set1_epi32(step)));
                }
                // 8 values < 256 -> 8 bytes: packs work per 128-bit lane, so gather
                // dword 0 of each lane afterwards.
                let w = _mm256_packus_epi32(pos, pos);
                let b = _mm256_packus_epi16(w, w);
                let b = _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 0, 4, 0, 4, 0, 4));
                _mm_storel_epi64(q8.as_mut_ptr().cast(), _mm256_castsi256_si128(b));
            }
        }
        quantize_run_scalar(tail, inv, mids, &mut qb[done..]);
    }
}

/// # Safety
/// The CPU must support AVX2, FMA and F16C; `code.len() == 256`.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn dequantize_blocks_avx2(codes: &[u8], absmax: &[f32], code: &[f32], bs: usize, out: &mut [f32]) {
    for ((ob, qb), &am) in out.chunks_mut(bs).zip(codes.chunks(bs)).zip(absmax) {
        let vam = _mm256_set1_ps(am);
        let os = ob.chunks_exact_mut(8);
        let done = os.len() * 8;
        for (o8, q8) in os.zip(qb.chunks_exact(8)) {
            // SAFETY: 8 bytes in, 8 f32 out; indices are bytes, < 256 = code.len().
            unsafe {
                let idx = _mm256_cvtepu8_epi32(_mm_loadl_epi64(q8.as_ptr().cast()));
                let v = _mm256_i32gather_ps::<4>(code.as_ptr(), idx);
                _mm256_storeu_ps(o8.as_mut_ptr(), _mm256_mul_ps(v, vam));
            }
        }
        super::dequantize_blocks_scalar(&qb[done..], &[am], code, bs, &mut ob[done..]);
    }
}
