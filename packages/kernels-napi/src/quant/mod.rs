//! Quantizers, bitsandbytes-compatible bit for bit.
//!
//! - `four_bit`: blockwise NF4 / FP4 (bnb `quantize_4bit` / `dequantize_4bit`).
//! - `blockwise8`: blockwise 8-bit against a caller-given 256-entry code
//!   (bnb `quantize_blockwise`, used for double quantization of absmax).
//! - `int8_rows`: row-wise absmax int8 (bnb `int8_vectorwise_quant`).
//!
//! Shared conventions: all arithmetic is f32; input is flattened row-major;
//! block `b` covers elements `[b*bs, min(n, (b+1)*bs))`, so the last block may
//! be partial and blocks cross rows. Every kernel validates its arguments and
//! names them as the JS API does, so errors read the same from JS and Rust.

pub mod absmax;
pub mod blockwise8;
pub mod four_bit;
pub mod int8_rows;

use crate::error::{Error, Result};

/// Blocksizes accepted by the blockwise quantizers: powers of two in 32..=4096
/// (bnb's CUDA kernels support 64..4096; 32 is the smallest the packing allows).
pub fn check_blocksize(blocksize: usize) -> Result<()> {
    if blocksize.is_power_of_two() && (32..=4096).contains(&blocksize) {
        Ok(())
    } else {
        Err(Error::invalid("blocksize", format!("must be a power of two in 32..4096, got {blocksize}")))
    }
}

/// `Err(EINVAL)` naming `arg` unless `len == want`; `what` says how `want` was derived.
pub fn check_len(arg: &'static str, len: usize, want: usize, what: &str) -> Result<()> {
    if len == want { Ok(()) } else { Err(Error::invalid(arg, format!("has length {len}, expected {want} ({what})"))) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocksizes() {
        for bs in [32, 64, 128, 256, 512, 1024, 2048, 4096] {
            assert!(check_blocksize(bs).is_ok());
        }
        for bs in [0, 1, 16, 48, 100, 8192] {
            assert_eq!(check_blocksize(bs).unwrap_err().code(), "EINVAL");
        }
    }
}
