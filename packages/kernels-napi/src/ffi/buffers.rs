//! `Ctx` readers and makers for booleans and ArrayBuffers, including external ones
//! over native memory (GEMM flags and native buffers: `binding_gemm.rs`).

use std::ffi::c_void;
use std::ptr;

use super::Ctx;
use super::sys::*;
use crate::error::{Error, Result};

impl Ctx {
    /// Argument `i` as a boolean (no coercion: `0` or `'x'` is EINVAL).
    pub fn boolean(&self, i: usize, name: &'static str) -> Result<bool> {
        if self.type_of(i)? != NAPI_BOOLEAN {
            return Err(Error::invalid(name, "expected a boolean"));
        }
        let mut v = false;
        // SAFETY: as in `type_of`; `v` is a valid out pointer.
        check("napi_get_value_bool", unsafe { napi_get_value_bool(self.env, self.arg(i), &mut v) })?;
        Ok(v)
    }

    /// Argument `i` as an ArrayBuffer: (data, byteLength); (null, 0) once detached.
    pub fn arraybuffer(&self, i: usize, name: &'static str) -> Result<(*mut u8, usize)> {
        let mut is_ab = false;
        // SAFETY: as in `type_of`.
        check("napi_is_arraybuffer", unsafe { napi_is_arraybuffer(self.env, self.arg(i), &mut is_ab) })?;
        if !is_ab {
            return Err(Error::invalid(name, "expected an ArrayBuffer"));
        }
        let (mut data, mut len) = (ptr::null_mut(), 0usize);
        // SAFETY: `arg(i)` is an ArrayBuffer; out pointers are valid.
        check("napi_get_arraybuffer_info", unsafe {
            napi_get_arraybuffer_info(self.env, self.arg(i), &mut data, &mut len)
        })?;
        Ok((data.cast(), len))
    }

    /// Detach the ArrayBuffer argument `i` (its byteLength becomes 0).
    pub fn detach_arraybuffer(&self, i: usize) -> Result<()> {
        // SAFETY: the caller checked with `arraybuffer` that `arg(i)` is one.
        check("napi_detach_arraybuffer", unsafe { napi_detach_arraybuffer(self.env, self.arg(i)) })
    }

    /// A new ArrayBuffer over `len` bytes at `data`, owned by native code, which
    /// `finalize(env, data, hint)` releases if V8 collects the buffer first.
    ///
    /// # Safety
    /// `data` stays valid for `len` bytes until `finalize` runs or the buffer is
    /// detached; `finalize` tolerates being called after an explicit release.
    pub unsafe fn external_arraybuffer(
        &self,
        data: *mut u8,
        len: usize,
        finalize: napi_finalize,
        hint: *mut c_void,
    ) -> Result<napi_value> {
        let mut v = ptr::null_mut();
        // SAFETY: forwarded contract; `v` is a valid out pointer.
        let status = unsafe { napi_create_external_arraybuffer(self.env, data.cast(), len, finalize, hint, &mut v) };
        check("napi_create_external_arraybuffer", status)?;
        Ok(v)
    }

    /// A new, empty (0-byte) ArrayBuffer.
    pub fn empty_arraybuffer(&self) -> Result<napi_value> {
        let (mut v, mut data) = (ptr::null_mut(), ptr::null_mut());
        // SAFETY: valid env and out pointers.
        check("napi_create_arraybuffer", unsafe { napi_create_arraybuffer(self.env, 0, &mut data, &mut v) })?;
        Ok(v)
    }

    /// This call's env, for `adjust_external_memory`.
    pub fn env(&self) -> napi_env {
        self.env
    }
}
