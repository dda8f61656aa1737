//! Row-wise absmax int8 (bitsandbytes `int8_vectorwise_quant` /
//! `int8_vectorwise_dequant`, the LLM.int8() weight format: CB + SCB).
//!
//! Shapes: w (rows, cols), cb (rows, cols) int8, scb (rows,).
//!   scb[r] = max |w[r, :]|;  f = 127 / scb[r] (f32 division)
//!   cb = round_half_to_even(w * f), NaN -> 0, clamped to [-127, 127]
//!   (an all-zero row gives 0 * inf = NaN -> 0; the clamp only matters for
//!   infinities, e.g. a row whose absmax is so small that f overflows)
//!   out = (cb as f32) * scb[r] * (1/127), left to right in f32; 1/127 is bnb's
//!   constant 7.874015718698502e-3.

#[cfg(target_arch = "x86_64")]
mod x86;

use super::absmax::absmax_scalar;
use super::check_len;
use crate::error::{Error, Result};
use crate::pool;
use crate::simd::{Isa, Level};

/// bnb `int8_vectorwise_dequant`'s 1/127.
pub const INV_127: f32 = 7.874015718698502e-3;

/// One element's int8 code from its scaled value.
#[inline]
pub fn round_i8(v: f32) -> i8 {
    if v.is_nan() { 0 } else { v.round_ties_even().clamp(-127.0, 127.0) as i8 }
}

/// Scalar reference over whole rows (also the SIMD tails, via `quantize_run_scalar`).
pub fn quantize_rows_scalar(w: &[f32], cols: usize, cb: &mut [i8], scb: &mut [f32]) {
    for ((wr, cr), s) in w.chunks(cols).zip(cb.chunks_mut(cols)).zip(scb.iter_mut()) {
        *s = absmax_scalar(wr);
        quantize_run_scalar(wr, 127.0 / *s, cr);
    }
}

fn quantize_run_scalar(w: &[f32], f: f32, cb: &mut [i8]) {
    w.iter().zip(cb).for_each(|(&v, c)| *c = round_i8(v * f));
}

pub fn dequantize_rows_scalar(cb: &[i8], scb: &[f32], cols: usize, out: &mut [f32]) {
    for ((or, cr), &s) in out.chunks_mut(cols).zip(cb.chunks(cols)).zip(scb) {
        dequantize_run_scalar(cr, s, or);
    }
}

fn dequantize_run_scalar(cb: &[i8], s: f32, out: &mut [f32]) {
    cb.iter().zip(out).for_each(|(&c, o)| *o = c as f32 * s * INV_127);
}

/// `rows * cols`, or EINVAL if it overflows.
fn elems(rows: usize, cols: usize) -> Result<usize> {
    rows.checked_mul(cols).ok_or_else(|| Error::invalid("rows", format!("rows * cols overflows ({rows} * {cols})")))
}

/// Quantize `w` (rows, cols) into `out_cb` (rows, cols) and `out_scb` (rows,).
pub fn quantize_int8_rows(
    isa: Isa,
    w: &[f32],
    rows: usize,
    cols: usize,
    out_cb: &mut [i8],
    out_scb: &mut [f32],
) -> Result<()> {
    let n = elems(rows, cols)?;
    check_len("w", w.len(), n, "rows * cols")?;
    check_len("outCb", out_cb.len(), n, "rows * cols")?;
    check_len("outScb", out_scb.len(), rows, "rows")?;
    if cols == 0 {
        out_scb.fill(0.0); // max over an empty row
        return Ok(());
    }
    let rpc = pool::units_per_chunk(n, cols); // rows per chunk
    let parts: Vec<_> = w.chunks(rpc * cols).zip(out_cb.chunks_mut(rpc * cols)).zip(out_scb.chunks_mut(rpc)).collect();
    pool::for_each_part(parts, |_, ((w, c), s)| match isa.level() {
        // SAFETY (x86 arms): an `Isa` of this level exists only if the CPU supports it.
        #[cfg(target_arch = "x86_64")]
        Level::Avx512 => unsafe { x86::quantize_rows_avx512(w, cols, c, s) },
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 => unsafe { x86::quantize_rows_avx2(w, cols, c, s) },
        _ => quantize_rows_scalar(w, cols, c, s),
    });
    Ok(())
}

/// Dequantize `cb` (rows, cols) with `scb` (rows,) into `out` (rows, cols).
pub fn dequantize_int8_rows(isa: Isa, cb: &[i8], scb: &[f32], rows: usize, cols: usize, out: &mut [f32]) -> Result<()> {
    let n = elems(rows, cols)?;
    check_len("cb", cb.len(), n, "rows * cols")?;
    check_len("scb", scb.len(), rows, "rows")?;
    check_len("out", out.len(), n, "rows * cols")?;
    if cols == 0 {
        return Ok(());
    }
    let rpc = pool::units_per_chunk(n, cols);
    let parts: Vec<_> = out.chunks_mut(rpc * cols).zip(cb.chunks(rpc * cols)).zip(scb.chunks(rpc)).collect();
    pool::for_each_part(parts, |_, ((o, c), s)| match isa.level() {
        // SAFETY (x86 arms): as above.
        #[cfg(target_arch = "x86_64")]
        Level::Avx512 => unsafe { x86::dequantize_rows_avx512(c, s, cols, o) },
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 => unsafe { x86::dequantize_rows_avx2(c, s, cols, o) },
        _ => dequantize_rows_scalar(c, s, cols, o),
    });
    Ok(())
}

#[cfg(test)]
mod tests;
