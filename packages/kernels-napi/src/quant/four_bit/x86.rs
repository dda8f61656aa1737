//! AVX2 / AVX-512 versions of the 4-bit per-block loops in `four_bit.rs`.
//!
//! Bit-identical to the scalar reference because they compute the same f32
//! products `x * inv` and then only compare (codes) or look up and multiply once
//! (dequant). Blocksizes are powers of two >= 32, so every full block is a whole
//! number of 32-element steps; a partial last block's tail goes to the scalar code.
//!
//! Codes: AVX-512 does a 4-step branchless binary search over the 15 NF4
//! thresholds with `vpermps` (16-entry table in one register); AVX2 counts
//! broadcast-threshold compares. Both give "number of thresholds below s".

use std::arch::x86_64::*;

use super::{FP4_BITS, FP4_THRESHOLDS, FourBit, NF4_THRESHOLDS, pack_scalar};
use crate::quant::absmax::x86::{absmax_avx2, absmax_avx512};

/// 16-lane tables padded with +inf (the binary search never reads the pad).
const fn pad16<const N: usize>(t: &[f32; N]) -> [f32; 16] {
    let mut out = [f32::INFINITY; 16];
    let mut i = 0;
    while i < N {
        out[i] = t[i];
        i += 1;
    }
    out
}
const NF4_THR16: [f32; 16] = pad16(&NF4_THRESHOLDS);
const FP4_THR16: [f32; 16] = pad16(&FP4_THRESHOLDS);
const FP4_BITS16: [i32; 16] = {
    let mut out = [0i32; 16];
    let mut i = 0;
    while i < 8 {
        out[i] = FP4_BITS[i] as i32;
        i += 1;
    }
    out
};

// ---------------------------------------------------------------- AVX-512

/// Count of `thr[k] < s` for sorted `thr` (2^steps - 1 entries), per lane.
#[inline]
#[target_feature(enable = "avx512f")]
fn search_avx512(s: __m512, thr: __m512, steps: u32) -> __m512i {
    let mut pos = _mm512_setzero_si512();
    for k in (0..steps).rev() {
        let step = 1i32 << k;
        let t = _mm512_permutexvar_ps(_mm512_add_epi32(pos, _mm512_set1_epi32(step - 1)), thr);
        let gt = _mm512_cmp_ps_mask::<_CMP_GT_OQ>(s, t); // false for NaN
        pos = _mm512_mask_add_epi32(pos, gt, pos, _mm512_set1_epi32(step));
    }
    pos
}

/// 4-bit codes (one per i32 lane) of 16 scaled values.
#[inline]
#[target_feature(enable = "avx512f")]
fn codes_avx512(s: __m512, ty: FourBit, thr: __m512, bits: __m512i) -> __m512i {
    match ty {
        FourBit::Nf4 => search_avx512(s, thr, 4),
        FourBit::Fp4 => {
            let neg = _mm512_cmp_ps_mask::<_CMP_LT_OQ>(s, _mm512_setzero_ps());
            let a = _mm512_abs_ps(s);
            let c = search_avx512(a, thr, 3);
            let mag = _mm512_permutexvar_epi32(c, bits);
            _mm512_mask_or_epi32(mag, neg, mag, _mm512_set1_epi32(8))
        }
    }
}

/// 16 codes (i32 lanes) -> 8 packed bytes (low half of the result).
#[inline]
#[target_feature(enable = "avx512f")]
fn pack16_avx512(c: __m512i) -> __m128i {
    // Per 64-bit lane [c_even, c_odd]: low dword becomes c_even << 4 | c_odd.
    let z = _mm512_or_si512(_mm512_slli_epi32(c, 4), _mm512_srli_epi64(c, 32));
    _mm512_cvtepi64_epi8(z) // low byte of each qword
}

/// # Safety
/// The CPU must support AVX-512F/BW/VL. `x` starts at a block boundary;
/// `packed`/`absmax` are sized for `x` as in `quantize_4bit`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub unsafe fn quantize_blocks_avx512(x: &[f32], bs: usize, ty: FourBit, packed: &mut [u8], absmax: &mut [f32]) {
    let (thr, bits) = unsafe {
        let thr = if ty == FourBit::Nf4 { &NF4_THR16 } else { &FP4_THR16 };
        (_mm512_loadu_ps(thr.as_ptr()), _mm512_loadu_si512(FP4_BITS16.as_ptr().cast()))
    };
    for ((xb, pb), am) in x.chunks(bs).zip(packed.chunks_mut(bs / 2)).zip(absmax.iter_mut()) {
        *am = unsafe { absmax_avx512(xb) };
        let inv = 1.0 / *am;
        let vinv = _mm512_set1_ps(inv);
        let xs = xb.chunks_exact(32);
        let (x_tail, done) = (xs.remainder(), xb.len() / 32 * 16);
        for (x32, p16) in xs.zip(pb.chunks_exact_mut(16)) {
            // SAFETY: `x32` has 32 f32 and `p16` 16 bytes.
            unsafe {
                let s0 = _mm512_mul_ps(_mm512_loadu_ps(x32.as_ptr()), vinv);
                let s1 = _mm512_mul_ps(_mm512_loadu_ps(x32.as_ptr().add(16)), vinv);
                let b0 = pack16_avx512(codes_avx512(s0, ty, thr, bits));
                let b1 = pack16_avx512(codes_avx512(s1, ty, thr, bits));
                _mm_storeu_si128(p16.as_mut_ptr().cast(), _mm_unpacklo_epi64(b0, b1));
            }
        }
        pack_scalar(x_tail, inv, ty, &mut pb[done..]);
    }
}

/// # Safety
/// The CPU must support AVX-512F/BW/VL. `out` starts at a block boundary;
/// `packed`/`absmax` are sized for `out` as in `dequantize_4bit`.
#[target_feature(enable = "avx512f,avx512bw,avx512vl")]
pub unsafe fn dequantize_blocks_avx512(packed: &[u8], absmax: &[f32], bs: usize, ty: FourBit, out: &mut [f32]) {
    let table = unsafe { _mm512_loadu_ps(ty.table().as_ptr()) };
    for ((ob, pb), &am) in out.chunks_mut(bs).zip(packed.chunks(bs / 2)).zip(absmax) {
        let vam = _mm512_set1_ps(am);
        let os = ob.chunks_exact_mut(16);
        let done = os.len() * 16;
        for (o16, p8) in os.zip(pb.chunks_exact(8)) {
            // SAFETY: `p8` has 8 bytes and `o16` 16 f32.
            unsafe {
                let q = _mm512_cvtepu8_epi64(_mm_loadl_epi64(p8.as_ptr().cast()));
                // low dword: byte >> 4; high dword: byte (vpermps reads only its low 4 bits).
                let idx = _mm512_or_si512(_mm512_srli_epi32(q, 4), _mm512_slli_epi64(q, 32));
                let v = _mm512_mul_ps(_mm512_permutexvar_ps(idx, table), vam);
                _mm512_storeu_ps(o16.as_mut_ptr(), v);
            }
        }
        super::dequantize_blocks_scalar(&pb[done / 2..], &[am], bs, ty, &mut ob[done..]);
    }
}

// ---------------------------------------------------------------- AVX2

/// Per lane: how many of `thr` are below `v` (a true compare is -1, so subtract).
#[inline]
#[target_feature(enable = "avx2")]
fn count_avx2(v: __m256, thr: &[f32]) -> __m256i {
    let mut acc = _mm256_setzero_si256();
    for &t in thr {
        let gt = _mm256_cmp_ps::<_CMP_GT_OQ>(v, _mm256_set1_ps(t)); // false for NaN
        acc = _mm256_sub_epi32(acc, _mm256_castps_si256(gt));
    }
    acc
}

/// 4-bit codes (one per i32 lane) of 8 scaled values.
#[inline]
#[target_feature(enable = "avx2")]
fn codes_avx2(s: __m256, ty: FourBit, bits: __m256i) -> __m256i {
    match ty {
        FourBit::Nf4 => count_avx2(s, &NF4_THRESHOLDS),
        FourBit::Fp4 => {
            let neg = _mm256_cmp_ps::<_CMP_LT_OQ>(s, _mm256_setzero_ps());
            let a = _mm256_and_ps(s, _mm256_castsi256_ps(_mm256_set1_epi32(0x7fff_ffff)));
            let mag = _mm256_permutevar8x32_epi32(bits, count_avx2(a, &FP4_THRESHOLDS));
            _mm256_or_si256(mag, _mm256_and_si256(_mm256_castps_si256(neg), _mm256_set1_epi32(8)))
        }
    }
}

/// 8 codes (i32 lanes) -> 4 packed bytes, as the low 4 dwords' low bytes.
#[inline]
#[target_feature(enable = "avx2")]
fn pack8_avx2(c: __m256i) -> __m128i {
    let z = _mm256_or_si256(_mm256_slli_epi32(c, 4), _mm256_srli_epi64(c, 32));
    let even = _mm256_permutevar8x32_epi32(z, _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7));
    _mm256_castsi256_si128(even)
}

/// # Safety
/// The CPU must support AVX2, FMA and F16C. Slices as in `quantize_blocks_avx512`.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn quantize_blocks_avx2(x: &[f32], bs: usize, ty: FourBit, packed: &mut [u8], absmax: &mut [f32]) {
    let bits = unsafe { _mm256_loadu_si256(FP4_BITS16.as_ptr().cast()) };
    for ((xb, pb), am) in x.chunks(bs).zip(packed.chunks_mut(bs / 2)).zip(absmax.iter_mut()) {
        *am = unsafe { absmax_avx2(xb) };
        let inv = 1.0 / *am;
        let vinv = _mm256_set1_ps(inv);
        let xs = xb.chunks_exact(32);
        let (x_tail, done) = (xs.remainder(), xb.len() / 32 * 16);
        for (x32, p16) in xs.zip(pb.chunks_exact_mut(16)) {
            // SAFETY: `x32` has 32 f32 and `p16` 16 bytes.
            unsafe {
                let p = x32.as_ptr();
                let d0 = pack8_avx2(codes_avx2(_mm256_mul_ps(_mm256_loadu_ps(p), vinv), ty, bits));
                let d1 = pack8_avx2(codes_avx2(_mm256_mul_ps(_mm256_loadu_ps(p.add(8)), vinv), ty, bits));
                let d2 = pack8_avx2(codes_avx2(_mm256_mul_ps(_mm256_loadu_ps(p.add(16)), vinv), ty, bits));
                let d3 = pack8_avx2(codes_avx2(_mm256_mul_ps(_mm256_loadu_ps(p.add(24)), vinv), ty, bits));
                // Bytes are < 256, so the saturating packs are plain narrowing.
                let w = _mm_packus_epi16(_mm_packus_epi32(d0, d1), _mm_packus_epi32(d2, d3));
                _mm_storeu_si128(p16.as_mut_ptr().cast(), w);
            }
        }
        pack_scalar(x_tail, inv, ty, &mut pb[done..]);
    }
}

/// # Safety
/// The CPU must support AVX2, FMA and F16C. Slices as in `dequantize_blocks_avx512`.
#[target_feature(enable = "avx2,fma,f16c")]
pub unsafe fn dequantize_blocks_avx2(packed: &[u8], absmax: &[f32], bs: usize, ty: FourBit, out: &mut [f32]) {
    let (lo, hi) = unsafe {
        let t = ty.table().as_ptr();
        (_mm256_loadu_ps(t), _mm256_loadu_ps(t.add(8)))
    };
    for ((ob, pb), &am) in out.chunks_mut(bs).zip(packed.chunks(bs / 2)).zip(absmax) {
        let vam = _mm256_set1_ps(am);
        let os = ob.chunks_exact_mut(8);
        let done = os.len() * 8;
        for (o8, p4) in os.zip(pb.chunks_exact(4)) {
            let word = i32::from_le_bytes([p4[0], p4[1], p4[2], p4[3]]);
            let q = _mm256_cvtepu8_epi64(_mm_cvtsi32_si128(word));
            // low dword: byte >> 4; high dword: byte. Bits 0..2 pick within a half
            // of the table, bit 3 (moved to the sign bit) picks the half.
            let idx = _mm256_or_si256(_mm256_srli_epi32(q, 4), _mm256_slli_epi64(q, 32));
            let pick_hi = _mm256_castsi256_ps(_mm256_slli_epi32(idx, 28));
            let v = _mm256_blendv_ps(_mm256_permutevar8x32_ps(lo, idx), _mm256_permutevar8x32_ps(hi, idx), pick_hi);
            // SAFETY: `o8` has 8 f32.
            unsafe { _mm256_storeu_ps(o8.as_mut_ptr(), _mm256_mul_ps(v, vam)) };
        }
        super::dequantize_blocks_scalar(&pb[done / 2..], &[am], bs, ty, &mut ob[done..]);
    }
}
