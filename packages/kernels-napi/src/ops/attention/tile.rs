//! The small products every attention tile is made of, generic over the SIMD lanes
//! and register-blocked by hand: R rows at a time share every vector load (one
//! load feeds R FMAs, since a load per FMA would cap the speed at the load ports),
//! with up to 16 vector accumulators and no horizontal sums.
//! - `dot_cols`: R rows against a transposed block, out[r][c] = a_r . bt[:, c] (scores, dP);
//! - `axpy_ranges`: acc_r += sum_{i in range_r} coef_r[i] * row_i (P V, dS K, P^T dO, dS^T Q);
//! - `transpose`: a block of key/value rows into the (hd, BC) layout `dot_cols` reads.

use crate::ops::lanes::Simd;

/// Keys per tile (a multiple of 4 * 16, so `dot_cols` needs no tail).
pub const BC: usize = 64;

/// bt (hd, BC) = the `nk` rows `src[first + c * stride ..][..hd]`, transposed; the
/// columns nk..BC are zero.
pub fn transpose(bt: &mut [f32], src: &[f32], first: usize, stride: usize, nk: usize, hd: usize) {
    if nk < BC {
        bt.fill(0.0);
    }
    for c in 0..nk {
        let row = &src[first + c * stride..][..hd];
        for (d, &x) in row.iter().enumerate() {
            bt[d * BC + c] = x;
        }
    }
}

/// out (R, BC) = a_r (hd,) @ bt (hd, BC) for the R rows `a`.
#[inline(always)]
pub fn dot_cols<V: Simd, const R: usize>(v: V, out: &mut [f32], a: [&[f32]; R], bt: &[f32]) {
    // G vectors of columns per pass: R * G accumulators fit the register file.
    if V::W == 8 && R > 2 { dot_cols_g::<V, R, 2>(v, out, a, bt) } else { dot_cols_g::<V, R, 4>(v, out, a, bt) }
}

#[inline(always)]
fn dot_cols_g<V: Simd, const R: usize, const G: usize>(v: V, out: &mut [f32], a: [&[f32]; R], bt: &[f32]) {
    let (w, hd) = (V::W, a[0].len());
    for g in (0..BC).step_by(G * w) {
        let mut acc = [[v.splat(0.0); G]; R];
        for d in 0..hd {
            let col = &bt[d * BC + g..][..G * w];
            let mut k = [v.splat(0.0); G]; // (loops, not array::from_fn: that one may not inline)
            for (j, k) in k.iter_mut().enumerate() {
                *k = v.load(&col[j * w..]);
            }
            for (acc, a) in acc.iter_mut().zip(&a) {
                let s = v.splat(a[d]);
                for (acc, &k) in acc.iter_mut().zip(&k) {
                    *acc = v.fma(s, k, *acc);
                }
            }
        }
        for (r, acc) in acc.iter().enumerate() {
            for (j, &acc) in acc.iter().enumerate() {
                v.store(&mut out[r * BC + g + j * w..], acc);
            }
        }
    }
}

/// acc_r (len,) += sum_{i in lo_r..hi_r} coef_r[i * cs] * rows[i * rs ..][..len]. The
/// items all R ranges share go through R accumulators at once; the rest one row at a time.
#[inline(always)]
pub fn axpy_ranges<V: Simd, const R: usize>(
    v: V,
    acc: [&mut [f32]; R],
    coef: [&[f32]; R],
    cs: usize,
    ranges: [(usize, usize); R],
    rows: &[f32],
    rs: usize,
) {
    let lo = ranges.iter().map(|r| r.0).max().unwrap_or(0);
    let hi = ranges.iter().map(|r| r.1).min().unwrap_or(0).max(lo);
    for (r, &(a, b)) in ranges.iter().enumerate() {
        for (from, to) in [(a, lo.min(b)), (hi.max(a), b)] {
            if from < to {
                axpy_rows::<V, 1>(v, [&mut *acc[r]], [&coef[r][from * cs..]], cs, to - from, &rows[from * rs..], rs);
            }
        }
    }
    if lo < hi {
        let c: [&[f32]; R] = std::array::from_fn(|r| &coef[r][lo * cs..]);
        axpy_rows::<V, R>(v, acc, c, cs, hi - lo, &rows[lo * rs..], rs);
    }
}

/// acc_r (len,) += sum_{i < n} coef_r[i * cs] * rows[i * rs ..][..len].
#[inline(always)]
fn axpy_rows<V: Simd, const R: usize>(
    v: V,
    mut acc: [&mut [f32]; R],
    coef: [&[f32]; R],
    cs: usize,
    n: usize,
    rows: &[f32],
    rs: usize,
) {
    let (w, len) = (V::W, acc[0].len());
    let budget = if w == 8 { 8 } else { 16 }; // vector accumulators that fit the registers
    let kmax = (budget / R).clamp(1, 4);
    let mut d = 0;
    while len - d >= w {
        let k = ((len - d) / w).min(kmax);
        let (sub, rows_d) = (acc.each_mut().map(|a| &mut a[d..]), &rows[d..]);
        match k {
            4 => axpy_block::<V, R, 4>(v, sub, coef, cs, n, rows_d, rs),
            3 => axpy_block::<V, R, 3>(v, sub, coef, cs, n, rows_d, rs),
            2 => axpy_block::<V, R, 2>(v, sub, coef, cs, n, rows_d, rs),
            _ => axpy_block::<V, R, 1>(v, sub, coef, cs, n, rows_d, rs),
        }
        d += k * w;
    }
    if d < len {
        for (acc, coef) in acc.iter_mut().zip(&coef) {
            axpy_tail(v, &mut acc[d..], coef, cs, n, &rows[d..], rs);
        }
    }
}

/// `axpy_rows` on K full vectors per accumulator row, held in registers across the n rows.
#[inline(always)]
fn axpy_block<V: Simd, const R: usize, const K: usize>(
    v: V,
    mut acc: [&mut [f32]; R],
    coef: [&[f32]; R],
    cs: usize,
    n: usize,
    rows: &[f32],
    rs: usize,
) {
    let w = V::W;
    let mut a = [[v.splat(0.0); K]; R];
    for (a, acc) in a.iter_mut().zip(&acc) {
        for (j, a) in a.iter_mut().enumerate() {
            *a = v.load(&acc[j * w..]);
        }
    }
    for i in 0..n {
        let row = &rows[i * rs..][..K * w];
        let mut x = [v.splat(0.0); K];
        for (j, x) in x.iter_mut().enumerate() {
            *x = v.load(&row[j * w..]);
        }
        for (a, coef) in a.iter_mut().zip(&coef) {
            let c = v.splat(coef[i * cs]);
            for (a, &x) in a.iter_mut().zip(&x) {
                *a = v.fma(c, x, *a);
            }
        }
    }
    for (acc, a) in acc.iter_mut().zip(&a) {
        for (j, &a) in a.iter().enumerate() {
            v.store(&mut acc[j * w..], a);
        }
    }
}

/// `axpy_rows` of one accumulator row on its last `acc.len() < W` columns.
#[inline(always)]
fn axpy_tail<V: Simd>(v: V, acc: &mut [f32], coef: &[f32], cs: usize, n: usize, rows: &[f32], rs: usize) {
    let len = acc.len();
    let mut a = v.get(acc, 0.0);
    for i in 0..n {
        a = v.fma(v.splat(coef[i * cs]), v.get(&rows[i * rs..][..len], 0.0), a);
    }
    v.put(acc, a);
}
