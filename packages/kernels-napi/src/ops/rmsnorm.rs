//! RMSNorm as HF LlamaRMSNorm computes it in f32 (https://arxiv.org/abs/1910.07467).
//!
//! Shapes: x, out, dout, dx (N, C); weight, dweight (C,); rstd (N,).
//!   forward:  rstd[i] = 1 / sqrt(sum_j x[i,j]^2 / C + eps);  out = (x * rstd) * weight
//!   backward: with g_j = weight_j * dout_j and k = rstd^3 / C * sum_j g_j x_j,
//!             dx = rstd * g - k * x                    (overwritten)
//!             dweight += sum_i dout[i,:] * x[i,:] * rstd[i]   (accumulated)
//! Rows are split over the pool; dweight is summed per chunk of rows, then the
//! chunk sums are added in chunk order, so the result is the same for any thread count.

use super::lanes::{dot, simd_kernel};
use super::{check_len, elems};
use crate::error::Result;
use crate::pool;
use crate::simd::Isa;

simd_kernel! {
    /// Whole rows of the forward pass: x, out (rows, C), rstd (rows,).
    fn forward_rows<V>(v, out: &mut [f32], rstd: &mut [f32], x: &[f32], weight: &[f32], c: usize, eps: f32) {
        for ((o, r), x) in out.chunks_mut(c).zip(rstd.iter_mut()).zip(x.chunks(c)) {
            *r = 1.0 / (dot(v, x, x) / c as f32 + eps).sqrt();
            let vr = v.splat(*r);
            for ((o, x), w) in o.chunks_mut(V::W).zip(x.chunks(V::W)).zip(weight.chunks(V::W)) {
                v.put(o, v.mul(v.mul(v.get(x, 0.0), vr), v.get(w, 0.0)));
            }
        }
    }
}

/// out (N, C), rstd (N,) from x (N, C) and weight (C,).
pub fn rmsnorm_forward(
    isa: Isa,
    out: &mut [f32],
    rstd: &mut [f32],
    x: &[f32],
    weight: &[f32],
    n: usize,
    c: usize,
    eps: f32,
) -> Result<()> {
    let nc = elems("N", &[n, c])?;
    check_len("out", out.len(), nc, "N * C")?;
    check_len("rstd", rstd.len(), n, "N")?;
    check_len("x", x.len(), nc, "N * C")?;
    check_len("weight", weight.len(), c, "C")?;
    if c == 0 {
        rstd.fill(f32::NAN); // the mean of no squares is 0 / 0, as the TS reference computes it
        return Ok(());
    }
    let rows = pool::units_per_chunk(nc, c);
    let parts: Vec<_> = out.chunks_mut(rows * c).zip(rstd.chunks_mut(rows)).zip(x.chunks(rows * c)).collect();
    pool::for_each_part(parts, |_, ((o, r), x)| forward_rows(isa, o, r, x, weight, c, eps));
    Ok(())
}

simd_kernel! {
    /// Whole rows of the backward pass; `dw` (C,) receives these rows' dweight sum.
    fn backward_rows<V>(v, dx: &mut [f32], dw: &mut [f32], dout: &[f32], x: &[f32], weight: &[f32],
                        rstd: &[f32], c: usize) {
        let w = V::W;
        let rows = dx.chunks_mut(c).zip(dout.chunks(c)).zip(x.chunks(c)).zip(rstd);
        for (((dx, dout), x), &r) in rows {
            let mut acc = v.splat(0.0);
            for ((d, x), wt) in dout.chunks(w).zip(x.chunks(w)).zip(weight.chunks(w)) {
                acc = v.fma(v.mul(v.get(wt, 0.0), v.get(d, 0.0)), v.get(x, 0.0), acc);
            }
            let k = v.splat(r * r * r * v.sum(acc) / c as f32);
            let vr = v.splat(r);
            let cols = dx.chunks_mut(w).zip(dw.chunks_mut(w)).zip(dout.chunks(w)).zip(x.chunks(w));
            for ((((dx, dw), d), x), wt) in cols.zip(weight.chunks(w)) {
                let (d, x) = (v.get(d, 0.0), v.get(x, 0.0));
                let g = v.mul(v.get(wt, 0.0), d);
                v.put(dx, v.sub(v.mul(vr, g), v.mul(k, x)));
                v.put(dw, v.fma(v.mul(d, x), vr, v.get(dw, 0.0)));
            }
        }
    }
}

/// dx (N, C) overwritten and dweight (C,) += from dout, x (N, C), weight (C,), rstd (N,).
pub fn rmsnorm_backward(
    isa: Isa,
    dx: &mut [f32],
    dweight: &mut [f32],
    dout: &[f32],
    x: &[f32],
    weight: &[f32],
    rstd: &[f32],
    n: usize,
    c: usize,
) -> Result<()> {
    let nc = elems("N", &[n, c])?;
    check_len("dx", dx.len(), nc, "N * C")?;
    check_len("dweight", dweight.len(), c, "C")?;
    check_len("dout", dout.len(), nc, "N * C")?;
    check_len("x", x.len(), nc, "N * C")?;
    check_len("weight", weight.len(), c, "C")?;
    check_len("rstd", rstd.len(), n, "N")?;
    if c == 0 || n == 0 {
        return Ok(());
    }
    let rows = pool::units_per_chunk(nc, c);
    let mut partial = vec![0.0f32; n.div_ceil(rows) * c]; // one dweight sum per chunk of rows
    let ins = dout.chunks(rows * c).zip(x.chunks(rows * c)).zip(rstd.chunks(rows));
    let parts: Vec<_> = dx.chunks_mut(rows * c).zip(partial.chunks_mut(c)).zip(ins).collect();
    pool::for_each_part(parts, |_, ((dx, dw), ((d, x), r))| backward_rows(isa, dx, dw, d, x, weight, r, c));
    for p in partial.chunks(c) {
        dweight.iter_mut().zip(p).for_each(|(a, b)| *a += b);
    }
    Ok(())
}

#[cfg(test)]
mod tests;
