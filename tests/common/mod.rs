#![allow(dead_code)]
//! Helpers shared by the integration tests.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use hearth::gguf::{parse_header, Error as GgufError, Metadata};

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The default test model; panics (the test fails, never skips) when `make models` has not run.
pub fn smollm2_path() -> PathBuf {
    let model = root().join("models/cache/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        model.exists(),
        "{} is missing: run `make models` to fetch the test model",
        model.display()
    );
    model
}

/// Reads only as much of a GGUF file as its header needs, and returns its metadata.
pub fn read_metadata(path: &Path) -> Metadata {
    let mut file = File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut bytes = Vec::new();
    let mut want: u64 = 4 << 20;
    loop {
        (&mut file)
            .take(want.saturating_sub(bytes.len() as u64))
            .read_to_end(&mut bytes)
            .unwrap();
        match parse_header(&bytes) {
            Ok(h) => return h.metadata,
            Err(GgufError::Truncated { needed }) if bytes.len() as u64 == want => {
                want = needed.max(want * 2)
            }
            Err(e) => panic!("{}: {e}", path.display()),
        }
    }
}

// ---- engine-level helpers: loading, llama.cpp goldens, metrics ----

use hearth::backend::Backend;
use hearth::engine::{self, Session};
use hearth::model::ModelOptions;
use hearth::template::ChatMessage;
use serde::Deserialize;


/// The default model; fails (never skips) when it is missing.
pub fn default_model() -> PathBuf {
    let p = root().join("models/cache/SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(p.is_file(), "{} is missing: run `make models`", p.display());
    p
}

pub fn load<B: Backend + 'static>(backend: B) -> Session<B> {
    engine::load_file(&default_model(), backend, ModelOptions { n_ctx: 512, n_batch: 64 }, |_| {})
        .expect("default model loads")
}

/// A registry model from models/cache/ (fails, never skips, when absent).
pub fn load_file<B: Backend + 'static>(file: &str, backend: B, n_ctx: usize) -> Session<B> {
    let p = root().join("models/cache").join(file);
    assert!(p.is_file(), "{} is missing: run `make models-all`", p.display());
    engine::load_file(&p, backend, ModelOptions { n_ctx, n_batch: 64 }, |_| {}).expect("model loads")
}

#[derive(Debug, Deserialize)]
pub struct Goldens {
    pub n_vocab: usize,
    pub gap_exact: f32,
    pub prompts: Vec<GoldenPrompt>,
}

#[derive(Debug, Deserialize)]
pub struct GoldenPrompt {
    pub name: String,
    pub kind: String,
    #[serde(default)]
    pub messages: Vec<(String, String)>,
    /// The exact prompt text (the chat template already applied for chat prompts).
    pub prompt: String,
    /// llama.cpp's greedy continuation, as text.
    #[serde(default)]
    pub text: String,
    pub prompt_ids: Vec<u32>,
    pub greedy: Vec<u32>,
    pub gaps: Vec<f32>,
    pub exact_prefix: usize,
    pub n_logits: usize,
}

impl GoldenPrompt {
    pub fn chat_messages(&self) -> Vec<ChatMessage> {
        self.messages.iter().map(|(r, c)| ChatMessage { role: r.clone(), content: c.clone() }).collect()
    }
}

/// llama.cpp's outputs (tests/goldens/make_goldens.py) and the logits, one vector per
/// recorded position, in prompt order.
pub fn goldens(set: &str) -> (Goldens, Vec<Vec<f32>>) {
    let dir = root().join("tests/goldens");
    let g: Goldens = serde_json::from_str(&std::fs::read_to_string(dir.join(format!("{set}.json"))).unwrap()).unwrap();
    let raw = std::fs::read(dir.join(format!("{set}_logits.f16"))).unwrap();
    let all: Vec<f32> = raw.chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect();
    let rows: Vec<Vec<f32>> = all.chunks_exact(g.n_vocab).map(<[f32]>::to_vec).collect();
    assert_eq!(rows.len(), g.prompts.iter().map(|p| p.n_logits).sum::<usize>());
    (g, rows)
}

pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut ab, mut aa, mut bb) = (0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        ab += x as f64 * y as f64;
        aa += x as f64 * x as f64;
        bb += y as f64 * y as f64;
    }
    ab / (aa.sqrt() * bb.sqrt())
}

pub fn argmax(v: &[f32]) -> usize {
    v.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|x| x.0).unwrap_or(0)
}

/// The prompt tokens Hearth builds for a golden prompt (template + tokenizer).
pub fn prompt_tokens<B: Backend>(s: &Session<B>, p: &GoldenPrompt) -> Vec<u32> {
    if p.kind == "chat" {
        s.chat_tokens(&p.chat_messages()).expect("chat tokens")
    } else {
        s.text_tokens(&p.prompt).expect("text tokens")
    }
}

/// Top-1 must agree wherever llama.cpp's top-1/top-2 gap is at least this large. Below it,
/// llama.cpp's Q8-quantized activations and our f32 ones may legitimately pick either
/// (e.g. "What is the capital of France?": gap 0.089 at the first step).
pub const TOP1_GAP: f32 = 0.25;

/// Result of comparing one backend against llama.cpp on every golden prompt.
#[derive(Debug, Default)]
pub struct ParityReport {
    pub cosines: Vec<f64>,
    pub min_cosine: f64,
    pub max_abs_diff: f32,
    pub positions: usize,
    pub greedy_checked: usize,
    pub greedy_matching_total: usize,
    pub greedy_total: usize,
}

impl ParityReport {
    /// Fraction of recorded positions with cosine ≥ `c`.
    pub fn fraction_at_least(&self, c: f64) -> f64 {
        self.cosines.iter().filter(|&&x| x >= c).count() as f64 / self.cosines.len().max(1) as f64
    }
    pub fn median_cosine(&self) -> f64 {
        let mut v = self.cosines.clone();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(0.0)
    }
}

/// Teacher-forced logits at the recorded positions (cosine and top-1 on each) and free-run
/// greedy tokens (exact over the prefix where llama.cpp's top-1/top-2 gap ≥ gap_exact).
pub fn check_parity<B: Backend>(s: &mut Session<B>, set: &str, min_cos: f64) -> ParityReport {
    check_parity_gap(s, set, min_cos, TOP1_GAP)
}

/// [`check_parity`] with top-1 required where llama.cpp's top-1/top-2 gap is at least `top1_gap`.
pub fn check_parity_gap<B: Backend>(s: &mut Session<B>, set: &str, min_cos: f64, top1_gap: f32) -> ParityReport {
    let (g, logits) = goldens(set);
    let mut rep = ParityReport { min_cosine: 1.0, ..Default::default() };
    let mut row = 0;
    for p in &g.prompts {
        let ids = prompt_tokens(s, p);
        assert_eq!(ids, p.prompt_ids, "{}: prompt tokens differ from llama.cpp", p.name);
        s.reset();
        let mut seq = ids.clone();
        for step in 0..p.n_logits {
            let t = s.prefill(&seq).expect("prefill");
            let ours = s.backend_mut().read(&t, 0, g.n_vocab).expect("read logits");
            let theirs = &logits[row];
            row += 1;
            let cos = cosine(&ours, theirs);
            let diff = ours.iter().zip(theirs).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            rep.min_cosine = rep.min_cosine.min(cos);
            rep.max_abs_diff = rep.max_abs_diff.max(diff);
            rep.positions += 1;
            eprintln!("{} step {step}: cosine {cos:.5}, max |Δ| {diff:.3}, llama.cpp gap {:.3}", p.name, p.gaps[step]);
            rep.cosines.push(cos);
            assert!(cos >= min_cos, "{} step {step}: cosine {cos:.5} < {min_cos}", p.name);
            if p.gaps[step] >= top1_gap {
                assert_eq!(argmax(&ours), argmax(theirs), "{} step {step}: top-1 differs (llama.cpp gap {:.3})", p.name, p.gaps[step]);
            }
            seq.push(p.greedy[step]);
        }
        s.reset();
        let params = engine::GenerateParams { max_tokens: p.greedy.len(), ..Default::default() };
        let params = engine::GenerateParams { sampler: engine::SamplerParams::greedy(), ..params };
        let c = s.generate(&ids, &params, &mut |_| true).expect("generate");
        let mut matching = c.tokens.iter().zip(&p.greedy).take_while(|(a, b)| a == b).count();
        // Generation ends at an end-of-generation token without returning it: ending where
        // llama.cpp's next greedy token is one counts as that token matching.
        if matching == c.tokens.len()
            && c.finish_reason == engine::FinishReason::Stop
            && p.greedy.get(matching).is_some_and(|&t| s.tokenizer().is_eog(t))
        {
            matching += 1;
        }
        assert!(
            matching >= p.exact_prefix.min(p.greedy.len()),
            "{}: greedy tokens diverge at {matching}, llama.cpp's gap stays ≥ {} until {}\n ours {:?}\n ref  {:?}",
            p.name, g.gap_exact, p.exact_prefix, c.tokens, p.greedy
        );
        rep.greedy_checked += p.exact_prefix;
        rep.greedy_matching_total += matching;
        rep.greedy_total += p.greedy.len();
    }
    rep
}
