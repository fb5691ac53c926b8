//! A prompt's logits and greedy tokens do not depend on how it was fed: one prefill, one token
//! at a time (as decode feeds the tokens it generated), or split at an odd point (a prompt
//! cache hit: the cached prefix, then the rest). Before the CPU's one-token kernels took the
//! four-token tiles' arithmetic, these differed by a rounding that the next product's 8-bit
//! activations amplified: last-token cosine 0.98–0.999 on this model
//! (`src/backend/cpu/kernels/simd_x86_rows.rs`).
//!
//! Tolerance: none. On x86_64 with AVX2 (the one-token kernels equal the tiles bit for bit) and
//! on the portable machine (no tiles), the logits must be equal bit for bit. The wasm builds'
//! one-token kernels still differ from their tiles by rounding; this test runs natively.

mod common;

use hearth::backend::cpu::CpuBackend;
use hearth::backend::Backend;
use hearth::engine::Session;

/// Feeds `prompt` in the pieces ending at each of `cuts` (then the rest), then extends it
/// greedily by `steps` tokens one at a time; returns the generated tokens and the logits of
/// every step (the prompt's last token's first).
fn run(s: &mut Session<CpuBackend>, prompt: &[u32], cuts: &[usize], steps: usize) -> (Vec<u32>, Vec<Vec<f32>>) {
    s.reset();
    let n_vocab = s.config().n_vocab;
    let mut seq = Vec::new();
    for &end in cuts.iter().chain(std::iter::once(&prompt.len())) {
        seq.extend_from_slice(&prompt[seq.len()..end]);
        if end == prompt.len() {
            break;
        }
        s.prefill(&seq).unwrap();
    }
    let (mut tokens, mut all) = (Vec::new(), Vec::new());
    for _ in 0..=steps {
        let t = s.prefill(&seq).unwrap();
        let logits = s.backend_mut().read(&t, 0, n_vocab).unwrap();
        let next = common::argmax(&logits) as u32;
        all.push(logits);
        tokens.push(next);
        seq.push(next);
    }
    tokens.pop();
    (tokens, all)
}

#[test]
fn one_prefill_token_by_token_and_odd_splits_give_the_same_logits_and_tokens() {
    let mut s = common::load(CpuBackend::new());
    let text = "You are the help desk of a small library. Answer in one short sentence. Opening hours: \
        Monday to Friday 9-18, Saturday 10-14, closed on Sunday. Loans last three weeks. Question: can I renew it?";
    let prompt = s.text_tokens(text).unwrap();
    let n = prompt.len();
    assert!(n > 40 && n % 4 != 0, "{n} tokens: the test wants leftovers after the groups of four");
    let steps = 4;
    let (want_tokens, want) = run(&mut s, &prompt, &[], steps);
    let one_by_one: Vec<usize> = (1..n).collect();
    for (name, cuts) in [("token by token", one_by_one.as_slice()), ("split at 33", &[33]), ("split at 5 and n - 2", &[5, n - 2])] {
        let (tokens, logits) = run(&mut s, &prompt, cuts, steps);
        assert_eq!(tokens, want_tokens, "{name}: greedy tokens");
        for (step, (a, b)) in logits.iter().zip(&want).enumerate() {
            let diff = a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
            assert!(a == b, "{name}, step {step}: logits differ from one prefill (max |Δ| {diff}, cosine {:.7})", common::cosine(a, b));
        }
    }
}
