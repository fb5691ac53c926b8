# Hearth — build, test and demo. Every target installs what it needs first (`make setup`).
SHELL := /bin/bash
.DEFAULT_GOAL := help
WASM_BINDGEN_VERSION := 0.2.130
CARGO ?= cargo
export CARGO_TERM_COLOR ?= never

.PHONY: help setup models models-all models-test test-data test test-rust test-wasm-build test-7b test-7b-full fuzz-long wasm wasm-baseline wasm-threads demo bench bench-build bench-deps hearth-release bench-kernels bench-summary bench-summary-ttft bench-summary-deps bench-structured bench-deps-vulkan clean

help:
	@echo "make demo   build everything, fetch the default model, serve the browser demo on 127.0.0.1"
	@echo "make test   install what the tests need, run every test"
	@echo "make models | models-all | wasm | bench | bench-kernels | bench-summary | bench-summary-ttft | bench-structured | fuzz-long | setup"

## setup: idempotent install of everything the build and tests need (Debian, as root).
setup:
	@scripts/setup.sh $(WASM_BINDGEN_VERSION)

## models: the default model from models/registry.toml into models/cache/ (verified).
models:
	python3 models/fetch.py

models-all:
	python3 models/fetch.py --all

## models-test: what the test suite runs on (the default model, Gemma 3 270M, Qwen2.5-Coder 0.5B).
models-test:
	python3 models/fetch.py smollm2-135m-instruct-q4_1 gemma3-270m-q4_k_m qwen2.5-coder-0.5b-instruct-q4_k_m

## test-data: llama.cpp's tokenizer test vocabularies (from its PyPI sdist, verified).
test-data:
	sh models/fetch_test_vocabs.sh

test: setup models-test test-data test-rust test-wasm-build
	@echo "make test: all passed"

test-rust:
	$(CARGO) test --all-targets -- --test-threads 2

## The crate (tokenizers with unstable_wasm, no onig; the WebGPU backend) builds for wasm32, twice:
## the baseline (www/pkg) and the threaded build (www/pkg-mt; nightly, atomics, relaxed SIMD).
test-wasm-build: wasm
	@echo "wasm32 builds: ok (www/pkg, www/pkg-mt)"

## test-7b: 7B-shaped models (Llama 2 7B and Qwen2.5 7B widths, heads and vocabularies, two
## layers, random Q4_K weights, ~0.4 and ~0.9 GB) against llama.cpp's goldens on the CPU and the
## GPU backend (lavapipe), with the memory the load took (tests/synthetic.rs; goldens:
## make_synthetic.py llama7b qwen7b). The test profile (optimised, what `cargo test` built).
test-7b: test-data
	$(CARGO) test --test synthetic seven_b_shaped -- --ignored --nocapture --test-threads 1

## test-7b-full: a ~4 GB Mistral-7B-shaped model, every layer present (32 layers, random Q4_K,
## `make_synthetic.py --write mistral7b_full`), written to a temporary directory (deleted at the
## end; needs ~9 GB free: the file and the browser store's copy, and `pip install gguf`), then
## loaded and run for BIG7B_TOKENS greedy tokens on the GPU backend: natively (`hearth run
## --backend gpu`, lavapipe here) under /usr/bin/time (peak RSS), and through Engine.load on
## WebGPU in headless Chromium (SwiftShader here; tests/browser/synthetic_big.mjs: load time, wasm
## memory, JS heap, GPU buffers, Chromium RSS). Opt-in, slow (minutes per token on CPU adapters);
## needs make wasm www. BIG7B_SKIP_BROWSER=1 runs the native part only.
BIG7B_TOKENS ?= 3
BIG7B_PROMPT ?= Hi
test-7b-full: test-data
	$(CARGO) build --profile test --bin hearth
	@d=$$(mktemp -d) && trap 'rm -rf "$$d"' EXIT INT TERM && f=$$d/mistral7b_full_q4_k.gguf && \
	python3 tests/goldens/make_synthetic.py --write mistral7b_full $$f && \
	/usr/bin/time -f "native: peak RSS %M KiB, %e s wall" target/debug/hearth run --backend gpu --model $$f \
		--prompt "$(BIG7B_PROMPT)" -n $(BIG7B_TOKENS) --ctx 256 && \
	if [ -z "$(BIG7B_SKIP_BROWSER)" ]; then node tests/browser/synthetic_big.mjs $$f --tokens $(BIG7B_TOKENS) --prompt "$(BIG7B_PROMPT)"; fi

## fuzz-long: both fuzzers (GGUF bytes; metadata values through config, tokenizer, template and
## model build) for 10 minutes each, side by side; prints cases/s and totals (make test: 30 s).
fuzz-long:
	HEARTH_FUZZ_SECS=600 $(CARGO) test --release --test fuzz_gguf -- --nocapture

wasm: setup
	python3 scripts/build_wasm.py

## demo: builds the wasm engine and the package, fetches the default model, then serves the demo
## (www/demo/), the examples and the model on 127.0.0.1 (the same static server the tests use).
## DEMO_ARGS=--isolate serves it cross-origin isolated (COOP/COEP): the CPU backend then runs threaded.
DEMO_PORT ?= 8080
DEMO_ARGS ?=
demo: wasm www models extension
	@echo "Hearth demo: http://127.0.0.1:$(DEMO_PORT)/demo/   (intranet example: http://127.0.0.1:$(DEMO_PORT)/examples/intranet.html; extension: load www/extension/ unpacked)"
	node www/server.mjs --port $(DEMO_PORT) $(DEMO_ARGS)

## bench: Hearth vs llama.cpp (native) and vs wllama (browser), side by side in one run, every
## supported registry model in models/cache/; writes bench/results/<date>-<host>.{json,md,svg}.
## BENCH_ARGS e.g. "--reps 3 --threads 1" or "--skip-browser". Not part of `make test`.
## Order: the peers' side first (bench-deps, timed apart: the issue does not count llama.cpp's
## build), then what Hearth's side needs built side by side (bench-build under make -j3: the two
## wasm builds and the release CLI each end in a one-core LTO/codegen tail, and the model download
## is network time), then the run itself.
BENCH_ARGS ?=
bench: setup bench-deps
	@echo "bench: building the two wasm engines and the release CLI, fetching the models (side by side, make -j3)"
	@start=$$(date +%s); $(MAKE) --no-print-directory -j3 -Oline bench-build \
	  && echo "bench: built in $$(( $$(date +%s) - start )) s"
	python3 bench/run.py $(BENCH_ARGS)

bench-build: models-test www wasm-baseline wasm-threads hearth-release

## One wasm build (scripts/build_wasm.py --only): wasm-baseline (www/pkg), wasm-threads (www/pkg-mt).
wasm-baseline wasm-threads:
	python3 scripts/build_wasm.py --only $(@:wasm-%=%)

hearth-release:
	$(CARGO) build --release --bin hearth

## bench-deps: the peers' side of the bench (once): numpy, and llama.cpp through PyPI
## llama-cpp-python built from source for this CPU (~6 min on 2 cores the first time; not timed by the bench).
bench-deps:
	@dpkg -s python3-pip python3-numpy build-essential >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq python3-pip python3-numpy build-essential >/dev/null; }
	@python3 -c "import llama_cpp" 2>/dev/null || { echo "bench-deps: building llama-cpp-python 0.3.36 (once, ~6 min)"; \
	  start=$$(date +%s); CMAKE_ARGS="-DGGML_NATIVE=ON" pip install --break-system-packages --no-cache-dir llama-cpp-python==0.3.36 \
	  && echo "bench-deps: llama-cpp-python built in $$(( $$(date +%s) - start )) s (once; not part of the bench's time)"; }

## bench-deps-vulkan: the same-device GPU peer: llama.cpp's llama-bench built with -DGGML_VULKAN=ON
## from the llama.cpp the pinned llama-cpp-python sdist vendors, into $(VKBUILD) (outside the repo;
## Debian glslc, libvulkan-dev, spirv-headers). Slow the first time (~40+ min on 2 shared cores);
## bench/run.py finds it there (--llama-bench) and skips its row when it is absent.
VKBUILD ?= /work/vkbuild
bench-deps-vulkan:
	@dpkg -s glslc libvulkan-dev spirv-headers cmake >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq glslc libvulkan-dev spirv-headers cmake >/dev/null; }
	HEARTH_VKBUILD_JOBS=2 nice -n 10 scripts/build_llama_vulkan.sh $(VKBUILD)

## bench-structured: structured output alone (bench/structured.py, also the last part of `make bench`):
## constrained vs unconstrained decode (native CLI, Chromium), schema compile time in Chromium,
## tool-calling accuracy per model in models/cache. STRUCTURED_ARGS e.g. "--only tools".
STRUCTURED_ARGS ?=
bench-structured: www wasm-baseline hearth-release
	python3 bench/structured.py $(STRUCTURED_ARGS)

## bench-summary: summary quality of the real Summarizer API (headless Chromium, www/dist over the
## single-thread wasm build) on a JSONL of {id, article, highlights}: ROUGE vs the highlights,
## Lead-3, format/length obedience, a faithfulness proxy; both prompt sets (small-model, legacy).
## Writes bench/results/summary-<date>.{json,md}. Not part of `make test`.
## `make bench-summary DATA=path/to/file.jsonl MODELS=id,… SUMMARY_ARGS="--limit 10"`
DATA ?= ../shared/data/cnndm-dev-60.jsonl
MODELS ?=
SUMMARY_ARGS ?=
bench-summary: www bench-summary-deps
	@test -f www/pkg/hearth_bg.wasm || { echo "www/pkg is missing: run make wasm-baseline"; exit 1; }
	python3 bench/summary.py --data "$(DATA)" --models "$(MODELS)" $(SUMMARY_ARGS)

## bench-summary-ttft: time to the first summary token (issue 17) for a ~1,500-token article of
## $(DATA), key-points, warm load, CPU one thread: Hearth's Summarizer (first streamed bullet; the
## engine's first token on that prompt) vs wllama given the same prompt text, SmolLM2 and
## Qwen2.5-Coder 0.5B, 3 repeats each. Appends JSON lines to bench/results/summary-ttft-<date>.jsonl.
bench-summary-ttft: www
	@test -f www/pkg/hearth_bg.wasm || { echo "www/pkg is missing: run make wasm-baseline"; exit 1; }
	for m in smollm2-135m-instruct-q4_1:SmolLM2-135M-Instruct.Q4_1.gguf qwen2.5-coder-0.5b-instruct-q4_k_m:qwen2.5-coder-0.5b-instruct-q4_k_m.gguf; do \
	  node tests/browser/bench_summary_ttft.mjs --data "$(DATA)" --model $${m%%:*} --file $${m#*:} >> bench/results/summary-ttft-$$(date +%F).jsonl || exit 1; done

## bench-summary-deps: Google's rouge-score package (once).
bench-summary-deps:
	@python3 -c "import rouge_score" 2>/dev/null || pip install --break-system-packages --no-cache-dir rouge-score==0.1.2

## bench-kernels: GPU kernel microbenchmarks (lavapipe here: slow, minutes).
bench-kernels: setup
	timeout 600 $(CARGO) run --release --example bench_kernels

clean:
	$(CARGO) clean

## Browser runtime (www/): `make www`, `make test-browser`, `make serve-www`, `make bench-store`.
include www/www.mk
test: test-browser test-consumers
