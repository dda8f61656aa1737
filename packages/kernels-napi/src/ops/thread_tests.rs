//! Same bits for any thread count: the pool's size is fixed per process
//! (PEFT_NUM_THREADS), so the test reruns this test binary with 1, 2, 3 and 7
//! threads and compares a hash of every op's outputs with its own.

use std::process::Command;

use super::adamw::{AdamW, adamw_step};
use super::attention::{AttnShape, BwdInputs, attention_backward, attention_forward};
use super::cross_entropy::cross_entropy_rows;
use super::rmsnorm::{rmsnorm_backward, rmsnorm_forward};
use super::rope::rope_forward;
use super::swiglu::{swiglu_backward, swiglu_forward};
use crate::simd;
use crate::testutil::Rng;

/// FNV-1a over the bits of every output.
#[derive(Default)]
struct Hash(u64);

impl Hash {
    fn add(&mut self, xs: &[f32]) {
        for x in xs {
            for b in x.to_bits().to_le_bytes() {
                self.0 = (self.0 ^ b as u64).wrapping_mul(0x100_0000_01b3);
            }
        }
    }
}

/// Every op on inputs large enough to be split into several chunks / tasks.
fn all_ops_hash() -> u64 {
    let (isa, mut rng, mut h) = (simd::current(), Rng::new(99), Hash(0xcbf2_9ce4_8422_2325));
    let (n, c) = (1100, 300);
    let (x, w, d) = (rng.normal_vec(n * c, 1.0), rng.normal_vec(c, 1.0), rng.normal_vec(n * c, 1.0));
    let (mut out, mut rstd, mut dx, mut dw) = (vec![0.0; n * c], vec![0.0; n], vec![0.0; n * c], vec![0.5; c]);
    rmsnorm_forward(isa, &mut out, &mut rstd, &x, &w, n, c, 1e-5).unwrap();
    rmsnorm_backward(isa, &mut dx, &mut dw, &d, &x, &w, &rstd, n, c).unwrap();
    [&out, &rstd, &dx, &dw].iter().for_each(|v| h.add(v));
    let m = 300_001;
    let (g, u, d) = (rng.normal_vec(m, 3.0), rng.normal_vec(m, 1.0), rng.normal_vec(m, 1.0));
    let (mut o, mut dg, mut du) = (vec![0.0; m], vec![0.0; m], vec![0.0; m]);
    swiglu_forward(isa, &mut o, &g, &u, m).unwrap();
    swiglu_backward(isa, &mut dg, &mut du, &d, &g, &u, m).unwrap();
    [&o, &dg, &du].iter().for_each(|v| h.add(v));
    let (bt, heads, hd) = (1200, 6, 48);
    let (cos, sin) = (rng.normal_vec(64 * 24, 1.0), rng.normal_vec(64 * 24, 1.0));
    let pos: Vec<i32> = (0..bt).map(|i| (i % 64) as i32).collect();
    let xr = rng.normal_vec(bt * heads * hd, 1.0);
    let mut r = vec![0.0; xr.len()];
    rope_forward(isa, &mut r, &xr, &cos, &sin, &pos, bt, heads, hd).unwrap();
    h.add(&r);
    let (rows, vocab) = (300, 1000);
    let mut logits = rng.normal_vec(rows * vocab, 3.0);
    let targets: Vec<i32> = (0..rows).map(|i| if i % 5 == 0 { -100 } else { (i * 7 % vocab) as i32 }).collect();
    let mut loss = vec![0.0; rows];
    cross_entropy_rows(isa, &mut loss, &mut logits, &targets, rows, vocab, -100, 0.01).unwrap();
    [&loss, &logits].iter().for_each(|v| h.add(v));
    let p = 300_007;
    let (mut param, grad) = (rng.normal_vec(p, 1.0), rng.normal_vec(p, 0.1));
    let (mut m1, mut v1) = (vec![0.0; p], vec![0.0; p]);
    let hp = AdamW { lr: 1e-3, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.1, step: 1.0 };
    adamw_step(isa, &mut param, &grad, &mut m1, &mut v1, p, hp).unwrap();
    [&param, &m1, &v1].iter().for_each(|v| h.add(v));
    h.add(&attention_hash_inputs(&mut rng));
    h.0
}

/// Attention forward and backward outputs, concatenated.
fn attention_hash_inputs(rng: &mut Rng) -> Vec<f32> {
    let sh = AttnShape { b: 2, t: 130, s: 150, nh: 6, nkv: 2, hd: 48 };
    let (nq, nkv) = (sh.b * sh.t * sh.nh * sh.hd, sh.b * sh.s * sh.nkv * sh.hd);
    let (q, k, v, dout) =
        (rng.normal_vec(nq, 1.0), rng.normal_vec(nkv, 1.0), rng.normal_vec(nkv, 1.0), rng.normal_vec(nq, 1.0));
    let (mut out, mut lse) = (vec![0.0; nq], vec![0.0; sh.b * sh.nh * sh.t]);
    let isa = simd::current();
    attention_forward(isa, &mut out, &mut lse, &q, &k, &v, sh, 0.15).unwrap();
    let (mut dq, mut dk, mut dv) = (vec![0.0; nq], vec![0.0; nkv], vec![0.0; nkv]);
    let x = BwdInputs { dout: &dout, q: &q, k: &k, v: &v, out: &out, lse: &lse };
    attention_backward(isa, &mut dq, &mut dk, &mut dv, &x, sh, 0.15).unwrap();
    [out, lse, dq, dk, dv].concat()
}

/// Run by `same_bits_for_any_thread_count` in a child process.
#[test]
#[ignore = "helper: run by same_bits_for_any_thread_count in a child process"]
fn child_hash() {
    println!("OPS_HASH={:016x} THREADS={}", all_ops_hash(), crate::pool::num_threads());
}

#[test]
fn same_bits_for_any_thread_count() {
    let want = format!("OPS_HASH={:016x}", all_ops_hash());
    let exe = std::env::current_exe().unwrap();
    for threads in ["1", "2", "3", "7"] {
        let args = ["ops::thread_tests::child_hash", "--exact", "--ignored", "--nocapture", "--test-threads=1"];
        let run = Command::new(&exe).args(args).env("PEFT_NUM_THREADS", threads).output().unwrap();
        let stdout = String::from_utf8_lossy(&run.stdout);
        let at = stdout.find("OPS_HASH=").unwrap_or_else(|| panic!("no hash: {stdout}"));
        let line = stdout[at..].lines().next().unwrap_or_default();
        assert!(line.ends_with(&format!("THREADS={threads}")), "{line}");
        assert!(
            line.starts_with(&want),
            "{threads} threads: {line}, in-process ({} threads): {want}",
            crate::pool::num_threads()
        );
    }
}
