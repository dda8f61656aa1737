//! Randomized truncated SVD (Halko, Martinsson & Tropp 2011, "Finding structure with randomness",
//! Algorithms 4.4 + 5.1): the top `rank` singular triplets of A [m, n] (f32, row-major).
//!   l = min(rank + oversample, m, n); Ω [n, l] Gaussian (seeded, `gaussian.rs`)
//!   Q = orth(A Ω)                                  range finder
//!   repeat power_iters: Q = orth(A orth(Aᵀ Q))     subspace iteration, re-orthonormalised each product
//!   B = Qᵀ A [l, n];  Bᵀ = Q₂ R₂ (QR);  R₂ᵀ = Ũ Σ Ṽᵀ (Jacobi)   so  A ≈ (Q Ũ) Σ (Q₂ Ṽ)ᵀ
//! The products with A run on `gemm` (f32); orthonormalisation and the l x l SVD in f64 (`qr.rs`,
//! `jacobi.rs`). Signs: each left vector's largest-magnitude entry is made positive and its right
//! vector flipped with it (scikit-learn's svd_flip, u-based), so the output is a function of A and the
//! seed. Error: σ_j is exact when rank(A) <= l; otherwise it is underestimated by a factor that shrinks
//! like (σ_{l+1} / σ_j)^(2 power_iters + 1) (Halko et al. §10). Same algorithm as core-tensor's
//! `src/backend/reference-train/rsvd.ts`.

use super::gaussian::Xoshiro128;
use super::jacobi::jacobi_svd;
use super::qr::householder_qr;
use crate::error::{Error, Result};
use crate::gemm::Gemm;
use crate::quant::check_len;
use crate::simd::Isa;

/// Sizes and settings of one factorisation.
#[derive(Clone, Copy, Debug)]
pub struct Rsvd {
    pub m: usize,
    pub n: usize,
    pub rank: usize,
    pub oversample: usize,
    pub power_iters: usize,
    pub seed: u32,
}

/// Most power iterations accepted (each costs two GEMMs with A; more than a few never pays).
pub const MAX_POWER_ITERS: usize = 64;

/// C [m, n] = op(A) op(B) in f32 on the GEMM kernels.
#[allow(clippy::too_many_arguments)] // a GEMM call: transposes and sizes
fn product(isa: Isa, ta: bool, tb: bool, m: usize, n: usize, k: usize, a: &[f32], b: &[f32]) -> Result<Vec<f32>> {
    let mut c = vec![0.0f32; m * n];
    Gemm { trans_a: ta, trans_b: tb, m, n, k, alpha: 1.0, beta: 0.0 }.f32(isa, a, b, &mut c)?;
    Ok(c)
}

/// Replaces y ([rows, l] row-major, rows >= l) by an orthonormal basis of its columns (Householder Q).
fn orth(y: &mut [f32], rows: usize, l: usize) {
    let mut cm = vec![0.0f64; rows * l];
    for (i, row) in y.chunks(l).enumerate() {
        row.iter().enumerate().for_each(|(j, &x)| cm[j * rows + i] = x as f64);
    }
    householder_qr(&mut cm, rows, l);
    for (i, row) in y.chunks_mut(l).enumerate() {
        row.iter_mut().enumerate().for_each(|(j, x)| *x = cm[j * rows + i] as f32);
    }
}

fn check(p: &Rsvd, u: &[f32], s: &[f32], vt: &[f32], a: &[f32]) -> Result<()> {
    let k = p.m.min(p.n);
    if !(1..=k).contains(&p.rank) {
        return Err(Error::invalid(
            "rank",
            format!("must be in 1..{k} (min(m, n)) for a [{}, {}] matrix, got {}", p.m, p.n, p.rank),
        ));
    }
    if p.power_iters > MAX_POWER_ITERS {
        return Err(Error::invalid("powerIters", format!("must be at most {MAX_POWER_ITERS}, got {}", p.power_iters)));
    }
    let mn = p.m.checked_mul(p.n).ok_or_else(|| Error::invalid("n", "m * n overflows"))?;
    check_len("a", a.len(), mn, "m * n")?;
    check_len("u", u.len(), p.m * p.rank, "m * rank")?;
    check_len("s", s.len(), p.rank, "rank")?;
    check_len("vt", vt.len(), p.rank * p.n, "rank * n")
}

/// Writes U [m, rank], S [rank] (descending) and Vt [rank, n] of A [m, n]; see the module comment.
pub fn rsvd(isa: Isa, u: &mut [f32], s: &mut [f32], vt: &mut [f32], a: &[f32], p: &Rsvd) -> Result<()> {
    check(p, u, s, vt, a)?;
    let Rsvd { m, n, rank, .. } = *p;
    let l = (rank + p.oversample).min(m.min(n));
    let mut omega = vec![0.0f32; n * l];
    Xoshiro128::new(p.seed, 0).fill_normal(&mut omega);
    let mut q = product(isa, false, false, m, l, n, a, &omega)?;
    orth(&mut q, m, l);
    for _ in 0..p.power_iters {
        let mut z = product(isa, true, false, n, l, m, a, &q)?;
        orth(&mut z, n, l);
        q = product(isa, false, false, m, l, n, a, &z)?;
        orth(&mut q, m, l);
    }
    let b = product(isa, true, false, l, n, m, &q, a)?; // [l, n]
    if !b.iter().all(|x| x.is_finite()) {
        // Garbage in (NaN / inf in A), NaN out, as GEMM propagates it; Jacobi would not converge.
        [&mut *u, &mut *s, &mut *vt].into_iter().for_each(|x| x.fill(f32::NAN));
        return Ok(());
    }
    // Row i of B is column i of Bᵀ: B row-major is Bᵀ column-major.
    let mut q2: Vec<f64> = b.iter().map(|&x| x as f64).collect();
    let r2 = householder_qr(&mut q2, n, l); // Q₂ [n, l] column-major = Q₂ᵀ [l, n] row-major
    let small = jacobi_svd(r2, l, l)?; // the columns of R₂ᵀ are the rows of R₂
    let ut: Vec<f32> = (0..l * rank).map(|x| small.u[(x % rank) * l + x / rank] as f32).collect(); // Ũ_r [l, rank]
    let v_rows: Vec<f32> = small.v[..rank * l].iter().map(|&x| x as f32).collect(); // Ṽ_rᵀ [rank, l]
    let q2t: Vec<f32> = q2.iter().map(|&x| x as f32).collect();
    Gemm { trans_a: false, trans_b: false, m, n: rank, k: l, alpha: 1.0, beta: 0.0 }.f32(isa, &q, &ut, u)?;
    Gemm { trans_a: false, trans_b: false, m: rank, n, k: l, alpha: 1.0, beta: 0.0 }.f32(isa, &v_rows, &q2t, vt)?;
    s.iter_mut().zip(&small.s).for_each(|(o, &x)| *o = x as f32);
    flip_signs(u, vt, m, n, rank);
    Ok(())
}

/// svd_flip (u-based): column j of U gets its largest-|.| entry (the first, on ties) positive; row j of Vt follows.
pub fn flip_signs(u: &mut [f32], vt: &mut [f32], m: usize, n: usize, rank: usize) {
    for j in 0..rank {
        let (mut best, mut at) = (-1.0f32, 0);
        for i in 0..m {
            if u[i * rank + j].abs() > best {
                best = u[i * rank + j].abs();
                at = i;
            }
        }
        if u[at * rank + j] < 0.0 {
            (0..m).for_each(|i| u[i * rank + j] = -u[i * rank + j]);
            vt[j * n..(j + 1) * n].iter_mut().for_each(|x| *x = -*x);
        }
    }
}
