//! Blockwise 8-bit quantization against a caller-given code (bitsandbytes
//! `quantize_blockwise` / `dequantize_blockwise`; with bnb's dynamic map as the
//! code this is the double quantization of 4-bit absmax, blocksize 256).
//!
//! Shapes: x (n,), code (256,) sorted ascending, codes (n,), absmax (ceil(n/bs),).
//!   s = x * (1 / absmax[b]); m_k = (C[k] + C[k+1]) * 0.5 (f32), k = 0..254
//!   q = number of k with s > m_k (on a midpoint -> lower index; NaN -> 0)
//!   out = C[q] * absmax[b]
//! `q` is found with an 8-step branchless binary search over the midpoints (valid
//! because they are sorted); every level runs the same search, so results match.

#[cfg(target_arch = "x86_64")]
mod x86;

use super::absmax::absmax_scalar;
use super::{check_blocksize, check_len};
use crate::error::{Error, Result};
use crate::pool;
use crate::simd::{Isa, Level};

/// The 255 midpoints of a validated code, padded to 256 with +inf (never read).
pub struct Midpoints(pub [f32; 256]);

impl Midpoints {
    /// Checks `code` (256 finite values, ascending) and computes its midpoints.
    pub fn new(code: &[f32]) -> Result<Midpoints> {
        check_len("code", code.len(), 256, "a 256-entry code")?;
        let sorted = code.windows(2).all(|w| w[0] <= w[1]);
        if !sorted || !code.iter().all(|c| c.is_finite()) {
            return Err(Error::invalid("code", "must be 256 finite values sorted ascending"));
        }
        let mut m = [f32::INFINITY; 256];
        for k in 0..255 {
            m[k] = (code[k] + code[k + 1]) * 0.5;
        }
        Ok(Midpoints(m))
    }

    /// Number of midpoints below `s`.
    #[inline]
    pub fn index(&self, s: f32) -> u8 {
        let mut pos = 0usize;
        for step in [128, 64, 32, 16, 8, 4, 2, 1] {
            if s > self.0[pos + step - 1] {
                pos += step;
            }
        }
        pos as u8
    }
}

/// Scalar reference for whole blocks starting at a block boundary (also the SIMD tails).
pub fn quantize_blocks_scalar(x: &[f32], mids: &Midpoints, bs: usize, codes: &mut [u8], absmax: &mut [f32]) {
    for ((xb, qb), am) in x.chunks(bs).zip(codes.chunks_mut(bs)).zip(absmax.iter_mut()) {
        *am = absmax_scalar(xb);
        quantize_run_scalar(xb, 1.0 / *am, mids, qb);
    }
}

fn quantize_run_scalar(x: &[f32], inv: f32, mids: &Midpoints, codes: &mut [u8]) {
    x.iter().zip(codes).for_each(|(&v, q)| *q = mids.index(v * inv));
}

pub fn dequantize_blocks_scalar(codes: &[u8], absmax: &[f32], code: &[f32], bs: usize, out: &mut [f32]) {
    for ((ob, qb), &am) in out.chunks_mut(bs).zip(codes.chunks(bs)).zip(absmax) {
        ob.iter_mut().zip(qb).for_each(|(o, &q)| *o = code[q as usize] * am);
    }
}

/// Quantize `x` (n,) into `out_codes` (n,) and `out_absmax` (ceil(n/bs),).
pub fn quantize_blockwise8(
    isa: Isa,
    x: &[f32],
    code: &[f32],
    blocksize: usize,
    out_codes: &mut [u8],
    out_absmax: &mut [f32],
) -> Result<()> {
    let mids = Midpoints::new(code)?;
    check_blocksize(blocksize)?;
    let n = x.len();
    check_len("outCodes", out_codes.len(), n, "x.length")?;
    check_len("outAbsmax", out_absmax.len(), n.div_ceil(blocksize), "ceil(x.length / blocksize)")?;
    let bpc = pool::units_per_chunk(n, blocksize);
    let parts: Vec<_> =
        x.chunks(bpc * blocksize).zip(out_codes.chunks_mut(bpc * blocksize)).zip(out_absmax.chunks_mut(bpc)).collect();
    pool::for_each_part(parts, |_, ((x, q), a)| match isa.level() {
        // SAFETY (x86 arms): an `Isa` of this level exists only if the CPU supports it.
        #[cfg(target_arch = "x86_64")]
        Level::Avx512 => unsafe { x86::quantize_blocks_avx512(x, &mids, blocksize, q, a) },
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 => unsafe { x86::quantize_blocks_avx2(x, &mids, blocksize, q, a) },
        _ => quantize_blocks_scalar(x, &mids, blocksize, q, a),
    });
    Ok(())
}

/// Dequantize into `out` (n,) from `codes` (n,) and `absmax` (ceil(n/bs),).
pub fn dequantize_blockwise8(
    isa: Isa,
    codes: &[u8],
    absmax: &[f32],
    code: &[f32],
    blocksize: usize,
    out: &mut [f32],
) -> Result<()> {
    check_len("code", code.len(), 256, "a 256-entry code")?;
    check_blocksize(blocksize)?;
    let n = out.len();
    check_len("codes", codes.len(), n, "out.length")?;
    check_len("absmax", absmax.len(), n.div_ceil(blocksize), "ceil(out.length / blocksize)")?;
    let bpc = pool::units_per_chunk(n, blocksize);
    let parts: Vec<_> =
        out.chunks_mut(bpc * blocksize).zip(codes.chunks(bpc * blocksize)).zip(absmax.chunks(bpc)).collect();
    pool::for_each_part(parts, |_, ((o, q), a)| match isa.level() {
        // SAFETY (x86 arms): as above; `code` has 256 entries, checked above.
        #[cfg(target_arch = "x86_64")]
        Level::Avx512 => unsafe { x86::dequantize_blocks_avx512(q, a, code, blocksize, o) },
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 => unsafe { x86::dequantize_blocks_avx2(q, a, code, blocksize, o) },
        _ => dequantize_blocks_scalar(q, a, code, blocksize, o),
    });
    Ok(())
}

#[cfg(test)]
mod tests;
