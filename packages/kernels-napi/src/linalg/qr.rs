//! Thin Householder QR in f64 of a tall matrix stored COLUMN-major (each column contiguous, so every
//! reflection runs down contiguous memory): A [m, k] = Q R, m >= k, Q [m, k] orthonormal columns,
//! R [k, k] upper triangular. The reflectors are LAPACK's dlarfg / dgeqr2 (beta = -sign(x0)·||x||;
//! a column already zero below the diagonal gets none) and Q is formed backwards as dorg2r does, the
//! same steps as core-tensor's `src/linalg/qr.ts`. Applying a reflector to the trailing columns is
//! split over the thread pool by columns, so the result does not depend on the thread count.
//! Not here: pivoting, the wide case (callers transpose), blocked (WY) updates.

use crate::pool;

/// Columns below which a reflection runs on the calling thread (waking the pool costs ~10 us).
const PAR_MIN_ELEMS: usize = 1 << 15;

/// Σ x_i y_i with 8 independent partial sums (a fixed order, so the same bits on every thread; one
/// chain of dependent adds would run at a quarter of the FMA rate and defeat vectorisation).
pub fn dot(x: &[f64], y: &[f64]) -> f64 {
    let mut acc = [0.0f64; 8];
    let (xc, yc) = (x.chunks_exact(8), y.chunks_exact(8));
    let (xr, yr) = (xc.remainder(), yc.remainder());
    for (a, b) in xc.zip(yc) {
        for i in 0..8 {
            acc[i] += a[i] * b[i];
        }
    }
    let tail: f64 = xr.iter().zip(yr).map(|(a, b)| a * b).sum();
    ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])) + tail
}

/// H = I - tau v vᵀ applied to the rows j.. of `col` (v[0] = 1 implied; `tail` = v[1..]).
#[inline]
fn reflect(col: &mut [f64], j: usize, tail: &[f64], tau: f64) {
    if tau == 0.0 {
        return;
    }
    let (head, rest) = col[j..].split_at_mut(1);
    let w = head[0] + dot(rest, tail);
    let f = tau * w;
    head[0] -= f;
    rest.iter_mut().zip(tail).for_each(|(c, v)| *c -= f * v);
}

/// Applies the reflector (tail, tau) at row j to every column of `cols` (whole columns of length m).
fn reflect_all(cols: &mut [f64], m: usize, j: usize, tail: &[f64], tau: f64) {
    if tau == 0.0 || cols.is_empty() {
        return;
    }
    let n_cols = cols.len() / m;
    if n_cols * (m - j) < PAR_MIN_ELEMS {
        cols.chunks_mut(m).for_each(|c| reflect(c, j, tail, tau));
        return;
    }
    let per = n_cols.div_ceil(pool::num_threads() * 2).max(1);
    let parts: Vec<&mut [f64]> = cols.chunks_mut(per * m).collect();
    pool::for_each_part(parts, |_, part| part.chunks_mut(m).for_each(|c| reflect(c, j, tail, tau)));
}

/// Overwrites `a` (column-major [m, k], m >= k >= 1) with Q and returns R ([k, k], row-major).
pub fn householder_qr(a: &mut [f64], m: usize, k: usize) -> Vec<f64> {
    debug_assert!(m >= k && a.len() == m * k);
    let mut taus = vec![0.0f64; k];
    for j in 0..k {
        let (done, rest) = a.split_at_mut((j + 1) * m);
        let x = &mut done[j * m + j..];
        let alpha = x[0];
        let xnorm2 = dot(&x[1..], &x[1..]);
        if xnorm2 > 0.0 {
            let sign = if alpha >= 0.0 { 1.0 } else { -1.0 }; // sign(0) = +1, as dlarfg
            let beta = -sign * alpha.hypot(xnorm2.sqrt());
            let scale = 1.0 / (alpha - beta);
            x[1..].iter_mut().for_each(|v| *v *= scale);
            x[0] = beta;
            taus[j] = (beta - alpha) / beta;
        }
        reflect_all(rest, m, j, &x[1..], taus[j]);
    }
    let mut r = vec![0.0f64; k * k];
    for i in 0..k {
        for jj in i..k {
            r[i * k + jj] = a[jj * m + i];
        }
    }
    // dorg2r: Q = H_0 ... H_{k-1} I[:, :k], column j formed after H_j has been applied to columns > j.
    for j in (0..k).rev() {
        let (left, right) = a.split_at_mut((j + 1) * m);
        let col = &mut left[j * m..];
        reflect_all(right, m, j, &col[j + 1..], taus[j]);
        let tau = taus[j];
        col[..j].fill(0.0);
        col[j] = 1.0 - tau;
        col[j + 1..].iter_mut().for_each(|v| *v *= -tau);
    }
    r
}
