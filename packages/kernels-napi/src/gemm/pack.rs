//! Packing: copy the part of op(A) / op(B) one macro step needs into contiguous,
//! k-major panels in the order the microkernel reads them (BLIS / GotoBLAS).
//!
//! A micro-panel (rows <= mr of op(A), kc deep): dst[kk*mr + r] = op(A)[i0+r, pc+kk].
//! B block (kc deep, tn wide, in panels of nr columns):
//!   dst[p*kc*nr + kk*nr + jj] = op(B)[pc+kk, j0 + p*nr + jj], zero past column tn.
//! op(B) comes from a `BSource`, so a quantized weight is dequantized here, one
//! block of S at a time, and packs into exactly the layout an f32 weight would.

#[cfg(target_arch = "x86_64")]
use super::pack_x86::{self, A_SLACK};
use super::source::BSource;
use crate::memory::AlignedBuf;
use crate::simd::{Isa, Level};

#[cfg(not(target_arch = "x86_64"))]
const A_SLACK: usize = 0;

/// Where A lives: row-major [m, k], or [k, m] when `trans`.
#[derive(Clone, Copy)]
pub struct AOperand<'a> {
    pub data: &'a [f32],
    pub trans: bool,
    pub m: usize,
    pub k: usize,
}

/// Floats a packed A micro-panel needs: kc*mr plus slack for whole-vector stores.
pub fn a_panel_len(kc: usize, mr: usize) -> usize {
    kc * mr + A_SLACK
}

/// One A micro-panel: rows `i0 .. i0+rows` of op(A), k range `pc .. pc+kc`, packed with stride `mr`.
#[derive(Clone, Copy)]
pub struct ABlock {
    pub i0: usize,
    pub rows: usize,
    pub pc: usize,
    pub kc: usize,
    pub mr: usize,
}

/// Pack the micro-panel `blk` of op(A) into `dst` (`a_panel_len(kc, mr)` floats;
/// slots of rows >= `rows` are left unspecified).
pub fn pack_a(isa: Isa, a: AOperand, blk: ABlock, dst: &mut [f32]) {
    let ABlock { i0, rows, pc, kc, mr } = blk;
    let dst = &mut dst[..a_panel_len(kc, mr)];
    // A^T is stored [k, m]: each k step is `rows` contiguous floats. Otherwise rows
    // of A are contiguous along k.
    let (start, lda) = if a.trans { (pc * a.m + i0, a.m) } else { (i0 * a.k + pc, a.k) };
    let last = if a.trans { (kc - 1) * lda + rows } else { (rows - 1) * lda + kc };
    let src = &a.data[start..start + last]; // bounds-checks the whole micro-panel once
    #[cfg(target_arch = "x86_64")]
    if isa.level() >= Level::Avx2 && mr <= 16 {
        // SAFETY: AVX2 is available (the Isa proves it); `src` covers every element
        // read and `dst` has kc*mr + A_SLACK floats.
        unsafe {
            let (s, d) = (src.as_ptr(), dst.as_mut_ptr());
            if a.trans {
                pack_x86::pack_steps_avx2(s, lda, rows, kc, mr, d)
            } else {
                pack_x86::pack_rows_avx2(s, lda, rows, kc, mr, d)
            }
        }
        return;
    }
    for kk in 0..kc {
        for r in 0..rows {
            let at = if a.trans { kk * lda + r } else { r * lda + kk };
            dst[kk * mr + r] = src[at];
        }
    }
}

/// Shape of one packed B block: k range `pc .. pc+kc`, columns `j0 .. j0+tn`, panel width `nr`.
#[derive(Clone, Copy)]
pub struct BBlock {
    pub pc: usize,
    pub kc: usize,
    pub j0: usize,
    pub tn: usize,
    pub nr: usize,
}

impl BBlock {
    pub fn panels(&self) -> usize {
        self.tn.div_ceil(self.nr)
    }
    /// Floats of the packed block.
    pub fn floats(&self) -> usize {
        self.panels() * self.kc * self.nr
    }
}

/// Rows of S fetched per `BSource::block` call when S is [k, n] (bounds the scratch
/// a dequantizing source needs to 16 x NC floats).
const K_ROWS: usize = 16;

/// Pack the B block `blk` of op(B) from `src` into `dst` (`blk.floats()` floats).
pub fn pack_b(isa: Isa, src: &dyn BSource, trans_b: bool, blk: BBlock, dst: &mut [f32], scratch: &mut AlignedBuf) {
    let dst = &mut dst[..blk.floats()];
    if trans_b { pack_b_trans(isa, src, blk, dst, scratch) } else { pack_b_plain(isa, src, blk, dst, scratch) }
}

/// S is [k, n]: a k step of a panel is a contiguous run of one row of S.
fn pack_b_plain(isa: Isa, src: &dyn BSource, blk: BBlock, dst: &mut [f32], scratch: &mut AlignedBuf) {
    let BBlock { pc, kc, j0, tn, nr } = blk;
    for g in (0..kc).step_by(K_ROWS) {
        let rows = K_ROWS.min(kc - g);
        let view = src.block(isa, pc + g, rows, j0, tn, scratch);
        for r in 0..rows {
            let row = view.row(r, tn);
            for (p, part) in row.chunks(nr).enumerate() {
                let d = &mut dst[(p * kc + g + r) * nr..][..nr];
                d[..part.len()].copy_from_slice(part);
                d[part.len()..].fill(0.0);
            }
        }
    }
}

/// S is [n, k]: a panel is nr rows of S, transposed (reads run along rows of S).
fn pack_b_trans(isa: Isa, src: &dyn BSource, blk: BBlock, dst: &mut [f32], scratch: &mut AlignedBuf) {
    let BBlock { pc, kc, j0, tn, nr } = blk;
    for (p, panel) in dst.chunks_exact_mut(kc * nr).enumerate() {
        let cols = nr.min(tn - p * nr);
        let view = src.block(isa, j0 + p * nr, cols, pc, kc, scratch);
        let rows = &view.data[..(cols - 1) * view.stride + kc]; // bounds-checks the block once
        #[cfg(target_arch = "x86_64")]
        if isa.level() >= Level::Avx2 && nr % 8 == 0 {
            // SAFETY: AVX2 is available (the Isa proves it); `rows` covers the `cols`
            // rows of kc floats read, and `panel` has kc*nr floats.
            unsafe { pack_x86::pack_panel_trans_avx2(rows.as_ptr(), view.stride, cols, kc, nr, panel.as_mut_ptr()) };
            continue;
        }
        for jj in 0..nr {
            for kk in 0..kc {
                panel[kk * nr + jj] = if jj < cols { rows[jj * view.stride + kk] } else { 0.0 };
            }
        }
    }
}
