//! SwiGLU, the Llama MLP's gate (https://arxiv.org/abs/2002.05202):
//! out = silu(gate) * up with silu(g) = g * sigmoid(g), elementwise over n = N*H.
//!
//! Backward, with s = sigmoid(g):
//!   dup   = dout * g * s
//!   dgate = dout * up * s * (1 + g * (1 - s))      (d silu / dg)
//! The sigmoid comes from e^-|g| (see `lanes::sigmoid`), so no exp overflows.
//! Bit-identical across SIMD levels (correctly rounded ops, the same exp in every lane).

use super::check_len;
use super::lanes::{sigmoid, simd_kernel};
use crate::error::Result;
use crate::pool;
use crate::simd::Isa;

simd_kernel! {
    /// One chunk of the forward pass (all slices the same length).
    fn forward_chunk<V>(v, out: &mut [f32], gate: &[f32], up: &[f32]) {
        for ((o, g), u) in out.chunks_mut(V::W).zip(gate.chunks(V::W)).zip(up.chunks(V::W)) {
            let g = v.get(g, 0.0);
            v.put(o, v.mul(v.mul(g, sigmoid(v, g)), v.get(u, 0.0)));
        }
    }
}

/// out (n,) = silu(gate (n,)) * up (n,).
pub fn swiglu_forward(isa: Isa, out: &mut [f32], gate: &[f32], up: &[f32], n: usize) -> Result<()> {
    check_len("out", out.len(), n, "n")?;
    check_len("gate", gate.len(), n, "n")?;
    check_len("up", up.len(), n, "n")?;
    let per = pool::units_per_chunk(n, 1);
    let parts: Vec<_> = out.chunks_mut(per).zip(gate.chunks(per)).zip(up.chunks(per)).collect();
    pool::for_each_part(parts, |_, ((o, g), u)| forward_chunk(isa, o, g, u));
    Ok(())
}

simd_kernel! {
    /// One chunk of the backward pass (all slices the same length).
    fn backward_chunk<V>(v, dgate: &mut [f32], dup: &mut [f32], dout: &[f32], gate: &[f32], up: &[f32]) {
        let w = V::W;
        let one = v.splat(1.0);
        let ins = dout.chunks(w).zip(gate.chunks(w)).zip(up.chunks(w));
        for ((dg, du), ((d, g), u)) in dgate.chunks_mut(w).zip(dup.chunks_mut(w)).zip(ins) {
            let (d, g, u) = (v.get(d, 0.0), v.get(g, 0.0), v.get(u, 0.0));
            let s = sigmoid(v, g);
            let dsilu = v.mul(s, v.add(one, v.mul(g, v.sub(one, s))));
            v.put(du, v.mul(d, v.mul(g, s)));
            v.put(dg, v.mul(v.mul(d, u), dsilu));
        }
    }
}

/// dgate, dup (n,) overwritten from dout, gate, up (n,).
pub fn swiglu_backward(
    isa: Isa,
    dgate: &mut [f32],
    dup: &mut [f32],
    dout: &[f32],
    gate: &[f32],
    up: &[f32],
    n: usize,
) -> Result<()> {
    for (name, len) in [("dgate", dgate.len()), ("dup", dup.len()), ("dout", dout.len())] {
        check_len(name, len, n, "n")?;
    }
    check_len("gate", gate.len(), n, "n")?;
    check_len("up", up.len(), n, "n")?;
    let per = pool::units_per_chunk(n, 1);
    let outs = dgate.chunks_mut(per).zip(dup.chunks_mut(per));
    let ins = dout.chunks(per).zip(gate.chunks(per)).zip(up.chunks(per));
    let parts: Vec<_> = outs.zip(ins).collect();
    pool::for_each_part(parts, |_, ((dg, du), ((d, g), u))| backward_chunk(isa, dg, du, d, g, u));
    Ok(())
}

#[cfg(test)]
mod tests;
