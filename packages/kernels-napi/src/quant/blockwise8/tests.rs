use super::*;
use crate::simd;
use crate::testutil::{Rng, assert_bits_eq};

/// bitsandbytes `create_dynamic_map(signed=True)` (functional.py), computed in f64.
fn dynamic_map() -> Vec<f32> {
    let mut data = vec![0.0f64, 1.0];
    for i in 0..7 {
        let items = (1usize << i) + 1;
        let b: Vec<f64> = (0..items).map(|k| 0.1 + 0.9 * k as f64 / (items - 1) as f64).collect();
        for w in b.windows(2) {
            let v = 10f64.powi(i - 6) * (w[0] + w[1]) / 2.0;
            data.extend([v, -v]);
        }
    }
    data.sort_by(|a, b| a.partial_cmp(b).unwrap());
    data.into_iter().map(|v| v as f32).collect()
}

fn quantize(isa: Isa, x: &[f32], code: &[f32], bs: usize) -> (Vec<u8>, Vec<f32>) {
    let mut q = vec![0xAA; x.len()];
    let mut a = vec![f32::NAN; x.len().div_ceil(bs)];
    quantize_blockwise8(isa, x, code, bs, &mut q, &mut a).unwrap();
    (q, a)
}

fn dequantize(isa: Isa, q: &[u8], a: &[f32], code: &[f32], bs: usize) -> Vec<f32> {
    let mut out = vec![f32::NAN; q.len()];
    dequantize_blockwise8(isa, q, a, code, bs, &mut out).unwrap();
    out
}

#[test]
fn midpoint_ties_take_the_lower_index() {
    // Code k/255 on [0,1] and absmax 1: the midpoint between k and k+1 maps to k.
    let code: Vec<f32> = (0..256).map(|k| k as f32 / 255.0).collect();
    let mids = Midpoints::new(&code).unwrap();
    for k in 0..255 {
        let m = (code[k] + code[k + 1]) * 0.5;
        assert_eq!(mids.index(m) as usize, k);
        assert_eq!(mids.index(f32::from_bits(m.to_bits() + 1)) as usize, k + 1);
    }
    assert_eq!(mids.index(f32::NAN), 0);
    assert_eq!(mids.index(f32::INFINITY), 255);
    assert_eq!(mids.index(-5.0), 0);
}

#[test]
fn levels_bit_identical() {
    let code = dynamic_map();
    assert_eq!(code.len(), 256);
    let mut rng = Rng::new(11);
    for n in [0usize, 1, 15, 16, 17, 255, 256, 257, 1000, 5003] {
        let mut x = rng.normal_vec(n, 0.5);
        rng.sprinkle_specials(&mut x);
        for bs in [32, 256, 4096] {
            let (q0, a0) = quantize(Isa::scalar(), &x, &code, bs);
            let d0 = dequantize(Isa::scalar(), &q0, &a0, &code, bs);
            for isa in simd::supported() {
                let what = format!("n={n} bs={bs} {:?}", isa.level());
                let (q, a) = quantize(isa, &x, &code, bs);
                assert_eq!(q, q0, "{what}");
                assert_bits_eq(&a, &a0, &what);
                assert_bits_eq(&dequantize(isa, &q0, &a0, &code, bs), &d0, &what);
            }
        }
    }
}

#[test]
fn threaded_matches_single_call() {
    let code = dynamic_map();
    let n = pool::PARALLEL_MIN_ELEMS + 1234;
    let x = Rng::new(2).normal_vec(n, 1.0);
    let mids = Midpoints::new(&code).unwrap();
    let mut q0 = vec![0u8; n];
    let mut a0 = vec![0f32; n.div_ceil(256)];
    quantize_blocks_scalar(&x, &mids, 256, &mut q0, &mut a0);
    for isa in simd::supported() {
        let (q, a) = quantize(isa, &x, &code, 256);
        assert!(q == q0 && a == a0, "{:?}", isa.level());
    }
}

#[test]
fn bad_code_is_rejected() {
    let mut code = dynamic_map();
    code.swap(3, 200);
    let (mut q, mut a) = (vec![0u8; 64], vec![0f32; 1]);
    let e = quantize_blockwise8(Isa::scalar(), &[0.0; 64], &code, 64, &mut q, &mut a).unwrap_err();
    assert!(matches!(e, Error::InvalidArg { arg: "code", .. }));
    let e = quantize_blockwise8(Isa::scalar(), &[0.0; 64], &code[..255], 64, &mut q, &mut a).unwrap_err();
    assert!(matches!(e, Error::InvalidArg { arg: "code", .. }));
    let e = quantize_blockwise8(Isa::scalar(), &[0.0; 64], &dynamic_map(), 64, &mut q[..63], &mut a).unwrap_err();
    assert!(matches!(e, Error::InvalidArg { arg: "outCodes", .. }));
}
