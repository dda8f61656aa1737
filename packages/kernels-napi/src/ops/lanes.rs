//! SIMD lanes for the training ops: one `Simd` trait over f32 vectors, implemented
//! for scalar (1 lane), AVX2 (8) and AVX-512 (16), so each op is written once as a
//! generic body and compiled three times (the `VecOps` idea from candle, with the
//! width as a type parameter as in `pulp`).
//!
//! Soundness: a value of `Avx2` / `Avx512` can only be made by `new_unchecked`,
//! whose caller promises the CPU has the features; every method then uses the
//! intrinsics on that promise. Speed: `simd_kernel!` compiles a generic body inside
//! a `#[target_feature]` function; the body and every method are
//! `#[inline(always)]`, so the intrinsics inline into it and become single
//! instructions (were they not inlined, the code would still be correct, only slow).
//!
//! Rounding: every operation, `fma` included, is correctly rounded in every lane
//! and level, so elementwise ops (and the `exp` below) give the same bits at every
//! level. Reductions (`dot`, `sum`, attention) add in a per-level order, so they
//! agree across levels only to a tolerance.

#[cfg(target_arch = "x86_64")]
pub mod x86;

#[cfg(target_arch = "x86_64")]
pub use x86::{Avx2, Avx512};

/// f32 vectors of `W` lanes. Arithmetic is IEEE per lane; `max`/`min` follow x86
/// (`a > b ? a : b`, so a NaN in `b` propagates); `round` is to nearest even.
pub trait Simd: Copy + Send + Sync + 'static {
    type R: Copy;
    /// Lanes per vector (at most 16).
    const W: usize;
    fn splat(self, x: f32) -> Self::R;
    /// The first `W` values of `s` (`s.len() >= W`).
    fn load(self, s: &[f32]) -> Self::R;
    /// Store into the first `W` values of `d` (`d.len() >= W`).
    fn store(self, d: &mut [f32], x: Self::R);
    fn add(self, a: Self::R, b: Self::R) -> Self::R;
    fn sub(self, a: Self::R, b: Self::R) -> Self::R;
    fn mul(self, a: Self::R, b: Self::R) -> Self::R;
    fn div(self, a: Self::R, b: Self::R) -> Self::R;
    /// `a * b + c` with one rounding (scalar: `mul_add`, a libm call without the fma feature).
    fn fma(self, a: Self::R, b: Self::R, c: Self::R) -> Self::R;
    fn max(self, a: Self::R, b: Self::R) -> Self::R;
    fn min(self, a: Self::R, b: Self::R) -> Self::R;
    fn abs(self, a: Self::R) -> Self::R;
    fn sqrt(self, a: Self::R) -> Self::R;
    fn round(self, a: Self::R) -> Self::R;
    /// `a < b ? t : f` per lane (false for NaN).
    fn lt_select(self, a: Self::R, b: Self::R, t: Self::R, f: Self::R) -> Self::R;
    /// `p * 2^n` for integral `n` in -150..=128, correctly rounded (also into subnormals).
    fn scale2(self, p: Self::R, n: Self::R) -> Self::R;
    /// Sum of the lanes (a fixed tree per level).
    fn sum(self, a: Self::R) -> f32;
    /// Max of the lanes.
    fn hmax(self, a: Self::R) -> f32;

    /// The `s.len() < W` values of `s`, the other lanes = `fill` (x86: a masked load).
    #[inline(always)]
    fn load_part(self, s: &[f32], fill: f32) -> Self::R {
        let mut buf = [fill; 16];
        buf[..s.len()].copy_from_slice(s);
        self.load(&buf)
    }

    /// Store the first `d.len() < W` lanes of `x` into `d` (x86: a masked store).
    #[inline(always)]
    fn store_part(self, d: &mut [f32], x: Self::R) {
        let mut buf = [0.0; 16];
        self.store(&mut buf, x);
        let n = d.len();
        d.copy_from_slice(&buf[..n]);
    }

    /// `s` (shorter than `W` only at a row's tail, the missing lanes = `fill`).
    #[inline(always)]
    fn get(self, s: &[f32], fill: f32) -> Self::R {
        if s.len() >= Self::W { self.load(s) } else { self.load_part(s, fill) }
    }

    /// Store the first `min(W, d.len())` lanes of `x` into `d`.
    #[inline(always)]
    fn put(self, d: &mut [f32], x: Self::R) {
        if d.len() >= Self::W { self.store(d, x) } else { self.store_part(d, x) }
    }
}

/// One lane, plain f32: the reference the vector levels are tested against.
#[derive(Clone, Copy, Debug, Default)]
pub struct Scalar;

impl Simd for Scalar {
    type R = f32;
    const W: usize = 1;
    #[inline(always)]
    fn splat(self, x: f32) -> f32 {
        x
    }
    #[inline(always)]
    fn load(self, s: &[f32]) -> f32 {
        s[0]
    }
    #[inline(always)]
    fn store(self, d: &mut [f32], x: f32) {
        d[0] = x;
    }
    #[inline(always)]
    fn add(self, a: f32, b: f32) -> f32 {
        a + b
    }
    #[inline(always)]
    fn sub(self, a: f32, b: f32) -> f32 {
        a - b
    }
    #[inline(always)]
    fn mul(self, a: f32, b: f32) -> f32 {
        a * b
    }
    #[inline(always)]
    fn div(self, a: f32, b: f32) -> f32 {
        a / b
    }
    #[inline(always)]
    fn fma(self, a: f32, b: f32, c: f32) -> f32 {
        a.mul_add(b, c)
    }
    #[inline(always)]
    fn max(self, a: f32, b: f32) -> f32 {
        if a > b { a } else { b }
    }
    #[inline(always)]
    fn min(self, a: f32, b: f32) -> f32 {
        if a < b { a } else { b }
    }
    #[inline(always)]
    fn abs(self, a: f32) -> f32 {
        a.abs()
    }
    #[inline(always)]
    fn sqrt(self, a: f32) -> f32 {
        a.sqrt()
    }
    #[inline(always)]
    fn round(self, a: f32) -> f32 {
        a.round_ties_even()
    }
    #[inline(always)]
    fn lt_select(self, a: f32, b: f32, t: f32, f: f32) -> f32 {
        if a < b { t } else { f }
    }
    #[inline(always)]
    fn scale2(self, p: f32, n: f32) -> f32 {
        let n = n as i32;
        let n1 = n >> 1; // two exact powers of two, so a subnormal result rounds once
        p * pow2(n1) * pow2(n - n1)
    }
    #[inline(always)]
    fn sum(self, a: f32) -> f32 {
        a
    }
    #[inline(always)]
    fn hmax(self, a: f32) -> f32 {
        a
    }
}

/// 2^n for n in -126..=127.
#[inline(always)]
fn pow2(n: i32) -> f32 {
    f32::from_bits(((n + 127) as u32) << 23)
}

// Cephes `expf` (Moshier): exp(x) = 2^n * exp(r), n = round(x / ln 2), r = x - n ln 2
// with ln 2 split in two so n * C1 is exact, exp(r) by a degree-7 polynomial.
const LOG2E: f32 = std::f32::consts::LOG2_E;
const C1: f32 = 0.693359375;
const C2: f32 = -2.12194440e-4;
const P: [f32; 6] =
    [1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2, 1.6666665459e-1, 5.0000001201e-1];

/// e^x per lane, within 2 ulp of the true value (tested against f64), with exact
/// limits: 0 below -104 (and for -inf), inf above ~88.72, NaN for NaN. Only
/// `add`/`sub`/`mul` (no fma), so every level gives the same bits.
#[inline(always)]
pub fn exp<V: Simd>(v: V, x: V::R) -> V::R {
    // Clamping keeps n in -150..=128; the clamped values still round to 0 / inf.
    // `max(lo, x)` returns x when x is NaN, so NaN flows through.
    let x = v.min(v.splat(89.0), v.max(v.splat(-104.0), x));
    let n = v.round(v.mul(x, v.splat(LOG2E)));
    let r = v.sub(v.sub(x, v.mul(n, v.splat(C1))), v.mul(n, v.splat(C2)));
    let mut p = v.splat(P[0]);
    for c in &P[1..] {
        p = v.add(v.mul(p, r), v.splat(*c));
    }
    let y = v.add(v.add(v.mul(p, v.mul(r, r)), r), v.splat(1.0));
    v.scale2(y, n)
}

/// 1 / (1 + e^-x) per lane, from e^-|x| so that nothing overflows:
/// x >= 0: 1 / (1 + e^-x); x < 0: e^x / (1 + e^x).
#[inline(always)]
pub fn sigmoid<V: Simd>(v: V, x: V::R) -> V::R {
    let e = exp(v, v.sub(v.splat(0.0), v.abs(x)));
    let num = v.lt_select(x, v.splat(0.0), e, v.splat(1.0));
    v.div(num, v.add(v.splat(1.0), e))
}

/// Σ a_i b_i, with four accumulators (for ILP; the order is fixed per level).
#[inline(always)]
pub fn dot<V: Simd>(v: V, a: &[f32], b: &[f32]) -> f32 {
    let w = V::W;
    let mut acc = [v.splat(0.0); 4];
    let (a4, b4) = (a.chunks_exact(4 * w), b.chunks_exact(4 * w));
    let (ra, rb) = (a4.remainder(), b4.remainder());
    for (x, y) in a4.zip(b4) {
        for r in 0..4 {
            acc[r] = v.fma(v.load(&x[r * w..]), v.load(&y[r * w..]), acc[r]);
        }
    }
    for (x, y) in ra.chunks(w).zip(rb.chunks(w)) {
        acc[0] = v.fma(v.get(x, 0.0), v.get(y, 0.0), acc[0]);
    }
    v.sum(v.add(v.add(acc[0], acc[1]), v.add(acc[2], acc[3])))
}

/// max_i a_i (-inf for an empty slice).
#[inline(always)]
pub fn max_of<V: Simd>(v: V, a: &[f32]) -> f32 {
    let mut m = v.splat(f32::NEG_INFINITY);
    for x in a.chunks(V::W) {
        m = v.max(m, v.get(x, f32::NEG_INFINITY));
    }
    v.hmax(m)
}

/// Whether the CPU has FMA (std caches the answer).
#[cfg(target_arch = "x86_64")]
pub fn has_fma() -> bool {
    is_x86_feature_detected!("fma")
}

/// Defines `fn name(isa: Isa, args..)` from a body generic over `V: Simd`: the body
/// is compiled once per level inside a `#[target_feature]` function, and `isa`
/// picks which one runs. Dispatch once per chunk of work, not per element.
macro_rules! simd_kernel {
    ($(#[$m:meta])* $vis:vis fn $name:ident<$V:ident>($v:ident $(, $arg:ident : $ty:ty)* $(,)?)
        $(-> $ret:ty)? $body:block) => {
        $(#[$m])*
        $vis fn $name(isa: $crate::simd::Isa $(, $arg: $ty)*) $(-> $ret)? {
            #[inline(always)]
            fn body<$V: $crate::ops::lanes::Simd>($v: $V $(, $arg: $ty)*) $(-> $ret)? $body

            /// # Safety
            /// The CPU must support AVX-512F/BW/VL, AVX2 and FMA.
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx512f,avx512bw,avx512vl,avx2,fma")]
            unsafe fn avx512($($arg: $ty),*) $(-> $ret)? {
                // SAFETY: this function's own contract.
                body(unsafe { $crate::ops::lanes::Avx512::new_unchecked() } $(, $arg)*)
            }

            /// # Safety
            /// The CPU must support AVX2 and FMA.
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "avx2,fma")]
            unsafe fn avx2($($arg: $ty),*) $(-> $ret)? {
                // SAFETY: this function's own contract.
                body(unsafe { $crate::ops::lanes::Avx2::new_unchecked() } $(, $arg)*)
            }

            /// # Safety
            /// The CPU must support FMA.
            #[cfg(target_arch = "x86_64")]
            #[target_feature(enable = "fma")]
            unsafe fn scalar_fma($($arg: $ty),*) $(-> $ret)? {
                body($crate::ops::lanes::Scalar $(, $arg)*)
            }

            match isa.level() {
                // SAFETY (x86 arms): an `Isa` of this level exists only if the CPU supports it.
                #[cfg(target_arch = "x86_64")]
                $crate::simd::Level::Avx512 => unsafe { avx512($($arg),*) },
                #[cfg(target_arch = "x86_64")]
                $crate::simd::Level::Avx2 => unsafe { avx2($($arg),*) },
                // One lane; `mul_add` is one instruction where the CPU has FMA, else a libm call.
                // SAFETY: `has_fma` checked the CPU.
                #[cfg(target_arch = "x86_64")]
                _ if $crate::ops::lanes::has_fma() => unsafe { scalar_fma($($arg),*) },
                _ => body($crate::ops::lanes::Scalar $(, $arg)*),
            }
        }
    };
}
pub(crate) use simd_kernel;

#[cfg(test)]
mod tests;
