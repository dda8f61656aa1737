//! peft_kernels: the CPU kernels of `peft` behind a hand-written Node-API binding.
//!
//! What is here: bitsandbytes-compatible quantizers (`quant`), float format
//! conversions (`convert`), training ops (`ops`: RMSNorm, SwiGLU, RoPE, attention,
//! cross-entropy, AdamW; bound in `binding_ops`), a randomized truncated SVD on the GEMM kernels
//! (`linalg`; bound in `binding_linalg`), the run-time SIMD choice (`simd`), a persistent
//! thread pool (`pool`), one error type (`error`), and the JS binding
//! (`binding`, over the only Node-API declarations, `ffi`).
//! What is not: anything about tensors, models or files; that is core-tensor's job.
//! Kernels are plain functions over slices that take an `Isa` and return `Result`.

// Constants are copied verbatim from bitsandbytes (f64 text); the compiler
// rounds them to f32 exactly as the CUDA compiler does for `0.123f` literals.
#![allow(clippy::excessive_precision)]

pub mod convert;
pub mod error;
pub mod gemm;
pub mod linalg;
pub mod memory;
pub mod ops;
pub mod pool;
pub mod quant;
pub mod simd;

// Without the `cuda` feature, CUDA entry points are stubs (candle's dummy backend).
#[cfg(not(feature = "cuda"))]
pub mod cuda;
#[cfg(feature = "cuda")]
compile_error!("the `cuda` feature is reserved: CUDA kernels are not written yet");

// The binding calls Node-API functions that only a node process provides, so
// it is left out of `cargo test` executables (vitest covers it).
#[cfg(not(test))]
mod binding;
#[cfg(not(test))]
mod binding_gemm;
#[cfg(not(test))]
mod binding_linalg;
#[cfg(not(test))]
mod binding_ops;
#[cfg(not(test))]
mod ffi;

#[cfg(test)]
mod testutil;
