//! CUDA entry points: a stub for builds without the `cuda` feature.
//!
//! Like candle's `dummy_cuda_backend.rs`, every function has the real signature
//! and returns `Error::NotCompiledWithCudaSupport`, so callers need no `cfg` of
//! their own. The real kernels will live in `cuda/` behind the `cuda` feature
//! (`lib.rs` picks one or the other); nothing here touches a GPU.

use crate::error::{Error, Result};

/// Number of visible CUDA devices.
pub fn device_count() -> Result<usize> {
    Err(Error::NotCompiledWithCudaSupport)
}

#[cfg(test)]
mod tests {
    #[test]
    fn stub_says_not_compiled() {
        let e = super::device_count().unwrap_err();
        assert_eq!(e.code(), "ENOTSUP");
        assert!(e.to_string().contains("not compiled with CUDA support"));
    }
}
