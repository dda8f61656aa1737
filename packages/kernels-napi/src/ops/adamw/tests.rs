use super::*;
use crate::ops::testing::{assert_close, f64s};
use crate::simd;
use crate::testutil::{Rng, assert_bits_eq};

const H: AdamW = AdamW { lr: 1e-2, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.1, step: 1.0 };

/// The contract's formula in f64: (param, m, v) after one step; `mag` accumulates the
/// |terms| param was summed from over all steps (the scale of its rounding error).
fn step64(p: &mut [f64], g: &[f64], m: &mut [f64], v: &mut [f64], mag: &mut [f64], h: &AdamW) {
    let step_size = h.lr / (1.0 - h.beta1.powf(h.step));
    let bc2s = (1.0 - h.beta2.powf(h.step)).sqrt();
    for i in 0..p.len() {
        m[i] = h.beta1 * m[i] + (1.0 - h.beta1) * g[i];
        v[i] = h.beta2 * v[i] + (1.0 - h.beta2) * g[i] * g[i];
        let upd = step_size * m[i] / (v[i].sqrt() / bc2s + h.eps);
        let decayed = p[i] * (1.0 - h.lr * h.weight_decay);
        mag[i] = mag[i] * (1.0 - h.lr * h.weight_decay) + upd.abs();
        p[i] = decayed - upd;
    }
}

/// torch's op-by-op f32 evaluation of one element, written out (what the kernel claims to do).
fn step_f32(p: f32, g: f32, m: f32, v: f32, h: &AdamW) -> (f32, f32, f32) {
    let [decay, b1, omb1, b2, omb2, step, bc2s, eps] = scalars(h);
    let m = g.mul_add(omb1, m * b1);
    let v = (omb2 * g).mul_add(g, v * b2);
    let p = p * decay + (-step * m) / (v.sqrt() / bc2s + eps);
    (p, m, v)
}

#[test]
fn three_steps_match_f64_and_torch_f32_order() {
    let mut rng = Rng::new(8);
    for n in [1usize, 15, 17, 1000, 300_007] {
        let p0 = rng.normal_vec(n, 1.0);
        let grads: Vec<Vec<f32>> = (0..3).map(|_| rng.normal_vec(n, 0.1)).collect();
        let mut first: Option<Vec<f32>> = None;
        for isa in simd::supported() {
            let what = format!("n={n} {:?}", isa.level());
            let (mut p, mut m, mut v) = (p0.clone(), vec![0.0f32; n], vec![0.0f32; n]);
            let (mut p64, mut m64, mut v64) = (f64s(&p0), vec![0.0; n], vec![0.0; n]);
            let mut mag: Vec<f64> = p64.iter().map(|p| p.abs()).collect();
            for (t, g) in grads.iter().enumerate() {
                let h = AdamW { step: (t + 1) as f64, ..H };
                let (pe, me, ve): (Vec<f32>, Vec<f32>, Vec<f32>) = {
                    let r: Vec<_> = (0..n).map(|i| step_f32(p[i], g[i], m[i], v[i], &h)).collect();
                    (r.iter().map(|e| e.0).collect(), r.iter().map(|e| e.1).collect(), r.iter().map(|e| e.2).collect())
                };
                adamw_step(isa, &mut p, g, &mut m, &mut v, n, h).unwrap();
                assert_bits_eq(&p, &pe, &format!("param vs op-by-op f32, {what} step {}", t + 1));
                assert_bits_eq(&m, &me, &what);
                assert_bits_eq(&v, &ve, &what);
                step64(&mut p64, &f64s(g), &mut m64, &mut v64, &mut mag, &h);
                // f32 vs f64 after accumulated steps: rel 1e-6 of the terms (a few ulp per op).
                assert_close(&format!("param {what}"), &p, &p64, &mag, 1e-6, 0.0);
            }
            let f = first.get_or_insert_with(|| p.clone());
            assert_bits_eq(&p, f, &what); // bit-identical across levels
        }
    }
}

#[test]
fn zero_gradient_only_decays() {
    let mut p = vec![2.0f32, -3.0];
    let (mut m, mut v) = (vec![0.0; 2], vec![0.0; 2]);
    adamw_step(Isa::scalar(), &mut p, &[0.0; 2], &mut m, &mut v, 2, H).unwrap();
    let decay = (1.0 - 1e-2 * 0.1) as f32;
    assert_eq!(p, [2.0 * decay, -3.0 * decay]);
    assert_eq!((m, v), (vec![0.0; 2], vec![0.0; 2]));
}

#[test]
fn argument_errors() {
    let (mut p, mut m, mut v) = (vec![0.0; 3], vec![0.0; 3], vec![0.0; 3]);
    let arg = |r: Result<()>| match r.unwrap_err() {
        Error::InvalidArg { arg, .. } => arg,
        e => panic!("{e}"),
    };
    assert_eq!(arg(adamw_step(Isa::scalar(), &mut p, &[0.0; 2], &mut m, &mut v, 3, H)), "grad");
    assert_eq!(arg(adamw_step(Isa::scalar(), &mut p, &[0.0; 3], &mut m[..2], &mut v, 3, H)), "m");
    for step in [0.0, 1.5, -1.0, f64::NAN] {
        assert_eq!(arg(adamw_step(Isa::scalar(), &mut p, &[0.0; 3], &mut m, &mut v, 3, AdamW { step, ..H })), "step");
    }
}

/// The final params' bits after three steps of torch 1.13 on an AVX-512 CPU:
/// `p = Parameter(p0); opt = AdamW([p], lr=1e-2, betas=(0.9, 0.999), eps=1e-8,
/// weight_decay=0.1, foreach=False)`, then `p.grad = g[s]; opt.step()` for s = 0, 1, 2,
/// with p0 (scale 2) and g (scale 0.25) drawn from the LCG below (exact in f32).
/// Element 23 is where an unfused m / v update would differ.
const TORCH_BITS: [u32; 32] = [
    0xbf734d9a, 0xbf71a073, 0x3d9b7f4e, 0x3e795cc3, 0x3f557251, 0xbf471876, 0x3c520db6, 0x3e003d20, 0x3e260067,
    0x3f098df0, 0xbf6ea076, 0x3ef407e1, 0x3f69b3f8, 0xbf57b3e4, 0x3ebfcda1, 0xbdc98d7a, 0xbe52e503, 0x3f653cf2,
    0xbe31c3b1, 0x3f5f8fab, 0x3f74d14f, 0x3e9c89af, 0xbe099759, 0x3c6851c5, 0xbed8611f, 0xbe1ba892, 0x3ea5df8a,
    0xbf370bdd, 0xbf4d3295, 0x3f2eb04d, 0xbecd229d, 0xbf75f8f5,
];

#[test]
fn reproduces_torch_f32_bits() {
    let mut state = 12345u32;
    let mut next = |scale: f32| {
        state = state.wrapping_mul(1664525).wrapping_add(1013904223);
        ((state >> 8) as f32 / 16777216.0 - 0.5) * scale
    };
    let p0: Vec<f32> = (0..32).map(|_| next(2.0)).collect();
    let grads: Vec<Vec<f32>> = (0..3).map(|_| (0..32).map(|_| next(0.25)).collect()).collect();
    let want: Vec<f32> = TORCH_BITS.iter().map(|&b| f32::from_bits(b)).collect();
    for isa in simd::supported() {
        let (mut p, mut m, mut v) = (p0.clone(), vec![0.0; 32], vec![0.0; 32]);
        for (t, g) in grads.iter().enumerate() {
            adamw_step(isa, &mut p, g, &mut m, &mut v, 32, AdamW { lr: 1e-2, step: (t + 1) as f64, ..H }).unwrap();
        }
        assert_bits_eq(&p, &want, &format!("{:?}", isa.level()));
    }
}
