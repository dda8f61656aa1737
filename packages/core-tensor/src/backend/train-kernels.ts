/**
 * The training-kernel contract (issue: the training engine). Every function exists three times
 * with identical semantics: the pure-TS reference (`reference-train/`, generic over
 * Float32Array | Float64Array so gradient checks can run in f64), the native Rust kernels
 * (`@peft/kernels-napi`, same names and argument order), and the adapter that maps one to the other.
 *
 * Conventions: row-major, contiguous; outputs first, then inputs, then sizes (llm.c order);
 * outputs are caller-allocated and overwritten unless the doc says "+=" (accumulate).
 * Shapes use B (batch), T (query positions), S (key positions, S >= T with a KV cache),
 * C (channels), H (MLP hidden), V (vocab), nh / nkv (query / key-value heads), hd (head dim).
 */
export type F = Float32Array | Float64Array;

export interface TrainKernels {
  /**
   * C[m,n] = alpha * op(A) @ op(B) + beta * C. A is [m,k] ([k,m] when transA), B is [k,n]
   * ([n,k] when transB). beta == 0 overwrites C (NaNs in C are ignored).
   * Linear: y = x W^T is gemm(false, true, tokens, out, in, ...); dx = dy W is gemm(false, false, ...);
   * dW += dy^T x is gemm(true, false, out, in, tokens, 1, dy, x, 1, dW).
   */
  gemm(transA: boolean, transB: boolean, m: number, n: number, k: number,
    alpha: number, a: F, b: F, beta: number, c: F): void;

  /**
   * The same product with B a bitsandbytes 4-bit weight W ([n,k] when transB, [k,n] otherwise, flattened
   * row-major in blocks of `blocksize`; `absmax` is the plain f32 per-block absmax, i.e. double quant
   * already undone). Native: W is dequantized inside GEMM's packing step (never expanded whole) and the
   * result is BIT-IDENTICAL to gemm() on dequantize4bit(W).
   */
  gemmQuant4(transB: boolean, m: number, n: number, k: number, alpha: number, a: Float32Array,
    packed: Uint8Array, absmax: Float32Array, blocksize: number, type: 0 | 1, beta: number, c: Float32Array): void;

  /** Same with LLM.int8 rows (W[r] = cb[r] * scb[r] / 127 as dequantizeInt8Rows); bit-identical to gemm on the dequantized W. */
  gemmInt8(transB: boolean, m: number, n: number, k: number, alpha: number, a: Float32Array,
    cb: Int8Array, scb: Float32Array, beta: number, c: Float32Array): void;

  /** Same with W stored as bf16 bits (exact widening); bit-identical to gemm on bf16ToF32(W). */
  gemmBf16(transB: boolean, m: number, n: number, k: number, alpha: number, a: Float32Array,
    w: Uint16Array, beta: number, c: Float32Array): void;

  /** HF LlamaRMSNorm in f32: rstd[i] = 1/sqrt(mean_j x[i,j]^2 + eps); out = x * rstd * weight. x, out: [N,C]. */
  rmsnormForward(out: F, rstd: F, x: F, weight: F, N: number, C: number, eps: number): void;
  /** dx = (overwritten); dweight += sum over rows. */
  rmsnormBackward(dx: F, dweight: F, dout: F, x: F, weight: F, rstd: F, N: number, C: number): void;

  /** out = silu(gate) * up, elementwise over n = N*H. */
  swigluForward(out: F, gate: F, up: F, n: number): void;
  swigluBackward(dgate: F, dup: F, dout: F, gate: F, up: F, n: number): void;

  /**
   * HF rotate_half RoPE on x [BT, heads, hd] with cos/sin tables [maxPos, hd/2] and the position of
   * each row pos[BT]: for i < hd/2: out[i] = x[i] cos - x[i+hd/2] sin; out[i+hd/2] = x[i+hd/2] cos + x[i] sin.
   * out may alias x.
   */
  ropeForward(out: F, x: F, cos: F, sin: F, pos: Int32Array, BT: number, heads: number, hd: number): void;
  /** The inverse rotation applied to dout (dx may alias dout). */
  ropeBackward(dx: F, dout: F, cos: F, sin: F, pos: Int32Array, BT: number, heads: number, hd: number): void;

  /**
   * Causal grouped-query attention, tiled with an online softmax (no T x S matrix kept).
   * q, out: [B,T,nh,hd]; k, v: [B,S,nkv,hd]; query t sits at absolute position S-T+t and sees keys
   * 0..S-T+t; head h reads kv head floor(h / (nh/nkv)). lse: [B,nh,T] natural-log logsumexp of
   * the scaled scores (saved for backward).
   */
  attentionForward(out: F, lse: F, q: F, k: F, v: F,
    B: number, T: number, S: number, nh: number, nkv: number, hd: number, scale: number): void;
  /** FlashAttention-2 style backward recomputing the scores from q, k, lse; dq, dk, dv overwritten. */
  attentionBackward(dq: F, dk: F, dv: F, dout: F, q: F, k: F, v: F, out: F, lse: F,
    B: number, T: number, S: number, nh: number, nkv: number, hd: number, scale: number): void;

  /**
   * Cross-entropy over one chunk of rows of logits [n,V] (the caller produces the chunk with gemm
   * and never keeps all N x V logits): loss[i] = logsumexp(row) - row[target[i]], 0 where
   * target[i] == ignoreIndex; then the chunk is overwritten IN PLACE with gradScale * (softmax - onehot)
   * (all zeros for ignored rows).
   */
  crossEntropyRows(loss: F, logits: F, targets: Int32Array, n: number, V: number, ignoreIndex: number, gradScale: number): void;

  /**
   * torch.optim.AdamW, one step over n values: param *= 1 - lr*wd; m = b1 m + (1-b1) g;
   * v = b2 v + (1-b2) g^2; param -= (lr / (1 - b1^t)) * m / (sqrt(v) / sqrt(1 - b2^t) + eps).
   */
  adamwStep(param: F, grad: F, m: F, v: F, n: number, lr: number, beta1: number, beta2: number,
    eps: number, weightDecay: number, step: number): void;

  /**
   * Blockwise 8-bit quantization of x (n) against `code` (256 ascending values, e.g. bitsandbytes'
   * signed / unsigned dynamic maps): outAbsmax[b] = max |x| over block b (ceil(n / blocksize) blocks),
   * outCodes[i] = #{midpoints of code < x[i] * (1 / absmax)} (backend/types.ts quantizeBlockwise8,
   * bit for bit). 8-bit optimizer states (GaLore-8bit) requantize their moments with it. The argument
   * order is kernels-napi's existing export (inputs first), the one exception to outputs-first.
   */
  quantizeBlockwise8(x: Float32Array, code: Float32Array, blocksize: number, outCodes: Uint8Array, outAbsmax: Float32Array): void;
  /** out[i] = code[codes[i]] * absmax[floor(i / blocksize)]; n = out.length = codes.length, absmax: ceil(n / blocksize). */
  dequantizeBlockwise8(codes: Uint8Array, absmax: Float32Array, code: Float32Array, blocksize: number, out: Float32Array): void;

  /**
   * Randomized truncated SVD (Halko, Martinsson & Tropp 2011) of a [m,n]: the top `rank` (1..min(m,n))
   * triplets into u [m,rank], s [rank] (descending), vt [rank,n]. Gaussian range finder with `oversample`
   * extra columns (Ω from xoshiro128** seeded with `seed`, a u32), `powerIters` (0..64) re-orthonormalised
   * power iterations, an exact SVD of the small projected matrix. Each column of u has its largest-|.|
   * entry positive (vt's row flipped with it). Native and reference draw the same Ω and agree to f32
   * rounding; the same arguments give the same bits. NaN / inf in a gives NaN outputs.
   */
  rsvd(u: Float32Array, s: Float32Array, vt: Float32Array, a: Float32Array, m: number, n: number, rank: number,
    oversample: number, powerIters: number, seed: number): void;
}

/** Native memory (kernels-napi only): 64-byte aligned, owned by Rust, reported to V8 as external memory. */
export interface NativeMemory {
  /** A zeroed external ArrayBuffer of `bytes` bytes, freed by `free` or, failing that, by GC. */
  alloc(bytes: number): ArrayBuffer;
  /** Frees now and detaches the buffer (later access sees length 0 instead of freed memory). Idempotent. */
  free(buffer: ArrayBuffer): void;
  /** Bytes currently allocated through alloc (for leak tests). */
  allocatedBytes(): number;
}
