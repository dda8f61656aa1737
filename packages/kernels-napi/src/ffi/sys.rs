//! The Node-API declarations: opaque handle types, status and type-tag constants, and
//! the `napi_*` functions this crate calls, declared by hand (no napi-rs / napi-sys: no
//! crates here) from node's `js_native_api.h` / `node_api.h`. The functions are for the
//! wrappers in this folder (`Ctx`, the trampoline); only `adjust_external_memory` is
//! meant to be called from outside it.

use std::ffi::{c_char, c_int, c_void};

use crate::error::{Error, Result};

#[repr(C)]
pub struct napi_env__ {
    _opaque: [u8; 0],
}
#[repr(C)]
pub struct napi_value__ {
    _opaque: [u8; 0],
}
#[repr(C)]
pub struct napi_callback_info__ {
    _opaque: [u8; 0],
}
pub type napi_env = *mut napi_env__;
pub type napi_value = *mut napi_value__;
pub type napi_callback_info = *mut napi_callback_info__;
pub(super) type napi_status = c_int;
pub(super) type napi_callback = Option<unsafe extern "C" fn(napi_env, napi_callback_info) -> napi_value>;

pub(super) const NAPI_OK: napi_status = 0;
pub(super) const NAPI_AUTO_LENGTH: usize = usize::MAX;
pub(super) const NAPI_NUMBER: c_int = 3; // napi_valuetype
pub(super) const NAPI_STRING: c_int = 4;
pub(super) const NAPI_BOOLEAN: c_int = 2;

/// `napi_finalize`: called (on the JS thread) when V8 drops an external buffer.
pub type napi_finalize = Option<unsafe extern "C" fn(env: napi_env, data: *mut c_void, hint: *mut c_void)>;

unsafe extern "C" {
    pub(super) fn napi_create_function(
        env: napi_env,
        utf8name: *const c_char,
        length: usize,
        cb: napi_callback,
        data: *mut c_void,
        result: *mut napi_value,
    ) -> napi_status;
    pub(super) fn napi_set_named_property(
        env: napi_env,
        object: napi_value,
        utf8name: *const c_char,
        value: napi_value,
    ) -> napi_status;
    pub(super) fn napi_get_cb_info(
        env: napi_env,
        cbinfo: napi_callback_info,
        argc: *mut usize,
        argv: *mut napi_value,
        this_arg: *mut napi_value,
        data: *mut *mut c_void,
    ) -> napi_status;
    pub(super) fn napi_typeof(env: napi_env, value: napi_value, result: *mut c_int) -> napi_status;
    pub(super) fn napi_is_typedarray(env: napi_env, value: napi_value, result: *mut bool) -> napi_status;
    pub(super) fn napi_get_typedarray_info(
        env: napi_env,
        typedarray: napi_value,
        kind: *mut c_int,
        length: *mut usize,
        data: *mut *mut c_void,
        arraybuffer: *mut napi_value,
        byte_offset: *mut usize,
    ) -> napi_status;
    pub(super) fn napi_get_value_double(env: napi_env, value: napi_value, result: *mut f64) -> napi_status;
    pub(super) fn napi_get_value_string_utf8(
        env: napi_env,
        value: napi_value,
        buf: *mut c_char,
        bufsize: usize,
        result: *mut usize,
    ) -> napi_status;
    pub(super) fn napi_create_string_utf8(
        env: napi_env,
        s: *const c_char,
        length: usize,
        result: *mut napi_value,
    ) -> napi_status;
    pub(super) fn napi_create_uint32(env: napi_env, value: u32, result: *mut napi_value) -> napi_status;
    pub(super) fn napi_get_undefined(env: napi_env, result: *mut napi_value) -> napi_status;
    pub(super) fn napi_throw_error(env: napi_env, code: *const c_char, msg: *const c_char) -> napi_status;
    pub(super) fn napi_is_exception_pending(env: napi_env, result: *mut bool) -> napi_status;
    // Booleans, doubles and ArrayBuffers (GEMM flags, native memory: binding_gemm.rs).
    pub(super) fn napi_get_value_bool(env: napi_env, value: napi_value, result: *mut bool) -> napi_status;
    pub(super) fn napi_create_double(env: napi_env, value: f64, result: *mut napi_value) -> napi_status;
    pub(super) fn napi_create_arraybuffer(
        env: napi_env,
        len: usize,
        data: *mut *mut c_void,
        result: *mut napi_value,
    ) -> napi_status;
    pub(super) fn napi_create_external_arraybuffer(
        env: napi_env,
        data: *mut c_void,
        len: usize,
        finalize_cb: napi_finalize,
        hint: *mut c_void,
        result: *mut napi_value,
    ) -> napi_status;
    pub(super) fn napi_is_arraybuffer(env: napi_env, value: napi_value, result: *mut bool) -> napi_status;
    pub(super) fn napi_get_arraybuffer_info(
        env: napi_env,
        ab: napi_value,
        data: *mut *mut c_void,
        len: *mut usize,
    ) -> napi_status;
    pub(super) fn napi_detach_arraybuffer(env: napi_env, ab: napi_value) -> napi_status;
    pub(super) fn napi_adjust_external_memory(env: napi_env, change: i64, result: *mut i64) -> napi_status;
}

pub(super) fn check(call: &'static str, status: napi_status) -> Result<()> {
    if status == NAPI_OK { Ok(()) } else { Err(Error::Napi { call, status }) }
}

/// Tell V8 that `delta` bytes of native memory came (> 0) or went (< 0), so GC
/// pressure reflects them. Usable from a finalizer (it only has the env).
pub fn adjust_external_memory(env: napi_env, delta: i64) {
    let mut total = 0i64;
    // SAFETY: valid env and out pointer. A failure only skews GC heuristics.
    unsafe { napi_adjust_external_memory(env, delta, &mut total) };
}
