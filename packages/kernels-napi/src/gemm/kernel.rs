//! Microkernels: one register-blocked tile C[rows, cols] (+)= alpha * Ap @ Bp.
//!
//! Packed operands (see `pack.rs`): Ap is `rows` rows of A, k-major with stride
//! `mr` (Ap[kk*mr + r]); Bp is `nr` columns of B, k-major (Bp[kk*nr + j], columns
//! past `cols` are zero). Each C element is one chain acc = acc + a*b over kk =
//! 0..kc in order, started from 0, then combined with C by the epilogue. So a
//! C element's value depends only on the k-blocking (`k_block`), never on the
//! tile shape, the rows/cols of its tile, or the thread that ran it.
//!
//! Levels: AVX-512 and AVX2 tiles use FMA and give identical bits to each other
//! (same chain, same epilogue); the scalar tile rounds a*b before adding, so it
//! differs from them in the last bits (and is only the fallback).

#[cfg(target_arch = "x86_64")]
use super::{x86, x86_trans};
use crate::simd::{Isa, Level};

/// How a finished tile meets C: `Overwrite` is beta == 0 (C is not read, so NaN
/// there is ignored); `Update(beta)` is c = alpha*acc + beta*c, with the first
/// product rounded once (fma(alpha, acc, beta*c) on SIMD levels).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Epilogue {
    Overwrite,
    Update(f32),
}

/// One microkernel call. Pointers are raw because C tiles of different threads
/// interleave in memory (disjoint rectangles of one row-major matrix).
pub struct Tile {
    pub kc: usize,
    /// A: element (r, kk) of the tile's rows is `a[r*a_rs + kk*a_cs]` (packed: 1, mr).
    pub a: *const f32,
    pub a_rs: usize,
    pub a_cs: usize,
    /// B: k step kk is the `nr` floats at `b + kk*b_stride` (packed: b_stride = nr).
    pub b: *const f32,
    pub b_stride: usize,
    /// C[0, 0] of the tile; row r starts at c + r*ldc.
    pub c: *mut f32,
    pub ldc: usize,
    pub rows: usize,
    pub cols: usize,
    pub alpha: f32,
    pub epi: Epilogue,
}

/// A microkernel for one tile.
///
/// # Safety
/// The CPU supports the function's level; `1 <= t.rows <= mr`, `1 <= t.cols <= nr`;
/// every A element (r < rows, kk < kc) and every B step (`nr` floats) is readable,
/// and C rows `0..rows` are readable and writable for `cols` floats each.
pub type TileFn = unsafe fn(&Tile);

/// A level's register block: tiles are at most `mr` x `nr`.
/// `c_trans`: the tile writes C transposed (element (r, j) at c[j*ldc + r]).
#[derive(Clone, Copy)]
pub struct Kernel {
    pub mr: usize,
    pub nr: usize,
    pub tile: TileFn,
    pub c_trans: bool,
}

/// Deepest k-block: a 14-row A micro-panel of 384 floats is 21 KiB of L1.
pub const KC_MAX: usize = 384;

/// The k-block for a product of depth `k`: k split into ceil(k / KC_MAX) equal
/// blocks (the last may be shorter). Results depend on it (one epilogue per block),
/// so it is a function of k alone, the same at every level and for every thread
/// count. Equal blocks avoid a thin last block, which would cost a whole extra
/// pass over C (k = 288 is one block, not 256 + 32).
pub fn k_block(k: usize) -> usize {
    k.div_ceil(k.div_ceil(KC_MAX).max(1)).max(1)
}

impl Kernel {
    /// The kernel for `isa`, narrowed when C is at most half a wide tile across
    /// (n <= 16: a rank-16 LoRA product does not pad 16 columns to 32).
    pub fn select(isa: Isa, n: usize) -> Kernel {
        let k = |mr, nr, tile| Kernel { mr, nr, tile, c_trans: false };
        match isa.level() {
            #[cfg(target_arch = "x86_64")]
            Level::Avx512 if n <= 16 => k(14, 16, x86::tile_avx512_16),
            #[cfg(target_arch = "x86_64")]
            Level::Avx512 => k(14, 32, x86::tile_avx512_32),
            #[cfg(target_arch = "x86_64")]
            Level::Avx2 if n <= 8 => k(12, 8, x86::tile_avx2_8),
            #[cfg(target_arch = "x86_64")]
            Level::Avx2 => k(6, 16, x86::tile_avx2_16),
            _ => k(4, SCALAR_NR, tile_scalar),
        }
    }

    /// For C^T = op(B)^T op(A)^T with at most `THIN` rows (C at most `THIN` columns
    /// wide): tiles that store transposed. None where no such kernel exists.
    pub fn select_transposed(isa: Isa) -> Option<Kernel> {
        let k = |nr, tile| Some(Kernel { mr: THIN, nr, tile, c_trans: true });
        match isa.level() {
            #[cfg(target_arch = "x86_64")]
            Level::Avx512 => k(32, x86_trans::tile_avx512_t),
            #[cfg(target_arch = "x86_64")]
            Level::Avx2 => k(8, x86_trans::tile_avx2_t),
            _ => None,
        }
    }
}

/// Widest C (columns) computed transposed (`Kernel::select_transposed`).
pub const THIN: usize = 8;

const SCALAR_NR: usize = 8;

/// Scalar tile (any rows <= 4, NR = 8): plain multiply then add.
///
/// # Safety
/// As [`TileFn`].
pub unsafe fn tile_scalar(t: &Tile) {
    // SAFETY: forwarded contract.
    unsafe {
        match t.rows {
            1 => scalar_rows::<1>(t),
            2 => scalar_rows::<2>(t),
            3 => scalar_rows::<3>(t),
            _ => scalar_rows::<4>(t),
        }
    }
}

/// # Safety
/// As [`TileFn`], with `t.rows == R`.
unsafe fn scalar_rows<const R: usize>(t: &Tile) {
    let mut acc = [[0.0f32; SCALAR_NR]; R];
    for kk in 0..t.kc {
        // SAFETY: kk < kc and r < rows, so both reads are inside A and the B step.
        let b = unsafe { &*(t.b.add(kk * t.b_stride) as *const [f32; SCALAR_NR]) };
        for (r, acc_r) in acc.iter_mut().enumerate() {
            let a = unsafe { *t.a.add(r * t.a_rs + kk * t.a_cs) };
            for j in 0..SCALAR_NR {
                acc_r[j] += a * b[j];
            }
        }
    }
    for (r, acc_r) in acc.iter().enumerate() {
        // SAFETY: row r < rows of the tile, `cols` floats are writable.
        let c = unsafe { std::slice::from_raw_parts_mut(t.c.add(r * t.ldc), t.cols) };
        for (cj, &v) in c.iter_mut().zip(acc_r) {
            *cj = match t.epi {
                Epilogue::Overwrite => t.alpha * v,
                Epilogue::Update(beta) => t.alpha * v + beta * *cj,
            };
        }
    }
}
