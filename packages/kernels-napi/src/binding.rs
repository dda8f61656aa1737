//! The JS API: one small function per export, reading arguments through
//! `ffi::Ctx` (which checks typed-array kinds and overlap) and calling a kernel
//! with the current SIMD level. Argument names match `index.d.ts`, so an EINVAL
//! message names the argument the caller wrote. Add an export by writing a
//! function here and a row in `EXPORTS`.

use std::ffi::CStr;

use crate::binding_gemm as gemm;
use crate::binding_linalg as linalg;
use crate::binding_ops as ops;
use crate::convert::{self, Conv};
use crate::error::{Error, Result};
use crate::ffi::{Ctx, JsRet};
use crate::pool;
use crate::quant::four_bit::{self, FourBit};
use crate::quant::{blockwise8, int8_rows};
use crate::simd::{self, Level};

pub struct Export {
    pub name: &'static CStr,
    /// Required argument count (fewer is EINVAL; extra are ignored).
    pub arity: usize,
    pub f: fn(&Ctx) -> Result<JsRet>,
}

// A slice, so adding an export never means recounting.
pub static EXPORTS: &[Export] = &[
    Export { name: c"simdLevel", arity: 0, f: simd_level },
    Export { name: c"setSimdLevel", arity: 1, f: set_simd_level },
    Export { name: c"numThreads", arity: 0, f: num_threads },
    Export { name: c"quantize4bit", arity: 5, f: quantize_4bit },
    Export { name: c"dequantize4bit", arity: 5, f: dequantize_4bit },
    Export { name: c"quantizeBlockwise8", arity: 5, f: quantize_blockwise8 },
    Export { name: c"dequantizeBlockwise8", arity: 5, f: dequantize_blockwise8 },
    Export { name: c"quantizeInt8Rows", arity: 5, f: quantize_int8_rows },
    Export { name: c"dequantizeInt8Rows", arity: 5, f: dequantize_int8_rows },
    Export { name: c"f32ToF16", arity: 2, f: f32_to_f16 },
    Export { name: c"f16ToF32", arity: 2, f: f16_to_f32 },
    Export { name: c"f32ToBf16", arity: 2, f: f32_to_bf16 },
    Export { name: c"bf16ToF32", arity: 2, f: bf16_to_f32 },
    // Training ops (binding_ops.rs).
    Export { name: c"rmsnormForward", arity: 7, f: ops::rmsnorm_forward },
    Export { name: c"rmsnormBackward", arity: 8, f: ops::rmsnorm_backward },
    Export { name: c"swigluForward", arity: 4, f: ops::swiglu_forward },
    Export { name: c"swigluBackward", arity: 6, f: ops::swiglu_backward },
    Export { name: c"ropeForward", arity: 8, f: ops::rope_forward },
    Export { name: c"ropeBackward", arity: 8, f: ops::rope_backward },
    Export { name: c"attentionForward", arity: 12, f: ops::attention_forward },
    Export { name: c"attentionBackward", arity: 16, f: ops::attention_backward },
    Export { name: c"crossEntropyRows", arity: 7, f: ops::cross_entropy_rows },
    Export { name: c"adamwStep", arity: 11, f: ops::adamw_step },
    // GEMM, fused-dequant GEMM and native memory (binding_gemm.rs).
    Export { name: c"gemm", arity: 10, f: gemm::gemm },
    Export { name: c"gemmQuant4", arity: 12, f: gemm::gemm_quant4 },
    Export { name: c"gemmInt8", arity: 10, f: gemm::gemm_int8 },
    Export { name: c"gemmBf16", arity: 9, f: gemm::gemm_bf16 },
    Export { name: c"alloc", arity: 1, f: gemm::alloc },
    Export { name: c"free", arity: 1, f: gemm::free },
    Export { name: c"allocatedBytes", arity: 0, f: gemm::allocated_bytes },
    // Linear algebra on the GEMM kernels (binding_linalg.rs).
    Export { name: c"rsvd", arity: 10, f: linalg::rsvd },
];

/// Largest integer a JS number holds exactly.
const MAX_SAFE: usize = (1 << 53) - 1;

fn simd_level(_: &Ctx) -> Result<JsRet> {
    Ok(JsRet::Str(simd::current().level().name()))
}

fn set_simd_level(cx: &Ctx) -> Result<JsRet> {
    let name = cx.string(0, "level")?;
    let level = Level::parse(&name)
        .ok_or_else(|| Error::invalid("level", format!("expected 'avx512', 'avx2' or 'scalar', got '{name}'")))?;
    simd::set_current(level)?;
    Ok(JsRet::Undefined)
}

fn num_threads(_: &Ctx) -> Result<JsRet> {
    Ok(JsRet::U32(pool::num_threads() as u32))
}

fn blocksize(cx: &Ctx, i: usize) -> Result<usize> {
    cx.uint(i, "blocksize", MAX_SAFE)
}

fn four_bit_type(cx: &Ctx, i: usize) -> Result<FourBit> {
    FourBit::from_js(cx.uint(i, "type", u32::MAX as usize)? as u32)
}

// quantize4bit(x, blocksize, type, outPacked, outAbsmax)
fn quantize_4bit(cx: &Ctx) -> Result<JsRet> {
    let (bs, ty) = (blocksize(cx, 1)?, four_bit_type(cx, 2)?);
    let x = cx.slice::<f32>(0, "x")?;
    let packed = cx.slice_mut::<u8>(3, "outPacked")?;
    let absmax = cx.slice_mut::<f32>(4, "outAbsmax")?;
    four_bit::quantize_4bit(simd::current(), x, bs, ty, packed, absmax)?;
    Ok(JsRet::Undefined)
}

// dequantize4bit(packed, absmax, blocksize, type, out)
fn dequantize_4bit(cx: &Ctx) -> Result<JsRet> {
    let (bs, ty) = (blocksize(cx, 2)?, four_bit_type(cx, 3)?);
    let packed = cx.slice::<u8>(0, "packed")?;
    let absmax = cx.slice::<f32>(1, "absmax")?;
    let out = cx.slice_mut::<f32>(4, "out")?;
    four_bit::dequantize_4bit(simd::current(), packed, absmax, bs, ty, out)?;
    Ok(JsRet::Undefined)
}

// quantizeBlockwise8(x, code, blocksize, outCodes, outAbsmax)
fn quantize_blockwise8(cx: &Ctx) -> Result<JsRet> {
    let bs = blocksize(cx, 2)?;
    let x = cx.slice::<f32>(0, "x")?;
    let code = cx.slice::<f32>(1, "code")?;
    let codes = cx.slice_mut::<u8>(3, "outCodes")?;
    let absmax = cx.slice_mut::<f32>(4, "outAbsmax")?;
    blockwise8::quantize_blockwise8(simd::current(), x, code, bs, codes, absmax)?;
    Ok(JsRet::Undefined)
}

// dequantizeBlockwise8(codes, absmax, code, blocksize, out)
fn dequantize_blockwise8(cx: &Ctx) -> Result<JsRet> {
    let bs = blocksize(cx, 3)?;
    let codes = cx.slice::<u8>(0, "codes")?;
    let absmax = cx.slice::<f32>(1, "absmax")?;
    let code = cx.slice::<f32>(2, "code")?;
    let out = cx.slice_mut::<f32>(4, "out")?;
    blockwise8::dequantize_blockwise8(simd::current(), codes, absmax, code, bs, out)?;
    Ok(JsRet::Undefined)
}

// quantizeInt8Rows(w, rows, cols, outCb, outScb)
fn quantize_int8_rows(cx: &Ctx) -> Result<JsRet> {
    let (rows, cols) = (cx.uint(1, "rows", MAX_SAFE)?, cx.uint(2, "cols", MAX_SAFE)?);
    let w = cx.slice::<f32>(0, "w")?;
    let cb = cx.slice_mut::<i8>(3, "outCb")?;
    let scb = cx.slice_mut::<f32>(4, "outScb")?;
    int8_rows::quantize_int8_rows(simd::current(), w, rows, cols, cb, scb)?;
    Ok(JsRet::Undefined)
}

// dequantizeInt8Rows(cb, scb, rows, cols, out)
fn dequantize_int8_rows(cx: &Ctx) -> Result<JsRet> {
    let (rows, cols) = (cx.uint(2, "rows", MAX_SAFE)?, cx.uint(3, "cols", MAX_SAFE)?);
    let cb = cx.slice::<i8>(0, "cb")?;
    let scb = cx.slice::<f32>(1, "scb")?;
    let out = cx.slice_mut::<f32>(4, "out")?;
    int8_rows::dequantize_int8_rows(simd::current(), cb, scb, rows, cols, out)?;
    Ok(JsRet::Undefined)
}

fn narrow(cx: &Ctx, conv: Conv) -> Result<JsRet> {
    let x = cx.slice::<f32>(0, "x")?;
    let out = cx.slice_mut::<u16>(1, "out")?;
    convert::narrow(simd::current(), conv, x, out)?;
    Ok(JsRet::Undefined)
}

fn widen(cx: &Ctx, conv: Conv) -> Result<JsRet> {
    let x = cx.slice::<u16>(0, "x")?;
    let out = cx.slice_mut::<f32>(1, "out")?;
    convert::widen(simd::current(), conv, x, out)?;
    Ok(JsRet::Undefined)
}

// f32ToF16(x, out), f16ToF32(x, out), f32ToBf16(x, out), bf16ToF32(x, out)
fn f32_to_f16(cx: &Ctx) -> Result<JsRet> {
    narrow(cx, Conv::F32ToF16)
}
fn f16_to_f32(cx: &Ctx) -> Result<JsRet> {
    widen(cx, Conv::F16ToF32)
}
fn f32_to_bf16(cx: &Ctx) -> Result<JsRet> {
    narrow(cx, Conv::F32ToBf16)
}
fn bf16_to_f32(cx: &Ctx) -> Result<JsRet> {
    widen(cx, Conv::Bf16ToF32)
}
