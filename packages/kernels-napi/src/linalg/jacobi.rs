//! SVD of a small dense matrix in f64 by one-sided (Hestenes) Jacobi, as core-tensor's
//! `src/linalg/svd.ts` computes it (same rotations, thresholds and orthonormal completion): the k
//! vectors to orthogonalise are the rows of `w` ([k, len], k <= len); plane rotations make them
//! mutually orthogonal and accumulate V. On return w_j = σ_j u_j. Jacobi is short, needs no
//! bidiagonalisation and gets small singular values to high relative accuracy (Demmel & Veselić 1992).
//! Cost O(k² len) per sweep, 6-10 sweeps: meant for the l x l core of a randomized SVD.

use super::qr::dot;
use crate::error::{Error, Result};

const EPS: f64 = f64::EPSILON;
const MAX_SWEEPS: usize = 100;

/// A thin SVD of the k vectors: `s` descending, `u` [k, len] rows = left vectors (unit, orthonormal),
/// `v` [k, k] with row j = column j of V (the rotation of the input vectors).
pub struct SmallSvd {
    pub s: Vec<f64>,
    pub u: Vec<f64>,
    pub v: Vec<f64>,
}

/// x <- c x - s y, y <- s x + c y.
fn rotate(x: &mut [f64], y: &mut [f64], c: f64, s: f64) {
    for (a, b) in x.iter_mut().zip(y.iter_mut()) {
        let (p, q) = (*a, *b);
        *a = c * p - s * q;
        *b = s * p + c * q;
    }
}

/// Rows p < q of a row-major [_, len] buffer, both mutably.
fn two_rows(w: &mut [f64], len: usize, p: usize, q: usize) -> (&mut [f64], &mut [f64]) {
    let (lo, hi) = w.split_at_mut(q * len);
    (&mut lo[p * len..(p + 1) * len], &mut hi[..len])
}

/// Orthogonalises the rows of `w` in place; returns V ([k, k], row j = column j).
fn sweeps(w: &mut [f64], k: usize, len: usize) -> Result<Vec<f64>> {
    let mut v = vec![0.0f64; k * k];
    (0..k).for_each(|j| v[j * k + j] = 1.0);
    let tol = (len as f64).sqrt() * EPS;
    let mut norms = vec![0.0f64; k];
    for _ in 0..MAX_SWEEPS {
        let mut max_norm = 0.0f64;
        for j in 0..k {
            norms[j] = dot(&w[j * len..(j + 1) * len], &w[j * len..(j + 1) * len]);
            max_norm = max_norm.max(norms[j]);
        }
        // A vector below eps·len·σ_max is round-off; rotating it never converges (svd.ts).
        let negligible = max_norm * (EPS * len as f64).powi(2);
        let mut rotations = 0;
        for p in 0..k.saturating_sub(1) {
            for q in p + 1..k {
                let (alpha, beta) = (norms[p], norms[q]);
                let (wp, wq) = two_rows(w, len, p, q);
                let gamma = dot(wp, wq);
                if gamma == 0.0
                    || alpha <= negligible
                    || beta <= negligible
                    || gamma.abs() <= tol * (alpha * beta).sqrt()
                {
                    continue;
                }
                let zeta = (beta - alpha) / (2.0 * gamma);
                let t = (if zeta >= 0.0 { 1.0 } else { -1.0 }) / (zeta.abs() + (1.0 + zeta * zeta).sqrt());
                let c = 1.0 / (1.0 + t * t).sqrt();
                let s = c * t;
                rotate(wp, wq, c, s);
                let (vp, vq) = two_rows(&mut v, k, p, q);
                rotate(vp, vq, c, s);
                norms[p] = alpha - t * gamma;
                norms[q] = beta + t * gamma;
                if norms[p] < 1e-3 * alpha {
                    norms[p] = dot(wp, wp);
                }
                rotations += 1;
            }
        }
        if rotations == 0 {
            return Ok(v);
        }
    }
    Err(Error::Internal(format!("one-sided Jacobi did not converge in {MAX_SWEEPS} sweeps ({k} x {len})")))
}

/// Makes the rows of `w` unit vectors and returns σ; a row at round-off level is replaced by a unit
/// vector orthogonal to all others (Gram-Schmidt, twice, on the standard basis), its σ kept.
fn normalize_rows(w: &mut [f64], k: usize, len: usize) -> Vec<f64> {
    let sigma: Vec<f64> = (0..k).map(|j| dot(&w[j * len..(j + 1) * len], &w[j * len..(j + 1) * len]).sqrt()).collect();
    let max = sigma.iter().cloned().fold(0.0, f64::max);
    let negligible = max * EPS * len as f64;
    let (mut done, mut zero) = (Vec::new(), Vec::new());
    for j in 0..k {
        if sigma[j] <= negligible {
            zero.push(j);
        } else {
            w[j * len..(j + 1) * len].iter_mut().for_each(|x| *x /= sigma[j]);
            done.push(j);
        }
    }
    let mut e = 0;
    for j in zero {
        while e < len {
            let mut cand = vec![0.0f64; len];
            cand[e] = 1.0;
            e += 1;
            for _ in 0..2 {
                for &o in &done {
                    let row = &w[o * len..(o + 1) * len];
                    let d = dot(&cand, row);
                    cand.iter_mut().zip(row).for_each(|(c, r)| *c -= d * r);
                }
            }
            let norm = dot(&cand, &cand).sqrt();
            if norm > 0.5 {
                cand.iter_mut().for_each(|c| *c /= norm);
                w[j * len..(j + 1) * len].copy_from_slice(&cand);
                done.push(j);
                break;
            }
        }
    }
    sigma
}

/// SVD of the k row vectors of `w` ([k, len]), sorted by σ descending (ties keep index order).
pub fn jacobi_svd(mut w: Vec<f64>, k: usize, len: usize) -> Result<SmallSvd> {
    debug_assert!(k <= len && w.len() == k * len);
    let v = sweeps(&mut w, k, len)?;
    let sigma = normalize_rows(&mut w, k, len);
    let mut order: Vec<usize> = (0..k).collect();
    order.sort_by(|&a, &b| sigma[b].total_cmp(&sigma[a]).then(a.cmp(&b)));
    let mut out = SmallSvd { s: Vec::with_capacity(k), u: Vec::with_capacity(k * len), v: Vec::with_capacity(k * k) };
    for &src in &order {
        out.s.push(sigma[src]);
        out.u.extend_from_slice(&w[src * len..(src + 1) * len]);
        out.v.extend_from_slice(&v[src * k..(src + 1) * k]);
    }
    Ok(out)
}
