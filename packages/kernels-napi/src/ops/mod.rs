//! Training ops, forward above backward, llm.c style: outputs first, then inputs,
//! then sizes; gradients `d`-prefixed; a backward accumulates (`+=`) only where
//! its doc says so, otherwise it overwrites. The contract (names, argument order,
//! semantics) is core-tensor's `src/backend/train-kernels.ts`; its pure-TS
//! reference is the oracle the JS adapter tests against.
//!
//! - `rmsnorm`: HF LlamaRMSNorm.            - `swiglu`: silu(gate) * up.
//! - `rope`: rotate_half rotary embedding.  - `attention`: causal GQA, FlashAttention-2 tiles.
//! - `cross_entropy`: fused loss + gradient over a chunk of logit rows.
//! - `adamw`: torch.optim.AdamW step.       - `lanes`: the SIMD vectors they are written in.
//!
//! Shapes: B batch, T query positions, S key positions (S >= T with a KV cache),
//! C channels, H MLP hidden, V vocab, nh / nkv query / key-value heads, hd head dim.
//! All f32, row-major, contiguous. Numerics: elementwise ops (swiglu, rope, adamw)
//! are bit-identical across SIMD levels; ops that reduce (rmsnorm, attention,
//! cross-entropy) sum in a different order per level and agree to ~1e-6 relative.
//! Every op gives the same bits for any thread count: work is split by sizes only,
//! and partial sums are combined in a fixed order.
//! Not here: f64 (the TS reference covers it), GEMM, memory management.

// llm.c argument lists (outputs, inputs, sizes) mirror the JS contract one to one.
#![allow(clippy::too_many_arguments)]

pub mod lanes;

pub mod adamw;
pub mod attention;
pub mod cross_entropy;
pub mod rmsnorm;
pub mod rope;
pub mod swiglu;

#[cfg(test)]
mod testing;
#[cfg(test)]
mod thread_tests;

use crate::error::{Error, Result};
pub use crate::quant::check_len;

/// The product of `dims` (an element count), or EINVAL naming `arg` if it overflows.
pub fn elems(arg: &'static str, dims: &[usize]) -> Result<usize> {
    dims.iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| Error::invalid(arg, format!("the shape {dims:?} has too many elements")))
}
