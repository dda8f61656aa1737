//! f32 <-> f16 and f32 <-> bf16 conversions (safetensors F16 / BF16 tensors).
//!
//! - f32 -> f16: IEEE round-to-nearest-even, subnormals kept, overflow to inf;
//!   NaN -> sign | 0x7E00 | mantissa >> 13 (what F16C `vcvtps2ph` produces).
//! - f16 -> f32: exact, as `vcvtph2ps` does it (signaling NaNs come back quiet).
//! - f32 -> bf16: round-to-nearest-even on the upper 16 bits; NaN -> sign | 0x7FC0
//!   (torch's convention). bf16 -> f32: bits << 16.
//!
//! Scalar references here; F16C / AVX-512 versions in `convert/x86.rs`.

#[cfg(target_arch = "x86_64")]
mod x86;

use crate::error::{Error, Result};
use crate::pool;
use crate::simd::{Isa, Level};

/// f32 -> f16 bits (round to nearest even).
pub fn f32_to_f16_scalar(x: f32) -> u16 {
    let b = x.to_bits();
    let sign = ((b >> 16) & 0x8000) as u16;
    let exp = ((b >> 23) & 0xFF) as i32;
    let man = b & 0x7F_FFFF;
    if exp == 0xFF {
        return if man == 0 { sign | 0x7C00 } else { sign | 0x7E00 | (man >> 13) as u16 };
    }
    let half_exp = exp - 127 + 15;
    if half_exp >= 0x1F {
        return sign | 0x7C00; // overflow
    }
    if half_exp <= 0 {
        // f16 subnormal (or zero): value = m * 2^-24 with m = full mantissa >> shift.
        let shift = 14 - half_exp;
        if shift > 24 {
            return sign; // below half the smallest subnormal: rounds to zero
        }
        let m = man | 0x80_0000;
        let half = 1u32 << (shift - 1);
        let mut hm = m >> shift;
        // Round up when above half, or exactly half with an odd result.
        if m & half != 0 && (m & (3 * half - 1)) != 0 {
            hm += 1;
        }
        return sign | hm as u16;
    }
    let h = sign | ((half_exp as u16) << 10) | (man >> 13) as u16;
    let half = 0x1000;
    // A carry out of the mantissa correctly bumps the exponent (up to inf).
    if man & half != 0 && (man & (3 * half - 1)) != 0 { h + 1 } else { h }
}

/// f16 bits -> f32 (exact; NaN payload kept, quiet bit set).
pub fn f16_to_f32_scalar(h: u16) -> f32 {
    let sign = ((h & 0x8000) as u32) << 16;
    let exp = ((h >> 10) & 0x1F) as u32;
    let man = (h & 0x3FF) as u32;
    let bits = match (exp, man) {
        (0, 0) => sign,
        (0, _) => {
            // Subnormal: normalize (value = man * 2^-24).
            let lz = man.leading_zeros() - 21; // shifts to bring the top bit to bit 10
            let m = (man << lz) & 0x3FF;
            sign | ((113 - lz) << 23) | (m << 13)
        }
        (0x1F, 0) => sign | 0x7F80_0000,
        (0x1F, _) => sign | 0x7FC0_0000 | (man << 13),
        _ => sign | ((exp + 112) << 23) | (man << 13),
    };
    f32::from_bits(bits)
}

/// f32 -> bf16 bits (round to nearest even; NaN -> sign | 0x7FC0).
pub fn f32_to_bf16_scalar(x: f32) -> u16 {
    let b = x.to_bits();
    if x.is_nan() {
        return ((b >> 16) & 0x8000) as u16 | 0x7FC0;
    }
    (b.wrapping_add(0x7FFF + ((b >> 16) & 1)) >> 16) as u16
}

pub fn bf16_to_f32_scalar(h: u16) -> f32 {
    f32::from_bits((h as u32) << 16)
}

/// The four directions, for dispatch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Conv {
    F32ToF16,
    F32ToBf16,
    F16ToF32,
    Bf16ToF32,
}

fn check_same_len(x: usize, out: usize) -> Result<()> {
    if x == out { Ok(()) } else { Err(Error::invalid("out", format!("has length {out}, expected {x} (x.length)"))) }
}

/// Narrow `x` (n,) into `out` (n,) as f16 (`Conv::F32ToF16`) or bf16 (`Conv::F32ToBf16`).
pub fn narrow(isa: Isa, conv: Conv, x: &[f32], out: &mut [u16]) -> Result<()> {
    check_same_len(x.len(), out.len())?;
    let f: fn(f32) -> u16 = match conv {
        Conv::F32ToF16 => f32_to_f16_scalar,
        Conv::F32ToBf16 => f32_to_bf16_scalar,
        _ => return Err(Error::Internal(format!("narrow called with {conv:?}"))),
    };
    let chunk = pool::units_per_chunk(x.len(), 1);
    let parts: Vec<_> = x.chunks(chunk).zip(out.chunks_mut(chunk)).collect();
    pool::for_each_part(parts, |_, (x, o)| match isa.level() {
        // SAFETY (x86 arms): an `Isa` of this level exists only if the CPU supports it.
        #[cfg(target_arch = "x86_64")]
        Level::Avx512 => unsafe { x86::narrow_avx512(conv, x, o) },
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 => unsafe { x86::narrow_avx2(conv, x, o) },
        _ => x.iter().zip(o).for_each(|(&v, o)| *o = f(v)),
    });
    Ok(())
}

/// Widen `x` (n,) of f16 (`Conv::F16ToF32`) or bf16 (`Conv::Bf16ToF32`) into `out` (n,).
pub fn widen(isa: Isa, conv: Conv, x: &[u16], out: &mut [f32]) -> Result<()> {
    check_same_len(x.len(), out.len())?;
    let f: fn(u16) -> f32 = match conv {
        Conv::F16ToF32 => f16_to_f32_scalar,
        Conv::Bf16ToF32 => bf16_to_f32_scalar,
        _ => return Err(Error::Internal(format!("widen called with {conv:?}"))),
    };
    let chunk = pool::units_per_chunk(x.len(), 1);
    let parts: Vec<_> = x.chunks(chunk).zip(out.chunks_mut(chunk)).collect();
    pool::for_each_part(parts, |_, (x, o)| match isa.level() {
        // SAFETY (x86 arms): as in `narrow`.
        #[cfg(target_arch = "x86_64")]
        Level::Avx512 => unsafe { x86::widen_avx512(conv, x, o) },
        #[cfg(target_arch = "x86_64")]
        Level::Avx2 => unsafe { x86::widen_avx2(conv, x, o) },
        _ => x.iter().zip(o).for_each(|(&v, o)| *o = f(v)),
    });
    Ok(())
}

#[cfg(test)]
mod tests;
