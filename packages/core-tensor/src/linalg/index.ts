/**
 * linalg/: dense f64 factorizations for adapter work — SVD (one-sided Jacobi), Householder QR,
 * rank-r truncation and the SVD of a low-rank product — and the randomized truncated SVD on the
 * training kernels (f32, for large matrices: GaLore's projector). Used by PiSSA / OLoRA / LoftQ initialisation,
 * adapter merges (rank truncation) and compression. Row-major arrays in, Float64Array out.
 * Not here: Tensor ops or gradients (ops/), GEMM kernels (backend/).
 */
export { svd, type Svd } from './svd.js';
export { randomizedSvd, RSVD_DEFAULTS, type RandomizedSvd, type RandomizedSvdOptions, type RsvdKernels } from './rsvd.js';
export { canonicalQr, qr, type Qr } from './qr.js';
export { factorsOf, lowRankApprox, svdOfProduct, type LowRankFactors } from './lowrank.js';
export { matmul as matmulF64, transpose as transposeF64 } from './matrix.js';
