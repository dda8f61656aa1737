//! Where GEMM's B operand comes from: the stored matrix S, row-major, with
//! B = S (S is [k, n]) or B = S^T (transB: S is [n, k]).
//!
//! The packing step (`pack.rs`) asks a source for small blocks of S, a few rows
//! by at most a k-block or a B block's columns, and copies them into the packed panel. An f32
//! source lends its memory; a quantized source dequantizes exactly that block
//! into scratch with the quantizer's own code, so a 4-bit weight is never
//! expanded whole and its values are bit-identical to the standalone dequantizer
//! (every rule is one table lookup and/or f32 multiplies, the same in every
//! SIMD version).

use crate::convert::bf16_to_f32_scalar;
use crate::memory::AlignedBuf;
use crate::quant::four_bit::{self, FourBit};
use crate::quant::int8_rows::dequantize_rows_scalar;
use crate::simd::Isa;

/// A block of S: element (r, c) of the block is `data[r * stride + c]`.
pub struct View<'a> {
    pub data: &'a [f32],
    pub stride: usize,
}

impl View<'_> {
    /// Row `r` of the block, `len` long.
    #[inline]
    pub fn row(&self, r: usize, len: usize) -> &[f32] {
        &self.data[r * self.stride..][..len]
    }
}

pub trait BSource: Sync {
    /// S[r0 .. r0+rows, c0 .. c0+cols] as f32. Only in-bounds blocks are asked for.
    fn block<'a>(&'a self, isa: Isa, r0: usize, rows: usize, c0: usize, cols: usize, s: &'a mut AlignedBuf)
    -> View<'a>;

    /// All of S, if it is plain f32 memory that the microkernel may read directly.
    fn in_place(&self) -> Option<View<'_>> {
        None
    }
}

/// Plain f32 storage with `cols` columns.
pub struct F32Source<'a> {
    pub data: &'a [f32],
    pub cols: usize,
}

impl BSource for F32Source<'_> {
    fn block<'a>(&'a self, _: Isa, r0: usize, _: usize, c0: usize, _: usize, _: &'a mut AlignedBuf) -> View<'a> {
        View { data: &self.data[r0 * self.cols + c0..], stride: self.cols }
    }

    fn in_place(&self) -> Option<View<'_>> {
        Some(View { data: self.data, stride: self.cols })
    }
}

/// Fill `scratch` with a `rows x cols` block, row by row, from a dequantizer of
/// flat element ranges of S (`fill(start, out)` writes S.flat[start .. start+out.len()]).
fn gather<'a>(
    s_cols: usize,
    (r0, rows, c0, cols): (usize, usize, usize, usize),
    scratch: &'a mut AlignedBuf,
    mut fill: impl FnMut(usize, &mut [f32]),
) -> View<'a> {
    let buf = scratch.get(rows * cols);
    for (r, out) in buf.chunks_exact_mut(cols.max(1)).enumerate().take(rows) {
        fill((r0 + r) * s_cols + c0, out);
    }
    View { data: buf, stride: cols }
}

/// A bitsandbytes 4-bit weight (as `four_bit::dequantize_4bit` reads it).
pub struct Quant4Source<'a> {
    pub packed: &'a [u8],
    pub absmax: &'a [f32],
    pub blocksize: usize,
    pub ty: FourBit,
    pub cols: usize,
}

impl Quant4Source<'_> {
    /// S.flat[start .. start+out.len()]: an odd first element alone (it is the low
    /// nibble of its byte), then pieces that start on a byte boundary and run to the
    /// end of their quantization block (or of the range), each dequantized by the
    /// quantizer's own block loop with that block's absmax.
    pub(super) fn range(&self, isa: Isa, start: usize, out: &mut [f32]) {
        let bs = self.blocksize;
        let (mut i, end) = (start, start + out.len());
        let mut o = 0;
        if i % 2 == 1 && i < end {
            out[0] = self.ty.table()[(self.packed[i / 2] & 0xF) as usize] * self.absmax[i / bs];
            (i, o) = (i + 1, 1);
        }
        while i < end {
            // From a block boundary one call covers the rest (blocks line up with `out`).
            let stop = if i % bs == 0 { end } else { end.min((i / bs + 1) * bs) };
            let len = stop - i;
            let packed = &self.packed[i / 2..][..len.div_ceil(2)];
            let absmax = &self.absmax[i / bs..][..len.div_ceil(bs)];
            four_bit::dequantize_blocks(isa, packed, absmax, bs, self.ty, &mut out[o..o + len]);
            (i, o) = (stop, o + len);
        }
    }
}

impl BSource for Quant4Source<'_> {
    fn block<'a>(&'a self, isa: Isa, r0: usize, rows: usize, c0: usize, cols: usize, s: &'a mut AlignedBuf) -> View<'a> {
        gather(self.cols, (r0, rows, c0, cols), s, |start, out| self.range(isa, start, out))
    }
}

/// An LLM.int8 weight: `cb` (rows, cols) int8 and `scb` (rows,), as `int8_rows` reads it.
pub struct Int8Source<'a> {
    pub cb: &'a [i8],
    pub scb: &'a [f32],
    pub cols: usize,
}

impl BSource for Int8Source<'_> {
    fn block<'a>(&'a self, _: Isa, r0: usize, rows: usize, c0: usize, cols: usize, s: &'a mut AlignedBuf) -> View<'a> {
        gather(self.cols, (r0, rows, c0, cols), s, |start, out| {
            let r = start / self.cols; // a block row never crosses a row of S
            dequantize_rows_scalar(&self.cb[start..][..out.len()], &self.scb[r..=r], out.len(), out);
        })
    }
}

/// A bf16 weight (raw bits), widened exactly.
pub struct Bf16Source<'a> {
    pub w: &'a [u16],
    pub cols: usize,
}

impl BSource for Bf16Source<'_> {
    fn block<'a>(&'a self, _: Isa, r0: usize, rows: usize, c0: usize, cols: usize, s: &'a mut AlignedBuf) -> View<'a> {
        gather(self.cols, (r0, rows, c0, cols), s, |start, out| {
            out.iter_mut().zip(&self.w[start..]).for_each(|(o, &h)| *o = bf16_to_f32_scalar(h));
        })
    }
}
