/**
 * Natural GaLore's natural-gradient transform (Das 2024, arXiv 2410.16029; code/natural_galore/
 * galore_projector_tensor.py _natural_gradient_transform): with the last s projected gradients as the
 * columns of G [k, s] (this step's included, oldest first), the empirical Fisher F = λI + G Gᵀ is
 * inverted by Woodbury:
 *   S = I_s + GᵀG / λ  (Cholesky S = L Lᵀ);  z = S⁻¹ Gᵀ g;  ĝ = g / λ - G z / λ²   (= F⁻¹ g)
 * The repo computes this in the gradient's dtype; here it is f64 (the two terms are ~1/λ = 1000 times
 * the result, so f32 would lose ~cond(S)·2⁻²⁴ of it), rounded to f32 once.
 * The history is a ring in an F32 [s, k] state slot: step t (1-based, the parameter's) writes row
 * (t - 1) mod s, so a checkpoint restores it with the step count. Not reset when the basis changes
 * (the repo keeps it too).
 * Not here: the projection (projection.ts), the Adam update after it (natural.ts).
 */

/** Records g (k values) as step `step`'s row of `history` ([size, k]) and returns F⁻¹ g (f32). */
export function naturalGradient(g: Float32Array, history: Float32Array, step: number, size: number, damping: number): Float32Array {
  const k = g.length;
  history.set(g, ((step - 1) % size) * k);
  const count = Math.min(step, size);
  const first = step <= size ? 0 : step % size; // the oldest row
  const cols = Array.from({ length: count }, (_, j) => history.subarray(((first + j) % size) * k, ((first + j) % size + 1) * k));
  const lamInv = 1 / damping;
  // S = I + GᵀG / λ and Gᵀg, f64
  const S = new Float64Array(count * count);
  const gtg = new Float64Array(count);
  for (let a = 0; a < count; a++) {
    for (let b = 0; b <= a; b++) {
      let d = 0;
      for (let i = 0; i < k; i++) d += cols[a][i] * cols[b][i];
      S[a * count + b] = S[b * count + a] = lamInv * d + (a === b ? 1 : 0);
    }
    let d = 0;
    for (let i = 0; i < k; i++) d += cols[a][i] * g[i];
    gtg[a] = d;
  }
  const z = choleskySolve(S, gtg, count);
  const out = new Float32Array(k);
  for (let i = 0; i < k; i++) {
    let gz = 0;
    for (let j = 0; j < count; j++) gz += cols[j][i] * z[j];
    out[i] = lamInv * g[i] - lamInv * lamInv * gz;
  }
  return out;
}

/** x = S⁻¹ b for symmetric positive definite S [n, n] (Cholesky S = L Lᵀ, then two triangular solves). */
export function choleskySolve(S: Float64Array, b: Float64Array, n: number): Float64Array {
  const L = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j <= i; j++) {
      let s = S[i * n + j];
      for (let p = 0; p < j; p++) s -= L[i * n + p] * L[j * n + p];
      L[i * n + j] = i === j ? Math.sqrt(s) : s / L[j * n + j];
    }
  }
  const y = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let s = b[i];
    for (let p = 0; p < i; p++) s -= L[i * n + p] * y[p];
    y[i] = s / L[i * n + i];
  }
  const x = new Float64Array(n);
  for (let i = n - 1; i >= 0; i--) {
    let s = y[i];
    for (let p = i + 1; p < n; p++) s -= L[p * n + i] * x[p];
    x[i] = s / L[i * n + i];
  }
  return x;
}
