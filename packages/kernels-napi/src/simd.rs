//! Run-time choice of the SIMD instruction set (candle's `VecOps` idea, done at run time).
//!
//! Every kernel has a scalar reference and x86 versions for AVX2 (+FMA, F16C) and
//! AVX-512 (F, BW, VL). The quantization, conversion, GEMM, swiglu, rope and AdamW kernels
//! give bit-identical results at every level (exact operations, or the same FMA chains in the
//! same order); rmsnorm, attention and cross-entropy sum in a level-specific order and agree
//! within their tested tolerances. Every kernel is deterministic across thread counts.
//! Which one runs is a process-wide setting:
//! the best the CPU has, unless `setSimdLevel` (tests, benchmarks) lowered it.
//!
//! Soundness: a kernel gets an [`Isa`], which can only be built for a level the
//! CPU supports, so calling a `#[target_feature]` function through it is sound.

use std::sync::atomic::{AtomicU8, Ordering};

use crate::error::{Error, Result};

/// An instruction-set level, ordered from least to most capable.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Level {
    Scalar = 0,
    Avx2 = 1,
    Avx512 = 2,
}

impl Level {
    pub const ALL: [Level; 3] = [Level::Scalar, Level::Avx2, Level::Avx512];

    /// The name used by the JS API (`simdLevel()` / `setSimdLevel()`).
    pub fn name(self) -> &'static str {
        match self {
            Level::Scalar => "scalar",
            Level::Avx2 => "avx2",
            Level::Avx512 => "avx512",
        }
    }

    pub fn parse(name: &str) -> Option<Level> {
        Level::ALL.into_iter().find(|l| l.name() == name)
    }

    /// Whether this CPU can run kernels of this level.
    pub fn is_supported(self) -> bool {
        match self {
            Level::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Level::Avx2 => {
                is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") && is_x86_feature_detected!("f16c")
            }
            #[cfg(target_arch = "x86_64")]
            Level::Avx512 => {
                Level::Avx2.is_supported()
                    && is_x86_feature_detected!("avx512f")
                    && is_x86_feature_detected!("avx512bw")
                    && is_x86_feature_detected!("avx512vl")
            }
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    fn from_u8(v: u8) -> Level {
        match v {
            1 => Level::Avx2,
            2 => Level::Avx512,
            _ => Level::Scalar,
        }
    }
}

/// Proof that the CPU supports `level` (the field is private: build it with
/// [`Isa::new`], [`Isa::scalar`], [`current`] or [`supported`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Isa(Level);

impl Isa {
    pub fn new(level: Level) -> Result<Isa> {
        if level.is_supported() {
            Ok(Isa(level))
        } else {
            Err(Error::Unsupported(format!("SIMD level '{}' is not available on this CPU", level.name())))
        }
    }

    pub fn scalar() -> Isa {
        Isa(Level::Scalar)
    }

    pub fn level(self) -> Level {
        self.0
    }
}

/// The most capable supported level.
pub fn best() -> Level {
    Level::ALL.into_iter().rev().find(|l| l.is_supported()).unwrap_or(Level::Scalar)
}

/// Every supported level, scalar first (tests compare each against scalar).
pub fn supported() -> Vec<Isa> {
    Level::ALL.into_iter().filter_map(|l| Isa::new(l).ok()).collect()
}

const UNSET: u8 = u8::MAX;
static CURRENT: AtomicU8 = AtomicU8::new(UNSET);

/// The level kernels use now: the best one unless [`set_current`] chose another.
pub fn current() -> Isa {
    match CURRENT.load(Ordering::Relaxed) {
        UNSET => {
            let level = best();
            CURRENT.store(level as u8, Ordering::Relaxed);
            Isa(level)
        }
        v => Isa(Level::from_u8(v)),
    }
}

/// Choose the level for all later kernel calls (process-wide).
/// Errors with `Unsupported` if the CPU lacks it.
pub fn set_current(level: Level) -> Result<()> {
    let isa = Isa::new(level)?;
    CURRENT.store(isa.level() as u8, Ordering::Relaxed);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for l in Level::ALL {
            assert_eq!(Level::parse(l.name()), Some(l));
        }
        assert_eq!(Level::parse("sse"), None);
    }

    #[test]
    fn supported_starts_with_scalar_and_ends_with_best() {
        let s = supported();
        assert_eq!(s[0].level(), Level::Scalar);
        assert_eq!(s.last().unwrap().level(), best());
        // Levels the CPU lacks are refused with ENOTSUP.
        for l in Level::ALL {
            assert_eq!(Isa::new(l).is_ok(), l.is_supported());
            if !l.is_supported() {
                assert_eq!(Isa::new(l).unwrap_err().code(), "ENOTSUP");
            }
        }
    }
}
