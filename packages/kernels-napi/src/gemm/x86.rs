//! AVX-512 and AVX2 microkernels (see `kernel.rs` for the tile contract).
//!
//! Shape: R rows of C (A values broadcast) x V vectors of columns (B loaded),
//! R*V accumulators kept in registers for the whole k loop. C is row-major, so
//! vectors run along n and a tile's rows are stored with plain (masked at the
//! right edge) vector stores. R and V are const generics: every edge height
//! 1..=MR gets its own fully unrolled instance, so edge rows cost no padding.
//!
//! AVX-512: 14 x 32 (28 zmm accumulators + 2 B vectors + 1 broadcast = 31 of 32
//! registers; per k step 28 FMAs against 2 loads + 14 broadcasts, so the two FMA
//! pipes of Zen 4/5 and Intel server cores stay fed: ~190 GFLOP/s on one core of
//! the dev machine, whose FMA peak measures 205) and 14 x 16 for C 9..16 wide.
//! AVX2: 6 x 16 (12 ymm accumulators + 2 + 1 of 16 registers), 12 x 8 for C <= 8
//! wide. (At the SIMD levels, C <= 8 wide is computed transposed: `x86_trans.rs`.)

use std::arch::x86_64::*;

use super::kernel::{Epilogue, Tile};

// ---------------------------------------------------------------- AVX-512

/// # Safety
/// As `kernel::TileFn` with `t.rows == R`, `nr == 16*V` and, if `UNIT_RS`,
/// `t.a_rs == 1`; AVX-512F available.
#[inline]
#[target_feature(enable = "avx512f")]
unsafe fn tile512<const R: usize, const V: usize, const UNIT_RS: bool>(t: &Tile) {
    let mut acc = [[_mm512_setzero_ps(); V]; R];
    let (mut a, mut b) = (t.a, t.b);
    // Strided rows are addressed from two bases, rows 0..H and H..R: LLVM turns
    // `r * a_rs` into a serial chain of adds, and two chains of R/2 keep up with
    // the FMAs where one chain of R does not.
    let h = R.div_ceil(2);
    let rs = if UNIT_RS { 1 } else { t.a_rs };
    // SAFETY: row h <= R of the first A step (one past the rows only when R == 1,
    // where it is never read). `black_box` hides that a_hi = a + h*rs, or LLVM
    // merges the two chains back into one.
    let mut a_hi = std::hint::black_box(unsafe { a.add(h * rs) });
    for _ in 0..t.kc {
        let mut bv = [_mm512_setzero_ps(); V];
        for (v, bv) in bv.iter_mut().enumerate() {
            // SAFETY: the B step holds 16*V floats.
            *bv = unsafe { _mm512_loadu_ps(b.add(16 * v)) };
        }
        for (r, acc_r) in acc.iter_mut().enumerate() {
            // SAFETY: row r < rows of the current A step (see `Tile`).
            let ar = _mm512_set1_ps(unsafe { if r < h { *a.add(r * rs) } else { *a_hi.add((r - h) * rs) } });
            for v in 0..V {
                acc_r[v] = _mm512_fmadd_ps(ar, bv[v], acc_r[v]);
            }
        }
        // SAFETY: one step forward inside (or one past the end of) the panels.
        unsafe {
            a = a.add(t.a_cs);
            a_hi = a_hi.add(t.a_cs);
            b = b.add(t.b_stride);
        }
    }
    // The epilogue stays in this function: a call taking `&acc` would make LLVM
    // keep the accumulators in memory, storing each one at every k step.
    let alpha = _mm512_set1_ps(t.alpha);
    for (r, acc_r) in acc.iter().enumerate() {
        // SAFETY: row r < rows is inside C.
        let c = unsafe { t.c.add(r * t.ldc) };
        for (v, &x) in acc_r.iter().enumerate() {
            let lanes = t.cols.saturating_sub(16 * v).min(16);
            if lanes == 0 {
                break;
            }
            let m: __mmask16 = if lanes == 16 { 0xFFFF } else { (1u16 << lanes) - 1 };
            // SAFETY: the mask covers only the `cols` writable floats of the row.
            unsafe {
                let cv = c.add(16 * v);
                let y = match t.epi {
                    Epilogue::Overwrite => _mm512_mul_ps(alpha, x),
                    Epilogue::Update(beta) => {
                        let old = _mm512_maskz_loadu_ps(m, cv);
                        _mm512_fmadd_ps(alpha, x, _mm512_mul_ps(_mm512_set1_ps(beta), old))
                    }
                };
                _mm512_mask_storeu_ps(cv, m, y);
            }
        }
    }
}

/// Dispatch `t.rows` to its const instance of `$f::<R, $v, UNIT_RS>`; rows of A
/// one float apart (packed, or A^T in place) get immediate offsets.
macro_rules! by_rows {
    ($f:ident, $v:literal, $t:expr, $($r:literal)+) => {
        match ($t.rows, $t.a_rs == 1) {
            $(($r, true) => $f::<$r, $v, true>($t),)+
            $(($r, false) => $f::<$r, $v, false>($t),)+
            _ => unreachable!("tile rows out of range"),
        }
    };
}

/// 14 x 32 AVX-512 tile.
///
/// # Safety
/// As `kernel::TileFn` with mr = 14, nr = 32; AVX-512F available.
pub unsafe fn tile_avx512_32(t: &Tile) {
    // SAFETY: forwarded contract.
    unsafe { by_rows!(tile512, 2, t, 1 2 3 4 5 6 7 8 9 10 11 12 13 14) }
}

/// 14 x 16 AVX-512 tile (thin C).
///
/// # Safety
/// As `kernel::TileFn` with mr = 14, nr = 16; AVX-512F available.
pub unsafe fn tile_avx512_16(t: &Tile) {
    // SAFETY: forwarded contract.
    unsafe { by_rows!(tile512, 1, t, 1 2 3 4 5 6 7 8 9 10 11 12 13 14) }
}

// ---------------------------------------------------------------- AVX2

/// # Safety
/// As `kernel::TileFn` with `t.rows == R`, `nr == 8*V` and, if `UNIT_RS`,
/// `t.a_rs == 1`; AVX2 and FMA available.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile256<const R: usize, const V: usize, const UNIT_RS: bool>(t: &Tile) {
    let mut acc = [[_mm256_setzero_ps(); V]; R];
    let (mut a, mut b) = (t.a, t.b);
    // Two bases for strided rows, as in `tile512`.
    let h = R.div_ceil(2);
    let rs = if UNIT_RS { 1 } else { t.a_rs };
    // SAFETY: as in `tile512`.
    let mut a_hi = std::hint::black_box(unsafe { a.add(h * rs) });
    for _ in 0..t.kc {
        let mut bv = [_mm256_setzero_ps(); V];
        for (v, bv) in bv.iter_mut().enumerate() {
            // SAFETY: the B step holds 8*V floats.
            *bv = unsafe { _mm256_loadu_ps(b.add(8 * v)) };
        }
        for (r, acc_r) in acc.iter_mut().enumerate() {
            // SAFETY: row r < rows of the current A step (see `Tile`).
            let ar = _mm256_set1_ps(unsafe { if r < h { *a.add(r * rs) } else { *a_hi.add((r - h) * rs) } });
            for v in 0..V {
                acc_r[v] = _mm256_fmadd_ps(ar, bv[v], acc_r[v]);
            }
        }
        // SAFETY: as in `tile512`.
        unsafe {
            a = a.add(t.a_cs);
            a_hi = a_hi.add(t.a_cs);
            b = b.add(t.b_stride);
        }
    }
    // The epilogue stays in this function: a call taking `&acc` would make LLVM
    // keep the accumulators in memory, storing each one at every k step.
    let alpha = _mm256_set1_ps(t.alpha);
    let lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    for (r, acc_r) in acc.iter().enumerate() {
        // SAFETY: row r < rows is inside C.
        let c = unsafe { t.c.add(r * t.ldc) };
        for (v, &x) in acc_r.iter().enumerate() {
            let lanes = t.cols.saturating_sub(8 * v).min(8);
            if lanes == 0 {
                break;
            }
            let m = _mm256_cmpgt_epi32(_mm256_set1_epi32(lanes as i32), lane);
            // SAFETY: full vectors only when 8 floats are writable; else masked.
            unsafe {
                let cv = c.add(8 * v);
                let y = match t.epi {
                    Epilogue::Overwrite => _mm256_mul_ps(alpha, x),
                    Epilogue::Update(beta) => {
                        let old = if lanes == 8 { _mm256_loadu_ps(cv) } else { _mm256_maskload_ps(cv, m) };
                        _mm256_fmadd_ps(alpha, x, _mm256_mul_ps(_mm256_set1_ps(beta), old))
                    }
                };
                if lanes == 8 { _mm256_storeu_ps(cv, y) } else { _mm256_maskstore_ps(cv, m, y) }
            }
        }
    }
}

/// 6 x 16 AVX2 tile.
///
/// # Safety
/// As `kernel::TileFn` with mr = 6, nr = 16; AVX2 and FMA available.
pub unsafe fn tile_avx2_16(t: &Tile) {
    // SAFETY: forwarded contract.
    unsafe { by_rows!(tile256, 2, t, 1 2 3 4 5 6) }
}

/// 12 x 8 AVX2 tile (thin C).
///
/// # Safety
/// As `kernel::TileFn` with mr = 12, nr = 8; AVX2 and FMA available.
pub unsafe fn tile_avx2_8(t: &Tile) {
    // SAFETY: forwarded contract.
    unsafe { by_rows!(tile256, 1, t, 1 2 3 4 5 6 7 8 9 10 11 12) }
}
