//! GEMM kernel lab (llm.c's dev/ idea): time the crate's `gemm` on chosen shapes,
//! outside node, to iterate on blocking and microkernels. Not part of the build.
//!
//!   cd packages/kernels-napi && cargo build --release --lib && bash dev/gemm_lab.sh [m,n,k[,ta,tb]] ...
//! Threads: PEFT_NUM_THREADS (default: all cores). Level: LEVEL=avx512|avx2|scalar.
use std::time::Instant;

use peft_kernels::gemm::Gemm;
use peft_kernels::quant::four_bit::{self, FourBit};
use peft_kernels::simd::{self, Isa, Level};

/// Fastest seconds per call over 9 runs of enough calls to take ~30 ms each (the
/// minimum, not the median: this machine is shared with builds while we iterate).
fn time(mut f: impl FnMut()) -> f64 {
    f();
    let t = Instant::now();
    f();
    let reps = ((0.03 / t.elapsed().as_secs_f64().max(1e-7)) as usize).clamp(1, 10_000);
    (0..9).map(|_| {
        let t = Instant::now();
        (0..reps).for_each(|_| f());
        t.elapsed().as_secs_f64() / reps as f64
    }).fold(f64::INFINITY, f64::min)
}

fn main() {
    let level = std::env::var("LEVEL").ok().and_then(|l| Level::parse(&l)).unwrap_or_else(simd::best);
    let isa = Isa::new(level).expect("level");
    let args: Vec<String> = std::env::args().skip(1).collect();
    let shapes: Vec<Vec<usize>> = if args.is_empty() {
        ["256,256,256", "512,512,512", "1024,1024,1024", "2048,2048,2048", "1024,8,288,0,1", "1024,288,8",
         "1024,768,288,0,1q", "1024,288,768"].iter().map(|s| s.to_string()).map(parse).collect()
    } else {
        args.into_iter().map(parse).collect()
    };
    for s in shapes {
        let (m, n, k) = (s[0], s[1], s[2]);
        let (ta, tb) = (s.get(3).copied().unwrap_or(0) == 1, s.get(4).copied().unwrap_or(0) == 1);
        let p = Gemm { trans_a: ta, trans_b: tb, m, n, k, alpha: 1.0, beta: 0.0 };
        let a: Vec<f32> = (0..m * k).map(|i| ((i * 7 % 13) as f32 - 6.0) * 0.1).collect();
        let b: Vec<f32> = (0..k * n).map(|i| ((i * 5 % 11) as f32 - 5.0) * 0.1).collect();
        let mut c = vec![0.0f32; m * n];
        let t = time(|| p.f32(isa, &a, &b, &mut c).unwrap());
        let gf = 2.0 * (m * n * k) as f64 / t / 1e9;
        let (mut packed, mut absmax) = (vec![0u8; (n * k).div_ceil(2)], vec![0.0f32; (n * k).div_ceil(64)]);
        four_bit::quantize_4bit(isa, &b, 64, FourBit::Nf4, &mut packed, &mut absmax).unwrap();
        let tq = time(|| p.quant4(isa, &a, (&packed, &absmax, 64, FourBit::Nf4), &mut c).unwrap());
        println!("{:>16} ta={} tb={} {:>8.1} us {gf:>7.1} GFLOP/s | nf4 {:>8.1} us ({:.3}x)",
            format!("{m}x{n}x{k}"), ta as u8, tb as u8, t * 1e6, tq * 1e6, tq / t);
    }
}

fn parse(s: String) -> Vec<usize> {
    s.split(',').map(|x| x.trim_end_matches('q').parse().expect("m,n,k[,ta,tb]")).collect()
}
