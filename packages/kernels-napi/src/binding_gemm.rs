//! JS binding of the GEMMs (`gemm`, `gemmQuant4`, `gemmInt8`, `gemmBf16`: names and
//! argument order of core-tensor's `TrainKernels`) and of native memory (`alloc`,
//! `free`, `allocatedBytes`: its `NativeMemory`). Argument names match `index.d.ts`,
//! so an EINVAL message names what the caller wrote.

use std::ffi::c_void;

use crate::error::{Error, Result};
use crate::ffi::{self, Ctx, JsRet, napi_env};
use crate::gemm::Gemm;
use crate::memory;
use crate::quant::four_bit::FourBit;
use crate::simd;

/// Largest integer a JS number holds exactly.
const MAX_SAFE: usize = (1 << 53) - 1;

/// An f32 scalar (alpha, beta), rounded from the JS number.
fn scalar(cx: &Ctx, i: usize, name: &'static str) -> Result<f32> {
    Ok(cx.number(i, name)? as f32)
}

/// The sizes and scalars shared by every GEMM signature: (m, n, k) at `i`, alpha at
/// `i + 3`, beta at `beta_at`.
fn shape(cx: &Ctx, trans_a: bool, trans_b: bool, i: usize, beta_at: usize) -> Result<Gemm> {
    Ok(Gemm {
        trans_a,
        trans_b,
        m: cx.uint(i, "m", MAX_SAFE)?,
        n: cx.uint(i + 1, "n", MAX_SAFE)?,
        k: cx.uint(i + 2, "k", MAX_SAFE)?,
        alpha: scalar(cx, i + 3, "alpha")?,
        beta: scalar(cx, beta_at, "beta")?,
    })
}

// gemm(transA, transB, m, n, k, alpha, a, b, beta, c)
pub fn gemm(cx: &Ctx) -> Result<JsRet> {
    let g = shape(cx, cx.boolean(0, "transA")?, cx.boolean(1, "transB")?, 2, 8)?;
    let (a, b) = (cx.slice::<f32>(6, "a")?, cx.slice::<f32>(7, "b")?);
    let c = cx.slice_mut::<f32>(9, "c")?;
    g.f32(simd::current(), a, b, c)?;
    Ok(JsRet::Undefined)
}

// gemmQuant4(transB, m, n, k, alpha, a, packed, absmax, blocksize, type, beta, c)
pub fn gemm_quant4(cx: &Ctx) -> Result<JsRet> {
    let g = shape(cx, false, cx.boolean(0, "transB")?, 1, 10)?;
    let bs = cx.uint(8, "blocksize", MAX_SAFE)?;
    let ty = FourBit::from_js(cx.uint(9, "type", u32::MAX as usize)? as u32)?;
    let a = cx.slice::<f32>(5, "a")?;
    let (packed, absmax) = (cx.slice::<u8>(6, "packed")?, cx.slice::<f32>(7, "absmax")?);
    let c = cx.slice_mut::<f32>(11, "c")?;
    g.quant4(simd::current(), a, (packed, absmax, bs, ty), c)?;
    Ok(JsRet::Undefined)
}

// gemmInt8(transB, m, n, k, alpha, a, cb, scb, beta, c)
pub fn gemm_int8(cx: &Ctx) -> Result<JsRet> {
    let g = shape(cx, false, cx.boolean(0, "transB")?, 1, 8)?;
    let a = cx.slice::<f32>(5, "a")?;
    let (cb, scb) = (cx.slice::<i8>(6, "cb")?, cx.slice::<f32>(7, "scb")?);
    let c = cx.slice_mut::<f32>(9, "c")?;
    g.int8(simd::current(), a, cb, scb, c)?;
    Ok(JsRet::Undefined)
}

// gemmBf16(transB, m, n, k, alpha, a, w, beta, c)
pub fn gemm_bf16(cx: &Ctx) -> Result<JsRet> {
    let g = shape(cx, false, cx.boolean(0, "transB")?, 1, 7)?;
    let (a, w) = (cx.slice::<f32>(5, "a")?, cx.slice::<u16>(6, "w")?);
    let c = cx.slice_mut::<f32>(8, "c")?;
    g.bf16(simd::current(), a, w, c)?;
    Ok(JsRet::Undefined)
}

// ---- native memory

/// GC finalizer of an `alloc` buffer; `hint` carries the allocation id, so a buffer
/// that `free` already released (its address possibly reused since) frees nothing.
unsafe extern "C" fn finalize(env: napi_env, data: *mut c_void, hint: *mut c_void) {
    let freed = memory::release(data as usize, hint as u64);
    if freed > 0 {
        ffi::adjust_external_memory(env, -(freed as i64));
    }
}

// alloc(bytes): a zeroed, 64-byte aligned external ArrayBuffer.
pub fn alloc(cx: &Ctx) -> Result<JsRet> {
    let bytes = cx.uint(0, "bytes", MAX_SAFE)?;
    if bytes == 0 {
        return Ok(JsRet::Value(cx.empty_arraybuffer()?));
    }
    let a = memory::alloc(bytes)?;
    // SAFETY: the memory stays allocated until `finalize` or `free` releases it (both
    // through the registry, so only once); `finalize` tolerates an earlier `free`.
    let made = unsafe { cx.external_arraybuffer(a.ptr.as_ptr(), bytes, Some(finalize), a.id as *mut c_void) };
    match made {
        Ok(v) => {
            ffi::adjust_external_memory(cx.env(), bytes as i64);
            Ok(JsRet::Value(v))
        }
        Err(e) => {
            memory::release(a.ptr.as_ptr() as usize, a.id);
            Err(e)
        }
    }
}

// free(buffer): release now and detach; a detached or empty buffer is a no-op.
pub fn free(cx: &Ctx) -> Result<JsRet> {
    let (data, len) = cx.arraybuffer(0, "buffer")?;
    if data.is_null() || len == 0 {
        return Ok(JsRet::Undefined);
    }
    let a = memory::lookup(data as usize)
        .filter(|a| a.bytes == len)
        .ok_or_else(|| Error::invalid("buffer", "was not allocated by alloc()"))?;
    // Detach first: JS must never see the buffer pointing at freed memory.
    cx.detach_arraybuffer(0)?;
    let freed = memory::release(data as usize, a.id);
    if freed > 0 {
        ffi::adjust_external_memory(cx.env(), -(freed as i64));
    }
    Ok(JsRet::Undefined)
}

// allocatedBytes(): bytes held by alloc() buffers not yet freed or collected.
pub fn allocated_bytes(_: &Ctx) -> Result<JsRet> {
    Ok(JsRet::F64(memory::allocated_bytes() as f64))
}
