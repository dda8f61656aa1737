//! The crate's one error type.
//!
//! Kernels and validation return `Result<T>`; the FFI edge (`ffi/`) turns an
//! `Error` into a thrown JS `Error` whose `code` is [`Error::code`]. No crates
//! (no thiserror), so `Display` and `std::error::Error` are written by hand.

use std::fmt;

#[derive(Debug, Clone, PartialEq)]
pub enum Error {
    /// A caller-supplied argument is wrong (kind, length, range). JS code `EINVAL`.
    InvalidArg { arg: &'static str, msg: String },
    /// The request is valid but this machine or build cannot serve it
    /// (e.g. `setSimdLevel('avx512')` on a CPU without AVX-512). JS code `ENOTSUP`.
    Unsupported(String),
    /// A CUDA entry point was called on a build without the `cuda` feature. JS code `ENOTSUP`.
    NotCompiledWithCudaSupport,
    /// A Node-API call returned a non-ok status. JS code `ENAPI`.
    Napi { call: &'static str, status: i32 },
    /// A Rust panic caught at the FFI edge (a bug in this crate). JS code `EINTERNAL`.
    Internal(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn invalid(arg: &'static str, msg: impl Into<String>) -> Self {
        Error::InvalidArg { arg, msg: msg.into() }
    }

    /// The `code` property of the JS error (Node's errno-style names).
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidArg { .. } => "EINVAL",
            Error::Unsupported(_) | Error::NotCompiledWithCudaSupport => "ENOTSUP",
            Error::Napi { .. } => "ENAPI",
            Error::Internal(_) => "EINTERNAL",
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidArg { arg, msg } => write!(f, "invalid argument `{arg}`: {msg}"),
            Error::Unsupported(what) => write!(f, "not supported: {what}"),
            Error::NotCompiledWithCudaSupport => {
                write!(f, "not compiled with CUDA support (build with `--features cuda`)")
            }
            Error::Napi { call, status } => write!(f, "Node-API call {call} failed with status {status}"),
            Error::Internal(msg) => write!(f, "internal error (bug in peft_kernels): {msg}"),
        }
    }
}

impl std::error::Error for Error {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_messages() {
        let e = Error::invalid("outPacked", "has length 3, expected 4");
        assert_eq!(e.code(), "EINVAL");
        assert_eq!(e.to_string(), "invalid argument `outPacked`: has length 3, expected 4");
        assert_eq!(Error::NotCompiledWithCudaSupport.code(), "ENOTSUP");
        let boxed: Box<dyn std::error::Error> = Box::new(Error::Internal("x".into()));
        assert!(boxed.to_string().contains("internal error"));
    }
}
