use super::*;
use crate::ops::testing::{assert_close, check_fd, f64s};
use crate::simd;
use crate::testutil::Rng;

const IGNORE: i64 = -100;

/// (loss, grad, |terms| of loss, |terms| of grad) in f64.
fn reference(x: &[f64], targets: &[i32], vocab: usize, scale: f64) -> [Vec<f64>; 4] {
    let [mut loss, mut grad, mut mloss, mut mgrad] = [vec![], vec![], vec![], vec![]];
    for (row, &t) in x.chunks(vocab).zip(targets) {
        if t as i64 == IGNORE {
            loss.push(0.0);
            mloss.push(0.0);
            grad.extend(vec![0.0; vocab]);
            mgrad.extend(vec![0.0; vocab]);
            continue;
        }
        let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let lse = max + row.iter().map(|v| (v - max).exp()).sum::<f64>().ln();
        loss.push(lse - row[t as usize]);
        mloss.push(lse.abs() + row[t as usize].abs() + 1.0);
        for (j, &v) in row.iter().enumerate() {
            let (p, hot) = ((v - lse).exp(), if j == t as usize { 1.0 } else { 0.0 });
            grad.push(scale * (p - hot));
            mgrad.push(scale.abs() * (p * (1.0 + v.abs() + lse.abs()) + hot));
        }
    }
    [loss, grad, mloss, mgrad]
}

// f32 vs f64: rel 2e-6 of |lse| + |x_t| + 1 for the loss (the sum of V exps in f32
// is good to ~1e-6), and of scale * p * (1 + |x| + |lse|) for the gradient (x - lse
// loses |x| + |lse| ulps before the exp).
#[test]
fn matches_f64_reference_at_every_level() {
    let mut rng = Rng::new(10);
    for (n, vocab) in [(1usize, 1usize), (7, 11), (9, 1000), (300, 1000), (3, 32000)] {
        let mut x = rng.normal_vec(n * vocab, 3.0);
        if n > 3 {
            x[3 * vocab..4 * vocab].iter_mut().for_each(|v| *v += 50.0); // large logits
        }
        let targets: Vec<i32> =
            (0..n).map(|i| if i % 4 == 1 { IGNORE as i32 } else { rng.below(vocab) as i32 }).collect();
        let scale = 1.0 / n as f32;
        let [loss64, grad64, mloss, mgrad] = reference(&f64s(&x), &targets, vocab, scale as f64);
        for isa in simd::supported() {
            let what = format!("{n}x{vocab} {:?}", isa.level());
            let (mut loss, mut g) = (vec![f32::NAN; n], x.clone());
            cross_entropy_rows(isa, &mut loss, &mut g, &targets, n, vocab, IGNORE, scale).unwrap();
            assert_close(&format!("loss {what}"), &loss, &loss64, &mloss, 2e-6, 0.0);
            assert_close(&format!("grad {what}"), &g, &grad64, &mgrad, 2e-6, 0.0);
            for (i, &t) in targets.iter().enumerate() {
                if t as i64 == IGNORE {
                    assert!(loss[i] == 0.0 && g[i * vocab..(i + 1) * vocab].iter().all(|&v| v == 0.0));
                }
            }
        }
    }
}

#[test]
fn huge_logits_do_not_overflow() {
    let x = [1e4f32, -1e4, 0.0, 1e4 - 2.0];
    for isa in simd::supported() {
        let (mut loss, mut g) = ([0.0f32], x);
        cross_entropy_rows(isa, &mut loss, &mut g, &[0], 1, 4, IGNORE, 1.0).unwrap();
        let want = (1.0 + (-2.0f64).exp()).ln();
        assert!((loss[0] as f64 - want).abs() < 1e-3, "{loss:?}"); // 1e4 has ulp 1e-3
        assert!(g.iter().all(|v| v.is_finite()) && g[1] == 0.0 && g[2] == 0.0);
    }
}

#[test]
fn f64_reference_gradient_matches_finite_differences() {
    let (n, vocab) = (3, 7);
    let x = f64s(&Rng::new(11).normal_vec(n * vocab, 2.0));
    let targets = [2, -100, 6];
    let [_, grad, _, _] = reference(&x, &targets, vocab, 0.5);
    check_fd("logits", &x, &grad, n * vocab, 1e-6, |x| 0.5 * reference(x, &targets, vocab, 0.5)[0].iter().sum::<f64>());
}

#[test]
fn argument_errors() {
    let arg = |r: Result<()>| match r.unwrap_err() {
        Error::InvalidArg { arg, .. } => arg,
        e => panic!("{e}"),
    };
    let mut x = vec![0.0f32; 6];
    let mut loss = vec![0.0f32; 2];
    assert_eq!(arg(cross_entropy_rows(Isa::scalar(), &mut loss, &mut x, &[0, 3], 2, 3, IGNORE, 1.0)), "targets");
    assert_eq!(arg(cross_entropy_rows(Isa::scalar(), &mut loss, &mut x, &[-1, 0], 2, 3, IGNORE, 1.0)), "targets");
    assert_eq!(arg(cross_entropy_rows(Isa::scalar(), &mut loss, &mut x[..5], &[0, 0], 2, 3, IGNORE, 1.0)), "logits");
    assert_eq!(arg(cross_entropy_rows(Isa::scalar(), &mut loss[..1], &mut x, &[0, 0], 2, 3, IGNORE, 1.0)), "loss");
    // Any ignore index works, including one inside 0..V.
    cross_entropy_rows(Isa::scalar(), &mut loss, &mut x, &[1, 2], 2, 3, 1, 1.0).unwrap();
    assert_eq!(loss[0], 0.0);
}
