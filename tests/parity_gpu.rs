//! End to end: SmolLM2 (Q4_1) on the GPU backend (lavapipe natively) against the CPU backend,
//! the oracle: logits cosine ≥ 0.999 at every prompt's last position and the same greedy
//! tokens. Fails (does not skip) without a GPU adapter.

mod common;

use hearth::backend::cpu::CpuBackend;
use hearth::backend::gpu::GpuBackend;
use hearth::backend::Backend;
use hearth::engine;

#[test]
fn gpu_backend_matches_cpu_backend_on_smollm2() {
    let gpu = match pollster::block_on(GpuBackend::new()) {
        Ok(b) => b,
        Err(e) => panic!("no GPU adapter (install mesa-vulkan-drivers for lavapipe): {e}"),
    };
    let mut g = common::load(gpu);
    let mut c = common::load(CpuBackend::new());
    let (goldens, _) = common::goldens("smollm2");
    for p in goldens.prompts.iter().take(3) {
        let ids = common::prompt_tokens(&c, p);
        c.reset();
        g.reset();
        let tc = c.prefill(&ids).expect("cpu prefill");
        let tg = g.prefill(&ids).expect("gpu prefill");
        let lc = c.backend_mut().read(&tc, 0, goldens.n_vocab).expect("cpu logits");
        let lg = g.backend_mut().read(&tg, 0, goldens.n_vocab).expect("gpu logits");
        let cos = common::cosine(&lg, &lc);
        eprintln!("{}: logits cosine gpu vs cpu {cos:.6}", p.name);
        assert!(cos >= 0.999, "{}: logits cosine {cos:.6} < 0.999", p.name);

        let params = engine::GenerateParams { max_tokens: 8, sampler: engine::SamplerParams::greedy(), ..Default::default() };
        c.reset();
        g.reset();
        let oc = c.generate(&ids, &params, &mut |_| true).expect("cpu generate");
        let og = g.generate(&ids, &params, &mut |_| true).expect("gpu generate");
        assert_eq!(og.tokens, oc.tokens, "{}: greedy tokens differ", p.name);
    }
}
