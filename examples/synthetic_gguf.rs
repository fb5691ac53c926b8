//! Writes synthetic conformance models (tests/goldens/synthetic/recipes.json) as GGUF files, for
//! the browser tests: `synthetic_gguf OUT_DIR [--split MAX_TENSORS] [--tokens N] NAME...`.
//!
//! For each recipe NAME: `OUT_DIR/NAME.gguf`; with `--split`, also its parts as llama.cpp's
//! `gguf-split --split-max-tensors` names and lays them out (`NAME-00001-of-0000K.gguf`, …).
//! `OUT_DIR/expect.json` lists, per model, the prompt and Hearth's native greedy completion of
//! N tokens (default 8) on the CPU backend: the browser must produce the same text. Before
//! writing it, the native tokens are checked against llama.cpp's greedy tokens over the leading
//! steps where llama.cpp's top-1/top-2 gap is at least 0.5 (random weights give near-ties
//! further on; tests/synthetic.rs checks every step teacher-forced): a mismatch exits non-zero.
//! `llama_cpp_text` is the text of those llama.cpp tokens: the completion must start with it.
//!
//! `--sparse LAYERS`: instead, each NAME with its layers repeated to LAYERS, as a sparse file
//! (`OUT_DIR/NAME-LAYERSl.gguf`: the header, then zeros taking no disk), for refusals that must
//! come from the header; expect.json lists each file and its length.

#[path = "../tests/common/synthetic_build.rs"]
mod synthetic_build;

use hearth::backend::cpu::CpuBackend;
use hearth::engine::{GenerateParams, Loader, SamplerParams};
use hearth::model::ModelOptions;
use std::path::PathBuf;
use std::process::ExitCode;
use synthetic_build::{build_gguf, doc, split_gguf, Model};

/// llama.cpp's top-1/top-2 gap above which greedy tokens must agree (tests/synthetic.rs).
const GAP_EXACT: f32 = 0.5;

struct Args {
    out: PathBuf,
    split: Option<usize>,
    sparse: Option<usize>,
    tokens: usize,
    names: Vec<String>,
}

fn args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let out = PathBuf::from(it.next().ok_or("usage: synthetic_gguf OUT_DIR [--split MAX_TENSORS] [--tokens N] NAME...")?);
    let (mut split, mut sparse, mut tokens, mut names) = (None, None, 8, Vec::new());
    while let Some(a) = it.next() {
        let mut num = |flag: &str| -> Result<usize, String> {
            it.next().and_then(|v| v.parse().ok()).filter(|&n| n > 0).ok_or(format!("{flag} takes a positive number"))
        };
        match a.as_str() {
            "--split" => split = Some(num("--split")?),
            "--sparse" => sparse = Some(num("--sparse")?),
            "--tokens" => tokens = num("--tokens")?,
            _ => names.push(a),
        }
    }
    if names.is_empty() {
        return Err("name at least one recipe".into());
    }
    Ok(Args { out, split, sparse, tokens, names })
}

/// Hearth's native greedy completion of `prompt`: (text, tokens, the text of llama.cpp's first
/// `k` greedy tokens `llama`).
fn native_greedy(bytes: &[u8], n_ctx: usize, prompt: &str, n: usize, llama: &[u32]) -> Result<(String, Vec<u32>, String), String> {
    let e = |e: hearth::engine::EngineError| e.to_string();
    let mut loader = Loader::new(CpuBackend::new(), ModelOptions { n_ctx, n_batch: 64 });
    loader.set_total_size(bytes.len() as u64).map_err(e)?;
    loader.feed(bytes).map_err(e)?;
    let mut s = loader.finish().map_err(e)?;
    let ids = s.text_tokens(prompt).map_err(e)?;
    let params = GenerateParams { max_tokens: n, sampler: SamplerParams::greedy(), ..Default::default() };
    let mut g = s.start(&ids, &params).map_err(e)?;
    let mut text = String::new();
    while g.finish_reason().is_none() {
        text += &pollster::block_on(s.step(&mut g)).map_err(e)?.unwrap_or_default();
    }
    let llama_text = s.tokenizer().decode(llama).map_err(|e| e.to_string())?;
    Ok((text, g.tokens().to_vec(), llama_text))
}

/// The prompt whose leading run of clear llama.cpp steps is longest, and that run's length.
fn best_prompt(m: &Model) -> (usize, usize) {
    let run = |p: &synthetic_build::Prompt| p.gaps.iter().take_while(|&&g| g >= GAP_EXACT).count();
    m.prompts.iter().enumerate().map(|(i, p)| (i, run(p))).max_by_key(|&(i, k)| (k, usize::MAX - i)).unwrap_or((0, 0))
}

fn run(a: &Args) -> Result<(), String> {
    let doc = doc();
    std::fs::create_dir_all(&a.out).map_err(|e| format!("{}: {e}", a.out.display()))?;
    let write = |name: &str, bytes: &[u8]| std::fs::write(a.out.join(name), bytes).map_err(|e| format!("{name}: {e}"));
    let mut expect = Vec::new();
    for name in &a.names {
        let m = doc.models.iter().find(|m| &m.name == name).ok_or(format!("no recipe {name}"))?;
        if let Some(layers) = a.sparse {
            let (head, len) = synthetic_build::sparse_deep(m, layers);
            let file = format!("{name}-{layers}l.gguf");
            let f = std::fs::File::create(a.out.join(&file)).map_err(|e| format!("{file}: {e}"))?;
            std::io::Write::write_all(&mut &f, &head).and_then(|()| f.set_len(len)).map_err(|e| format!("{file}: {e}"))?;
            expect.push(serde_json::json!({ "name": name, "file": file, "bytes": len }));
            continue;
        }
        let bytes = build_gguf(m);
        write(&format!("{name}.gguf"), &bytes)?;
        let mut parts = Vec::new();
        if let Some(max) = a.split {
            let split = split_gguf(&bytes, max);
            for (i, p) in split.iter().enumerate() {
                let part = hearth::gguf::split::part_name(name, i as u16, split.len() as u16);
                write(&part, p)?;
                parts.push(part);
            }
        }
        let (pi, clear) = best_prompt(m);
        let prompt = &m.prompts[pi];
        let k = clear.min(a.tokens);
        let (text, tokens, llama_text) = native_greedy(&bytes, doc.n_ctx, &prompt.text, a.tokens, &prompt.greedy[..k])?;
        if tokens.len() < k || tokens[..k] != prompt.greedy[..k] {
            return Err(format!("{name}: native greedy {tokens:?} differs from llama.cpp's {:?} on its first {k} clear steps", &prompt.greedy[..k]));
        }
        if !text.starts_with(&llama_text) {
            return Err(format!("{name}: native text {text:?} does not start with llama.cpp's {llama_text:?}"));
        }
        eprintln!("{name}: {} bytes, {} parts, prompt {pi}, {} tokens, {k} checked against llama.cpp", bytes.len(), parts.len(), tokens.len());
        expect.push(serde_json::json!({
            "name": name, "family": m.family, "file": format!("{name}.gguf"), "parts": parts,
            "prompt": prompt.text, "max_tokens": a.tokens, "text": text, "tokens": tokens,
            "llama_cpp_checked": k, "llama_cpp_text": llama_text,
        }));
    }
    let json = serde_json::to_string_pretty(&serde_json::json!({ "models": expect })).map_err(|e| e.to_string())?;
    write("expect.json", json.as_bytes())
}

fn main() -> ExitCode {
    match args().and_then(|a| run(&a)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("synthetic_gguf: {e}");
            ExitCode::FAILURE
        }
    }
}
