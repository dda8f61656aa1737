use super::*;
use crate::error::Error;
use crate::ops::testing::{assert_close, assert_rel, check_fd, f64s, inputs, weighted};
use crate::simd;
use crate::testutil::Rng;

/// (out, rstd) in f64.
fn forward64(x: &[f64], w: &[f64], c: usize, eps: f64) -> (Vec<f64>, Vec<f64>) {
    let (mut out, mut rstd) = (vec![], vec![]);
    for row in x.chunks(c) {
        let r = 1.0 / (row.iter().map(|v| v * v).sum::<f64>() / c as f64 + eps).sqrt();
        rstd.push(r);
        out.extend(row.iter().zip(w).map(|(x, w)| x * r * w));
    }
    (out, rstd)
}

/// (dx, dweight, |terms| of dx, |terms| of dweight), with rstd recomputed in f64.
fn backward64(dout: &[f64], x: &[f64], w: &[f64], c: usize, eps: f64) -> [Vec<f64>; 4] {
    let (_, rstd) = forward64(x, w, c, eps);
    let (mut dx, mut dw, mut mdx, mut mdw) = (vec![], vec![0.0; c], vec![], vec![0.0; c]);
    for ((d, x), r) in dout.chunks(c).zip(x.chunks(c)).zip(rstd) {
        let dot: f64 = (0..c).map(|j| d[j] * w[j] * x[j]).sum();
        let adot: f64 = (0..c).map(|j| (d[j] * w[j] * x[j]).abs()).sum();
        let k = r * r * r * dot / c as f64;
        for j in 0..c {
            dx.push(r * w[j] * d[j] - k * x[j]);
            mdx.push((r * w[j] * d[j]).abs() + (r * r * r * adot / c as f64 * x[j]).abs());
            dw[j] += d[j] * x[j] * r;
            mdw[j] += (d[j] * x[j] * r).abs();
        }
    }
    [dx, dw, mdx, mdw]
}

// f32 kernels vs f64: rel 2e-6 of the summed magnitudes for out/dx and 1e-5 for dweight
// (a sum over up to 1100 rows); rstd rel 2e-6.
#[test]
fn matches_f64_reference_at_every_level() {
    let mut rng = Rng::new(3);
    let eps = 1e-5f32;
    for (n, c) in [(1usize, 1usize), (3, 7), (5, 288), (4, 1000), (1100, 300)] {
        let (x, x64) = inputs(&mut rng, n * c, 1.5);
        let (w, w64) = inputs(&mut rng, c, 1.0);
        let (dout, dout64) = inputs(&mut rng, n * c, 1.0);
        let (dw0, dw0_64) = inputs(&mut rng, c, 1.0);
        let (out64, rstd64) = forward64(&x64, &w64, c, eps as f64);
        let [dx64, mut dw64, mdx, mut mdw] = backward64(&dout64, &x64, &w64, c, eps as f64);
        dw64.iter_mut().zip(&dw0_64).for_each(|(a, b)| *a += b);
        mdw.iter_mut().zip(&dw0_64).for_each(|(a, b)| *a += b.abs());
        for isa in simd::supported() {
            let what = format!("{n}x{c} {:?}", isa.level());
            let (mut out, mut rstd) = (vec![f32::NAN; n * c], vec![f32::NAN; n]);
            rmsnorm_forward(isa, &mut out, &mut rstd, &x, &w, n, c, eps).unwrap();
            assert_rel(&format!("rstd {what}"), &rstd, &rstd64, 2e-6, 0.0);
            assert_rel(&format!("out {what}"), &out, &out64, 2e-6, 1e-30);
            let (mut dx, mut dw) = (vec![f32::NAN; n * c], dw0.clone());
            rmsnorm_backward(isa, &mut dx, &mut dw, &dout, &x, &w, &rstd, n, c).unwrap();
            assert_close(&format!("dx {what}"), &dx, &dx64, &mdx, 2e-6, 1e-30);
            assert_close(&format!("dweight {what}"), &dw, &dw64, &mdw, 1e-5, 1e-30);
        }
    }
}

#[test]
fn f64_reference_backward_matches_finite_differences() {
    let (n, c, eps) = (3, 13, 1e-5);
    let mut rng = Rng::new(4);
    let x = f64s(&rng.normal_vec(n * c, 1.0));
    let w = f64s(&rng.normal_vec(c, 1.0));
    let dout = f64s(&rng.normal_vec(n * c, 1.0));
    let [dx, dw, _, _] = backward64(&dout, &x, &w, c, eps);
    check_fd("dx", &x, &dx, n * c, 1e-6, |x| weighted(&forward64(x, &w, c, eps).0, &dout));
    check_fd("dweight", &w, &dw, c, 1e-6, |w| weighted(&forward64(&x, w, c, eps).0, &dout));
}

#[test]
fn zero_rows_and_empty_shapes() {
    let mut rng = Rng::new(5);
    let w = rng.normal_vec(20, 1.0);
    let (mut out, mut rstd) = (vec![f32::NAN; 20], vec![0.0; 1]);
    rmsnorm_forward(Isa::scalar(), &mut out, &mut rstd, &[0.0; 20], &w, 1, 20, 1e-6).unwrap();
    assert_eq!(rstd[0], 1.0 / 1e-6f32.sqrt());
    assert!(out.iter().all(|&v| v == 0.0));
    rmsnorm_forward(Isa::scalar(), &mut [], &mut rstd, &[], &[], 1, 0, 1e-6).unwrap();
    assert!(rstd[0].is_nan());
    let mut dw = vec![1.0f32; 3];
    rmsnorm_backward(Isa::scalar(), &mut [], &mut dw, &[], &[], &[0.0; 3], &[], 0, 3).unwrap();
    assert_eq!(dw, [1.0; 3]);
}

#[test]
fn argument_errors() {
    let mut r = vec![0.0; 2];
    let e = rmsnorm_forward(Isa::scalar(), &mut [0.0; 6], &mut r, &[0.0; 6], &[0.0; 2], 2, 3, 1e-5).unwrap_err();
    assert!(matches!(e, Error::InvalidArg { arg: "weight", .. }));
    let e =
        rmsnorm_backward(Isa::scalar(), &mut [0.0; 6], &mut [0.0; 3], &[0.0; 6], &[0.0; 6], &[0.0; 3], &r[..1], 2, 3);
    assert!(matches!(e.unwrap_err(), Error::InvalidArg { arg: "rstd", .. }));
    let e = rmsnorm_forward(Isa::scalar(), &mut [], &mut [], &[], &[], usize::MAX, 2, 1e-5).unwrap_err();
    assert!(matches!(e, Error::InvalidArg { arg: "N", .. }));
}
