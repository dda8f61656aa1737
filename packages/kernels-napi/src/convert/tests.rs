use super::*;
use crate::simd;
use crate::testutil::{Rng, assert_bits_eq};

fn narrow_all(isa: Isa, conv: Conv, x: &[f32]) -> Vec<u16> {
    let mut out = vec![0xDEADu16; x.len()];
    narrow(isa, conv, x, &mut out).unwrap();
    out
}

fn widen_all(isa: Isa, conv: Conv, x: &[u16]) -> Vec<f32> {
    let mut out = vec![f32::NAN; x.len()];
    widen(isa, conv, x, &mut out).unwrap();
    out
}

#[test]
fn f16_known_values() {
    let cases: [(f32, u16); 14] = [
        (1.0, 0x3C00),
        (-2.0, 0xC000),
        (65504.0, 0x7BFF),
        (65519.99, 0x7BFF),
        (65520.0, 0x7C00), // tie above the max rounds to even: inf
        (f32::NEG_INFINITY, 0xFC00),
        (5.960_464_5e-8, 0x0001), // 2^-24, smallest subnormal
        (2.980_232_2e-8, 0x0000), // 2^-25: tie, even is 0
        (2.980_232_6e-8, 0x0001), // just above the tie
        (8.940_697e-8, 0x0002),   // 1.5 * 2^-24: tie, rounds to even 2
        (6.097_555e-5, 0x03FF),   // largest subnormal
        (-0.0, 0x8000),
        (1.0e-40, 0x0000), // f32 subnormal
        (f32::from_bits(0xFFC0_1234), 0xFE00 | (0x40_1234 >> 13) as u16),
    ];
    for (x, want) in cases {
        assert_eq!(f32_to_f16_scalar(x), want, "{x:e}");
        for isa in simd::supported() {
            assert_eq!(narrow_all(isa, Conv::F32ToF16, &[x]), [want], "{x:e} {:?}", isa.level());
        }
    }
    assert_eq!(f32_to_f16_scalar(f32::NAN), 0x7E00);
    assert_eq!(f16_to_f32_scalar(0x3C00), 1.0);
    assert_eq!(f16_to_f32_scalar(0x0001), 5.960_464_5e-8);
    assert_eq!(f16_to_f32_scalar(0x7BFF), 65504.0);
}

#[test]
fn bf16_known_values() {
    assert_eq!(f32_to_bf16_scalar(1.0), 0x3F80);
    assert_eq!(f32_to_bf16_scalar(f32::from_bits(0x3F80_8000)), 0x3F80); // tie -> even
    assert_eq!(f32_to_bf16_scalar(f32::from_bits(0x3F81_8000)), 0x3F82); // tie -> even
    assert_eq!(f32_to_bf16_scalar(f32::from_bits(0x3F80_8001)), 0x3F81);
    assert_eq!(f32_to_bf16_scalar(f32::MAX), 0x7F80); // overflow to inf
    assert_eq!(f32_to_bf16_scalar(-f32::NAN), 0xFFC0);
    assert_eq!(f32_to_bf16_scalar(f32::from_bits(0x7F80_0001)), 0x7FC0); // sNaN -> quiet
    assert_eq!(bf16_to_f32_scalar(0xC040), -3.0);
}

#[test]
fn widen_exhaustive_matches_every_level() {
    let all: Vec<u16> = (0..=u16::MAX).collect();
    for conv in [Conv::F16ToF32, Conv::Bf16ToF32] {
        let want: Vec<f32> = all
            .iter()
            .map(|&h| if conv == Conv::F16ToF32 { f16_to_f32_scalar(h) } else { bf16_to_f32_scalar(h) })
            .collect();
        for isa in simd::supported() {
            assert_bits_eq(&widen_all(isa, conv, &all), &want, &format!("{conv:?} {:?}", isa.level()));
        }
    }
    // f16 -> f32 -> f16 is the identity except that NaNs come back quiet.
    for &h in &all {
        let back = f32_to_f16_scalar(f16_to_f32_scalar(h));
        let quiet = if (h & 0x7C00) == 0x7C00 && (h & 0x3FF) != 0 { h | 0x200 } else { h };
        assert_eq!(back, quiet, "{h:#06x}");
    }
}

#[test]
fn narrow_matches_every_level() {
    // A stride through all 2^32 bit patterns, random bits, and values near every
    // f16 rounding boundary (low 13 mantissa bits around the tie 0x1000).
    let mut x: Vec<f32> = (0..(1u64 << 32)).step_by(1021).map(|b| f32::from_bits(b as u32)).collect();
    let mut rng = Rng::new(3);
    x.extend(rng.bits_vec(100_003));
    for exp in 90u32..=160 {
        for low in [0u32, 1, 0xFFF, 0x1000, 0x1001, 0x1FFF, 0x2000, 0x3000, 0x7FFF, 0x8000] {
            let m = (rng.next_u64() as u32 & 0x7F_C000) | low;
            x.push(f32::from_bits(exp << 23 | m));
            x.push(f32::from_bits(0x8000_0000 | exp << 23 | (m & !0xFFFF) | low));
        }
    }
    for conv in [Conv::F32ToF16, Conv::F32ToBf16] {
        let want = narrow_all(Isa::scalar(), conv, &x);
        for isa in simd::supported() {
            let got = narrow_all(isa, conv, &x);
            for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                assert_eq!(g, w, "{conv:?} {:?} x={:#010x}", isa.level(), x[i].to_bits());
            }
        }
    }
}

#[test]
fn odd_lengths_and_errors() {
    let mut rng = Rng::new(5);
    for n in [0usize, 1, 7, 15, 17, 33] {
        let x = rng.normal_vec(n, 100.0);
        let h0 = narrow_all(Isa::scalar(), Conv::F32ToF16, &x);
        for isa in simd::supported() {
            assert_eq!(narrow_all(isa, Conv::F32ToF16, &x), h0);
            assert_bits_eq(&widen_all(isa, Conv::F16ToF32, &h0), &widen_all(Isa::scalar(), Conv::F16ToF32, &h0), "n");
        }
    }
    let mut out = vec![0u16; 3];
    let e = narrow(Isa::scalar(), Conv::F32ToF16, &[1.0; 4], &mut out).unwrap_err();
    assert_eq!(e, Error::invalid("out", "has length 3, expected 4 (x.length)"));
}
