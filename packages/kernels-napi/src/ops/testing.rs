//! Test helpers for the ops: f64 comparison with a stated tolerance, and central
//! finite differences for checking the f64 reference backwards.

use crate::testutil::Rng;

pub fn f64s(x: &[f32]) -> Vec<f64> {
    x.iter().map(|&v| v as f64).collect()
}

/// Inputs that are exact in f32, so the f32 kernel and the f64 reference see the same numbers.
pub fn inputs(rng: &mut Rng, n: usize, scale: f32) -> (Vec<f32>, Vec<f64>) {
    let x = rng.normal_vec(n, scale);
    let x64 = f64s(&x);
    (x, x64)
}

/// |got - want| <= rtol * mag + atol per element; `mag` is the scale of the terms
/// the value was summed from (|want| when nothing cancels), so cancellation in a
/// sum is not mistaken for a kernel error.
pub fn assert_close(what: &str, got: &[f32], want: &[f64], mag: &[f64], rtol: f64, atol: f64) {
    assert_eq!(got.len(), want.len(), "{what}: length");
    assert_eq!(mag.len(), want.len(), "{what}: mag length");
    for (i, ((&g, &w), &m)) in got.iter().zip(want).zip(mag).enumerate() {
        let err = (g as f64 - w).abs();
        assert!(err <= rtol * m + atol, "{what}[{i}]: got {g:e}, want {w:e} (err {err:e}, mag {m:e}, rtol {rtol:e})");
    }
}

/// `assert_close` with mag = |want|.
pub fn assert_rel(what: &str, got: &[f32], want: &[f64], rtol: f64, atol: f64) {
    let mag: Vec<f64> = want.iter().map(|w| w.abs()).collect();
    assert_close(what, got, want, &mag, rtol, atol);
}

/// Checks `grad` (the analytic d loss / d x at `x`) by central differences on up to
/// `samples` coordinates: |fd - grad| <= rtol * (|grad| + gscale), gscale = max |grad|.
pub fn check_fd(what: &str, x: &[f64], grad: &[f64], samples: usize, rtol: f64, loss: impl Fn(&[f64]) -> f64) {
    let gscale = grad.iter().fold(0.0f64, |m, g| m.max(g.abs()));
    let step = (x.len() / samples.max(1)).max(1);
    let mut xp = x.to_vec();
    for i in (0..x.len()).step_by(step) {
        let h = 1e-6 * x[i].abs().max(1.0);
        xp[i] = x[i] + h;
        let up = loss(&xp);
        xp[i] = x[i] - h;
        let down = loss(&xp);
        xp[i] = x[i];
        let fd = (up - down) / (2.0 * h);
        let err = (fd - grad[i]).abs();
        assert!(err <= rtol * (grad[i].abs() + gscale), "{what}[{i}]: fd {fd:e}, analytic {:e}", grad[i]);
    }
}

/// Σ w_i y_i: the scalar loss whose gradient with respect to y is w (= dout).
pub fn weighted(y: &[f64], w: &[f64]) -> f64 {
    y.iter().zip(w).map(|(a, b)| a * b).sum()
}
