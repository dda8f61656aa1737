//! The JS API of the training ops (`src/ops`), one small function per export in
//! the contract's argument order (core-tensor `src/backend/train-kernels.ts`):
//! outputs, inputs, sizes, then scalars. Float32Array / Int32Array only. The
//! kernels check every length against the sizes and name the argument in the
//! EINVAL; the binding checks kinds, integers and overlap (`ffi::Ctx`). rope's
//! output may be the very same array as its input (in place); any other overlap
//! of an output with another argument is EINVAL.

use crate::error::{Error, Result};
use crate::ffi::{Ctx, JsRet};
use crate::ops::adamw::{self, AdamW};
use crate::ops::attention::{self, AttnShape, BwdInputs};
use crate::ops::{cross_entropy, rmsnorm, rope, swiglu};
use crate::simd;

/// Largest integer a JS number holds exactly.
const MAX_SAFE: usize = (1 << 53) - 1;

fn size(cx: &Ctx, i: usize, name: &'static str) -> Result<usize> {
    cx.uint(i, name, MAX_SAFE)
}

fn f32_arg(cx: &Ctx, i: usize, name: &'static str) -> Result<f32> {
    Ok(cx.number(i, name)? as f32)
}

// rmsnormForward(out, rstd, x, weight, N, C, eps)
pub fn rmsnorm_forward(cx: &Ctx) -> Result<JsRet> {
    let (n, c, eps) = (size(cx, 4, "N")?, size(cx, 5, "C")?, f32_arg(cx, 6, "eps")?);
    let out = cx.slice_mut::<f32>(0, "out")?;
    let rstd = cx.slice_mut::<f32>(1, "rstd")?;
    let (x, weight) = (cx.slice::<f32>(2, "x")?, cx.slice::<f32>(3, "weight")?);
    rmsnorm::rmsnorm_forward(simd::current(), out, rstd, x, weight, n, c, eps)?;
    Ok(JsRet::Undefined)
}

// rmsnormBackward(dx, dweight, dout, x, weight, rstd, N, C)
pub fn rmsnorm_backward(cx: &Ctx) -> Result<JsRet> {
    let (n, c) = (size(cx, 6, "N")?, size(cx, 7, "C")?);
    let dx = cx.slice_mut::<f32>(0, "dx")?;
    let dweight = cx.slice_mut::<f32>(1, "dweight")?;
    let (dout, x) = (cx.slice::<f32>(2, "dout")?, cx.slice::<f32>(3, "x")?);
    let (weight, rstd) = (cx.slice::<f32>(4, "weight")?, cx.slice::<f32>(5, "rstd")?);
    rmsnorm::rmsnorm_backward(simd::current(), dx, dweight, dout, x, weight, rstd, n, c)?;
    Ok(JsRet::Undefined)
}

// swigluForward(out, gate, up, n)
pub fn swiglu_forward(cx: &Ctx) -> Result<JsRet> {
    let n = size(cx, 3, "n")?;
    let out = cx.slice_mut::<f32>(0, "out")?;
    let (gate, up) = (cx.slice::<f32>(1, "gate")?, cx.slice::<f32>(2, "up")?);
    swiglu::swiglu_forward(simd::current(), out, gate, up, n)?;
    Ok(JsRet::Undefined)
}

// swigluBackward(dgate, dup, dout, gate, up, n)
pub fn swiglu_backward(cx: &Ctx) -> Result<JsRet> {
    let n = size(cx, 5, "n")?;
    let dgate = cx.slice_mut::<f32>(0, "dgate")?;
    let dup = cx.slice_mut::<f32>(1, "dup")?;
    let (dout, gate, up) = (cx.slice::<f32>(2, "dout")?, cx.slice::<f32>(3, "gate")?, cx.slice::<f32>(4, "up")?);
    swiglu::swiglu_backward(simd::current(), dgate, dup, dout, gate, up, n)?;
    Ok(JsRet::Undefined)
}

/// ropeForward / ropeBackward(y, x, cos, sin, pos, BT, heads, hd); `names` are y's and x's.
fn rope_call(cx: &Ctx, names: [&'static str; 2], backward: bool) -> Result<JsRet> {
    let (bt, heads, hd) = (size(cx, 5, "BT")?, size(cx, 6, "heads")?, size(cx, 7, "hd")?);
    let in_place = cx.same_view(0, 1)?;
    let y = cx.slice_mut::<f32>(0, names[0])?;
    let x = if in_place { None } else { Some(cx.slice::<f32>(1, names[1])?) };
    let (cos, sin) = (cx.slice::<f32>(2, "cos")?, cx.slice::<f32>(3, "sin")?);
    let pos = cx.slice::<i32>(4, "pos")?;
    let isa = simd::current();
    match (x, backward) {
        (Some(x), false) => rope::rope_forward(isa, y, x, cos, sin, pos, bt, heads, hd)?,
        (None, false) => rope::rope_forward_inplace(isa, y, cos, sin, pos, bt, heads, hd)?,
        (Some(x), true) => rope::rope_backward(isa, y, x, cos, sin, pos, bt, heads, hd)?,
        (None, true) => rope::rope_backward_inplace(isa, y, cos, sin, pos, bt, heads, hd)?,
    }
    Ok(JsRet::Undefined)
}

// ropeForward(out, x, cos, sin, pos, BT, heads, hd); out may be x itself.
pub fn rope_forward(cx: &Ctx) -> Result<JsRet> {
    rope_call(cx, ["out", "x"], false)
}

// ropeBackward(dx, dout, cos, sin, pos, BT, heads, hd); dx may be dout itself.
pub fn rope_backward(cx: &Ctx) -> Result<JsRet> {
    rope_call(cx, ["dx", "dout"], true)
}

/// B, T, S, nh, nkv, hd, scale starting at argument `i`.
fn attn_sizes(cx: &Ctx, i: usize) -> Result<(AttnShape, f32)> {
    let sh = AttnShape {
        b: size(cx, i, "B")?,
        t: size(cx, i + 1, "T")?,
        s: size(cx, i + 2, "S")?,
        nh: size(cx, i + 3, "nh")?,
        nkv: size(cx, i + 4, "nkv")?,
        hd: size(cx, i + 5, "hd")?,
    };
    Ok((sh, f32_arg(cx, i + 6, "scale")?))
}

// attentionForward(out, lse, q, k, v, B, T, S, nh, nkv, hd, scale)
pub fn attention_forward(cx: &Ctx) -> Result<JsRet> {
    let (sh, scale) = attn_sizes(cx, 5)?;
    let out = cx.slice_mut::<f32>(0, "out")?;
    let lse = cx.slice_mut::<f32>(1, "lse")?;
    let (q, k, v) = (cx.slice::<f32>(2, "q")?, cx.slice::<f32>(3, "k")?, cx.slice::<f32>(4, "v")?);
    attention::attention_forward(simd::current(), out, lse, q, k, v, sh, scale)?;
    Ok(JsRet::Undefined)
}

// attentionBackward(dq, dk, dv, dout, q, k, v, out, lse, B, T, S, nh, nkv, hd, scale)
pub fn attention_backward(cx: &Ctx) -> Result<JsRet> {
    let (sh, scale) = attn_sizes(cx, 9)?;
    let dq = cx.slice_mut::<f32>(0, "dq")?;
    let dk = cx.slice_mut::<f32>(1, "dk")?;
    let dv = cx.slice_mut::<f32>(2, "dv")?;
    let x = BwdInputs {
        dout: cx.slice::<f32>(3, "dout")?,
        q: cx.slice::<f32>(4, "q")?,
        k: cx.slice::<f32>(5, "k")?,
        v: cx.slice::<f32>(6, "v")?,
        out: cx.slice::<f32>(7, "out")?,
        lse: cx.slice::<f32>(8, "lse")?,
    };
    attention::attention_backward(simd::current(), dq, dk, dv, &x, sh, scale)?;
    Ok(JsRet::Undefined)
}

// crossEntropyRows(loss, logits, targets, n, V, ignoreIndex, gradScale); logits is in/out.
pub fn cross_entropy_rows(cx: &Ctx) -> Result<JsRet> {
    let (n, vocab) = (size(cx, 3, "n")?, size(cx, 4, "V")?);
    let ignore = cx.number(5, "ignoreIndex")?;
    if ignore.fract() != 0.0 || ignore.abs() > MAX_SAFE as f64 {
        return Err(Error::invalid("ignoreIndex", format!("expected an integer, got {ignore}")));
    }
    let scale = f32_arg(cx, 6, "gradScale")?;
    let loss = cx.slice_mut::<f32>(0, "loss")?;
    let logits = cx.slice_mut::<f32>(1, "logits")?;
    let targets = cx.slice::<i32>(2, "targets")?;
    cross_entropy::cross_entropy_rows(simd::current(), loss, logits, targets, n, vocab, ignore as i64, scale)?;
    Ok(JsRet::Undefined)
}

// adamwStep(param, grad, m, v, n, lr, beta1, beta2, eps, weightDecay, step); param, m, v in/out.
pub fn adamw_step(cx: &Ctx) -> Result<JsRet> {
    let n = size(cx, 4, "n")?;
    let h = AdamW {
        lr: cx.number(5, "lr")?,
        beta1: cx.number(6, "beta1")?,
        beta2: cx.number(7, "beta2")?,
        eps: cx.number(8, "eps")?,
        weight_decay: cx.number(9, "weightDecay")?,
        step: cx.number(10, "step")?,
    };
    let param = cx.slice_mut::<f32>(0, "param")?;
    let grad = cx.slice::<f32>(1, "grad")?;
    let m = cx.slice_mut::<f32>(2, "m")?;
    let v = cx.slice_mut::<f32>(3, "v")?;
    adamw::adamw_step(simd::current(), param, grad, m, v, n, h)?;
    Ok(JsRet::Undefined)
}
