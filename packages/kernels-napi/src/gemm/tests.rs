use super::*;
use crate::convert::{Conv, f32_to_bf16_scalar};
use crate::quant::{four_bit, int8_rows};
use crate::simd::{Level, supported};
use crate::testutil::{Rng, assert_bits_eq};

const TRANSPOSES: [(bool, bool); 4] = [(false, false), (false, true), (true, false), (true, true)];

fn g(trans_a: bool, trans_b: bool, m: usize, n: usize, k: usize, alpha: f32, beta: f32) -> Gemm {
    Gemm { trans_a, trans_b, m, n, k, alpha, beta }
}

/// op(X)[i, j] of a stored row-major matrix with `rows` x `cols` logical shape.
fn at(x: &[f32], trans: bool, rows: usize, cols: usize, i: usize, j: usize) -> f64 {
    (if trans { x[j * rows + i] } else { x[i * cols + j] }) as f64
}

/// f64 reference and, per element, the scale |alpha| sum|a b| + |beta c| its error is bounded by.
fn reference(p: &Gemm, a: &[f32], b: &[f32], c: &[f32]) -> (Vec<f64>, Vec<f64>) {
    let (mut out, mut mag) = (vec![0.0; p.m * p.n], vec![0.0; p.m * p.n]);
    for i in 0..p.m {
        for j in 0..p.n {
            let (mut s, mut s_abs) = (0.0f64, 0.0f64);
            for kk in 0..p.k {
                let prod = at(a, p.trans_a, p.m, p.k, i, kk) * at(b, p.trans_b, p.k, p.n, kk, j);
                s += prod;
                s_abs += prod.abs();
            }
            let old = if p.beta == 0.0 { 0.0 } else { p.beta as f64 * c[i * p.n + j] as f64 };
            out[i * p.n + j] = p.alpha as f64 * s + old;
            mag[i * p.n + j] = (p.alpha as f64).abs() * s_abs + old.abs();
        }
    }
    (out, mag)
}

fn run(isa: Isa, p: &Gemm, a: &[f32], b: &[f32], c0: &[f32]) -> Vec<f32> {
    let mut c = c0.to_vec();
    p.f32(isa, a, b, &mut c).unwrap();
    c
}

/// Check `got` against the f64 reference within the a-priori bound of a k-term
/// f32 sum (k + 2 roundings, each at most eps/2 of the running magnitude).
fn check_close(p: &Gemm, a: &[f32], b: &[f32], c0: &[f32], got: &[f32], what: &str) {
    let (want, mag) = reference(p, a, b, c0);
    let tol = (p.k + 3) as f64 * f32::EPSILON as f64;
    for (i, (&g, (&w, &s))) in got.iter().zip(want.iter().zip(&mag)).enumerate() {
        let err = (g as f64 - w).abs();
        assert!(err <= tol * s + 1e-30, "{what} {p:?}: element {i}: got {g}, want {w} (err {err:e}, bound {:e})", tol * s);
    }
}

fn inputs(rng: &mut Rng, p: &Gemm) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    (rng.normal_vec(p.m * p.k, 1.0), rng.normal_vec(p.k * p.n, 1.0), rng.normal_vec(p.m * p.n, 1.0))
}

/// 1x1x1, primes, tile edges (MR 14/12/6/4, NR 32/16/8 +-1), k across k-blocks (384 | 385, 800),
/// thin LoRA-like shapes.
const SHAPES: [(usize, usize, usize); 18] = [
    (1, 1, 1),
    (2, 3, 5),
    (7, 13, 29),
    (14, 32, 256),
    (15, 33, 257),
    (13, 31, 255),
    (29, 65, 513),
    (6, 16, 7),
    (12, 8, 3),
    (37, 17, 100),
    (3, 300, 41),
    (100, 8, 288),
    (96, 288, 8),
    (8, 288, 96),
    (53, 1, 70),
    (1, 71, 53),
    (9, 40, 385),
    (40, 3, 800),
];

#[test]
fn matches_f64_reference_at_every_level() {
    let mut rng = Rng::new(1);
    let scalars = [(1.0, 0.0), (0.7, 0.3), (-1.5, 1.0), (2.0, -0.5)];
    for isa in supported() {
        for (s, &(m, n, k)) in SHAPES.iter().enumerate() {
            for (t, &(ta, tb)) in TRANSPOSES.iter().enumerate() {
                let (alpha, beta) = scalars[(s + t) % scalars.len()];
                let p = g(ta, tb, m, n, k, alpha, beta);
                let (a, b, c0) = inputs(&mut rng, &p);
                let got = run(isa, &p, &a, &b, &c0);
                check_close(&p, &a, &b, &c0, &got, isa.level().name());
            }
        }
    }
}

#[test]
fn same_bits_for_any_task_grid() {
    // The grid is what the thread count changes; every C element must not care.
    let mut rng = Rng::new(2);
    for isa in supported() {
        for &(m, n, k) in &[(61, 700, 300), (200, 45, 530), (9, 1100, 40), (300, 7, 600)] {
            for (ta, tb) in TRANSPOSES {
                let p = g(ta, tb, m, n, k, 0.9, 0.5);
                let (a, b, c0) = inputs(&mut rng, &p);
                let mut one = c0.clone();
                p.f32_with(isa, &a, &b, &mut one, Some(1)).unwrap();
                for threads in [2, 3, 4, 7, 16] {
                    let mut c = c0.clone();
                    p.f32_with(isa, &a, &b, &mut c, Some(threads)).unwrap();
                    assert_bits_eq(&c, &one, &format!("{} {p:?} threads {threads}", isa.level().name()));
                }
                // And through the real pool.
                assert_bits_eq(&run(isa, &p, &a, &b, &c0), &one, "pool");
            }
        }
    }
}

#[test]
fn avx2_and_avx512_give_the_same_bits() {
    let levels: Vec<Isa> = supported().into_iter().filter(|i| i.level() != Level::Scalar).collect();
    let mut rng = Rng::new(3);
    for &(m, n, k) in &SHAPES {
        for (ta, tb) in TRANSPOSES {
            let p = g(ta, tb, m, n, k, 1.25, 0.75);
            let (a, b, c0) = inputs(&mut rng, &p);
            let outs: Vec<Vec<f32>> = levels.iter().map(|&isa| run(isa, &p, &a, &b, &c0)).collect();
            for o in &outs[1..] {
                assert_bits_eq(o, &outs[0], &format!("{p:?}"));
            }
        }
    }
}

#[test]
fn beta_zero_ignores_nan_alpha_zero_skips_the_product_k_zero_scales() {
    for isa in supported() {
        let (m, n, k) = (17, 35, 9);
        let a = vec![1.0f32; m * k];
        let b = vec![2.0f32; k * n];
        let got = run(isa, &g(false, false, m, n, k, 0.5, 0.0), &a, &b, &vec![f32::NAN; m * n]);
        assert!(got.iter().all(|&v| v == 9.0), "beta 0 must overwrite NaN");
        // alpha = 0: C = beta * C even if A holds NaN (BLAS rule).
        let nan_a = vec![f32::NAN; m * k];
        let got = run(isa, &g(false, false, m, n, k, 0.0, 2.0), &nan_a, &b, &vec![3.0; m * n]);
        assert!(got.iter().all(|&v| v == 6.0));
        let got = run(isa, &g(true, true, m, n, k, 0.0, 0.0), &nan_a, &b, &vec![f32::NAN; m * n]);
        assert!(got.iter().all(|&v| v == 0.0));
        // k = 0: the empty sum; C = beta * C.
        let got = run(isa, &g(false, false, m, n, 0, 1.0, -1.0), &[], &[], &vec![3.0; m * n]);
        assert!(got.iter().all(|&v| v == -3.0));
        // m = 0 / n = 0: nothing to do.
        assert!(run(isa, &g(false, false, 0, n, k, 1.0, 0.0), &[], &b, &[]).is_empty());
    }
}

#[test]
fn nan_and_inf_in_inputs_propagate() {
    let isa = crate::simd::current();
    let (m, n, k) = (20, 40, 30);
    let mut a = vec![1.0f32; m * k];
    a[3 * k + 5] = f32::NAN; // row 3
    let mut b = vec![1.0f32; k * n];
    b[7 * n + 11] = f32::INFINITY; // column 11
    let c = run(isa, &g(false, false, m, n, k, 1.0, 0.0), &a, &b, &vec![0.0; m * n]);
    for i in 0..m {
        for j in 0..n {
            let v = c[i * n + j];
            if i == 3 {
                assert!(v.is_nan());
            } else if j == 11 {
                assert_eq!(v, f32::INFINITY);
            } else {
                assert_eq!(v, k as f32);
            }
        }
    }
}

#[test]
fn lengths_are_checked_and_named() {
    let isa = Isa::scalar();
    let p = g(false, true, 4, 5, 6, 1.0, 0.0);
    let (a, b, mut c) = (vec![0.0; 24], vec![0.0; 30], vec![0.0; 20]);
    let err = |r: Result<()>| match r.unwrap_err() {
        Error::InvalidArg { arg, .. } => arg,
        e => panic!("{e}"),
    };
    assert_eq!(err(p.f32(isa, &a[1..], &b, &mut c)), "a");
    assert_eq!(err(p.f32(isa, &a, &b[1..], &mut c)), "b");
    assert_eq!(err(p.f32(isa, &a, &b, &mut c[1..])), "c");
    let w4 = (&[0u8; 15][..], &[1.0f32; 1][..], 64, FourBit::Nf4);
    assert!(p.quant4(isa, &a, w4, &mut c).is_ok());
    assert_eq!(err(p.quant4(isa, &a, (&[0u8; 14][..], w4.1, 64, w4.3), &mut c)), "packed");
    assert_eq!(err(p.quant4(isa, &a, (w4.0, &[1.0f32; 2][..], 64, w4.3), &mut c)), "absmax");
    assert_eq!(err(p.quant4(isa, &a, (w4.0, w4.1, 48, w4.3), &mut c)), "blocksize");
    assert_eq!(err(p.int8(isa, &a, &[0; 29], &[1.0; 5], &mut c)), "cb");
    assert_eq!(err(p.int8(isa, &a, &[0; 30], &[1.0; 6], &mut c)), "scb"); // transB: W is [n=5, k]
    assert_eq!(err(p.bf16(isa, &a, &[0; 31], &mut c)), "w");
    let huge = g(false, false, usize::MAX, 2, 3, 1.0, 0.0);
    assert_eq!(err(huge.f32(isa, &a, &b, &mut c)), "k");
}

// ---------------------------------------------------------------- fused dequant

/// Shapes for the fused tests: odd k (rows of W cross 4-bit blocks at odd nibbles),
/// k across k-blocks, n across NR and across the transposed (thin C) path.
const FUSED: [(usize, usize, usize); 7] =
    [(5, 7, 9), (33, 70, 97), (16, 40, 300), (70, 33, 263), (3, 128, 64), (40, 9, 515), (70, 6, 263)];

fn fused_case(rng: &mut Rng, tb: bool, (m, n, k): (usize, usize, usize), beta: f32) -> (Gemm, Vec<f32>, Vec<f32>, Vec<f32>) {
    let p = g(false, tb, m, n, k, 0.8, beta);
    let (a, w, c0) = inputs(rng, &p);
    (p, a, w, c0)
}

#[test]
fn quant4_is_bit_identical_to_gemm_on_the_dequantized_weight() {
    let mut rng = Rng::new(4);
    for isa in supported() {
        for (s, &shape) in FUSED.iter().enumerate() {
            for tb in [false, true] {
                for (bs, ty) in [(32, FourBit::Nf4), (64, FourBit::Fp4), (128, FourBit::Nf4)] {
                    let (p, a, w, c0) = fused_case(&mut rng, tb, shape, if s % 2 == 0 { 0.0 } else { 0.5 });
                    let nk = w.len();
                    let (mut packed, mut absmax) = (vec![0u8; nk.div_ceil(2)], vec![0.0; nk.div_ceil(bs)]);
                    four_bit::quantize_4bit(isa, &w, bs, ty, &mut packed, &mut absmax).unwrap();
                    let mut deq = vec![0.0; nk];
                    four_bit::dequantize_4bit(isa, &packed, &absmax, bs, ty, &mut deq).unwrap();
                    let mut got = c0.clone();
                    p.quant4(isa, &a, (&packed, &absmax, bs, ty), &mut got).unwrap();
                    let what = format!("{} {p:?} bs {bs} {ty:?}", isa.level().name());
                    assert_bits_eq(&got, &run(isa, &p, &a, &deq, &c0), &what);
                }
            }
        }
    }
}

#[test]
fn int8_and_bf16_are_bit_identical_to_gemm_on_the_dequantized_weight() {
    let mut rng = Rng::new(5);
    for isa in supported() {
        for &shape in &FUSED {
            for tb in [false, true] {
                let (p, a, w, c0) = fused_case(&mut rng, tb, shape, 0.25);
                let (rows, cols) = if tb { (p.n, p.k) } else { (p.k, p.n) };
                let (mut cb, mut scb) = (vec![0i8; w.len()], vec![0.0; rows]);
                int8_rows::quantize_int8_rows(isa, &w, rows, cols, &mut cb, &mut scb).unwrap();
                let mut deq = vec![0.0; w.len()];
                int8_rows::dequantize_int8_rows(isa, &cb, &scb, rows, cols, &mut deq).unwrap();
                let mut got = c0.clone();
                p.int8(isa, &a, &cb, &scb, &mut got).unwrap();
                assert_bits_eq(&got, &run(isa, &p, &a, &deq, &c0), &format!("int8 {p:?}"));

                let bits: Vec<u16> = w.iter().map(|&v| f32_to_bf16_scalar(v)).collect();
                let mut wide = vec![0.0; w.len()];
                crate::convert::widen(isa, Conv::Bf16ToF32, &bits, &mut wide).unwrap();
                let mut got = c0.clone();
                p.bf16(isa, &a, &bits, &mut got).unwrap();
                assert_bits_eq(&got, &run(isa, &p, &a, &wide, &c0), &format!("bf16 {p:?}"));
            }
        }
    }
}

#[test]
fn quant4_range_handles_odd_starts_and_block_edges() {
    // Every (start, len) inside a small weight, against the whole dequantized array.
    let mut rng = Rng::new(6);
    let w = rng.normal_vec(200, 1.0);
    for isa in supported() {
        let (mut packed, mut absmax) = (vec![0u8; 100], vec![0.0; 7]);
        four_bit::quantize_4bit(isa, &w, 32, FourBit::Fp4, &mut packed, &mut absmax).unwrap();
        let mut deq = vec![0.0; 200];
        four_bit::dequantize_4bit(isa, &packed, &absmax, 32, FourBit::Fp4, &mut deq).unwrap();
        let src = Quant4Source { packed: &packed, absmax: &absmax, blocksize: 32, ty: FourBit::Fp4, cols: 200 };
        for start in 0..200 {
            for len in [1, 2, 3, 31, 32, 33, 64, 65, 200 - start] {
                let len = len.min(200 - start);
                let mut out = vec![f32::NAN; len];
                src.range(isa, start, &mut out);
                assert_bits_eq(&out, &deq[start..start + len], &format!("start {start} len {len}"));
            }
        }
    }
}
