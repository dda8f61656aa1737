use super::*;
use crate::simd;
use crate::testutil::{Rng, assert_bits_eq};

fn quantize(isa: Isa, w: &[f32], rows: usize, cols: usize) -> (Vec<i8>, Vec<f32>) {
    let mut cb = vec![99i8; w.len()];
    let mut scb = vec![f32::NAN; rows];
    quantize_int8_rows(isa, w, rows, cols, &mut cb, &mut scb).unwrap();
    (cb, scb)
}

fn dequantize(isa: Isa, cb: &[i8], scb: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![f32::NAN; cb.len()];
    dequantize_int8_rows(isa, cb, scb, rows, cols, &mut out).unwrap();
    out
}

#[test]
fn hand_worked() {
    // Row 0: absmax 2, f = 63.5: 1 -> 63.5 -> 64 (tie to even), -0.5 -> -31.75 -> -32,
    // 2 -> 127. Row 1 is all zero: NaN -> 0. Row 2 has an inf: absmax inf, f = 0,
    // finite * 0 = 0, inf * 0 = NaN -> 0.
    let w = [1.0, -0.5, 2.0, 0.0, 0.0, -0.0, 3.0, f32::INFINITY, -1.0];
    let (cb, scb) = quantize(Isa::scalar(), &w, 3, 3);
    assert_eq!(cb, [64, -32, 127, 0, 0, 0, 0, 0, 0]);
    assert_eq!(scb, [2.0, 0.0, f32::INFINITY]);
    let out = dequantize(Isa::scalar(), &cb, &scb, 3, 3);
    assert_eq!(out[2], 127.0 * 2.0 * INV_127);
    assert_eq!(round_i8(f32::INFINITY), 127);
    assert_eq!(round_i8(f32::NEG_INFINITY), -127);
    assert_eq!(round_i8(-2.5), -2);
}

#[test]
fn levels_bit_identical() {
    let mut rng = Rng::new(23);
    for (rows, cols) in [(0usize, 5usize), (3, 0), (1, 1), (4, 7), (5, 16), (3, 33), (17, 100), (2, 4099)] {
        let mut w = rng.normal_vec(rows * cols, 0.02);
        rng.sprinkle_specials(&mut w);
        if rows > 2 && cols > 3 {
            w[cols..2 * cols].iter_mut().for_each(|v| *v *= 1.0e-40); // tiny row: f overflows
        }
        let (cb0, scb0) = quantize(Isa::scalar(), &w, rows, cols);
        let d0 = dequantize(Isa::scalar(), &cb0, &scb0, rows, cols);
        for isa in simd::supported() {
            let what = format!("{rows}x{cols} {:?}", isa.level());
            let (cb, scb) = quantize(isa, &w, rows, cols);
            assert_eq!(cb, cb0, "{what}");
            assert_bits_eq(&scb, &scb0, &what);
            assert_bits_eq(&dequantize(isa, &cb0, &scb0, rows, cols), &d0, &what);
        }
    }
    // Every int8 value dequantizes the same.
    let cb: Vec<i8> = (0..=255u8).map(|b| b as i8).collect();
    let scb = [0.3f32, 1.0e-40, 7.0, f32::INFINITY];
    let d0 = dequantize(Isa::scalar(), &cb, &scb, 4, 64);
    for isa in simd::supported() {
        assert_bits_eq(&dequantize(isa, &cb, &scb, 4, 64), &d0, "all bytes");
    }
}

#[test]
fn threaded_matches_single_call() {
    let (rows, cols) = (600, 1001);
    let w = Rng::new(4).normal_vec(rows * cols, 1.0);
    let mut cb0 = vec![0i8; rows * cols];
    let mut scb0 = vec![0f32; rows];
    quantize_rows_scalar(&w, cols, &mut cb0, &mut scb0);
    for isa in simd::supported() {
        let (cb, scb) = quantize(isa, &w, rows, cols);
        assert!(cb == cb0 && scb == scb0, "{:?}", isa.level());
    }
}

#[test]
fn argument_errors() {
    let mut cb = vec![0i8; 6];
    let mut scb = vec![0f32; 2];
    let e = quantize_int8_rows(Isa::scalar(), &[0.0; 5], 2, 3, &mut cb, &mut scb).unwrap_err();
    assert!(matches!(e, Error::InvalidArg { arg: "w", .. }));
    let e = quantize_int8_rows(Isa::scalar(), &[0.0; 6], 2, 3, &mut cb, &mut scb[..1]).unwrap_err();
    assert!(matches!(e, Error::InvalidArg { arg: "outScb", .. }));
    let e = quantize_int8_rows(Isa::scalar(), &[], usize::MAX, 2, &mut [], &mut []).unwrap_err();
    assert!(matches!(e, Error::InvalidArg { arg: "rows", .. }));
}
