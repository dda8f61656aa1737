// Types of the native kernels (src/binding.rs). All functions are synchronous,
// write into caller-allocated typed arrays, and throw an Error with
// `code === 'EINVAL'` on a wrong typed-array kind, length, or blocksize (the
// message names the argument), `'ENOTSUP'` for a SIMD level the CPU lacks.
// Outputs must not share memory with other arguments (EINVAL).
// Numerics are bitsandbytes-compatible and identical for every SIMD level and
// thread count; see src/quant/*.rs and src/convert.rs for the exact rules.

export type SimdLevel = 'avx512' | 'avx2' | 'scalar';
/** 0 = NF4, 1 = FP4. */
export type FourBitType = 0 | 1;

/** The instruction set the kernels use now (the best available unless set). */
export function simdLevel(): SimdLevel;
/** Process-wide override, for tests and benchmarks. Throws ENOTSUP if the CPU lacks it. */
export function setSimdLevel(level: SimdLevel): void;
/** Threads the kernels use, caller included (available_parallelism, or PEFT_NUM_THREADS). */
export function numThreads(): number;

/**
 * Blockwise 4-bit quantization of x (n,). blocksize: power of two in 32..4096.
 * outPacked: ceil(n/2) bytes, element 2j in the high nibble; outAbsmax: ceil(n/blocksize).
 */
export function quantize4bit(
  x: Float32Array,
  blocksize: number,
  type: FourBitType,
  outPacked: Uint8Array,
  outAbsmax: Float32Array,
): void;
/** Inverse of quantize4bit; n = out.length, packed: ceil(n/2), absmax: ceil(n/blocksize). */
export function dequantize4bit(
  packed: Uint8Array,
  absmax: Float32Array,
  blocksize: number,
  type: FourBitType,
  out: Float32Array,
): void;

/**
 * Blockwise 8-bit quantization against `code` (256 finite values, sorted ascending,
 * e.g. bitsandbytes' dynamic map). outCodes: n, outAbsmax: ceil(n/blocksize).
 */
export function quantizeBlockwise8(
  x: Float32Array,
  code: Float32Array,
  blocksize: number,
  outCodes: Uint8Array,
  outAbsmax: Float32Array,
): void;
/** out[i] = code[codes[i]] * absmax[i / blocksize]; n = out.length = codes.length. */
export function dequantizeBlockwise8(
  codes: Uint8Array,
  absmax: Float32Array,
  code: Float32Array,
  blocksize: number,
  out: Float32Array,
): void;

/** Row-wise absmax int8 of w (rows, cols): outCb (rows*cols), outScb (rows). */
export function quantizeInt8Rows(
  w: Float32Array,
  rows: number,
  cols: number,
  outCb: Int8Array,
  outScb: Float32Array,
): void;
/** out = cb * scb[row] / 127 (bitsandbytes int8_vectorwise_dequant). */
export function dequantizeInt8Rows(
  cb: Int8Array,
  scb: Float32Array,
  rows: number,
  cols: number,
  out: Float32Array,
): void;

/** IEEE half, round to nearest even; out.length must equal x.length. */
export function f32ToF16(x: Float32Array, out: Uint16Array): void;
export function f16ToF32(x: Uint16Array, out: Float32Array): void;
/** bfloat16, round to nearest even; NaN -> 0x7FC0 with the input's sign. */
export function f32ToBf16(x: Float32Array, out: Uint16Array): void;
export function bf16ToF32(x: Uint16Array, out: Float32Array): void;

// ---- Training ops (src/ops, src/binding_ops.rs) ------------------------------------------------
// The contract is core-tensor's src/backend/train-kernels.ts (same names, argument order and
// semantics); natively Float32Array only. Row-major; outputs first and overwritten unless the doc
// says "+=". Sizes: B batch, T query positions, S key positions (S >= T), C channels, V vocab,
// nh / nkv query / key-value heads, hd head dim. Every length is checked against the sizes
// (EINVAL naming the argument). swiglu, rope and adamw give the same bits at every SIMD level;
// rmsnorm, attention and cross-entropy sum in a per-level order (agree to ~1e-6 relative).
// Every op gives the same bits for any thread count.

/** HF LlamaRMSNorm: rstd[i] = 1/sqrt(mean_j x[i,j]^2 + eps); out = x * rstd * weight. x, out: [N,C]; rstd: [N]. */
export function rmsnormForward(
  out: Float32Array, rstd: Float32Array, x: Float32Array, weight: Float32Array, N: number, C: number, eps: number,
): void;
/** dx [N,C] overwritten; dweight [C] += the sum over rows. */
export function rmsnormBackward(
  dx: Float32Array, dweight: Float32Array, dout: Float32Array, x: Float32Array, weight: Float32Array,
  rstd: Float32Array, N: number, C: number,
): void;

/** out = silu(gate) * up over n values (silu(g) = g * sigmoid(g)). */
export function swigluForward(out: Float32Array, gate: Float32Array, up: Float32Array, n: number): void;
export function swigluBackward(
  dgate: Float32Array, dup: Float32Array, dout: Float32Array, gate: Float32Array, up: Float32Array, n: number,
): void;

/**
 * HF rotate_half RoPE on x [BT, heads, hd], tables cos/sin [maxPos, hd/2], pos [BT] (each in 0..maxPos-1).
 * out may be x itself (in place); any other overlap is EINVAL.
 */
export function ropeForward(
  out: Float32Array, x: Float32Array, cos: Float32Array, sin: Float32Array, pos: Int32Array,
  BT: number, heads: number, hd: number,
): void;
/** The inverse rotation applied to dout; dx may be dout itself. */
export function ropeBackward(
  dx: Float32Array, dout: Float32Array, cos: Float32Array, sin: Float32Array, pos: Int32Array,
  BT: number, heads: number, hd: number,
): void;

/**
 * Causal grouped-query attention (FlashAttention-2 tiles). q, out: [B,T,nh,hd]; k, v: [B,S,nkv,hd];
 * lse: [B,nh,T]. Query t sits at position S-T+t; head h reads kv head floor(h / (nh/nkv)).
 */
export function attentionForward(
  out: Float32Array, lse: Float32Array, q: Float32Array, k: Float32Array, v: Float32Array,
  B: number, T: number, S: number, nh: number, nkv: number, hd: number, scale: number,
): void;
/** Recomputes the probabilities from q, k and lse; dq, dk, dv overwritten. */
export function attentionBackward(
  dq: Float32Array, dk: Float32Array, dv: Float32Array, dout: Float32Array, q: Float32Array, k: Float32Array,
  v: Float32Array, out: Float32Array, lse: Float32Array,
  B: number, T: number, S: number, nh: number, nkv: number, hd: number, scale: number,
): void;

/**
 * loss[i] = logsumexp(logits[i]) - logits[i, targets[i]] (0 where targets[i] === ignoreIndex); then logits
 * [n,V] is overwritten in place with gradScale * (softmax - onehot) (zeros for ignored rows).
 * Each target must be in 0..V-1 or equal ignoreIndex.
 */
export function crossEntropyRows(
  loss: Float32Array, logits: Float32Array, targets: Int32Array, n: number, V: number,
  ignoreIndex: number, gradScale: number,
): void;

/**
 * torch.optim.AdamW, one step over n values (param, m, v updated in place), in f32 op by op as torch's
 * single-tensor path: param *= 1 - lr*wd; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
 * param -= (lr / (1 - b1^step)) * m / (sqrt(v) / sqrt(1 - b2^step) + eps). step: integer >= 1.
 */
export function adamwStep(
  param: Float32Array, grad: Float32Array, m: Float32Array, v: Float32Array, n: number, lr: number,
  beta1: number, beta2: number, eps: number, weightDecay: number, step: number,
): void;

// ---- GEMM and native memory (src/gemm, src/memory.rs, src/binding_gemm.rs) -------------------
// The contract is core-tensor's src/backend/train-kernels.ts. Row-major, dense, f32. Every C element
// is one fused multiply-add chain over k in a fixed order (blocks of 256), so results are identical
// for any thread count; AVX-512 and AVX2 give identical bits, scalar may differ in the last bits.
// Lengths are checked against m, n, k (EINVAL naming the argument); flags must be booleans.

/**
 * C[m,n] = alpha * op(A) @ op(B) + beta * C. A is [m,k] ([k,m] when transA), B is [k,n] ([n,k] when
 * transB). beta === 0 overwrites C (NaN there is ignored); alpha === 0 or k === 0 gives beta * C
 * without reading A or B (BLAS rule).
 */
export function gemm(
  transA: boolean, transB: boolean, m: number, n: number, k: number,
  alpha: number, a: Float32Array, b: Float32Array, beta: number, c: Float32Array,
): void;
/**
 * gemm(false, transB, ...) with B a bitsandbytes 4-bit weight W ([n,k] when transB, else [k,n]),
 * flattened row-major in blocks of `blocksize` (packed: ceil(n*k/2), absmax: ceil(n*k/blocksize),
 * plain f32). W is dequantized inside the packing step, panel by panel; the result is bit-identical
 * to gemm() on dequantize4bit(W).
 */
export function gemmQuant4(
  transB: boolean, m: number, n: number, k: number, alpha: number, a: Float32Array,
  packed: Uint8Array, absmax: Float32Array, blocksize: number, type: FourBitType, beta: number, c: Float32Array,
): void;
/** The same with LLM.int8 rows: cb [rows*cols], scb [rows] (rows = n when transB, else k); bit-identical to gemm on dequantizeInt8Rows. */
export function gemmInt8(
  transB: boolean, m: number, n: number, k: number, alpha: number, a: Float32Array,
  cb: Int8Array, scb: Float32Array, beta: number, c: Float32Array,
): void;
/** The same with W as bf16 bits (n*k); bit-identical to gemm on bf16ToF32(W). */
export function gemmBf16(
  transB: boolean, m: number, n: number, k: number, alpha: number, a: Float32Array,
  w: Uint16Array, beta: number, c: Float32Array,
): void;

/**
 * A zeroed, 64-byte aligned ArrayBuffer of `bytes` bytes in native memory (reported to V8 as external
 * memory). Freed by free() or, if JS drops it first, by the garbage collector. alloc(0) is an empty buffer.
 */
export function alloc(bytes: number): ArrayBuffer;
/**
 * Frees an alloc() buffer now and detaches it (byteLength becomes 0). Idempotent; a detached or empty
 * buffer is a no-op; any other ArrayBuffer is EINVAL.
 */
export function free(buffer: ArrayBuffer): void;
/** Bytes held by alloc() buffers not yet freed or collected (for leak tests). */
export function allocatedBytes(): number;

// ---- Linear algebra on the GEMM kernels (src/linalg, src/binding_linalg.rs) -------------------
// The contract is core-tensor's src/backend/train-kernels.ts (TrainKernels.rsvd).

/**
 * Randomized truncated SVD (Halko, Martinsson & Tropp 2011) of a [m,n] (row-major f32): the top
 * `rank` (1..min(m,n)) triplets into u [m,rank], s [rank] (descending) and vt [rank,n]. Gaussian
 * range finder with `oversample` extra columns and `powerIters` (0..64) re-orthonormalised power
 * iterations, then an exact SVD of the small projected matrix; products with A on gemm, the thin
 * factors in f64. Ω is drawn from xoshiro128** seeded with `seed` (u32): the same seed gives the same
 * bits. Signs: each column of u has its largest-|.| entry positive (vt's row flipped with it). NaN or
 * inf in a gives NaN everywhere.
 */
export function rsvd(
  u: Float32Array, s: Float32Array, vt: Float32Array, a: Float32Array,
  m: number, n: number, rank: number, oversample: number, powerIters: number, seed: number,
): void;
