#!/usr/bin/env bash
# Build and run dev/gemm_lab.rs against the release rlib (run `cargo build --release --lib` first).
set -euo pipefail
cd "$(dirname "$0")/.."
rlib=target/release/libpeft_kernels.rlib
rustc --edition 2024 -C opt-level=3 -C target-cpu=x86-64-v2 -o target/release/gemm_lab dev/gemm_lab.rs \
  --extern peft_kernels="$rlib" -L target/release/deps
exec target/release/gemm_lab "$@"
