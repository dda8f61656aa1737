use super::gaussian::Xoshiro128;
use super::jacobi::jacobi_svd;
use super::qr::householder_qr;
use super::rsvd::{Rsvd, rsvd};
use crate::simd::{Isa, supported};
use crate::testutil::Rng;

/// Max |x_ij - y_ij| of two f64 matrices.
fn max_diff(x: &[f64], y: &[f64]) -> f64 {
    x.iter().zip(y).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max)
}

/// c [m, n] = a [m, k] b [k, n], all f64 row-major.
fn matmul(a: &[f64], b: &[f64], m: usize, k: usize, n: usize) -> Vec<f64> {
    let mut c = vec![0.0; m * n];
    for i in 0..m {
        for p in 0..k {
            for j in 0..n {
                c[i * n + j] += a[i * k + p] * b[p * n + j];
            }
        }
    }
    c
}

fn transpose(a: &[f64], m: usize, n: usize) -> Vec<f64> {
    (0..m * n).map(|x| a[(x % m) * n + x / m]).collect()
}

/// A [m, n] = U diag(s) Vᵀ with random orthonormal U, V (QR of Gaussians) and the given spectrum.
fn with_spectrum(rng: &mut Rng, m: usize, n: usize, s: &[f64]) -> Vec<f32> {
    let k = s.len();
    let orthonormal = |rng: &mut Rng, rows: usize| {
        let mut q: Vec<f64> = rng.normal_vec(rows * k, 1.0).iter().map(|&x| x as f64).collect();
        householder_qr(&mut q, rows, k);
        transpose(&q, k, rows) // column-major [rows, k] -> row-major
    };
    let (u, v) = (orthonormal(rng, m), orthonormal(rng, n));
    let us: Vec<f64> = (0..m * k).map(|x| u[x] * s[x % k]).collect();
    matmul(&us, &transpose(&v, n, k), m, k, n).iter().map(|&x| x as f32).collect()
}

/// Exact singular values of A (f64 Jacobi on the shorter side's vectors).
fn exact_singular_values(a: &[f32], m: usize, n: usize) -> Vec<f64> {
    let a64: Vec<f64> = a.iter().map(|&x| x as f64).collect();
    let (w, k, len) = if m <= n { (a64, m, n) } else { (transpose(&a64, m, n), n, m) };
    jacobi_svd(w, k, len).unwrap().s
}

fn run(isa: Isa, a: &[f32], p: Rsvd) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let (mut u, mut s, mut vt) = (vec![0.0; p.m * p.rank], vec![0.0; p.rank], vec![0.0; p.rank * p.n]);
    rsvd(isa, &mut u, &mut s, &mut vt, a, &p).unwrap();
    (u, s, vt)
}

fn settings(m: usize, n: usize, rank: usize) -> Rsvd {
    Rsvd { m, n, rank, oversample: 10, power_iters: 2, seed: 7 }
}

#[test]
fn gaussian_stream_is_core_tensors_xoshiro128() {
    // Values printed by core-tensor's src/random/rng.ts (new Xoshiro128(12345, 7); new Xoshiro128(3).fillNormal).
    let mut g = Xoshiro128::new(12345, 7);
    assert_eq!([g.next_u32(), g.next_u32(), g.next_u32()], [4233818302, 3695662513, 1565622910]);
    let mut out = [0.0f32; 5];
    Xoshiro128::new(3, 0).fill_normal(&mut out);
    let want =
        [-0.9853308200836182f32, -1.2525886297225952, 0.9824214577674866, -0.03157982975244522, -1.1185204982757568];
    assert_eq!(out, want);
}

#[test]
fn householder_qr_is_orthonormal_and_reproduces_a() {
    let mut rng = Rng::new(1);
    for &(m, k) in &[(7, 7), (50, 9), (300, 40)] {
        let a: Vec<f64> = rng.normal_vec(m * k, 1.0).iter().map(|&x| x as f64).collect(); // column-major
        let mut q = a.clone();
        let r = householder_qr(&mut q, m, k);
        let (qr_rm, q_rm) = (matmul(&transpose(&q, k, m), &r, m, k, k), transpose(&q, k, m));
        assert!(max_diff(&qr_rm, &transpose(&a, k, m)) < 1e-12, "Q R = A ({m} x {k})");
        let qtq = matmul(&transpose(&q_rm, m, k), &q_rm, k, m, k);
        let eye: Vec<f64> = (0..k * k).map(|x| if x % (k + 1) == 0 { 1.0 } else { 0.0 }).collect();
        assert!(max_diff(&qtq, &eye) < 1e-12, "QᵀQ = I ({m} x {k})");
        assert!((0..k).all(|i| (0..i).all(|j| r[i * k + j] == 0.0)), "R upper triangular");
    }
}

#[test]
fn jacobi_reconstructs_and_sorts() {
    let mut rng = Rng::new(2);
    let (k, len) = (12, 20);
    let w: Vec<f64> = rng.normal_vec(k * len, 1.0).iter().map(|&x| x as f64).collect();
    let f = jacobi_svd(w.clone(), k, len).unwrap();
    assert!(f.s.windows(2).all(|p| p[0] >= p[1]));
    // Rows of w = V diag(s) U-rows: w[j] = Σ_i v_i[j] σ_i u_i.
    let mut back = vec![0.0f64; k * len];
    for i in 0..k {
        for j in 0..k {
            for c in 0..len {
                back[j * len + c] += f.v[i * k + j] * f.s[i] * f.u[i * len + c];
            }
        }
    }
    assert!(max_diff(&back, &w) < 1e-12);
}

#[test]
fn exact_on_a_matrix_of_lower_rank_than_l() {
    let mut rng = Rng::new(3);
    let (m, n) = (120, 80);
    let spectrum = [9.0, 5.0, 3.0, 2.0, 1.0];
    let a = with_spectrum(&mut rng, m, n, &spectrum);
    let (u, s, vt) = run(Isa::scalar(), &a, settings(m, n, 5));
    s.iter()
        .zip(&spectrum)
        .for_each(|(&got, &want)| assert!((got as f64 - want).abs() < 1e-4 * want, "{got} vs {want}"));
    let us: Vec<f64> = (0..m * 5).map(|x| u[x] as f64 * s[x % 5] as f64).collect();
    let back = matmul(&us, &vt.iter().map(|&x| x as f64).collect::<Vec<_>>(), m, 5, n);
    assert!(max_diff(&back, &a.iter().map(|&x| x as f64).collect::<Vec<_>>()) < 1e-4);
}

#[test]
fn top_singular_values_of_a_decaying_spectrum_within_1e3() {
    let mut rng = Rng::new(4);
    for &(m, n, rank) in &[(200, 150, 16), (96, 256, 24)] {
        let k = m.min(n);
        let spectrum: Vec<f64> = (0..k).map(|i| (-(i as f64) / 8.0).exp()).collect();
        let a = with_spectrum(&mut rng, m, n, &spectrum);
        let exact = exact_singular_values(&a, m, n);
        let (_, s, _) = run(Isa::scalar(), &a, settings(m, n, rank));
        for j in 0..rank {
            let rel = (s[j] as f64 - exact[j]).abs() / exact[j];
            assert!(rel < 1e-3, "[{m} x {n}] sigma_{j}: {} vs {} (rel {rel:e})", s[j], exact[j]);
        }
    }
}

#[test]
fn orthonormal_factors_with_canonical_signs() {
    let mut rng = Rng::new(5);
    let (m, n, r) = (64, 90, 10);
    let a: Vec<f32> = rng.normal_vec(m * n, 1.0);
    let (u, _, vt) = run(Isa::scalar(), &a, settings(m, n, r));
    for i in 0..r {
        for j in 0..r {
            let uu: f64 = (0..m).map(|x| u[x * r + i] as f64 * u[x * r + j] as f64).sum();
            let vv: f64 = (0..n).map(|x| vt[i * n + x] as f64 * vt[j * n + x] as f64).sum();
            let want = if i == j { 1.0 } else { 0.0 };
            assert!((uu - want).abs() < 1e-5 && (vv - want).abs() < 1e-5, "({i}, {j}): {uu} {vv}");
        }
        let col: Vec<f32> = (0..m).map(|x| u[x * r + i]).collect();
        let big = col.iter().cloned().fold(0.0f32, |b, x| if x.abs() > b.abs() { x } else { b });
        assert!(big > 0.0, "column {i}: largest entry {big}");
    }
}

#[test]
fn deterministic_per_seed_and_agrees_across_simd_levels() {
    let mut rng = Rng::new(6);
    let (m, n) = (150, 130);
    let a: Vec<f32> = rng.normal_vec(m * n, 1.0);
    let base = run(Isa::scalar(), &a, settings(m, n, 8));
    assert_eq!(run(Isa::scalar(), &a, settings(m, n, 8)), base, "deterministic");
    for isa in supported() {
        let (u, s, vt) = run(isa, &a, settings(m, n, 8));
        let close = |x: &[f32], y: &[f32]| x.iter().zip(y).all(|(p, q)| (p - q).abs() < 1e-4);
        assert!(close(&s, &base.1) && close(&u, &base.0) && close(&vt, &base.2), "{:?}", isa.level());
    }
    let other = run(Isa::scalar(), &a, Rsvd { seed: 8, ..settings(m, n, 8) });
    assert_ne!(other.0, base.0, "another seed draws another Ω");
}

#[test]
fn zero_matrix_gives_zero_values_and_orthonormal_vectors() {
    let (m, n, r) = (20, 12, 3);
    let (u, s, vt) = run(Isa::scalar(), &vec![0.0; m * n], settings(m, n, r));
    assert!(s.iter().all(|&x| x == 0.0));
    for j in 0..r {
        let nu: f32 = (0..m).map(|i| u[i * r + j] * u[i * r + j]).sum();
        let nv: f32 = vt[j * n..(j + 1) * n].iter().map(|x| x * x).sum();
        assert!((nu - 1.0).abs() < 1e-6 && (nv - 1.0).abs() < 1e-6);
    }
}

#[test]
fn nan_in_gives_nan_out() {
    let (m, n, r) = (10, 8, 2);
    let mut a = vec![1.0f32; m * n];
    a[17] = f32::NAN;
    let (u, s, vt) = run(Isa::scalar(), &a, settings(m, n, r));
    assert!(u.iter().chain(&s).chain(&vt).all(|x| x.is_nan()));
}

#[test]
fn bad_arguments_name_the_argument() {
    let a = vec![0.0f32; 6 * 4];
    let (mut u, mut s, mut vt) = (vec![0.0; 6 * 2], vec![0.0; 2], vec![0.0; 2 * 4]);
    let mut call = |p: Rsvd, a: &[f32]| rsvd(Isa::scalar(), &mut u, &mut s, &mut vt, a, &p).unwrap_err().to_string();
    assert!(call(Rsvd { rank: 0, ..settings(6, 4, 2) }, &a).contains("`rank`"));
    assert!(call(Rsvd { rank: 5, ..settings(6, 4, 2) }, &a).contains("`rank`"));
    assert!(call(Rsvd { power_iters: 65, ..settings(6, 4, 2) }, &a).contains("`powerIters`"));
    assert!(call(settings(6, 4, 2), &a[..23]).contains("`a`"));
    assert!(call(settings(6, 4, 1), &a).contains("`u`"));
}
