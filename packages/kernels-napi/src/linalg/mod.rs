//! Dense linear algebra on the GEMM kernels: a randomized truncated SVD (`rsvd`, Halko, Martinsson &
//! Tropp 2011) and the small f64 factorizations it is built from (`qr`: Householder QR; `jacobi`:
//! one-sided Jacobi SVD of a square matrix), plus the seeded Gaussian stream it draws from (`gaussian`).
//!
//! The large products (m x n by n x l) run on `gemm` in f32; only the thin l-column factors (l = rank +
//! oversampling) are orthonormalised and decomposed in f64, so the cost is a few GEMMs plus O((m + n) l²).
//! Not here: a full SVD of a large matrix, eigenvalue problems, anything complex-valued.

pub mod gaussian;
pub mod jacobi;
pub mod qr;
pub mod rsvd;

#[cfg(test)]
mod tests;
