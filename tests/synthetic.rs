//! The synthetic-model conformance suite: for each architecture family, small random-weight
//! GGUFs with the family's real metadata layout, tensor names and shapes (every feature
//! present, narrowed), in F16, Q8_0, Q4_K and Q6_K, with a real llama.cpp test vocabulary,
//! against llama.cpp's outputs (tests/goldens/make_synthetic.py, not run in CI).
//!
//! No model file is committed: each GGUF is rebuilt here, byte for byte the tensors llama.cpp
//! ran, from its recipe in tests/goldens/synthetic/recipes.json (a counter-based generator
//! without floating point, the same as the maker's `stream`), with the tokenizer keys of the
//! vocabulary file in .cache/llama-vocab/ (`make test-data`).
//!
//! Checked on the CPU and the GPU backend (lavapipe natively), for every model: Hearth's
//! prompt tokens equal llama.cpp's, logits cosine ≥ 0.999 at the first prompt's last position,
//! and the same greedy token at each of 32 steps of both prompts wherever llama.cpp's top-1/top-2
//! gap is ≥ 0.5 (see `GAP_EXACT`; every step is reported).

mod common;
#[path = "common/synthetic_build.rs"]
mod synthetic_build;

use hearth::backend::cpu::CpuBackend;
use hearth::backend::Backend;
use hearth::engine::{Loader, Session};
use hearth::gguf::{parse_header, Value, Writer};
use hearth::model::ModelOptions;
use std::path::Path;
use synthetic_build::{build_gguf, doc, split_doc, split_gguf, Model};

fn load<B: Backend + 'static>(bytes: &[u8], backend: B, n_ctx: usize) -> Session<B> {
    let mut loader = Loader::new(backend, ModelOptions { n_ctx, n_batch: 64 });
    for chunk in bytes.chunks(1 << 20) {
        loader.feed(chunk).expect("feed");
    }
    loader.finish().expect("synthetic model loads")
}

/// Greedy tokens must be equal wherever llama.cpp's top-1/top-2 gap is at least this (the
/// real-model parity tests' `gap_exact`). Random-weight logits are flat: on the quantized
/// variants llama.cpp's 8-bit activations and f16 KV cache flip near-ties (measured: every
/// differing step had a gap ≤ 0.31; F16 variants match at every step).
const GAP_EXACT: f32 = 0.5;

/// One model on one backend: (cosine at the first prompt's last position, greedy tokens
/// equal, greedy tokens compared, tokens differing where llama.cpp's gap ≥ GAP_EXACT).
fn check<B: Backend>(s: &mut Session<B>, m: &Model, golden_logits: &[f32]) -> (f64, usize, usize, usize) {
    let mut cos = 0.0;
    let (mut equal, mut total, mut gated) = (0, 0, 0);
    for (i, p) in m.prompts.iter().enumerate() {
        let ids = s.text_tokens(&p.text).expect("tokenize");
        assert_eq!(ids, p.ids, "{}: prompt {i} tokens differ from llama.cpp", m.name);
        s.reset();
        let mut seq = ids.clone();
        for (step, &want) in p.greedy.iter().enumerate() {
            let t = s.prefill(&seq).expect("forward");
            if i == 0 && step == 0 {
                let ours = s.backend_mut().read(&t, 0, m.n_vocab).expect("logits");
                cos = common::cosine(&ours, golden_logits);
            }
            let got = s.backend_mut().argmax(&t, 0, m.n_vocab).expect("argmax");
            total += 1;
            if got == want {
                equal += 1;
            } else {
                gated += usize::from(p.gaps[step] >= GAP_EXACT);
                eprintln!("{} prompt {i} step {step}: token {got}, llama.cpp {want} (llama.cpp gap {:.3})", m.name, p.gaps[step]);
            }
            // Teacher-forced with llama.cpp's token, so one difference is reported once.
            seq.push(want);
        }
    }
    (cos, equal, total, gated)
}

fn golden_logits(m: &Model) -> Vec<f32> {
    let p = common::root().join("tests/goldens/synthetic").join(format!("{}.f16", m.name));
    let raw = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    let v: Vec<f32> = raw.chunks_exact(2).map(|b| half::f16::from_le_bytes([b[0], b[1]]).to_f32()).collect();
    assert_eq!(v.len(), m.n_vocab, "{}", p.display());
    v
}

/// Runs every recipe (or those of `HEARTH_SYNTHETIC=family,...`) on `backend()`.
fn run_all<B: Backend + 'static>(what: &str, backend: impl Fn() -> B) {
    let doc = doc();
    let only = std::env::var("HEARTH_SYNTHETIC").ok();
    let mut failures = Vec::new();
    let mut ran = 0;
    for m in &doc.models {
        if m.big || only.as_deref().is_some_and(|o| !o.split(',').any(|f| f == m.family)) {
            continue;
        }
        let bytes = build_gguf(m);
        let mut s = load(&bytes, backend(), doc.n_ctx);
        let (cos, equal, total, gated) = check(&mut s, m, &golden_logits(m));
        eprintln!("{what} {:18} cosine {cos:.6}  greedy {equal}/{total}", m.name);
        if cos < 0.999 || gated > 0 {
            failures.push(format!("{}: cosine {cos:.6}, greedy {equal}/{total}, {gated} differing at a gap ≥ {GAP_EXACT}", m.name));
        }
        ran += 1;
    }
    assert!(ran > 0, "no synthetic model ran");
    assert!(failures.is_empty(), "{what}: {failures:#?}");
}

#[test]
fn synthetic_models_match_llama_cpp_on_the_cpu_backend() {
    run_all("cpu", CpuBackend::new);
}

#[cfg(feature = "gpu")]
#[test]
fn synthetic_models_match_llama_cpp_on_the_gpu_backend() {
    use hearth::backend::gpu::GpuBackend;
    run_all("gpu", || match pollster::block_on(GpuBackend::new()) {
        Ok(b) => b,
        Err(e) => panic!("no GPU adapter (install mesa-vulkan-drivers for lavapipe): {e}"),
    });
}

/// Resident memory of this process now, in bytes (Linux `VmRSS`).
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok()).map_or(0, |kb| kb * 1024)
}

/// 7B-shaped models (Llama 2 / Mistral 7B and Qwen2.5 7B widths, heads, vocabularies; two
/// layers; random Q4_K weights) against llama.cpp, loaded from a file: the same checks as the
/// small models, plus the memory the load took against the weights' size (on the CPU backend
/// the weights stay in their block format: their size plus the KV cache and activations, not a
/// dequantized copy; on lavapipe the "GPU" buffers are process memory too, printed only).
/// Slow (hundreds of MB per model): `make test-7b`.
fn seven_b_shaped<B: Backend + 'static>(what: &str, backend: impl Fn() -> B, bound_rss: bool) {
    let doc = doc();
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("synthetic_7b_{what}"));
    std::fs::create_dir_all(&dir).unwrap();
    let mut failures = Vec::new();
    let mut ran = 0;
    for m in doc.models.iter().filter(|m| m.big) {
        let path = dir.join(format!("{}.gguf", m.name));
        let bytes = build_gguf(m);
        let weights: u64 = parse_header(&bytes).expect("header").tensors.iter().map(|t| t.n_bytes).sum();
        std::fs::write(&path, &bytes).unwrap();
        drop(bytes);
        let before = rss();
        let t = std::time::Instant::now();
        let mut s = hearth::engine::load_file(&path, backend(), ModelOptions { n_ctx: doc.n_ctx, n_batch: 64 }, |_| {}).expect("loads");
        let (load_s, grown) = (t.elapsed().as_secs_f64(), rss().saturating_sub(before));
        let t = std::time::Instant::now();
        let (cos, equal, total, gated) = check(&mut s, m, &golden_logits(m));
        let c = s.config();
        eprintln!(
            "7b {what} {:12} d {} ff {} heads {}/{} vocab {} | weights {:.0} MiB, RSS grew {:.0} MiB on load ({load_s:.1} s) | cosine {cos:.6} greedy {equal}/{total} ({:.1} s)",
            m.name, c.n_embd, c.n_ff, c.n_head, c.n_head_kv, c.n_vocab, weights as f64 / 1048576.0, grown as f64 / 1048576.0, t.elapsed().as_secs_f64()
        );
        if bound_rss && grown > weights + weights / 8 + (64 << 20) {
            failures.push(format!("{}: RSS grew {grown} bytes for {weights} bytes of weights", m.name));
        }
        if cos < 0.999 || gated > 0 {
            failures.push(format!("{}: cosine {cos:.6}, greedy {equal}/{total}, {gated} differing at a gap ≥ {GAP_EXACT}", m.name));
        }
        drop(s);
        let _ = std::fs::remove_file(&path);
        ran += 1;
    }
    assert!(ran >= 2, "no 7B-shaped recipe (make_synthetic.py llama7b qwen7b)");
    assert!(failures.is_empty(), "{what}: {failures:#?}");
}

#[test]
#[ignore = "7B-shaped models take minutes: make test-7b"]
fn seven_b_shaped_models_match_llama_cpp() {
    seven_b_shaped("cpu", CpuBackend::new, true);
}

#[cfg(feature = "gpu")]
#[test]
#[ignore = "7B-shaped models take minutes: make test-7b"]
fn seven_b_shaped_models_match_llama_cpp_on_the_gpu_backend() {
    use hearth::backend::gpu::GpuBackend;
    let gpu = || pollster::block_on(GpuBackend::new()).unwrap_or_else(|e| panic!("no GPU adapter (install mesa-vulkan-drivers for lavapipe): {e}"));
    seven_b_shaped("gpu", gpu, false);
}

/// The recipes rebuild what the maker wrote: every tensor of every model is there once, and
/// the files parse (a guard for the generator itself, independent of any model code).
#[test]
fn recipes_rebuild_valid_gguf_files() {
    let doc = doc();
    assert!(doc.models.len() >= 24, "{} models", doc.models.len());
    for m in doc.models.iter().filter(|m| m.name.ends_with("q4_k") && !m.big) {
        let bytes = build_gguf(m);
        let h = parse_header(&bytes).expect("header");
        assert_eq!(h.tensors.len(), m.tensors.len(), "{}", m.name);
        assert!(Path::new(&m.vocab).extension().is_some());
    }
}

// ---- Split GGUF files (llama.cpp's gguf-split) ----

/// Loads the parts of a split model in order, as `load_file` and the browser do: each part's
/// size first, `next_part` between parts. Checks the progress covers every part.
fn load_parts(parts: &[&[u8]], n_ctx: usize) -> Result<Session<CpuBackend>, hearth::engine::EngineError> {
    let mut loader = Loader::new(CpuBackend::new(), ModelOptions { n_ctx, n_batch: 64 });
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            loader.next_part()?;
        }
        loader.set_total_size(part.len() as u64)?;
        for chunk in part.chunks(300_000) {
            loader.feed(chunk)?;
        }
    }
    let p = loader.progress();
    assert_eq!(p.bytes_seen, parts.iter().map(|p| p.len() as u64).sum::<u64>());
    if p.tensors_done == p.tensors_total {
        assert!(p.tensors_total > 0);
    }
    loader.finish()
}

fn first_logits(s: &mut Session<CpuBackend>, m: &Model) -> Vec<f32> {
    s.reset();
    let ids = s.text_tokens(&m.prompts[0].text).expect("tokenize");
    let t = s.prefill(&ids).expect("forward");
    s.backend_mut().read(&t, 0, m.n_vocab).expect("logits")
}

/// A model split by llama.cpp's gguf-split (tests/goldens/make_split.py recorded its parts'
/// SHA-256; llama.cpp's outputs on the split model equal those on the whole file) loads part by
/// part with exactly the whole file's logits, and passes the same llama.cpp checks; the CLI runs
/// it given any part.
#[test]
fn a_split_model_loads_part_by_part_like_the_whole_file() {
    use sha2::Digest;
    let (doc, split) = (doc(), split_doc());
    let m = doc.models.iter().find(|m| m.name == split.model).expect("the split model's recipe");
    let whole = build_gguf(m);
    let parts = split_gguf(&whole, split.max_tensors);
    assert_eq!(parts.len(), split.parts.len());
    for (p, want) in parts.iter().zip(&split.parts) {
        let sha = format!("{:x}", sha2::Sha256::digest(p));
        assert_eq!((p.len(), sha.as_str()), (want.bytes, want.sha256.as_str()), "{}: not gguf-split's bytes", want.name);
    }
    let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
    let mut s = load_parts(&refs, doc.n_ctx).expect("the split model loads");
    let mut w = load(&whole, CpuBackend::new(), doc.n_ctx);
    assert_eq!(first_logits(&mut s, m), first_logits(&mut w, m), "split and whole logits differ");
    let (cos, equal, total, gated) = check(&mut s, m, &golden_logits(m));
    eprintln!("split {} cosine {cos:.6} greedy {equal}/{total}", m.name);
    assert!(cos >= 0.999 && gated == 0);

    // The CLI, given the second part: inspect lists every part's tensors, run generates what
    // it generates from the whole file.
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("split_cli");
    std::fs::create_dir_all(&dir).unwrap();
    for (p, want) in parts.iter().zip(&split.parts) {
        std::fs::write(dir.join(&want.name), p).unwrap();
    }
    let whole_path = dir.join("whole.gguf");
    std::fs::write(&whole_path, &whole).unwrap();
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_hearth")).args(args).current_dir(env!("CARGO_MANIFEST_DIR")).output().unwrap();
        assert!(out.status.success(), "hearth {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let second = dir.join(&split.parts[1].name);
    let second = second.to_str().unwrap();
    let listing = cli(&["inspect", second]);
    assert_eq!(listing.lines().filter(|l| l.starts_with("  blk.") || l.starts_with("  token_embd") || l.starts_with("  output_norm")).count(), m.tensors.len(), "{listing}");
    assert!(listing.contains("supported:"), "{listing}");
    let run = |p: &str| cli(&["run", "--model", p, "--prompt", &m.prompts[0].text, "-n", "8", "--ctx", "64"]);
    assert_eq!(run(second), run(whole_path.to_str().unwrap()));
}

/// Parts missing, out of order, repeated, from another split, or holding a tensor twice are
/// refused with INVALID_MODEL naming the problem; extra parts are a BAD_REQUEST.
#[test]
fn broken_split_models_are_refused_with_clear_errors() {
    let (doc, split) = (doc(), split_doc());
    let m = doc.models.iter().find(|m| m.name == split.model).unwrap();
    let whole = build_gguf(m);
    let parts = split_gguf(&whole, split.max_tensors);
    assert!(parts.len() >= 3);
    let (p0, p1, p2) = (parts[0].as_slice(), parts[1].as_slice(), parts[2].as_slice());
    // The same model split differently: its second part says another part count.
    let other = split_gguf(&whole, split.max_tensors * 2);
    // A part whose tensor is already in part 1.
    let h1 = parse_header(p1).unwrap();
    let mut dup = Writer::new();
    dup.kv("split.no", Value::U16(1)).kv("split.tensors.count", Value::I32(m.tensors.len() as i32)).kv("split.count", Value::U16(parts.len() as u16));
    let t = &h1.tensors[0];
    let start = (h1.data_offset + t.offset) as usize;
    dup.tensor(&parse_header(p0).unwrap().tensors[0].name, &t.dims, t.ty, p1[start..start + t.n_bytes as usize].to_vec());
    let dup = dup.to_bytes();
    let cases: Vec<(&str, Vec<&[u8]>, &str, &str)> = vec![
        ("last part missing", vec![p0, p1], "INVALID_MODEL", "only 2 were given"),
        ("starts at part 2", vec![p1, p2], "INVALID_MODEL", "load the model from its first part"),
        ("out of order", vec![p0, p2, p1], "INVALID_MODEL", "expected part 2"),
        ("a part twice", vec![p0, p1, p1], "INVALID_MODEL", "expected part 3"),
        ("another split's part", vec![p0, other[1].as_slice()], "INVALID_MODEL", "the first part"),
        ("a tensor twice", vec![p0, dup.as_slice()], "INVALID_MODEL", "is in two parts"),
        ("an unsplit file after part 1", vec![p0, whole.as_slice()], "INVALID_MODEL", "no split keys"),
        ("more files than parts", vec![p0, p1, p2, p2], "BAD_REQUEST", "all of them fed"),
        ("a second file after an unsplit one", vec![whole.as_slice(), p1], "BAD_REQUEST", "in 1 file"),
    ];
    for (what, input, code, text) in cases {
        let err = match load_parts(&input, doc.n_ctx) {
            Ok(_) => panic!("{what}: loaded"),
            Err(e) => e,
        };
        eprintln!("{what}: {} {err}", err.code());
        assert_eq!(err.code(), code, "{what}: {err}");
        assert!(err.to_string().contains(text), "{what}: {err}");
    }
}

/// Where memory is capped (the CPU backend in wasm32: 4 GiB), a model whose weights + KV cache
/// + working memory exceed the cap is refused from its header, before any weight arrives
/// (`UNSUPPORTED_MODEL` with the figures); one that fits exactly loads. For a split model the
/// part whose weights cross the cap is refused at its own header.
#[test]
fn a_model_larger_than_the_memory_cap_is_refused_at_its_header() {
    let doc = doc();
    let m = doc.models.iter().find(|m| m.name == "qwen3_q8_0").expect("recipe");
    let bytes = build_gguf(m);
    let h = parse_header(&bytes).expect("header");
    let weights: u64 = h.tensors.iter().map(|t| t.n_bytes).sum();
    let probe = load(&bytes, CpuBackend::new(), doc.n_ctx);
    let c = probe.config();
    let kv = (doc.n_ctx * c.kv_dim() * 2 * 4 * c.n_layer) as u64;
    drop(probe);
    let need = weights + kv + hearth::engine::MEMORY_HEADROOM;
    let loader = |cap: u64| {
        let mut l = Loader::new(CpuBackend::new(), ModelOptions { n_ctx: doc.n_ctx, n_batch: 64 });
        l.set_memory_cap(Some(cap));
        l
    };
    // One byte short: refused on the header's bytes alone.
    let mut l = loader(need - 1);
    let e = l.feed(&bytes[..h.data_offset as usize]).expect_err("refused at the header");
    assert_eq!(e.code(), "UNSUPPORTED_MODEL", "{e}");
    assert!(e.to_string().contains("GiB of KV cache for 256 tokens"), "{e}");
    // Exactly enough: loads.
    let mut l = loader(need);
    l.feed(&bytes).expect("fits");
    l.finish().expect("loads");
    // Split: the first part fits, the parts together do not: refused at the crossing part's header.
    let parts = split_gguf(&bytes, 10);
    let first: u64 = parse_header(&parts[0]).expect("part 1").tensors.iter().map(|t| t.n_bytes).sum();
    let mut l = loader(first + kv + hearth::engine::MEMORY_HEADROOM);
    l.feed(&parts[0]).expect("part 1 fits");
    l.next_part().expect("next part");
    let e = l.feed(&parts[1]).expect_err("part 2 crosses the cap");
    assert_eq!(e.code(), "UNSUPPORTED_MODEL", "{e}");
    assert!(e.to_string().contains("in the parts so far"), "{e}");
}
