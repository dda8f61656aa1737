use super::*;
use crate::error::Error;
use crate::ops::testing::{assert_close, check_fd, f64s, weighted};
use crate::simd;
use crate::testutil::Rng;

/// The naive f64 reference, with the full score matrix.
struct Ref {
    sh: AttnShape,
    scale: f64,
    q: Vec<f64>,
    k: Vec<f64>,
    v: Vec<f64>,
}

impl Ref {
    /// P[b, h, t, j] for the visible j (0..=pos), and lse[b, h, t].
    fn probs(&self, b: usize, h: usize, t: usize) -> (Vec<f64>, f64) {
        let (sh, hd) = (self.sh, self.sh.hd);
        let kvh = h / sh.group();
        let qr = &self.q[sh.q_at(b, t, h)..][..hd];
        let s: Vec<f64> = (0..=sh.pos(t))
            .map(|j| self.scale * qr.iter().zip(&self.k[sh.kv_at(b, j, kvh)..][..hd]).map(|(a, b)| a * b).sum::<f64>())
            .collect();
        let m = s.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let lse = m + s.iter().map(|x| (x - m).exp()).sum::<f64>().ln();
        (s.iter().map(|x| (x - lse).exp()).collect(), lse)
    }

    /// (out, lse, |terms| of out).
    fn forward(&self) -> [Vec<f64>; 3] {
        let (sh, hd) = (self.sh, self.sh.hd);
        let mut r = [vec![0.0; sh.b * sh.t * sh.nh * hd], vec![0.0; sh.b * sh.nh * sh.t], vec![]];
        r[2] = r[0].clone();
        for (b, h, t) in self.rows() {
            let (p, lse) = self.probs(b, h, t);
            r[1][(b * sh.nh + h) * sh.t + t] = lse;
            for (j, &pj) in p.iter().enumerate() {
                let vr = &self.v[sh.kv_at(b, j, h / sh.group())..][..hd];
                for d in 0..hd {
                    r[0][sh.q_at(b, t, h) + d] += pj * vr[d];
                    r[2][sh.q_at(b, t, h) + d] += pj * vr[d].abs();
                }
            }
        }
        r
    }

    fn rows(&self) -> impl Iterator<Item = (usize, usize, usize)> + use<> {
        let sh = self.sh;
        (0..sh.b).flat_map(move |b| (0..sh.nh).flat_map(move |h| (0..sh.t).map(move |t| (b, h, t))))
    }

    /// ([dq, dk, dv], [their |terms|]) for the loss sum(dout * out).
    fn backward(&self, dout: &[f64]) -> [[Vec<f64>; 3]; 2] {
        let (sh, hd, sc) = (self.sh, self.sh.hd, self.scale);
        let z = |n| vec![0.0; n];
        let (nq, nkv) = (self.q.len(), self.k.len());
        let mut g = [[z(nq), z(nkv), z(nkv)], [z(nq), z(nkv), z(nkv)]];
        let out = self.forward()[0].clone();
        for (b, h, t) in self.rows() {
            let (p, _) = self.probs(b, h, t);
            let (o, kvh) = (sh.q_at(b, t, h), h / sh.group());
            let dor = &dout[o..][..hd];
            let dd: f64 = dor.iter().zip(&out[o..][..hd]).map(|(a, b)| a * b).sum();
            let add: f64 = dor.iter().zip(&out[o..][..hd]).map(|(a, b)| (a * b).abs()).sum();
            for (j, &pj) in p.iter().enumerate() {
                let kv = sh.kv_at(b, j, kvh);
                let dp: f64 = dor.iter().zip(&self.v[kv..][..hd]).map(|(a, b)| a * b).sum();
                let adp: f64 = dor.iter().zip(&self.v[kv..][..hd]).map(|(a, b)| (a * b).abs()).sum();
                let (ds, mds) = (pj * (dp - dd) * sc, pj * (adp + add) * sc.abs());
                for d in 0..hd {
                    let (qd, kd) = (self.q[o + d], self.k[kv + d]);
                    g[0][0][o + d] += ds * kd;
                    g[1][0][o + d] += mds * kd.abs();
                    g[0][1][kv + d] += ds * qd;
                    g[1][1][kv + d] += mds * qd.abs();
                    g[0][2][kv + d] += pj * dor[d];
                    g[1][2][kv + d] += pj * dor[d].abs();
                }
            }
        }
        g
    }
}

struct Case {
    sh: AttnShape,
    scale: f32,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    dout: Vec<f32>,
}

fn case(rng: &mut Rng, [b, t, s, nh, nkv, hd]: [usize; 6]) -> Case {
    let sh = AttnShape { b, t, s, nh, nkv, hd };
    let (nq, nkv) = (b * t * nh * hd, b * s * nkv * hd);
    let scale = 1.0 / (hd as f32).sqrt();
    let (q, k) = (rng.normal_vec(nq, 1.5), rng.normal_vec(nkv, 1.5));
    Case { sh, scale, q, k, v: rng.normal_vec(nkv, 1.0), dout: rng.normal_vec(nq, 1.0) }
}

fn run_forward(isa: Isa, c: &Case) -> (Vec<f32>, Vec<f32>) {
    let (mut out, mut lse) = (vec![f32::NAN; c.q.len()], vec![f32::NAN; c.sh.b * c.sh.nh * c.sh.t]);
    attention_forward(isa, &mut out, &mut lse, &c.q, &c.k, &c.v, c.sh, c.scale).unwrap();
    (out, lse)
}

fn run_backward(isa: Isa, c: &Case, out: &[f32], lse: &[f32]) -> [Vec<f32>; 3] {
    let mut g = [vec![f32::NAN; c.q.len()], vec![f32::NAN; c.k.len()], vec![f32::NAN; c.k.len()]];
    let x = BwdInputs { dout: &c.dout, q: &c.q, k: &c.k, v: &c.v, out, lse };
    let [dq, dk, dv] = &mut g;
    attention_backward(isa, dq, dk, dv, &x, c.sh, c.scale).unwrap();
    g
}

// [B, T, S, nh, nkv, hd]: T = 1 and S > T (KV cache), nh/nkv = 6/2, hd 48 / 64 / 20 (a
// SIMD tail), T and S across the 64-row / 64-key tile edges.
const SHAPES: [[usize; 6]; 6] = [
    [1, 1, 1, 1, 1, 1],
    [2, 1, 37, 6, 2, 48],
    [2, 70, 70, 6, 2, 48],
    [1, 33, 150, 4, 4, 64],
    [1, 5, 9, 3, 1, 20],
    [2, 130, 200, 2, 1, 16],
];

// f32 kernels vs the f64 reference: |err| <= 1e-5 * (sum of |terms|) per element, for
// out, lse (terms: |lse| + 1), dq, dk, dv, at every SIMD level.
const RTOL: f64 = 1e-5;

#[test]
fn matches_f64_reference_at_every_level() {
    let mut rng = Rng::new(12);
    for shape in SHAPES {
        let c = case(&mut rng, shape);
        let r = Ref { sh: c.sh, scale: c.scale as f64, q: f64s(&c.q), k: f64s(&c.k), v: f64s(&c.v) };
        let [out64, lse64, mout] = r.forward();
        let mlse: Vec<f64> = lse64.iter().map(|l| l.abs() + 1.0).collect();
        let [grads, mags] = r.backward(&f64s(&c.dout));
        for isa in simd::supported() {
            let what = format!("{shape:?} {:?}", isa.level());
            let (out, lse) = run_forward(isa, &c);
            assert_close(&format!("out {what}"), &out, &out64, &mout, RTOL, 0.0);
            assert_close(&format!("lse {what}"), &lse, &lse64, &mlse, RTOL, 0.0);
            let got = run_backward(isa, &c, &out, &lse);
            for (i, name) in ["dq", "dk", "dv"].iter().enumerate() {
                assert_close(&format!("{name} {what}"), &got[i], &grads[i], &mags[i], RTOL, 1e-30);
            }
        }
    }
}

#[test]
fn f64_reference_backward_matches_finite_differences() {
    let mut rng = Rng::new(13);
    let c = case(&mut rng, [1, 3, 5, 4, 2, 3]);
    let r = Ref { sh: c.sh, scale: c.scale as f64, q: f64s(&c.q), k: f64s(&c.k), v: f64s(&c.v) };
    let dout = f64s(&c.dout);
    let [g, _] = r.backward(&dout);
    let with = |i: usize, x: &[f64]| {
        let mut r = Ref { sh: r.sh, scale: r.scale, q: r.q.clone(), k: r.k.clone(), v: r.v.clone() };
        [&mut r.q, &mut r.k, &mut r.v][i].copy_from_slice(x);
        weighted(&r.forward()[0], &dout)
    };
    check_fd("dq", &r.q, &g[0], 36, 1e-6, |x| with(0, x));
    check_fd("dk", &r.k, &g[1], 30, 1e-6, |x| with(1, x));
    check_fd("dv", &r.v, &g[2], 30, 1e-6, |x| with(2, x));
}

#[test]
fn repeated_calls_give_the_same_bits() {
    let c = case(&mut Rng::new(14), [3, 100, 120, 6, 2, 48]);
    let (out, lse) = run_forward(simd::current(), &c);
    let g = run_backward(simd::current(), &c, &out, &lse);
    for _ in 0..3 {
        let (o2, l2) = run_forward(simd::current(), &c);
        assert!(o2 == out && l2 == lse);
        assert!(run_backward(simd::current(), &c, &out, &lse) == g);
    }
}

#[test]
fn empty_shapes_and_argument_errors() {
    let isa = Isa::scalar();
    let sh = AttnShape { b: 1, t: 0, s: 3, nh: 2, nkv: 1, hd: 4 };
    let (mut dk, mut dv) = (vec![f32::NAN; 12], vec![f32::NAN; 12]);
    let k = vec![1.0; 12];
    let x = BwdInputs { dout: &[], q: &[], k: &k, v: &k, out: &[], lse: &[] };
    attention_backward(isa, &mut [], &mut dk, &mut dv, &x, sh, 0.5).unwrap();
    assert!(dk.iter().chain(&dv).all(|&v| v == 0.0));
    let arg = |r: Result<()>| match r.unwrap_err() {
        Error::InvalidArg { arg, .. } => arg,
        e => panic!("{e}"),
    };
    let sh = AttnShape { b: 1, t: 2, s: 2, nh: 2, nkv: 1, hd: 4 };
    let (q, kv) = (vec![0.0; 16], vec![0.0; 8]);
    let (mut out, mut lse) = (vec![0.0; 16], vec![0.0; 4]);
    let fwd = |sh: AttnShape, out: &mut [f32], lse: &mut [f32], k: &[f32]| {
        attention_forward(isa, out, lse, &q, k, &kv, sh, 0.5)
    };
    assert_eq!(arg(fwd(AttnShape { s: 1, ..sh }, &mut out, &mut lse, &kv)), "S");
    assert_eq!(arg(fwd(AttnShape { nkv: 3, ..sh }, &mut out, &mut lse, &kv)), "nkv");
    assert_eq!(arg(fwd(sh, &mut out[..15], &mut lse, &kv)), "out");
    assert_eq!(arg(fwd(sh, &mut out, &mut lse[..3], &kv)), "lse");
    assert_eq!(arg(fwd(sh, &mut out, &mut lse, &kv[..7])), "k");
    let x = BwdInputs { dout: &q, q: &q, k: &kv, v: &kv, out: &q, lse: &lse[..3] };
    let r = attention_backward(isa, &mut out, &mut [0.0; 8], &mut [0.0; 8], &x, sh, 0.5);
    assert_eq!(arg(r), "lse");
}

/// An inf in the value of the last key reaches only the last query (the one that sees it):
/// masked keys must be skipped, not multiplied by a zero probability (0 * inf = NaN).
#[test]
fn unseen_keys_do_not_leak() {
    let mut c = case(&mut Rng::new(15), [1, 68, 68, 2, 1, 20]); // row 67 ends a group of 4
    let sh = c.sh;
    for d in 0..sh.hd {
        c.v[sh.kv_at(0, sh.s - 1, 0) + d] = f32::INFINITY;
    }
    for isa in simd::supported() {
        let (out, lse) = run_forward(isa, &c);
        let [dq, _, dv] = run_backward(isa, &c, &out, &lse);
        for h in 0..sh.nh {
            for t in 0..sh.t - 1 {
                let o = sh.q_at(0, t, h);
                assert!(out[o..o + sh.hd].iter().chain(&dq[o..o + sh.hd]).all(|x| x.is_finite()), "{t} {h}");
            }
        }
        assert!(dv.iter().all(|x| x.is_finite()), "{:?}", isa.level());
    }
}
