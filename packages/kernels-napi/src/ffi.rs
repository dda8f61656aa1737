//! The only Node-API code in the crate: hand-written declarations of the few
//! `napi_*` functions used (no napi-rs / napi-sys: no crates here), the module
//! entry point, and a safe argument reader (`Ctx`) for `binding.rs`.
//!
//! On Linux the `napi_*` symbols are left undefined in the cdylib and resolved
//! from the node executable when it `dlopen`s the `.node` file.
//!
//! Errors: a binding function returns `Result`; the trampoline turns `Err(e)`
//! into a thrown JS `Error` with `code = e.code()` (napi_throw_error sets it),
//! and a panic into one with code `EINTERNAL`. No panic crosses into node.

#![allow(non_camel_case_types)]

use std::cell::RefCell;
use std::ffi::{CString, c_char, c_int, c_void};
use std::panic::{self, AssertUnwindSafe};
use std::ptr;

use crate::binding::{EXPORTS, Export};
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
type napi_status = c_int;
type napi_callback = Option<unsafe extern "C" fn(napi_env, napi_callback_info) -> napi_value>;

const NAPI_OK: napi_status = 0;
const NAPI_AUTO_LENGTH: usize = usize::MAX;
const NAPI_NUMBER: c_int = 3; // napi_valuetype
const NAPI_STRING: c_int = 4;

unsafe extern "C" {
    fn napi_create_function(
        env: napi_env,
        utf8name: *const c_char,
        length: usize,
        cb: napi_callback,
        data: *mut c_void,
        result: *mut napi_value,
    ) -> napi_status;
    fn napi_set_named_property(
        env: napi_env,
        object: napi_value,
        utf8name: *const c_char,
        value: napi_value,
    ) -> napi_status;
    fn napi_get_cb_info(
        env: napi_env,
        cbinfo: napi_callback_info,
        argc: *mut usize,
        argv: *mut napi_value,
        this_arg: *mut napi_value,
        data: *mut *mut c_void,
    ) -> napi_status;
    fn napi_typeof(env: napi_env, value: napi_value, result: *mut c_int) -> napi_status;
    fn napi_is_typedarray(env: napi_env, value: napi_value, result: *mut bool) -> napi_status;
    fn napi_get_typedarray_info(
        env: napi_env,
        typedarray: napi_value,
        kind: *mut c_int,
        length: *mut usize,
        data: *mut *mut c_void,
        arraybuffer: *mut napi_value,
        byte_offset: *mut usize,
    ) -> napi_status;
    fn napi_get_value_double(env: napi_env, value: napi_value, result: *mut f64) -> napi_status;
    fn napi_get_value_string_utf8(
        env: napi_env,
        value: napi_value,
        buf: *mut c_char,
        bufsize: usize,
        result: *mut usize,
    ) -> napi_status;
    fn napi_create_string_utf8(env: napi_env, s: *const c_char, length: usize, result: *mut napi_value) -> napi_status;
    fn napi_create_uint32(env: napi_env, value: u32, result: *mut napi_value) -> napi_status;
    fn napi_get_undefined(env: napi_env, result: *mut napi_value) -> napi_status;
    fn napi_throw_error(env: napi_env, code: *const c_char, msg: *const c_char) -> napi_status;
    fn napi_is_exception_pending(env: napi_env, result: *mut bool) -> napi_status;
}

fn check(call: &'static str, status: napi_status) -> Result<()> {
    if status == NAPI_OK { Ok(()) } else { Err(Error::Napi { call, status }) }
}

/// Element types a kernel argument may have, with their `napi_typedarray_type`.
pub trait TypedElem: Copy + 'static {
    const KIND: c_int;
}
impl TypedElem for i8 {
    const KIND: c_int = 0;
}
impl TypedElem for u8 {
    const KIND: c_int = 1;
}
impl TypedElem for u16 {
    const KIND: c_int = 4;
}
impl TypedElem for i32 {
    const KIND: c_int = 5;
}
impl TypedElem for f32 {
    const KIND: c_int = 7;
}

const TYPED_ARRAY_NAMES: [&str; 11] = [
    "Int8Array",
    "Uint8Array",
    "Uint8ClampedArray",
    "Int16Array",
    "Uint16Array",
    "Int32Array",
    "Uint32Array",
    "Float32Array",
    "Float64Array",
    "BigInt64Array",
    "BigUint64Array",
];

fn kind_name(kind: c_int) -> &'static str {
    TYPED_ARRAY_NAMES.get(kind as usize).copied().unwrap_or("an unknown typed array")
}

/// What a binding function returns to JS.
pub enum JsRet {
    Undefined,
    U32(u32),
    Str(&'static str),
    F64(f64),
    /// A value already created through `Ctx` (e.g. an external ArrayBuffer).
    Value(napi_value),
}

const MAX_ARGS: usize = 16; // attentionBackward takes 16

/// One call's arguments. Typed-array views are handed out as slices only after
/// checking that no mutable view overlaps any other view of the same call, so
/// e.g. `f32ToF16(x, new Uint16Array(x.buffer))` is an EINVAL, not aliasing UB.
pub struct Ctx {
    env: napi_env,
    args: [napi_value; MAX_ARGS],
    argc: usize,
    borrows: RefCell<Vec<(usize, usize, bool, &'static str)>>, // byte range, mutable, name
}

impl Ctx {
    fn arg(&self, i: usize) -> napi_value {
        if i < self.argc { self.args[i] } else { ptr::null_mut() }
    }

    fn type_of(&self, i: usize) -> Result<c_int> {
        let mut t = 0;
        // SAFETY: env and value come from this callback's napi_get_cb_info.
        check("napi_typeof", unsafe { napi_typeof(self.env, self.arg(i), &mut t) })?;
        Ok(t)
    }

    /// Argument `i` as a number.
    pub fn number(&self, i: usize, name: &'static str) -> Result<f64> {
        if self.type_of(i)? != NAPI_NUMBER {
            return Err(Error::invalid(name, "expected a number"));
        }
        let mut v = 0.0;
        // SAFETY: as in `type_of`; `v` is a valid out pointer.
        check("napi_get_value_double", unsafe { napi_get_value_double(self.env, self.arg(i), &mut v) })?;
        Ok(v)
    }

    /// Argument `i` as a non-negative integer no larger than `max`.
    pub fn uint(&self, i: usize, name: &'static str, max: usize) -> Result<usize> {
        let v = self.number(i, name)?;
        if v.fract() != 0.0 || !(0.0..=max as f64).contains(&v) {
            return Err(Error::invalid(name, format!("expected an integer in 0..{max}, got {v}")));
        }
        Ok(v as usize)
    }

    /// Argument `i` as a string (at most 255 bytes are read; kernel names are short).
    pub fn string(&self, i: usize, name: &'static str) -> Result<String> {
        if self.type_of(i)? != NAPI_STRING {
            return Err(Error::invalid(name, "expected a string"));
        }
        let mut buf = [0u8; 256];
        let mut len = 0usize;
        // SAFETY: `buf` has room for 256 bytes including the terminating NUL.
        let status =
            unsafe { napi_get_value_string_utf8(self.env, self.arg(i), buf.as_mut_ptr().cast(), buf.len(), &mut len) };
        check("napi_get_value_string_utf8", status)?;
        Ok(String::from_utf8_lossy(&buf[..len]).into_owned())
    }

    /// Argument `i` as a typed array of `T`: (data pointer, length), borrow-checked.
    fn typed<T: TypedElem>(&self, i: usize, name: &'static str, mutable: bool) -> Result<(*mut T, usize)> {
        let mut is_typed = false;
        // SAFETY: as in `type_of`.
        check("napi_is_typedarray", unsafe { napi_is_typedarray(self.env, self.arg(i), &mut is_typed) })?;
        let want = kind_name(T::KIND);
        if !is_typed {
            return Err(Error::invalid(name, format!("expected a {want}")));
        }
        let (mut kind, mut len, mut data) = (0, 0usize, ptr::null_mut::<c_void>());
        // SAFETY: out pointers are valid; the array buffer and offset are not requested.
        let status = unsafe {
            napi_get_typedarray_info(
                self.env,
                self.arg(i),
                &mut kind,
                &mut len,
                &mut data,
                ptr::null_mut(),
                ptr::null_mut(),
            )
        };
        check("napi_get_typedarray_info", status)?;
        if kind != T::KIND {
            return Err(Error::invalid(name, format!("expected a {want}, got a {}", kind_name(kind))));
        }
        if len == 0 || data.is_null() {
            return Ok((ptr::NonNull::dangling().as_ptr(), 0)); // empty or detached
        }
        let start = data as usize;
        let end = start + len * size_of::<T>();
        let mut borrows = self.borrows.borrow_mut();
        for &(s, e, m, other) in borrows.iter() {
            if (mutable || m) && start < e && s < end {
                return Err(Error::invalid(
                    name,
                    format!("shares memory with `{other}`; outputs must not overlap other arguments"),
                ));
            }
        }
        borrows.push((start, end, mutable, name));
        Ok((data.cast(), len))
    }

    /// Whether arguments `i` and `j` are typed arrays viewing exactly the same memory
    /// (same start, kind and length): how a caller asks for an in-place kernel, e.g.
    /// `ropeForward(x, x, ...)`. Registers no borrow; any other overlap stays EINVAL.
    pub fn same_view(&self, i: usize, j: usize) -> Result<bool> {
        let view = |i: usize| -> Result<Option<(c_int, usize, usize)>> {
            let mut is_typed = false;
            // SAFETY: as in `type_of`.
            check("napi_is_typedarray", unsafe { napi_is_typedarray(self.env, self.arg(i), &mut is_typed) })?;
            if !is_typed {
                return Ok(None);
            }
            let (mut kind, mut len, mut data) = (0, 0usize, ptr::null_mut::<c_void>());
            // SAFETY: out pointers are valid; the array buffer and offset are not requested.
            let status = unsafe {
                let (env, v) = (self.env, self.arg(i));
                napi_get_typedarray_info(env, v, &mut kind, &mut len, &mut data, ptr::null_mut(), ptr::null_mut())
            };
            check("napi_get_typedarray_info", status)?;
            Ok(Some((kind, data as usize, len)))
        };
        Ok(matches!((view(i)?, view(j)?), (Some(a), Some(b)) if a == b && a.2 > 0))
    }

    /// Argument `i` as a read-only typed-array slice.
    pub fn slice<T: TypedElem>(&self, i: usize, name: &'static str) -> Result<&[T]> {
        let (p, len) = self.typed::<T>(i, name, false)?;
        // SAFETY: node keeps the backing store alive and in place for the whole
        // (synchronous) call; the element type and length come from V8; no
        // overlapping mutable view was or will be handed out (`typed` checks).
        Ok(unsafe { std::slice::from_raw_parts(p, len) })
    }

    /// Argument `i` as a writable typed-array slice (a kernel output).
    #[allow(clippy::mut_from_ref)] // exclusivity is enforced by the overlap check in `typed`
    pub fn slice_mut<T: TypedElem>(&self, i: usize, name: &'static str) -> Result<&mut [T]> {
        let (p, len) = self.typed::<T>(i, name, true)?;
        // SAFETY: as in `slice`, and no other view overlaps this one.
        Ok(unsafe { std::slice::from_raw_parts_mut(p, len) })
    }

    fn to_js(&self, r: JsRet) -> Result<napi_value> {
        let mut v = ptr::null_mut();
        // SAFETY: valid env and out pointer; `s` is valid UTF-8 of the given length.
        let status = unsafe {
            match r {
                JsRet::Undefined => napi_get_undefined(self.env, &mut v),
                JsRet::U32(n) => napi_create_uint32(self.env, n, &mut v),
                JsRet::Str(s) => napi_create_string_utf8(self.env, s.as_ptr().cast(), s.len(), &mut v),
                JsRet::F64(x) => napi_create_double(self.env, x, &mut v),
                JsRet::Value(x) => return Ok(x),
            }
        };
        check("napi_create_*", status)?;
        Ok(v)
    }
}

// ---- Booleans and external ArrayBuffers (GEMM flags, native memory: binding_gemm.rs) ----

/// `napi_finalize`: called (on the JS thread) when V8 drops an external buffer.
pub type napi_finalize = Option<unsafe extern "C" fn(env: napi_env, data: *mut c_void, hint: *mut c_void)>;
const NAPI_BOOLEAN: c_int = 2;

unsafe extern "C" {
    fn napi_get_value_bool(env: napi_env, value: napi_value, result: *mut bool) -> napi_status;
    fn napi_create_double(env: napi_env, value: f64, result: *mut napi_value) -> napi_status;
    fn napi_create_arraybuffer(env: napi_env, len: usize, data: *mut *mut c_void, result: *mut napi_value)
    -> napi_status;
    fn napi_create_external_arraybuffer(
        env: napi_env,
        data: *mut c_void,
        len: usize,
        finalize_cb: napi_finalize,
        hint: *mut c_void,
        result: *mut napi_value,
    ) -> napi_status;
    fn napi_is_arraybuffer(env: napi_env, value: napi_value, result: *mut bool) -> napi_status;
    fn napi_get_arraybuffer_info(env: napi_env, ab: napi_value, data: *mut *mut c_void, len: *mut usize)
    -> napi_status;
    fn napi_detach_arraybuffer(env: napi_env, ab: napi_value) -> napi_status;
    fn napi_adjust_external_memory(env: napi_env, change: i64, result: *mut i64) -> napi_status;
}

/// Tell V8 that `delta` bytes of native memory came (> 0) or went (< 0), so GC
/// pressure reflects them. Usable from a finalizer (it only has the env).
pub fn adjust_external_memory(env: napi_env, delta: i64) {
    let mut total = 0i64;
    // SAFETY: valid env and out pointer. A failure only skews GC heuristics.
    unsafe { napi_adjust_external_memory(env, delta, &mut total) };
}

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

/// Throw `e` as a JS Error with `code`, unless an exception is already pending.
fn throw(env: napi_env, fn_name: &str, e: &Error) {
    let mut pending = false;
    // SAFETY: valid env and out pointer.
    unsafe { napi_is_exception_pending(env, &mut pending) };
    if pending {
        return;
    }
    let code = CString::new(e.code()).unwrap_or_default();
    let msg = CString::new(format!("{fn_name}: {e}").replace('\0', " ")).unwrap_or_default();
    // SAFETY: both strings are NUL-terminated and outlive the call.
    unsafe { napi_throw_error(env, code.as_ptr(), msg.as_ptr()) };
}

/// The one C callback behind every export; `data` points at its `Export`.
unsafe extern "C" fn trampoline(env: napi_env, info: napi_callback_info) -> napi_value {
    let mut argc = MAX_ARGS;
    let mut args = [ptr::null_mut(); MAX_ARGS];
    let mut data = ptr::null_mut();
    // SAFETY: node passes a valid env/info; `args` has room for `argc` values.
    let status = unsafe { napi_get_cb_info(env, info, &mut argc, args.as_mut_ptr(), ptr::null_mut(), &mut data) };
    if status != NAPI_OK || data.is_null() {
        throw(env, "peft_kernels", &Error::Napi { call: "napi_get_cb_info", status });
        return ptr::null_mut();
    }
    // SAFETY: `data` is the address of an element of the static `EXPORTS`.
    let export: &'static Export = unsafe { &*(data as *const Export) };
    let name = export.name.to_str().unwrap_or("peft_kernels");
    let ctx = Ctx { env, args, argc, borrows: RefCell::new(Vec::new()) };
    let result = panic::catch_unwind(AssertUnwindSafe(|| {
        if argc < export.arity {
            return Err(Error::invalid("arguments", format!("expected {} arguments, got {argc}", export.arity)));
        }
        (export.f)(&ctx).and_then(|r| ctx.to_js(r))
    }));
    let err = match result {
        Ok(Ok(v)) => return v,
        Ok(Err(e)) => e,
        Err(p) => {
            let msg = p.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| p.downcast_ref::<String>().cloned());
            Error::Internal(msg.unwrap_or_else(|| "panic".into()))
        }
    };
    throw(env, name, &err);
    ptr::null_mut()
}

fn register(env: napi_env, exports: napi_value) -> Result<()> {
    for export in EXPORTS.iter() {
        let mut f = ptr::null_mut();
        let data = export as *const Export as *mut c_void;
        // SAFETY: `name` is NUL-terminated; `data` points into a static that lives forever.
        let status = unsafe {
            napi_create_function(env, export.name.as_ptr(), NAPI_AUTO_LENGTH, Some(trampoline), data, &mut f)
        };
        check("napi_create_function", status)?;
        // SAFETY: as above; `exports` is the object node passed in.
        check("napi_set_named_property", unsafe { napi_set_named_property(env, exports, export.name.as_ptr(), f) })?;
    }
    Ok(())
}

/// Module entry point that node looks up after `dlopen` (Node-API `NAPI_MODULE_INIT`).
///
/// # Safety
/// Called by node with a valid `env` and `exports` object.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn napi_register_module_v1(env: napi_env, exports: napi_value) -> napi_value {
    match panic::catch_unwind(|| register(env, exports)) {
        Ok(Ok(())) => exports,
        Ok(Err(e)) => {
            throw(env, "peft_kernels", &e);
            ptr::null_mut()
        }
        Err(_) => {
            throw(env, "peft_kernels", &Error::Internal("panic while registering exports".into()));
            ptr::null_mut()
        }
    }
}

/// The Node-API version this module is written against (node >= 20 has 9).
#[unsafe(no_mangle)]
pub extern "C" fn node_api_module_get_api_version_v1() -> i32 {
    8
}
