//! SGEMM: C[m,n] = alpha * op(A) @ op(B) + beta * C, row-major, all f32, and the
//! same product with B a quantized weight (4-bit, LLM.int8 rows, bf16) that is
//! dequantized inside the B packing step (`source.rs`).
//!
//! Structure (GotoBLAS / BLIS, with C row-major so vectors run along n):
//!   task (a rectangle of C, one per pool chunk)
//!     for pc in k by kc = k_block(k)         k order fixed: one epilogue per block
//!       pack B[pc.., task cols] -> Bp        kc x tn (<= 512 KiB), stays in L2
//!       for ir in task rows by MR
//!         pack A[ir.., pc..] -> Ap           MR x kc, stays in L1
//!         for jr in task cols by NR          microkernel, Bp panel streamed from L2
//! Every C element is one FMA chain per k-block combined by a fixed epilogue
//! (`kernel.rs`), so the result is the same for any thread count and any task
//! grid, and a fused-dequant GEMM is bit-identical to `gemm` on the dequantized
//! weight: it packs the same values into the same layout.
//! What this is not: a general strided BLAS (no lda/ldb/ldc; operands are dense).

mod driver;
pub mod kernel;
pub mod pack;
#[cfg(target_arch = "x86_64")]
mod pack_x86;
pub mod source;
#[cfg(target_arch = "x86_64")]
mod x86;
#[cfg(target_arch = "x86_64")]
mod x86_trans;

use self::kernel::{Kernel, THIN};
use self::pack::AOperand;
use self::source::{BSource, Bf16Source, F32Source, Int8Source, Quant4Source};
use crate::error::{Error, Result};
use crate::pool;
use crate::quant::four_bit::FourBit;
use crate::quant::{check_blocksize, check_len};
use crate::simd::Isa;

/// Products smaller than this many multiply-adds (~50 us on one core) run on the
/// calling thread: waking a pool worker costs 5-20 us in a VM, more than it saves.
const PAR_MIN_FMA: usize = 1 << 22;

/// The scalars and shapes of one product; A is [m,k] ([k,m] if `trans_a`), B is
/// [k,n] ([n,k] if `trans_b`), C is [m,n].
#[derive(Clone, Copy, Debug)]
pub struct Gemm {
    pub trans_a: bool,
    pub trans_b: bool,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    pub alpha: f32,
    pub beta: f32,
}

fn product(x: usize, y: usize, what: &'static str) -> Result<usize> {
    x.checked_mul(y).ok_or_else(|| Error::invalid(what, format!("{x} * {y} overflows")))
}

impl Gemm {
    /// Elements of B (= of the stored weight): n * k.
    fn nk(&self) -> Result<usize> {
        product(self.n, self.k, "k")
    }

    fn check_ac(&self, a: &[f32], c: &[f32]) -> Result<()> {
        check_len("a", a.len(), product(self.m, self.k, "k")?, "m * k")?;
        check_len("c", c.len(), product(self.m, self.n, "n")?, "m * n")
    }

    /// Columns of the stored B: n, or k when transposed.
    fn s_cols(&self) -> usize {
        if self.trans_b { self.k } else { self.n }
    }

    /// Plain SGEMM with an f32 B.
    pub fn f32(&self, isa: Isa, a: &[f32], b: &[f32], c: &mut [f32]) -> Result<()> {
        self.f32_with(isa, a, b, c, None)
    }

    /// `f32` with the task grid built for `threads` (None: the pool's, when the
    /// product is big enough). Tests vary it: the result must not depend on it.
    fn f32_with(&self, isa: Isa, a: &[f32], b: &[f32], c: &mut [f32], threads: Option<usize>) -> Result<()> {
        self.check_ac(a, c)?;
        check_len("b", b.len(), self.nk()?, "k * n")?;
        // Thin C (LoRA rank <= 8): compute C^T = op(B)^T op(A)^T so that vector lanes
        // run along m. Same FMA chains, same bits; see `x86_trans.rs`.
        if let Some(kern) = Kernel::select_transposed(isa).filter(|_| self.n <= THIN && self.m > 4 * THIN) {
            let t = self.transposed();
            t.run(isa, b, &F32Source { data: a, cols: t.s_cols() }, c, kern, threads);
        } else {
            let kern = Kernel::select(isa, self.n);
            self.run(isa, a, &F32Source { data: b, cols: self.s_cols() }, c, kern, threads);
        }
        Ok(())
    }

    /// B is a bitsandbytes 4-bit weight (`packed`, plain f32 `absmax`) of n * k values.
    pub fn quant4(&self, isa: Isa, a: &[f32], w: (&[u8], &[f32], usize, FourBit), c: &mut [f32]) -> Result<()> {
        let (packed, absmax, blocksize, ty) = w;
        check_blocksize(blocksize)?;
        self.check_ac(a, c)?;
        let nk = self.nk()?;
        check_len("packed", packed.len(), nk.div_ceil(2), "ceil(n * k / 2)")?;
        check_len("absmax", absmax.len(), nk.div_ceil(blocksize), "ceil(n * k / blocksize)")?;
        self.run(isa, a, &Quant4Source { packed, absmax, blocksize, ty, cols: self.s_cols() }, c, Kernel::select(isa, self.n), None);
        Ok(())
    }

    /// B is an LLM.int8 weight: `cb` of n * k codes, `scb` one scale per stored row.
    pub fn int8(&self, isa: Isa, a: &[f32], cb: &[i8], scb: &[f32], c: &mut [f32]) -> Result<()> {
        self.check_ac(a, c)?;
        check_len("cb", cb.len(), self.nk()?, "n * k")?;
        let (rows, what) = if self.trans_b { (self.n, "n (rows of W [n, k])") } else { (self.k, "k (rows of W [k, n])") };
        check_len("scb", scb.len(), rows, what)?;
        self.run(isa, a, &Int8Source { cb, scb, cols: self.s_cols() }, c, Kernel::select(isa, self.n), None);
        Ok(())
    }

    /// B is a bf16 weight (raw bits) of n * k values.
    pub fn bf16(&self, isa: Isa, a: &[f32], w: &[u16], c: &mut [f32]) -> Result<()> {
        self.check_ac(a, c)?;
        check_len("w", w.len(), self.nk()?, "n * k")?;
        self.run(isa, a, &Bf16Source { w, cols: self.s_cols() }, c, Kernel::select(isa, self.n), None);
        Ok(())
    }

    /// The product C^T = op(B)^T op(A)^T, i.e. operands and transposes swapped.
    fn transposed(&self) -> Gemm {
        Gemm { trans_a: !self.trans_b, trans_b: !self.trans_a, m: self.n, n: self.m, ..*self }
    }

    fn run(&self, isa: Isa, a: &[f32], src: &dyn BSource, c: &mut [f32], kern: Kernel, threads: Option<usize>) {
        let Gemm { m, n, k, .. } = *self;
        if m == 0 || n == 0 {
            return;
        }
        if k == 0 || self.alpha == 0.0 {
            // BLAS rule: op(A) @ op(B) is not formed, so NaN in A or B does not reach C.
            scale(c, self.beta);
            return;
        }
        let fma = m.saturating_mul(n).saturating_mul(k);
        let auto = if fma < PAR_MIN_FMA { 1 } else { pool::num_threads() };
        let p = driver::Problem {
            isa,
            kern,
            a: AOperand { data: a, trans: self.trans_a, m, k },
            src,
            trans_b: self.trans_b,
            n,
            alpha: self.alpha,
            beta: self.beta,
            c: driver::CPtr(c.as_mut_ptr()),
        };
        driver::run(&p, threads.unwrap_or(auto));
    }
}

/// C = beta * C, where beta == 0 writes zeros (NaN in C ignored).
fn scale(c: &mut [f32], beta: f32) {
    if beta == 0.0 {
        c.fill(0.0);
    } else if beta != 1.0 {
        c.iter_mut().for_each(|v| *v *= beta);
    }
}

#[cfg(test)]
mod tests;
