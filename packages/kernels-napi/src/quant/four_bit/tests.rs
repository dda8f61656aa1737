use super::*;
use crate::simd;
use crate::testutil::{Rng, assert_bits_eq};

fn quantize(isa: Isa, x: &[f32], bs: usize, ty: FourBit) -> (Vec<u8>, Vec<f32>) {
    let mut p = vec![0xAAu8; x.len().div_ceil(2)];
    let mut a = vec![f32::NAN; x.len().div_ceil(bs)];
    quantize_4bit(isa, x, bs, ty, &mut p, &mut a).unwrap();
    (p, a)
}

fn dequantize(isa: Isa, p: &[u8], a: &[f32], n: usize, bs: usize, ty: FourBit) -> Vec<f32> {
    let mut out = vec![f32::NAN; n];
    dequantize_4bit(isa, p, a, bs, ty, &mut out).unwrap();
    out
}

#[test]
fn hand_worked_nf4() {
    // absmax 1, so s = x. Codes: 1 -> 15 (above all), -1 -> 0, 0 -> 7 (7 negative
    // thresholds), 0.5 -> 12 (0.3893 < 0.5 <= 0.5017), -0.5 -> 2, 0.0398 -> 7 (not > t7).
    let mut x = vec![0.0f32; 32];
    x[..6].copy_from_slice(&[1.0, -1.0, 0.0, 0.5, -0.5, 0.03979014977812767]);
    let (p, a) = quantize(Isa::scalar(), &x, 32, FourBit::Nf4);
    assert_eq!(a, vec![1.0]);
    assert_eq!(&p[..3], &[0xF0, 0x7C, 0x27]);
    assert!(p[3..].iter().all(|&b| b == 0x77));
    let out = dequantize(Isa::scalar(), &p, &a, 32, 32, FourBit::Nf4);
    assert_eq!(&out[..6], &[1.0, -1.0, 0.0, NF4_TABLE[12], NF4_TABLE[2], 0.0]);
}

#[test]
fn hand_worked_fp4() {
    // absmax 2: s = x / 2. 2 -> s 1 -> mag count 7 -> 0b011 = 3; -2 -> 8|3 = 11;
    // 1 -> s 0.5 -> count 5 -> 0b101 = 5 (value 6/12 = 0.5); -0.0 -> 0; 0.004 -> s 0.002 -> 0.
    let mut x = vec![0.0f32; 33];
    x[..5].copy_from_slice(&[2.0, -2.0, 1.0, -0.0, 0.004]);
    x[32] = 0.3; // second, partial block: absmax 0.3, s = 1 -> 3; odd n: low nibble 0
    let (p, a) = quantize(Isa::scalar(), &x, 32, FourBit::Fp4);
    assert_eq!(a, vec![2.0, 0.3]);
    assert_eq!(&p[..3], &[0x3B, 0x50, 0x00]);
    assert_eq!(p[16], 0x30);
    let out = dequantize(Isa::scalar(), &p, &a, 33, 32, FourBit::Fp4);
    assert_eq!(&out[..3], &[2.0, -2.0, 1.0]);
    assert_eq!(out[32], 0.3);
    assert_eq!(FP4_TABLE[8].to_bits(), (-0.0f32).to_bits());
}

#[test]
fn zero_block_gives_code_zero_like_bnb() {
    // absmax 0 -> inv = inf -> s = NaN -> code 0 (NF4: -1.0 * 0 = -0.0 on dequant).
    let x = vec![0.0f32; 64];
    for ty in [FourBit::Nf4, FourBit::Fp4] {
        let (p, a) = quantize(Isa::scalar(), &x, 64, ty);
        assert_eq!(a, vec![0.0]);
        assert!(p.iter().all(|&b| b == 0));
    }
}

#[test]
fn levels_bit_identical() {
    let mut rng = Rng::new(42);
    let sizes = [0usize, 1, 2, 31, 32, 33, 63, 64, 65, 100, 255, 4096, 4097, 10_001];
    for &n in &sizes {
        let mut x = rng.normal_vec(n, 2.0);
        if n > 50 {
            x[..40].fill(0.0); // an all-zero block at bs 32
        }
        rng.sprinkle_specials(&mut x[n.min(40)..]);
        for bs in [32, 64, 128, 256, 4096] {
            for ty in [FourBit::Nf4, FourBit::Fp4] {
                let (p0, a0) = quantize(Isa::scalar(), &x, bs, ty);
                let d0 = dequantize(Isa::scalar(), &p0, &a0, n, bs, ty);
                for isa in simd::supported() {
                    let what = format!("n={n} bs={bs} {ty:?} {:?}", isa.level());
                    let (p, a) = quantize(isa, &x, bs, ty);
                    assert_eq!(p, p0, "{what}: packed");
                    assert_bits_eq(&a, &a0, &what);
                    assert_bits_eq(&dequantize(isa, &p0, &a0, n, bs, ty), &d0, &what);
                }
            }
        }
    }
}

#[test]
fn every_code_and_boundary() {
    // Values on and next to every threshold, scaled by absmax 1 (a 1.0 pins it).
    let mut x = vec![1.0f32];
    for &t in NF4_THRESHOLDS.iter().chain(&FP4_THRESHOLDS) {
        for v in [t, -t] {
            x.extend([v, f32::from_bits(v.to_bits() + 1), f32::from_bits(v.to_bits() - 1)]);
        }
    }
    x.resize(256, 0.25);
    for ty in [FourBit::Nf4, FourBit::Fp4] {
        let (p0, _) = quantize(Isa::scalar(), &x, 256, ty);
        for isa in simd::supported() {
            assert_eq!(quantize(isa, &x, 256, ty).0, p0, "{ty:?} {:?}", isa.level());
        }
    }
    // Every packed byte value dequantizes identically on every level.
    let packed: Vec<u8> = (0..=255u8).collect();
    let absmax = [0.75f32, -3.0, 1.0e-40, f32::INFINITY];
    for ty in [FourBit::Nf4, FourBit::Fp4] {
        let d0 = dequantize(Isa::scalar(), &packed, &absmax, 512, 128, ty);
        for isa in simd::supported() {
            assert_bits_eq(&dequantize(isa, &packed, &absmax, 512, 128, ty), &d0, "all bytes");
        }
    }
}

#[test]
fn threaded_sizes_match_scalar() {
    // Above PARALLEL_MIN_ELEMS, with a partial last block and odd n.
    let n = pool::PARALLEL_MIN_ELEMS * 2 + 77;
    let x = Rng::new(9).normal_vec(n, 1.0);
    let bs = 64;
    let mut p0 = vec![0u8; n.div_ceil(2)];
    let mut a0 = vec![0f32; n.div_ceil(bs)];
    quantize_blocks_scalar(&x, bs, FourBit::Nf4, &mut p0, &mut a0); // one thread, one call
    let mut d0 = vec![0f32; n];
    dequantize_blocks_scalar(&p0, &a0, bs, FourBit::Nf4, &mut d0);
    for isa in simd::supported() {
        let (p, a) = quantize(isa, &x, bs, FourBit::Nf4);
        assert!(p == p0 && a == a0, "{:?}", isa.level());
        assert_bits_eq(&dequantize(isa, &p, &a, n, bs, FourBit::Nf4), &d0, "threaded dequant");
    }
}

#[test]
fn argument_errors_name_the_argument() {
    let x = vec![0.0f32; 100];
    let mut p = vec![0u8; 50];
    let mut a = vec![0f32; 4];
    let isa = Isa::scalar();
    let err = |r: Result<()>| match r.unwrap_err() {
        Error::InvalidArg { arg, .. } => arg,
        e => panic!("unexpected {e}"),
    };
    assert_eq!(err(quantize_4bit(isa, &x, 48, FourBit::Nf4, &mut p, &mut a)), "blocksize");
    assert_eq!(err(quantize_4bit(isa, &x, 32, FourBit::Nf4, &mut p[..49], &mut a)), "outPacked");
    assert_eq!(err(quantize_4bit(isa, &x, 64, FourBit::Nf4, &mut p, &mut a)), "outAbsmax");
    let mut out = vec![0f32; 101];
    assert_eq!(err(dequantize_4bit(isa, &p, &a, 32, FourBit::Fp4, &mut out)), "packed");
    assert_eq!(err(FourBit::from_js(2).map(|_| ())), "type");
}
