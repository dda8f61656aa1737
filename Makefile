# peft: the two commands that matter on a fresh clone are `make demo` and `make test`.
# Every target installs and builds what it needs first; nothing relies on shell history.

SHELL := /bin/bash
PNPM_VERSION := 10.34.8
PNPM := $(shell command -v pnpm >/dev/null 2>&1 && echo pnpm || echo "npx -y pnpm@$(PNPM_VERSION)")
PEFT := node packages/cli/bin/run.js
GEN := node packages/core-tensor/bin/gen-model.js
DEMO := .tmp/demo

.PHONY: all install build native ts check check-run test test-rust test-js demo bench bench-deps clean

all: build

node_modules/.modules.yaml: package.json pnpm-lock.yaml pnpm-workspace.yaml $(wildcard packages/*/package.json examples/*/package.json)
	$(PNPM) install --frozen-lockfile
	@touch $@

install: node_modules/.modules.yaml

native: install
	cd packages/kernels-napi && $(PNPM) run build

ts: install
	$(PNPM) --filter @peft/core-tensor run build
	$(PNPM) --filter @peft/plugin-lora --filter @peft/plugin-merge --filter @peft/plugin-galore --filter @peft/plugin-prompt --filter @peft/plugin-qst run build
	$(PNPM) --filter @peft/cli run build

build: native ts

test-rust:
	@mkdir -p .tmp
	cd packages/kernels-napi && cargo test --release 2>&1 | tee ../../.tmp/cargo-test.log

test-js:
	@mkdir -p .tmp
	PEFT_REQUIRE_NATIVE=1 $(PNPM) exec vitest run --reporter=default --reporter=json --outputFile.json=.tmp/vitest.json

# The house rules (scripts/check-*.mjs): types (tsc over every project, tests included), layers
# (dependency-cruiser, no cycle between core folders), size (files over 400 lines need a reason).
# Each result is a line of .tmp/checks.log, counted by the summary. They read the built packages.
CHECKS := types layers size

check: ts
	@$(MAKE) --no-print-directory check-run

check-run:
	@mkdir -p .tmp; : > .tmp/checks.log; rc=0; \
	for c in $(CHECKS); do \
	  if node scripts/check-$$c.mjs; then echo "$$c passed" >> .tmp/checks.log; \
	  else echo "$$c failed" >> .tmp/checks.log; rc=1; fi; \
	done; exit $$rc

# Runs the checks and every suite, then prints one plain "N passed, N failed" line (read by CI).
test: build
	@mkdir -p .tmp; rc=0; \
	$(MAKE) --no-print-directory check-run || rc=1; \
	$(MAKE) --no-print-directory test-rust || rc=1; \
	$(MAKE) --no-print-directory test-js || rc=1; \
	node scripts/test-summary.mjs .tmp/vitest.json .tmp/cargo-test.log .tmp/checks.log || rc=1; \
	exit $$rc

demo: build
	node scripts/demo.mjs

# The PyTorch peer of the step benchmark comes from Debian (no PyPI here); tests never need it.
bench-deps:
	@/usr/bin/python3 -c 'import torch' 2>/dev/null || \
	  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-torch libopenblas0-pthread)

bench: build bench-deps
	node packages/core-tensor/bench/quant-throughput.mjs
	node scripts/bench-quantize-rss.mjs
	node packages/kernels-napi/bench/gemm-vs-openblas.mjs
	node scripts/bench-step.mjs
	node scripts/bench-lora.mjs
	node scripts/bench-qst.mjs
	node scripts/bench-merge.mjs
	node scripts/bench-rsvd.mjs

clean:
	rm -rf .tmp packages/*/dist packages/kernels-napi/*.node packages/kernels-napi/target
