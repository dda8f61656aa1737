//! Blockwise 4-bit quantization, NF4 and FP4 (bitsandbytes `quantize_4bit` /
//! `dequantize_4bit`), bit-exact with bnb's CUDA kernels.
//!
//! Per block b (shapes: x (n,), packed (ceil(n/2),), absmax (ceil(n/bs),)):
//!   absmax[b] = max |x| over the block;  s = x * (1 / absmax[b])  (one f32 multiply)
//!   code = NF4 or FP4 decision on s;     packed byte j = code[2j] << 4 | code[2j+1]
//! An all-zero block gives s = 0 * inf = NaN, and NaN maps to code 0 (as in bnb).
//! Dequantization: out[i] = TABLE[code_i] * absmax[i / bs].
//!
//! This file holds the constants, the scalar reference and the threaded driver;
//! `four_bit/x86.rs` holds AVX2 / AVX-512 versions of the per-chunk loops.

#[cfg(target_arch = "x86_64")]
mod x86;

use super::absmax::absmax_scalar;
use super::{check_blocksize, check_len};
use crate::error::{Error, Result};
use crate::pool;
use crate::simd::{Isa, Level};

/// Which 4-bit data type (the JS `type` argument).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FourBit {
    Nf4 = 0,
    Fp4 = 1,
}

impl FourBit {
    pub fn from_js(v: u32) -> Result<FourBit> {
        match v {
            0 => Ok(FourBit::Nf4),
            1 => Ok(FourBit::Fp4),
            _ => Err(Error::invalid("type", format!("must be 0 (nf4) or 1 (fp4), got {v}"))),
        }
    }

    pub fn table(self) -> &'static [f32; 16] {
        match self {
            FourBit::Nf4 => &NF4_TABLE,
            FourBit::Fp4 => &FP4_TABLE,
        }
    }
}

/// Decision thresholds of bnb csrc/kernels.cu `dQuantizeNF4` (its if-tree, flattened):
/// code = number of thresholds t with s > t. Midpoints of `NF4_TABLE`.
pub const NF4_THRESHOLDS: [f32; 15] = [
    -0.8480964004993439,
    -0.6106329262256622,
    -0.4599952697753906,
    -0.33967943489551544,
    -0.23460740596055984,
    -0.13791173323988914,
    -0.045525018125772476,
    0.03979014977812767,
    0.1202552504837513,
    0.2035212516784668,
    0.2920137718319893,
    0.3893125355243683,
    0.5016634166240692,
    0.6427869200706482,
    0.8614784181118011,
];

/// NF4 values (bnb csrc/kernels.cu `nf4_data`, functional.py `get_4bit_type("nf4")`).
pub const NF4_TABLE: [f32; 16] = [
    -1.0,
    -0.6961928009986877,
    -0.5250730514526367,
    -0.39491748809814453,
    -0.28444138169288635,
    -0.18477343022823334,
    -0.09105003625154495,
    0.0,
    0.07958029955625534,
    0.16093020141124725,
    0.24611230194568634,
    0.33791524171829224,
    0.44070982933044434,
    0.5626170039176941,
    0.7229568362236023,
    1.0,
];

/// Magnitude thresholds of bnb `dQuantizeFP4` (applied to |s|).
pub const FP4_THRESHOLDS: [f32; 7] = [0.00260417, 0.0859375, 0.20833333, 0.29166667, 0.4166667, 0.583333, 0.8333333];

/// Magnitude bits by threshold count (`dQuantizeFP4`'s leaves, in increasing order).
pub const FP4_BITS: [u8; 8] = [0b000, 0b001, 0b110, 0b111, 0b100, 0b101, 0b010, 0b011];

const FP4_RAW: [f32; 16] =
    [0.0, 0.0625, 8.0, 12.0, 4.0, 6.0, 2.0, 3.0, -0.0, -0.0625, -8.0, -12.0, -4.0, -6.0, -2.0, -3.0];

/// FP4 values: bnb's e2m1 table (`dDequantizeFP4Tree`) divided by 12 so the max is 1.
pub const FP4_TABLE: [f32; 16] = {
    let mut t = [0.0f32; 16];
    let mut i = 0;
    while i < 16 {
        t[i] = FP4_RAW[i] / 12.0; // one IEEE f32 division, evaluated at compile time
        i += 1;
    }
    t
};

/// NF4 code of a scaled value (NaN -> 0).
#[inline]
pub fn nf4_code(s: f32) -> u8 {
    NF4_THRESHOLDS.iter().filter(|&&t| s > t).count() as u8
}

/// FP4 code of a scaled value: sign bit 8 only for s < 0 (so -0.0 and NaN get 0).
#[inline]
pub fn fp4_code(s: f32) -> u8 {
    let sign = if s < 0.0 { 8 } else { 0 };
    let a = s.abs();
    let c = FP4_THRESHOLDS.iter().filter(|&&t| a > t).count();
    sign | FP4_BITS[c]
}

#[inline]
fn code(ty: FourBit, s: f32) -> u8 {
    match ty {
        FourBit::Nf4 => nf4_code(s),
        FourBit::Fp4 => fp4_code(s),
    }
}

/// Pack `ceil(x.len()/2)` bytes of codes of `x * inv` (scalar; also the SIMD tails).
fn pack_scalar(x: &[f32], inv: f32, ty: FourBit, packed: &mut [u8]) {
    for (pair, byte) in x.chunks(2).zip(packed.iter_mut()) {
        let hi = code(ty, pair[0] * inv);
        let lo = pair.get(1).map_or(0, |&v| code(ty, v * inv));
        *byte = hi << 4 | lo;
    }
}

/// Scalar reference for whole blocks starting at a block boundary.
pub fn quantize_blocks_scalar(x: &[f32], bs: usize, ty: FourBit, packed: &mut [u8], absmax: &mut [f32]) {
    for ((xb, pb), am) in x.chunks(bs).zip(packed.chunks_mut(bs / 2)).zip(absmax.iter_mut()) {
        *am = absmax_scalar(xb);
        pack_scalar(xb, 1.0 / *am, ty, pb);
    }
}

/// Scalar reference for dequantizing whole blocks starting at a block boundary.
pub fn dequantize_blocks_scalar(packed: &[u8], absmax: &[f32], bs: usize, ty: FourBit, out: &mut [f32]) {
    let table = ty.table();
    for ((ob, pb), &am) in out.chunks_mut(bs).zip(packed.chunks(bs / 2)).zip(absmax) {
        for (j, o) in ob.iter_mut().enumerate() {
            let byte = pb[j / 2];
            let c = if j % 2 == 0 { byte >> 4 } else { byte & 0xF };
            *o = table[c as usize] * am;
        }
    }
}

fn quantize_blocks(isa: Isa, x: &[f32], bs: usize, ty: FourBit, packed: &mut [u8], absmax: &mut [f32]) {
    match isa.level() {
        // SAFETY (x86 arms): an `Isa` of this level exists only if the CPU supports it.
        #[cfg(target_arch = "x86_64")]
        Level::Avx512 => unsafe { x86::quantize_blocks_avx512(x, bs, ty, packed, absmax) },
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 => unsafe { x86::quantize_blocks_avx2(x, bs, ty, packed, absmax) },
        _ => quantize_blocks_scalar(x, bs, ty, packed, absmax),
    }
}

/// Dequantize `out` as consecutive blocks of `bs` (the last may be partial) using
/// `absmax[i]` for block i; `packed` starts at `out`'s first element, which must be
/// a byte boundary (an even element index). Also used by the fused GEMM packing
/// (`gemm/source.rs`) on pieces of a weight, with no allocation or validation.
pub(crate) fn dequantize_blocks(isa: Isa, packed: &[u8], absmax: &[f32], bs: usize, ty: FourBit, out: &mut [f32]) {
    match isa.level() {
        // SAFETY (x86 arms): as in `quantize_blocks`.
        #[cfg(target_arch = "x86_64")]
        Level::Avx512 => unsafe { x86::dequantize_blocks_avx512(packed, absmax, bs, ty, out) },
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 => unsafe { x86::dequantize_blocks_avx2(packed, absmax, bs, ty, out) },
        _ => dequantize_blocks_scalar(packed, absmax, bs, ty, out),
    }
}

/// Quantize `x` (n,) into `out_packed` (ceil(n/2),) and `out_absmax` (ceil(n/bs),).
pub fn quantize_4bit(
    isa: Isa,
    x: &[f32],
    blocksize: usize,
    ty: FourBit,
    out_packed: &mut [u8],
    out_absmax: &mut [f32],
) -> Result<()> {
    check_blocksize(blocksize)?;
    let n = x.len();
    check_len("outPacked", out_packed.len(), n.div_ceil(2), "ceil(x.length / 2)")?;
    check_len("outAbsmax", out_absmax.len(), n.div_ceil(blocksize), "ceil(x.length / blocksize)")?;
    let bpc = pool::units_per_chunk(n, blocksize); // blocks per chunk
    let parts: Vec<_> = x
        .chunks(bpc * blocksize)
        .zip(out_packed.chunks_mut(bpc * blocksize / 2))
        .zip(out_absmax.chunks_mut(bpc))
        .collect();
    pool::for_each_part(parts, |_, ((x, p), a)| quantize_blocks(isa, x, blocksize, ty, p, a));
    Ok(())
}

/// Dequantize into `out` (n,) from `packed` (ceil(n/2),) and `absmax` (ceil(n/bs),).
pub fn dequantize_4bit(
    isa: Isa,
    packed: &[u8],
    absmax: &[f32],
    blocksize: usize,
    ty: FourBit,
    out: &mut [f32],
) -> Result<()> {
    check_blocksize(blocksize)?;
    let n = out.len();
    check_len("packed", packed.len(), n.div_ceil(2), "ceil(out.length / 2)")?;
    check_len("absmax", absmax.len(), n.div_ceil(blocksize), "ceil(out.length / blocksize)")?;
    let bpc = pool::units_per_chunk(n, blocksize);
    let parts: Vec<_> =
        out.chunks_mut(bpc * blocksize).zip(packed.chunks(bpc * blocksize / 2)).zip(absmax.chunks(bpc)).collect();
    pool::for_each_part(parts, |_, ((o, p), a)| dequantize_blocks(isa, p, a, blocksize, ty, o));
    Ok(())
}

#[cfg(test)]
mod tests;
