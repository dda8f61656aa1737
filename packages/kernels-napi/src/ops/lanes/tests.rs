use super::*;
use crate::simd::{self, Isa};
use crate::testutil::{Rng, assert_bits_eq};

simd_kernel! {
    fn exp_all<V>(v, x: &[f32], out: &mut [f32]) {
        for (o, x) in out.chunks_mut(V::W).zip(x.chunks(V::W)) {
            v.put(o, exp(v, v.get(x, 0.0)));
        }
    }
}

simd_kernel! {
    fn sigmoid_all<V>(v, x: &[f32], out: &mut [f32]) {
        for (o, x) in out.chunks_mut(V::W).zip(x.chunks(V::W)) {
            v.put(o, sigmoid(v, v.get(x, 0.0)));
        }
    }
}

simd_kernel! {
    fn reductions<V>(v, a: &[f32], b: &[f32]) -> (f32, f32) {
        (dot(v, a, b), max_of(v, a))
    }
}

fn ulp(x: f64) -> f64 {
    let x = (x as f32).abs().max(f32::MIN_POSITIVE);
    (f32::from_bits(x.to_bits() + 1) - x) as f64
}

/// Every value in -104..89 on a fine grid, plus the edges.
fn exp_inputs() -> Vec<f32> {
    let mut x: Vec<f32> = (0..400_003).map(|i| -104.0 + i as f32 * (193.0 / 400_000.0)).collect();
    x.extend([0.0, -0.0, 1e-30, -1e-30, 88.72, 88.73, -87.0, -100.0, -103.9, -104.5, -1e9, 1e9]);
    x.extend([f32::INFINITY, f32::NEG_INFINITY, f32::NAN]);
    x
}

#[test]
fn exp_within_2_ulp_of_f64() {
    let x = exp_inputs();
    let mut got = vec![0.0; x.len()];
    exp_all(Isa::scalar(), &x, &mut got);
    for (&x, &g) in x.iter().zip(&got) {
        let want = (x as f64).exp();
        if x.is_nan() {
            assert!(g.is_nan());
        } else if want > f32::MAX as f64 * (1.0 + 1e-7) {
            assert_eq!(g, f32::INFINITY, "exp({x})");
        } else {
            // Subnormal results: absolute error within 1 ulp of the smallest subnormal.
            let tol = if want < f32::MIN_POSITIVE as f64 { 1.5e-45 } else { 2.0 * ulp(want) };
            assert!((g as f64 - want).abs() <= tol, "exp({x}) = {g:e}, want {want:e}");
        }
    }
}

#[test]
fn elementwise_bit_identical_across_levels() {
    let mut rng = Rng::new(5);
    let mut x = exp_inputs();
    x.extend(rng.normal_vec(10_001, 30.0)); // odd length: partial vectors at the tail
    rng.sprinkle_specials(&mut x);
    let (mut e0, mut s0) = (vec![0.0; x.len()], vec![0.0; x.len()]);
    exp_all(Isa::scalar(), &x, &mut e0);
    sigmoid_all(Isa::scalar(), &x, &mut s0);
    for isa in simd::supported() {
        let (mut e, mut s) = (vec![0.0; x.len()], vec![0.0; x.len()]);
        exp_all(isa, &x, &mut e);
        sigmoid_all(isa, &x, &mut s);
        assert_bits_eq(&e, &e0, &format!("exp {:?}", isa.level()));
        assert_bits_eq(&s, &s0, &format!("sigmoid {:?}", isa.level()));
    }
}

#[test]
fn sigmoid_is_safe_and_accurate() {
    let x = [-1000.0f32, -100.0, -20.0, -1.0, -1e-8, 0.0, 1e-8, 1.0, 20.0, 100.0, 1000.0];
    let mut s = vec![0.0; x.len()];
    for isa in simd::supported() {
        sigmoid_all(isa, &x, &mut s);
        for (&x, &s) in x.iter().zip(&s) {
            let want = 1.0 / (1.0 + (-(x as f64)).exp());
            let tol = if want < f32::MIN_POSITIVE as f64 { 1.5e-45 } else { 4.0 * ulp(want) };
            assert!((s as f64 - want).abs() <= tol, "sigmoid({x}) = {s:e}, want {want:e}");
        }
    }
}

#[test]
fn dot_and_max() {
    let mut rng = Rng::new(9);
    for n in [0usize, 1, 7, 16, 63, 64, 65, 1000] {
        let (a, b) = (rng.normal_vec(n, 1.0), rng.normal_vec(n, 1.0));
        let want: f64 = a.iter().zip(&b).map(|(&x, &y)| x as f64 * y as f64).sum();
        let mag: f64 = a.iter().zip(&b).map(|(&x, &y)| (x as f64 * y as f64).abs()).sum();
        let max = a.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        for isa in simd::supported() {
            let (d, m) = reductions(isa, &a, &b);
            assert!((d as f64 - want).abs() <= 1e-6 * mag + 1e-30, "dot n={n} {:?}", isa.level());
            assert_eq!(m, max, "max n={n}");
        }
    }
}

simd_kernel! {
    /// get/put of `len <= W` values at the end of a buffer: (lanes read, buffer written, W).
    fn partial_round_trip<V>(v, len: usize) -> (Vec<f32>, Vec<f32>, usize) {
        let src: Vec<f32> = (0..len.min(V::W)).map(|i| i as f32 + 1.0).collect();
        let mut lanes = vec![0.0; V::W];
        v.store(&mut lanes, v.get(&src, -7.0));
        let mut dst = vec![-1.0f32; src.len() + 3];
        v.put(&mut dst[..src.len()], v.splat(5.0));
        (lanes, dst, V::W)
    }
}

#[test]
fn partial_vectors_touch_only_their_lanes() {
    for isa in simd::supported() {
        let w = partial_round_trip(isa, 0).2;
        for len in 0..=w {
            let (lanes, dst, _) = partial_round_trip(isa, len);
            for (i, &x) in lanes.iter().enumerate() {
                assert_eq!(x, if i < len { i as f32 + 1.0 } else { -7.0 }, "{:?} len {len}", isa.level());
            }
            assert!(dst[..len].iter().all(|&x| x == 5.0) && dst[len..].iter().all(|&x| x == -1.0));
        }
    }
}
