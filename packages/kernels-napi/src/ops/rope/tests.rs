use super::*;
use crate::ops::testing::{assert_close, check_fd, f64s, weighted};
use crate::simd;
use crate::testutil::{Rng, assert_bits_eq};

/// Llama tables (theta 10000) for `max_pos` positions, rounded to f32.
fn tables(max_pos: usize, hd: usize) -> (Vec<f32>, Vec<f32>) {
    let half = hd / 2;
    let (mut cos, mut sin) = (vec![], vec![]);
    for p in 0..max_pos {
        for i in 0..half {
            let a = p as f64 / 10000f64.powf(2.0 * i as f64 / hd as f64);
            cos.push(a.cos() as f32);
            sin.push(a.sin() as f32);
        }
    }
    (cos, sin)
}

/// (rotated, |terms|) in f64; sign -1 = backward.
fn rotate64(x: &[f64], cos: &[f32], sin: &[f32], pos: &[i32], hd: usize, sign: f64) -> (Vec<f64>, Vec<f64>) {
    let half = hd / 2;
    let rows = x.len() / pos.len().max(1);
    let (mut y, mut mag) = (x.to_vec(), vec![0.0; x.len()]);
    for (r, &p) in pos.iter().enumerate() {
        for h in (r * rows..(r + 1) * rows).step_by(hd) {
            for i in 0..half {
                let (c, s) = (cos[p as usize * half + i] as f64, sign * sin[p as usize * half + i] as f64);
                let (a, b) = (x[h + i], x[h + i + half]);
                y[h + i] = a * c - b * s;
                y[h + i + half] = b * c + a * s;
                mag[h + i] = (a * c).abs() + (b * s).abs();
                mag[h + i + half] = (b * c).abs() + (a * s).abs();
            }
        }
    }
    (y, mag)
}

// f32 vs f64: two products and a sum, so within 2 ulp of the terms' magnitude: rtol 3e-7.
#[test]
fn matches_f64_reference_in_and_out_of_place() {
    let mut rng = Rng::new(6);
    for (bt, heads, hd) in [(1usize, 1usize, 2usize), (5, 6, 48), (7, 2, 64), (3, 3, 20), (1200, 6, 48)] {
        let max_pos = 300;
        let (cos, sin) = tables(max_pos, hd);
        let pos: Vec<i32> = (0..bt).map(|_| rng.below(max_pos) as i32).collect();
        let x = rng.normal_vec(bt * heads * hd, 1.0);
        let (want_f, mag_f) = rotate64(&f64s(&x), &cos, &sin, &pos, hd, 1.0);
        let (want_b, mag_b) = rotate64(&f64s(&x), &cos, &sin, &pos, hd, -1.0);
        let mut first: Option<(Vec<f32>, Vec<f32>)> = None;
        for isa in simd::supported() {
            let what = format!("{bt}x{heads}x{hd} {:?}", isa.level());
            let mut out = vec![f32::NAN; x.len()];
            rope_forward(isa, &mut out, &x, &cos, &sin, &pos, bt, heads, hd).unwrap();
            assert_close(&format!("forward {what}"), &out, &want_f, &mag_f, 3e-7, 0.0);
            let mut inplace = x.clone();
            rope_forward_inplace(isa, &mut inplace, &cos, &sin, &pos, bt, heads, hd).unwrap();
            assert_bits_eq(&inplace, &out, &format!("in place {what}"));
            let mut dx = vec![f32::NAN; x.len()];
            rope_backward(isa, &mut dx, &x, &cos, &sin, &pos, bt, heads, hd).unwrap();
            assert_close(&format!("backward {what}"), &dx, &want_b, &mag_b, 3e-7, 0.0);
            let mut inplace = x.clone();
            rope_backward_inplace(isa, &mut inplace, &cos, &sin, &pos, bt, heads, hd).unwrap();
            assert_bits_eq(&inplace, &dx, &format!("backward in place {what}"));
            let (f0, b0) = first.get_or_insert_with(|| (out.clone(), dx.clone()));
            assert_bits_eq(&out, f0, &what); // bit-identical across levels
            assert_bits_eq(&dx, b0, &what);
        }
    }
}

#[test]
fn f64_reference_backward_matches_finite_differences() {
    let (bt, heads, hd) = (3, 2, 8);
    let (cos, sin) = tables(10, hd);
    let pos = [0, 9, 4];
    let mut rng = Rng::new(7);
    let x = f64s(&rng.normal_vec(bt * heads * hd, 1.0));
    let dout = f64s(&rng.normal_vec(bt * heads * hd, 1.0));
    let (dx, _) = rotate64(&dout, &cos, &sin, &pos, hd, -1.0);
    check_fd("dx", &x, &dx, x.len(), 1e-7, |x| weighted(&rotate64(x, &cos, &sin, &pos, hd, 1.0).0, &dout));
}

#[test]
fn argument_errors() {
    let (cos, sin) = tables(4, 8);
    let x = vec![0.0f32; 2 * 8];
    let mut out = vec![0.0f32; 2 * 8];
    let err = |r: Result<()>| match r.unwrap_err() {
        Error::InvalidArg { arg, .. } => arg,
        e => panic!("{e}"),
    };
    assert_eq!(err(rope_forward(Isa::scalar(), &mut out, &x, &cos, &sin, &[0, 4], 2, 1, 8)), "pos");
    assert_eq!(err(rope_forward(Isa::scalar(), &mut out, &x, &cos, &sin, &[-1, 0], 2, 1, 8)), "pos");
    assert_eq!(err(rope_forward(Isa::scalar(), &mut out, &x, &cos[..15], &sin, &[0, 0], 2, 1, 8)), "cos");
    assert_eq!(err(rope_forward(Isa::scalar(), &mut out, &x, &cos, &sin[..12], &[0, 0], 2, 1, 8)), "sin");
    assert_eq!(err(rope_backward(Isa::scalar(), &mut out[..8], &x, &cos, &sin, &[0, 0], 2, 1, 8)), "dx");
    assert_eq!(err(rope_forward(Isa::scalar(), &mut out[..14], &x[..14], &cos, &sin, &[0, 0], 2, 1, 7)), "hd");
}
