//! `Ctx`: one call's arguments, read safely. Numbers, integers and strings are
//! type-checked; typed arrays are handed out as slices only after an overlap check,
//! so no output aliases another argument. Booleans and ArrayBuffers: `buffers.rs`.

use std::cell::RefCell;
use std::ffi::{c_int, c_void};
use std::ptr;

use super::sys::*;
use crate::error::{Error, Result};

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

pub(super) const MAX_ARGS: usize = 16; // attentionBackward takes 16

/// One call's arguments. Typed-array views are handed out as slices only after
/// checking that no mutable view overlaps any other view of the same call, so
/// e.g. `f32ToF16(x, new Uint16Array(x.buffer))` is an EINVAL, not aliasing UB.
pub struct Ctx {
    pub(super) env: napi_env,
    pub(super) args: [napi_value; MAX_ARGS],
    pub(super) argc: usize,
    pub(super) borrows: RefCell<Vec<(usize, usize, bool, &'static str)>>, // byte range, mutable, name
}

impl Ctx {
    pub(super) fn arg(&self, i: usize) -> napi_value {
        if i < self.argc { self.args[i] } else { ptr::null_mut() }
    }

    pub(super) fn type_of(&self, i: usize) -> Result<c_int> {
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

    pub(super) fn to_js(&self, r: JsRet) -> Result<napi_value> {
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
