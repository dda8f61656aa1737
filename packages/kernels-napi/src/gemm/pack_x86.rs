//! AVX2 packing of A micro-panels (used at the AVX2 and AVX-512 levels; packing
//! only moves floats, so any level gives the same panel).
//!
//! Both routines write whole vectors per k step, in increasing k order, so a
//! store may run up to 16 floats past its step (into the next step's slots,
//! rewritten right after, or into the panel's slack): `dst` needs kc*mr + 16 floats.

use std::arch::x86_64::*;

/// Slack the caller adds after a packed A micro-panel.
pub const A_SLACK: usize = 16;

/// 8 x 8 transpose: out[j] = [v[0][j], v[1][j], ..., v[7][j]].
#[inline]
#[target_feature(enable = "avx2")]
pub(super) fn transpose8(v: [__m256; 8]) -> [__m256; 8] {
    let t0 = _mm256_unpacklo_ps(v[0], v[1]);
    let t1 = _mm256_unpackhi_ps(v[0], v[1]);
    let t2 = _mm256_unpacklo_ps(v[2], v[3]);
    let t3 = _mm256_unpackhi_ps(v[2], v[3]);
    let t4 = _mm256_unpacklo_ps(v[4], v[5]);
    let t5 = _mm256_unpackhi_ps(v[4], v[5]);
    let t6 = _mm256_unpacklo_ps(v[6], v[7]);
    let t7 = _mm256_unpackhi_ps(v[6], v[7]);
    let s0 = _mm256_shuffle_ps::<0x44>(t0, t2);
    let s1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
    let s2 = _mm256_shuffle_ps::<0x44>(t1, t3);
    let s3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
    let s4 = _mm256_shuffle_ps::<0x44>(t4, t6);
    let s5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
    let s6 = _mm256_shuffle_ps::<0x44>(t5, t7);
    let s7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
    [
        _mm256_permute2f128_ps::<0x20>(s0, s4),
        _mm256_permute2f128_ps::<0x20>(s1, s5),
        _mm256_permute2f128_ps::<0x20>(s2, s6),
        _mm256_permute2f128_ps::<0x20>(s3, s7),
        _mm256_permute2f128_ps::<0x31>(s0, s4),
        _mm256_permute2f128_ps::<0x31>(s1, s5),
        _mm256_permute2f128_ps::<0x31>(s2, s6),
        _mm256_permute2f128_ps::<0x31>(s3, s7),
    ]
}

/// Pack `rows` (<= 16) rows of A, row r being `src[r*lda .. r*lda + kc]`, into
/// dst[kk*mr + r] (rows of A contiguous along k: an 8 x 8 transpose per 8 k).
///
/// # Safety
/// AVX2 available; the `rows` source rows are readable for `kc` floats; `dst` is
/// writable for kc*mr + A_SLACK floats; rows <= mr <= 16.
#[target_feature(enable = "avx2")]
pub unsafe fn pack_rows_avx2(src: *const f32, lda: usize, rows: usize, kc: usize, mr: usize, dst: *mut f32) {
    let groups = rows.div_ceil(8);
    let k8 = kc / 8 * 8;
    for kk in (0..k8).step_by(8) {
        let mut t = [[_mm256_setzero_ps(); 8]; 2];
        for (g, tg) in t.iter_mut().enumerate().take(groups) {
            let mut v = [_mm256_setzero_ps(); 8];
            for (r, vr) in v.iter_mut().enumerate().take((rows - 8 * g).min(8)) {
                // SAFETY: row 8g+r < rows, columns kk..kk+8 <= kc.
                *vr = unsafe { _mm256_loadu_ps(src.add((8 * g + r) * lda + kk)) };
            }
            *tg = transpose8(v);
        }
        for s in 0..8 {
            for (g, tg) in t.iter().enumerate().take(groups) {
                // SAFETY: ends at most 16 - mr floats past step kk+s (see module doc).
                unsafe { _mm256_storeu_ps(dst.add((kk + s) * mr + 8 * g), tg[s]) };
            }
        }
    }
    for kk in k8..kc {
        for r in 0..rows {
            // SAFETY: in bounds as above.
            unsafe { *dst.add(kk * mr + r) = *src.add(r * lda + kk) };
        }
    }
}

/// Pack `rows` (<= 16) columns of A^T's rows: step kk is `src[kk*lda .. kk*lda + rows]`
/// (A stored [k, m]), copied to dst[kk*mr ..] with masked loads (no read past A).
///
/// # Safety
/// AVX2 available; each step's `rows` floats are readable; `dst` as in [`pack_rows_avx2`].
#[target_feature(enable = "avx2")]
pub unsafe fn pack_steps_avx2(src: *const f32, lda: usize, rows: usize, kc: usize, mr: usize, dst: *mut f32) {
    let lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    let m0 = _mm256_cmpgt_epi32(_mm256_set1_epi32(rows.min(8) as i32), lane);
    let m1 = _mm256_cmpgt_epi32(_mm256_set1_epi32(rows.saturating_sub(8) as i32), lane);
    for kk in 0..kc {
        // SAFETY: masked loads read only the `rows` floats of the step; stores stay
        // within the step plus slack, in increasing k order.
        unsafe {
            let (s, d) = (src.add(kk * lda), dst.add(kk * mr));
            _mm256_storeu_ps(d, _mm256_maskload_ps(s, m0));
            if rows > 8 {
                _mm256_storeu_ps(d.add(8), _mm256_maskload_ps(s.add(8), m1));
            }
        }
    }
}

/// Pack one B panel from `rows` (<= nr) rows of S^T storage, row jj being
/// `src[jj*stride .. jj*stride + kc]`, into dst[kk*nr + jj], zero for jj >= rows
/// (8 x 8 transposes; nr is a multiple of 8).
///
/// # Safety
/// AVX2 available; the `rows` source rows are readable for `kc` floats; `dst` is
/// writable for kc*nr floats; rows <= nr, nr % 8 == 0.
#[target_feature(enable = "avx2")]
pub unsafe fn pack_panel_trans_avx2(src: *const f32, stride: usize, rows: usize, kc: usize, nr: usize, dst: *mut f32) {
    let k8 = kc / 8 * 8;
    for g in (0..nr).step_by(8) {
        let live = rows.saturating_sub(g).min(8);
        for kk in (0..k8).step_by(8) {
            let mut v = [_mm256_setzero_ps(); 8];
            for (r, vr) in v.iter_mut().enumerate().take(live) {
                // SAFETY: row g+r < rows, columns kk..kk+8 <= kc.
                *vr = unsafe { _mm256_loadu_ps(src.add((g + r) * stride + kk)) };
            }
            for (s, col) in transpose8(v).into_iter().enumerate() {
                // SAFETY: step kk+s < kc, lanes g..g+8 <= nr.
                unsafe { _mm256_storeu_ps(dst.add((kk + s) * nr + g), col) };
            }
        }
        for kk in k8..kc {
            for r in 0..8 {
                // SAFETY: as above; rows past `rows` are written as zero, not read.
                unsafe { *dst.add(kk * nr + g + r) = if r < live { *src.add((g + r) * stride + kk) } else { 0.0 } };
            }
        }
    }
}
