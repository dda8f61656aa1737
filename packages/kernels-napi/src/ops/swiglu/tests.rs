use super::*;
use crate::error::Error;
use crate::ops::testing::{assert_close, assert_rel, check_fd, inputs, weighted};
use crate::simd;
use crate::testutil::{Rng, assert_bits_eq};

fn sigmoid64(g: f64) -> f64 {
    1.0 / (1.0 + (-g).exp())
}

fn forward64(gate: &[f64], up: &[f64]) -> Vec<f64> {
    gate.iter().zip(up).map(|(&g, &u)| g * sigmoid64(g) * u).collect()
}

/// (dgate, dup, and |terms| of dgate for the tolerance).
fn backward64(dout: &[f64], gate: &[f64], up: &[f64]) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
    let mut r = (vec![], vec![], vec![]);
    for ((&d, &g), &u) in dout.iter().zip(gate).zip(up) {
        let s = sigmoid64(g);
        r.0.push(d * u * s * (1.0 + g * (1.0 - s)));
        r.1.push(d * g * s);
        r.2.push((d * u * s).abs() * (1.0 + (g * (1.0 - s)).abs()));
    }
    r
}

fn run_forward(isa: Isa, gate: &[f32], up: &[f32]) -> Vec<f32> {
    let mut out = vec![f32::NAN; gate.len()];
    swiglu_forward(isa, &mut out, gate, up, gate.len()).unwrap();
    out
}

fn run_backward(isa: Isa, dout: &[f32], gate: &[f32], up: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let (mut dg, mut du) = (vec![f32::NAN; gate.len()], vec![f32::NAN; gate.len()]);
    swiglu_backward(isa, &mut dg, &mut du, dout, gate, up, gate.len()).unwrap();
    (dg, du)
}

// Tolerance: f32 kernels vs the f64 reference, rel 2e-6 of the magnitude (a few ulp:
// exp/sigmoid within 2-4 ulp, then 2-4 roundings).
const RTOL: f64 = 2e-6;

#[test]
fn matches_f64_reference_at_every_level() {
    let mut rng = Rng::new(1);
    for n in [0usize, 1, 15, 17, 1000, 300_001] {
        let (mut gate, _) = inputs(&mut rng, n, 4.0);
        if n > 10 {
            gate[..6].copy_from_slice(&[-120.0, -90.0, -30.0, 30.0, 90.0, -1.2785]); // tails, dsilu ~ 0
        }
        let gate64: Vec<f64> = gate.iter().map(|&g| g as f64).collect();
        let (up, up64) = inputs(&mut rng, n, 1.0);
        let (dout, dout64) = inputs(&mut rng, n, 1.0);
        let want = forward64(&gate64, &up64);
        let (wdg, wdu, mag) = backward64(&dout64, &gate64, &up64);
        let out0 = run_forward(Isa::scalar(), &gate, &up);
        let (dg0, du0) = run_backward(Isa::scalar(), &dout, &gate, &up);
        for isa in simd::supported() {
            let what = format!("n={n} {:?}", isa.level());
            let out = run_forward(isa, &gate, &up);
            assert_rel(&format!("out {what}"), &out, &want, RTOL, 1e-37);
            let (dg, du) = run_backward(isa, &dout, &gate, &up);
            assert_close(&format!("dgate {what}"), &dg, &wdg, &mag, RTOL, 1e-37);
            assert_rel(&format!("dup {what}"), &du, &wdu, RTOL, 1e-37);
            assert_bits_eq(&out, &out0, &what); // elementwise: bit-identical across levels
            assert_bits_eq(&dg, &dg0, &what);
            assert_bits_eq(&du, &du0, &what);
        }
    }
}

#[test]
fn f64_reference_backward_matches_finite_differences() {
    let mut rng = Rng::new(2);
    let (_, gate) = inputs(&mut rng, 64, 3.0);
    let (_, up) = inputs(&mut rng, 64, 1.0);
    let (_, dout) = inputs(&mut rng, 64, 1.0);
    let (dg, du, _) = backward64(&dout, &gate, &up);
    check_fd("dgate", &gate, &dg, 64, 1e-6, |g| weighted(&forward64(g, &up), &dout));
    check_fd("dup", &up, &du, 64, 1e-6, |u| weighted(&forward64(&gate, u), &dout));
}

#[test]
fn extreme_gates_stay_finite() {
    let gate = [-1e30f32, -200.0, 200.0, 1e30, f32::MAX, -f32::MAX];
    let up = [1.0f32; 6];
    for isa in simd::supported() {
        let out = run_forward(isa, &gate, &up);
        assert!(out.iter().all(|v| v.is_finite()), "{out:?}");
        assert_eq!(out[2], 200.0);
        let (dg, _) = run_backward(isa, &up, &gate, &up);
        assert!(dg.iter().all(|v| v.is_finite()), "{dg:?}");
    }
}

#[test]
fn argument_errors() {
    let e = swiglu_forward(Isa::scalar(), &mut [0.0; 3], &[0.0; 4], &[0.0; 4], 4).unwrap_err();
    assert!(matches!(e, Error::InvalidArg { arg: "out", .. }));
    let e = swiglu_backward(Isa::scalar(), &mut [0.0; 4], &mut [0.0; 4], &[0.0; 4], &[0.0; 4], &[0.0; 5], 4);
    assert!(matches!(e.unwrap_err(), Error::InvalidArg { arg: "up", .. }));
}
