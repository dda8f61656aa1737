//! Cross-entropy over one chunk of logit rows, fused with its gradient: the caller
//! makes the chunk with a GEMM and never holds all N x V logits (llm.c's fused
//! classifier idea, chunked).
//!
//! Shapes: logits (n, V) in, gradient out (in place); loss (n,); targets (n,).
//!   e_j = exp(x_j - max), lse = max + ln sum_j e_j   (max subtracted: no overflow)
//!   loss[i] = lse - x[target]
//!   logits[i, :] = gradScale * (softmax - onehot(target)), softmax = e / sum_j e_j
//! A row whose target == ignoreIndex gets loss 0 and an all-zero gradient.
//! Rows are split over the pool; each row is computed by one thread, so the result
//! does not depend on the thread count.

use super::lanes::{exp, max_of, simd_kernel};
use super::{check_len, elems};
use crate::error::{Error, Result};
use crate::pool;
use crate::simd::Isa;

simd_kernel! {
    /// Whole rows: logits (rows, V) in/out, loss and targets (rows,).
    fn rows_kernel<V>(v, loss: &mut [f32], logits: &mut [f32], targets: &[i32], vocab: usize, ignore: i64, scale: f32) {
        let w = V::W;
        for ((l, row), &t) in loss.iter_mut().zip(logits.chunks_mut(vocab)).zip(targets) {
            if t as i64 == ignore {
                *l = 0.0;
                row.fill(0.0);
                continue;
            }
            let max = max_of(v, row);
            *l = -row[t as usize]; // read before the row is overwritten
            // e = exp(x - max) is written over the row (it stays in L2), so each
            // element needs one exp: the gradient is then scale * e / sum.
            let vmax = v.splat(max);
            let mut acc = [v.splat(0.0); 2]; // two chains: exp's latency is long
            for (i, x) in row.chunks_mut(w).enumerate() {
                // Padding lanes of a partial vector are -inf, whose exp is 0.
                let e = exp(v, v.sub(v.get(x, f32::NEG_INFINITY), vmax));
                v.put(x, e);
                acc[i & 1] = v.add(acc[i & 1], e);
            }
            let sum = v.sum(v.add(acc[0], acc[1]));
            *l += max + sum.ln();
            let k = v.splat(scale / sum);
            for x in row.chunks_mut(w) {
                v.put(x, v.mul(v.get(x, 0.0), k));
            }
            row[t as usize] -= scale;
        }
    }
}

/// loss (n,) and the in-place gradient of logits (n, V), for targets (n,).
pub fn cross_entropy_rows(
    isa: Isa,
    loss: &mut [f32],
    logits: &mut [f32],
    targets: &[i32],
    n: usize,
    vocab: usize,
    ignore_index: i64,
    grad_scale: f32,
) -> Result<()> {
    let nv = elems("n", &[n, vocab])?;
    check_len("loss", loss.len(), n, "n")?;
    check_len("logits", logits.len(), nv, "n * V")?;
    check_len("targets", targets.len(), n, "n")?;
    let bad = |t: i32| t as i64 != ignore_index && (t < 0 || t as usize >= vocab);
    if let Some((i, t)) = targets.iter().enumerate().find(|&(_, &t)| bad(t)) {
        let last = vocab as i64 - 1;
        return Err(Error::invalid(
            "targets",
            format!("targets[{i}] = {t} is outside 0..{last} and not {ignore_index}"),
        ));
    }
    if vocab == 0 {
        loss.fill(0.0); // every row is ignored (no valid target exists)
        return Ok(());
    }
    let rows = pool::units_per_chunk(nv, vocab);
    let parts: Vec<_> = loss.chunks_mut(rows).zip(logits.chunks_mut(rows * vocab)).zip(targets.chunks(rows)).collect();
    pool::for_each_part(parts, |_, ((l, x), t)| rows_kernel(isa, l, x, t, vocab, ignore_index, grad_scale));
    Ok(())
}

#[cfg(test)]
mod tests;
