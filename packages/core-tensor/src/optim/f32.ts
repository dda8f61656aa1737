/**
 * Float32 arithmetic in JS numbers, rounded as torch's f32 CPU kernels round: every op correctly rounded
 * to f32 once. Plain ops are `Math.fround(a op b)` (an f64 result rounded to f32 equals the correctly
 * rounded f32 result for + - * / of f32 inputs, since 53 >= 2*24 + 2). A fused multiply-add needs care:
 * torch's vectorized `add_(x, alpha=a)` is `fmadd(x, a, self)` (aten/src/ATen/native/ufunc/add.h), one
 * rounding of x*a + self, which rounding through f64 first can miss by one ulp.
 */

/** fma(a, b, c) rounded once to f32, for f32 inputs a, b, c. */
export function fma32(a: number, b: number, c: number): number {
  const p = a * b; // exact: two 24-bit significands fit in 53 bits
  const s = p + c;
  const r = Math.fround(s);
  if (r === s || !Number.isFinite(r)) return r;
  // TwoSum: p + c == s + e exactly. Rounding s instead of p + c goes wrong only when s is exactly the
  // midpoint of two f32 values and e != 0; then the true sum lies on e's side of it.
  const t = s - p;
  const e = (p - (s - t)) + (c - t);
  if (e === 0) return r;
  const other = 2 * s - r; // the other f32 neighbour, when s is a midpoint (exact then)
  if (Math.fround(other) !== other) return r;
  return (e > 0) === (other > r) ? other : r;
}
