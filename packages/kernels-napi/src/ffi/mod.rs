//! The only Node-API code in the crate, one module: hand-written declarations of the
//! few `napi_*` functions used (`sys.rs`; no napi-rs / napi-sys: no crates here), a
//! safe argument reader for `binding.rs` (`ctx.rs`, `buffers.rs`), and here the module
//! entry point and the trampoline every export goes through.
//!
//! On Linux the `napi_*` symbols are left undefined in the cdylib and resolved
//! from the node executable when it `dlopen`s the `.node` file.
//!
//! Errors: a binding function returns `Result`; the trampoline turns `Err(e)`
//! into a thrown JS `Error` with `code = e.code()` (napi_throw_error sets it),
//! and a panic into one with code `EINTERNAL`. No panic crosses into node.

#![allow(non_camel_case_types)]

mod buffers;
mod ctx;
mod sys;

use std::cell::RefCell;
use std::ffi::{CString, c_void};
use std::panic::{self, AssertUnwindSafe};
use std::ptr;

use ctx::MAX_ARGS;
pub use ctx::{Ctx, JsRet};
use sys::*;
pub use sys::{adjust_external_memory, napi_env, napi_value};

use crate::binding::{EXPORTS, Export};
use crate::error::{Error, Result};

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
