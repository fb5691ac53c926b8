//! End to end: each test model on the GPU backend (lavapipe natively) against the CPU
//! backend, the oracle: logits cosine ≥ 0.999 at every prompt's last position and the same
//! greedy tokens. Fails (does not skip) without a GPU adapter or a model.
//!
//! Models and the block formats their weights exercise: SmolLM2 (Q4_1, Q8_0); Gemma 3 270M
//! (Q5_0, Q8_0, Q4_K, Q6_K; its 262144 × 640 Q8_0 embedding is 178 MB, more than lavapipe's
//! 128 MiB storage binding, so it is split over two buffers; sliding window 512, exercised
//! by a 1234-token prompt in an ignored test); Qwen2.5-Coder 0.5B (Q5_0, Q8_0, Q4_K, Q6_K;
//! Q/K/V biases, NeoX RoPE).

mod common;

use hearth::backend::cpu::CpuBackend;
use hearth::backend::gpu::GpuBackend;
use hearth::backend::Backend;
use hearth::engine::{self, Session};

fn gpu() -> GpuBackend {
    match pollster::block_on(GpuBackend::new()) {
        Ok(b) => b,
        Err(e) => panic!("no GPU adapter (install mesa-vulkan-drivers for lavapipe): {e}"),
    }
}

/// Compares the two sessions on the golden prompts of `set` named in `prompts`: last-position
/// logits after prefill (cosine ≥ 0.999) and `max_tokens` greedy tokens (equal).
fn compare<G: Backend, C: Backend>(g: &mut Session<G>, c: &mut Session<C>, set: &str, prompts: &[&str], max_tokens: usize) {
    let (goldens, _) = common::goldens(set);
    let mut compared = 0;
    for p in goldens.prompts.iter().filter(|p| prompts.contains(&p.name.as_str())) {
        let ids = common::prompt_tokens(c, p);
        let started = std::time::Instant::now();
        c.reset();
        g.reset();
        let tc = c.prefill(&ids).expect("cpu prefill");
        let tg = g.prefill(&ids).expect("gpu prefill");
        let lc = c.backend_mut().read(&tc, 0, goldens.n_vocab).expect("cpu logits");
        let lg = g.backend_mut().read(&tg, 0, goldens.n_vocab).expect("gpu logits");
        let cos = common::cosine(&lg, &lc);
        assert!(cos >= 0.999, "{set} {}: logits cosine {cos:.6} < 0.999", p.name);

        let params = engine::GenerateParams { max_tokens, sampler: engine::SamplerParams::greedy(), ..Default::default() };
        c.reset();
        g.reset();
        let oc = c.generate(&ids, &params, &mut |_| true).expect("cpu generate");
        let og = g.generate(&ids, &params, &mut |_| true).expect("gpu generate");
        eprintln!(
            "{set} {} ({} prompt tokens): logits cosine gpu vs cpu {cos:.6}, {} greedy tokens, {:.1} s",
            p.name,
            ids.len(),
            og.tokens.len(),
            started.elapsed().as_secs_f64()
        );
        assert_eq!(og.tokens, oc.tokens, "{set} {}: greedy tokens differ", p.name);
        compared += 1;
    }
    assert_eq!(compared, prompts.len(), "{set}: some of {prompts:?} are not golden prompts");
}

#[test]
fn gpu_backend_matches_cpu_backend_on_smollm2() {
    let mut g = common::load(gpu());
    let mut c = common::load(CpuBackend::with_f32_activations());
    let (goldens, _) = common::goldens("smollm2");
    let names: Vec<&str> = goldens.prompts.iter().take(3).map(|p| p.name.as_str()).collect();
    compare(&mut g, &mut c, "smollm2", &names, 8);
}

#[test]
fn gpu_backend_matches_cpu_backend_on_gemma3() {
    const FILE: &str = "gemma-3-270m-q4_k_m.gguf";
    let mut g = common::load_file(FILE, gpu(), 2048);
    let mut c = common::load_file(FILE, CpuBackend::with_f32_activations(), 2048);
    compare(&mut g, &mut c, "gemma3", &["raw_capital", "raw_quicksort"], 8);
}

/// Gemma 3's 1234-token prompt, longer than its 512-position sliding window. Not in `make
/// test`: on the shared 2-core CI machine one 6-token Gemma prompt already takes ~90 s on
/// lavapipe + CPU. Run it with `cargo test --test parity_gpu -- --ignored long_window`.
#[test]
#[ignore]
fn gpu_backend_matches_cpu_backend_on_gemma3_long_window() {
    const FILE: &str = "gemma-3-270m-q4_k_m.gguf";
    let mut g = common::load_file(FILE, gpu(), 2048);
    let mut c = common::load_file(FILE, CpuBackend::with_f32_activations(), 2048);
    compare(&mut g, &mut c, "gemma3", &["raw_long_window"], 4);
}

#[test]
fn gpu_backend_matches_cpu_backend_on_qwen25() {
    const FILE: &str = "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf";
    let mut g = common::load_file(FILE, gpu(), 512);
    let mut c = common::load_file(FILE, CpuBackend::with_f32_activations(), 512);
    // Short raw prompts: the 39-token ChatML prompt chat_reverse also matched (cosine
    // 1.000000, 8 equal tokens) but took 691 s on the shared 2-core machine (tiled prefill on
    // lavapipe, next to Gemma's long prompt); the tiled kernels are checked per type in
    // src/backend/gpu/tests.rs.
    compare(&mut g, &mut c, "qwen25", &["raw_quicksort", "raw_capital"], 8);
}

/// The opt-in integer products (8-bit activations in every product, `GpuOptions::int8`) against
/// the CPU backend with its 8-bit activations. Not in `make test` (~4 min on the shared machine);
/// run with `cargo test --test parity_gpu -- --ignored int8`. With the f32 CPU oracle instead,
/// SmolLM2's chat_france prefill logits reached cosine 0.99893 (< 0.999): why the integer path
/// is not the default.
#[test]
#[ignore]
fn gpu_int8_matches_cpu_q8_on_smollm2() {
    use hearth::backend::gpu::{GpuContext, GpuOptions};
    let ctx = pollster::block_on(GpuContext::new()).expect("GPU adapter");
    let g = GpuBackend::with_options(ctx, GpuOptions { int8: Some(true), ..Default::default() }).expect("backend");
    let mut g = common::load(g);
    let mut c = common::load(CpuBackend::new());
    let (goldens, _) = common::goldens("smollm2");
    let names: Vec<&str> = goldens.prompts.iter().take(3).map(|p| p.name.as_str()).collect();
    compare(&mut g, &mut c, "smollm2", &names, 8);
}
