/**
 * Round half to even on a JS number (what torch.round, numpy.rint and Rust's round_ties_even do);
 * shared by the reference kernels. Math.round would round halves up.
 */
export function roundHalfEven(v: number): number {
  const f = Math.floor(v);
  const d = v - f; // exact: v and f share an exponent range
  if (d < 0.5) return f;
  if (d > 0.5) return f + 1;
  return f % 2 === 0 ? f : f + 1;
}
