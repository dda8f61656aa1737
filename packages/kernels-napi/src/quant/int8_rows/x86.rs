//! AVX2 / AVX-512 versions of the row loops in `int8_rows.rs`.
//!
//! Same operations as the scalar code: one multiply, round-to-nearest-even with
//! an explicit immediate (not MXCSR), clamp to [-127, 127], NaN lanes zeroed by
//! an ordered-compare mask (maxps would otherwise turn NaN into -127).

use std::arch::x86_64::*;

use super::{INV_127, dequantize_run_scalar, quantize_run_scalar};
use crate::quant::absmax::x86::{absmax_avx2, absmax_avx512};

const RNE: i32 = _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC;

/// # Safety
/// The CPU must support AVX-512F/BW/VL; `cols > 0`, `w` and `cb` hold whole rows
/// and `scb` one entry per row.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub unsafe fn quantize_rows_avx512(w: &[f32], cols: usize, cb: &mut [i8], scb: &mut [f32]) {
    let (lo, hi) = (_mm512_set1_ps(-127.0), _mm512_set1_ps(127.0));
    for ((wr, cr), s) in w.chunks(cols).zip(cb.chunks_mut(cols)).zip(scb.iter_mut()) {
        *s = unsafe { absmax_avx512(wr) };
        let f = 127.0 / *s;
        let vf = _mm512_set1_ps(f);
        let ws = wr.chunks_exact(16);
        let (tail, done) = (ws.remainder(), wr.len() / 16 * 16);
        for (w16, c16) in ws.zip(cr.chunks_exact_mut(16)) {
            // SAFETY: `w16` has 16 f32 and `c16` 16 bytes.
            unsafe {
                let v = _mm512_mul_ps(_mm512_loadu_ps(w16.as_ptr()), vf);
                let ord = _mm512_cmp_ps_mask::<_CMP_ORD_Q>(v, v);
                let r = _mm512_min_ps(_mm512_max_ps(_mm512_roundscale_ps::<RNE>(v), lo), hi);
                let i = _mm512_maskz_mov_epi32(ord, _mm512_cvttps_epi32(r));
                _mm_storeu_si128(c16.as_mut_ptr().cast(), _mm512_cvtepi32_epi8(i));
            }
        }
        quantize_run_scalar(tail, f, &mut cr[done..]);
    }
}

/// # Safety
/// The CPU must support AVX-512F/BW/VL; `cols > 0`, slices hold whole rows.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub unsafe fn dequantize_rows_avx512(cb: &[i8], scb: &[f32], cols: usize, out: &mut [f32]) {
    let k = _mm512_set1_ps(INV_127);
    for ((or, cr), &s) in out.chunks_mut(cols).zip(cb.chunks(cols)).zip(scb) {
        let vs = _mm512_set1_ps(s);
        let os = or.chunks_exact_mut(16);
        let done = os.len() * 16;
        for (o16, c16) in os.zip(cr.chunks_exact(16)) {
            // SAFETY: 16 bytes in, 16 f32 out.
            unsafe {
                let c = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(c16.as_ptr().cast())));
                _mm512_storeu_ps(o16.as_mut_ptr(), _mm512_mul_ps(_mm512_mul_ps(c, vs), k));
            }
        }
        dequantize_run_scalar(&cr[done..], s, &mut or[done..]);
    }
}

/// # Safety
/// The CPU must support AVX2, FMA and F16C; slices as in `quantize_rows_avx512`.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn quantize_rows_avx2(w: &[f32], cols: usize, cb: &mut [i8], scb: &mut [f32]) {
    let (lo, hi) = (_mm256_set1_ps(-127.0), _mm256_set1_ps(127.0));
    for ((wr, cr), s) in w.chunks(cols).zip(cb.chunks_mut(cols)).zip(scb.iter_mut()) {
        *s = unsafe { absmax_avx2(wr) };
        let f = 127.0 / *s;
        let vf = _mm256_set1_ps(f);
        let ws = wr.chunks_exact(8);
        let (tail, done) = (ws.remainder(), wr.len() / 8 * 8);
        for (w8, c8) in ws.zip(cr.chunks_exact_mut(8)) {
            // SAFETY: `w8` has 8 f32 and `c8` 8 bytes.
            unsafe {
                let v = _mm256_mul_ps(_mm256_loadu_ps(w8.as_ptr()), vf);
                let ord = _mm256_castps_si256(_mm256_cmp_ps::<_CMP_ORD_Q>(v, v));
                let r = _mm256_min_ps(_mm256_max_ps(_mm256_round_ps::<RNE>(v), lo), hi);
                let i = _mm256_and_si256(ord, _mm256_cvttps_epi32(r));
                // Values fit in i8, so the saturating packs only narrow; they work
                // per 128-bit lane, so take dword 0 of each lane afterwards.
                let w16 = _mm256_packs_epi32(i, i);
                let b = _mm256_packs_epi16(w16, w16);
                let b = _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 0, 4, 0, 4, 0, 4));
                _mm_storel_epi64(c8.as_mut_ptr().cast(), _mm256_castsi256_si128(b));
            }
        }
        quantize_run_scalar(tail, f, &mut cr[done..]);
    }
}

/// # Safety
/// The CPU must support AVX2, FMA and F16C; slices as in `dequantize_rows_avx512`.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn dequantize_rows_avx2(cb: &[i8], scb: &[f32], cols: usize, out: &mut [f32]) {
    let k = _mm256_set1_ps(INV_127);
    for ((or, cr), &s) in out.chunks_mut(cols).zip(cb.chunks(cols)).zip(scb) {
        let vs = _mm256_set1_ps(s);
        let os = or.chunks_exact_mut(8);
        let done = os.len() * 8;
        for (o8, c8) in os.zip(cr.chunks_exact(8)) {
            // SAFETY: 8 bytes in, 8 f32 out.
            unsafe {
                let c = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_loadl_epi64(c8.as_ptr().cast())));
                _mm256_storeu_ps(o8.as_mut_ptr(), _mm256_mul_ps(_mm256_mul_ps(c, vs), k));
            }
        }
        dequantize_run_scalar(&cr[done..], s, &mut or[done..]);
    }
}
