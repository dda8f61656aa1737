//! Microkernels that store their tile transposed, for thin C (n <= 8).
//!
//! The driver then computes C^T = op(B)^T op(A)^T: the tile's R <= 8 rows are
//! columns of C and its vector lanes run along m, so every lane does useful work
//! (a row-major 8-column tile would leave half of a 16-lane vector idle). Each
//! accumulator lane is the same FMA chain as in `x86.rs` (a*b == b*a exactly),
//! so C gets the same bits either way. Tile element (r, j) goes to c[j*ldc + r]:
//! an 8 x 8 transpose turns 8 row vectors into 8 C rows of R floats each.

use std::arch::x86_64::*;

use super::kernel::{Epilogue, Tile};
use super::pack_x86::transpose8;

/// Tile element (r, j) of acc lanes -> c[j*ldc + r]: `cols8[j]` holds (0..8, j) for
/// one group of 8 columns starting at tile column `j0`.
///
/// # Safety
/// AVX-512F/VL available; C rows j0 .. j0+lanes are writable for `t.rows` floats.
#[inline]
#[target_feature(enable = "avx512f,avx512vl")]
unsafe fn store_cols(t: &Tile, cols8: [__m256; 8], j0: usize, lanes: usize) {
    let m: __mmask8 = if t.rows >= 8 { 0xFF } else { (1u8 << t.rows) - 1 };
    let alpha = _mm256_set1_ps(t.alpha);
    for (j, &x) in cols8.iter().enumerate().take(lanes) {
        // SAFETY: the mask covers the `rows` writable floats of C row j0 + j.
        unsafe {
            let cv = t.c.add((j0 + j) * t.ldc);
            let y = match t.epi {
                Epilogue::Overwrite => _mm256_mul_ps(alpha, x),
                Epilogue::Update(beta) => {
                    let old = _mm256_maskz_loadu_ps(m, cv);
                    _mm256_fmadd_ps(alpha, x, _mm256_mul_ps(_mm256_set1_ps(beta), old))
                }
            };
            _mm256_mask_storeu_ps(cv, m, y);
        }
    }
}

/// R x 32 tile (R <= 8), stored transposed.
///
/// # Safety
/// As `kernel::TileFn` with `t.rows == R <= 8`, nr = 32 and, if `UNIT_RS`,
/// `t.a_rs == 1`, C addressed transposed; AVX-512F/VL available.
#[inline]
#[target_feature(enable = "avx512f,avx512vl")]
unsafe fn tile512_t<const R: usize, const UNIT_RS: bool>(t: &Tile) {
    let mut acc = [[_mm512_setzero_ps(); 2]; R];
    let (mut a, mut b) = (t.a, t.b);
    for _ in 0..t.kc {
        // SAFETY: a B step holds 32 floats; row r < rows of the A step.
        unsafe {
            let bv = [_mm512_loadu_ps(b), _mm512_loadu_ps(b.add(16))];
            for (r, acc_r) in acc.iter_mut().enumerate() {
                let ar = _mm512_set1_ps(*a.add(if UNIT_RS { r } else { r * t.a_rs }));
                acc_r[0] = _mm512_fmadd_ps(ar, bv[0], acc_r[0]);
                acc_r[1] = _mm512_fmadd_ps(ar, bv[1], acc_r[1]);
            }
            a = a.add(t.a_cs);
            b = b.add(t.b_stride);
        }
    }
    // Epilogue in this function, as in `x86.rs` (keeps `acc` in registers).
    for v in 0..2 {
        for half in 0..2 {
            let j0 = 16 * v + 8 * half;
            let lanes = t.cols.saturating_sub(j0).min(8);
            if lanes == 0 {
                return;
            }
            let mut rows = [_mm256_setzero_ps(); 8];
            for (r, acc_r) in acc.iter().enumerate() {
                let x = _mm512_castps_pd(acc_r[v]);
                rows[r] = _mm256_castpd_ps(if half == 0 { _mm512_castpd512_pd256(x) } else { _mm512_extractf64x4_pd::<1>(x) });
            }
            // SAFETY: forwarded contract.
            unsafe { store_cols(t, transpose8(rows), j0, lanes) };
        }
    }
}

/// R x 8 AVX2 tile (R <= 8), stored transposed.
///
/// # Safety
/// As `kernel::TileFn` with `t.rows == R <= 8`, nr = 8 and, if `UNIT_RS`,
/// `t.a_rs == 1`, C addressed transposed; AVX2 and FMA available.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile256_t<const R: usize, const UNIT_RS: bool>(t: &Tile) {
    let mut acc = [_mm256_setzero_ps(); R];
    let (mut a, mut b) = (t.a, t.b);
    for _ in 0..t.kc {
        // SAFETY: a B step holds 8 floats; row r < rows of the A step.
        unsafe {
            let bv = _mm256_loadu_ps(b);
            for (r, acc_r) in acc.iter_mut().enumerate() {
                let ar = _mm256_set1_ps(*a.add(if UNIT_RS { r } else { r * t.a_rs }));
                *acc_r = _mm256_fmadd_ps(ar, bv, *acc_r);
            }
            a = a.add(t.a_cs);
            b = b.add(t.b_stride);
        }
    }
    let mut rows = [_mm256_setzero_ps(); 8];
    rows[..R].copy_from_slice(&acc);
    let lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    let m = _mm256_cmpgt_epi32(_mm256_set1_epi32(R as i32), lane);
    let alpha = _mm256_set1_ps(t.alpha);
    for (j, x) in transpose8(rows).into_iter().enumerate().take(t.cols) {
        // SAFETY: masked to the `rows` writable floats of C row j.
        unsafe {
            let cv = t.c.add(j * t.ldc);
            let y = match t.epi {
                Epilogue::Overwrite => _mm256_mul_ps(alpha, x),
                Epilogue::Update(beta) => {
                    _mm256_fmadd_ps(alpha, x, _mm256_mul_ps(_mm256_set1_ps(beta), _mm256_maskload_ps(cv, m)))
                }
            };
            _mm256_maskstore_ps(cv, m, y);
        }
    }
}

macro_rules! by_rows_t {
    ($f:ident, $t:expr, $($r:literal)+) => {
        match ($t.rows, $t.a_rs == 1) {
            $(($r, true) => $f::<$r, true>($t),)+
            $(($r, false) => $f::<$r, false>($t),)+
            _ => unreachable!("tile rows out of range"),
        }
    };
}

/// 8 x 32 AVX-512 tile, C transposed.
///
/// # Safety
/// As `kernel::TileFn` with mr = 8, nr = 32, C addressed transposed; AVX-512F/VL available.
pub unsafe fn tile_avx512_t(t: &Tile) {
    // SAFETY: forwarded contract.
    unsafe { by_rows_t!(tile512_t, t, 1 2 3 4 5 6 7 8) }
}

/// 8 x 8 AVX2 tile, C transposed.
///
/// # Safety
/// As `kernel::TileFn` with mr = 8, nr = 8, C addressed transposed; AVX2 and FMA available.
pub unsafe fn tile_avx2_t(t: &Tile) {
    // SAFETY: forwarded contract.
    unsafe { by_rows_t!(tile256_t, t, 1 2 3 4 5 6 7 8) }
}
