//! Structure-aware mode: mutates metadata *values* (and the tensor directory) of the real
//! models' headers and runs every stage after the parser on each mutant: configuration,
//! tokenizer, chat template, model build on tiny synthetic tensors, a forward pass, a chat
//! render. Any stage may refuse a mutant with an error; none may panic.
//!
//! Seeds: the metadata of SmolLM2 (llama), Gemma 3 (gemma3) and Qwen2.5 (qwen2) from
//! models/cache/ (the test fails when they are absent), with the size keys set to
//! `model::synthetic::TINY_SIZES` and the directory of `model::synthetic::tensors`, so an
//! unmutated seed loads and runs in milliseconds. The tokenizer, the slowest stage (tens of
//! milliseconds on a real vocabulary), is rebuilt only when a `tokenizer.*` key changed.

use super::Rng;
use hearth::backend::cpu::CpuBackend;
use hearth::backend::{Backend, WeightDesc};
use hearth::engine::Session;
use hearth::gguf::{Header, Metadata, TensorInfo, Value, ValueType};
use hearth::model::synthetic::{f32_data, tensors, TINY_SIZES};
use hearth::model::{self, Config, ModelOptions, Weights};
use hearth::quant::GgmlType;
use hearth::template::{ChatMessage, ChatTemplate};
use hearth::tokenizer::Tokenizer;
use std::path::PathBuf;

/// The real models whose headers seed this mode (`models-test` fetches them).
pub const MODELS: [&str; 3] =
    ["SmolLM2-135M-Instruct.Q4_1.gguf", "gemma-3-270m-q4_k_m.gguf", "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"];

/// One seed: a real model's metadata resized to the tiny shapes, and its tokenizer.
pub struct Seed {
    name: &'static str,
    arch: String,
    entries: Vec<(String, Value)>,
    tensors: Vec<(String, Vec<u64>)>,
    tokenizer: Tokenizer,
}

/// Reads the real headers; panics (the test fails, never skips) when a model is absent.
pub fn seeds() -> Vec<Seed> {
    MODELS
        .iter()
        .map(|name| {
            let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("models/cache").join(name);
            assert!(path.is_file(), "{} is missing: run `make models-test`", path.display());
            let md = super::common::read_metadata(&path);
            let arch = md.get_str("general.architecture").expect("architecture").to_string();
            let mut entries: Vec<(String, Value)> = md.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
            for &(k, v) in TINY_SIZES {
                let key = format!("{arch}.{k}");
                entries.retain(|(e, _)| *e != key);
                entries.push((key, Value::U32(v)));
            }
            let n_vocab = md.get_array("tokenizer.ggml.tokens").map_or(0, <[Value]>::len) as u64;
            let tokenizer = Tokenizer::from_metadata(&md).expect("the real tokenizer builds");
            Seed { name, arch: arch.clone(), entries, tensors: tensors(&arch, n_vocab), tokenizer }
        })
        .collect()
}

/// Values a mutated scalar takes: boundaries, type confusions, specials.
fn mutate_value(v: &Value, rng: &mut Rng) -> Value {
    let ints = [0u64, 1, 2, 3, 7, 1 << 31, 0xFFFF_FFFF, 1 << 32, 1 << 40, 1 << 62, u64::MAX];
    match rng.below(10) {
        0 => Value::U64(ints[rng.below(ints.len())]),
        1 => Value::I32(-(rng.below(5) as i32) - 1),
        2 => Value::F32([f32::NAN, f32::INFINITY, -1.0, 0.0, 1e30, 1e-30][rng.below(6)]),
        3 => Value::String(["", "llama", "gemma3", "qwen2", "bert", "gpt2", "x"][rng.below(7)].into()),
        4 => Value::Array(ValueType::U32, vec![Value::U32(1); rng.below(4)]),
        5 => Value::Bool(rng.chance(2)),
        _ => match v {
            Value::U32(x) => Value::U32(match rng.below(4) {
                0 => x.wrapping_add(1),
                1 => x.wrapping_sub(1),
                2 => x.wrapping_mul(2),
                _ => x / 2,
            }),
            Value::U64(x) => Value::U64(x ^ (1 << rng.below(64))),
            Value::F32(x) => Value::F32(-x),
            Value::String(s) => Value::String(mutate_string(s, rng)),
            Value::Array(t, items) => mutate_array(*t, items, rng),
            other => Value::U64(other.as_u64().unwrap_or(0).wrapping_add(1)),
        },
    }
}

/// Snippets a mutated chat template gains: loops, recursion, doublings, widths.
const TEMPLATE_SNIPPETS: &[&str] = &[
    "{% set s = 'ab' %}{% for i in range(80) %}{% set s = s ~ s %}{% endfor %}",
    "{{ messages[99].content }}",
    "{{ 'x'|indent(100000000000) }}",
    "{% for i in range(100000) %}{% for j in range(1000) %}{{ i }}{% endfor %}{% endfor %}",
    "{{ raise_exception('nope') }}",
    "{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}",
    "{{ '%99999999s'|format(bos_token) }}",
    "{% if",
];

fn mutate_string(s: &str, rng: &mut Rng) -> String {
    let cut = |s: &str, at: usize| s.char_indices().map(|(i, _)| i).nth(at).map_or(s.to_string(), |i| s[..i].to_string());
    match rng.below(4) {
        0 => cut(s, rng.below(s.chars().count() + 1)),
        1 => {
            let at = s.char_indices().map(|(i, _)| i).nth(rng.below(s.chars().count() + 1)).unwrap_or(s.len());
            let snippet = TEMPLATE_SNIPPETS[rng.below(TEMPLATE_SNIPPETS.len())];
            format!("{}{snippet}{}", &s[..at], &s[at..])
        }
        2 => s.repeat(1 + rng.below(3)),
        _ => String::new(),
    }
}

fn mutate_array(t: ValueType, items: &[Value], rng: &mut Rng) -> Value {
    let mut v: Vec<Value> = items.to_vec();
    match rng.below(5) {
        0 => v.truncate(rng.below(v.len() + 1)),
        1 if !v.is_empty() => {
            let i = rng.below(v.len());
            v[i] = mutate_value(&v[i], rng);
        }
        2 if !v.is_empty() => {
            let (a, b) = (rng.below(v.len()), rng.below(v.len()));
            v.swap(a, b);
        }
        3 => v.clear(),
        _ => {
            if let Some(x) = v.first().cloned() {
                v.extend(std::iter::repeat_n(x, 1 + rng.below(8)));
            }
        }
    }
    Value::Array(t, v)
}

/// Keys most worth mutating: the architecture's hyper-parameters and tokenizer scalars.
fn pick_entry(entries: &[(String, Value)], arch: &str, rng: &mut Rng) -> usize {
    if rng.chance(3) {
        return rng.below(entries.len());
    }
    let hot: Vec<usize> = entries
        .iter()
        .enumerate()
        .filter(|(_, (k, v))| {
            (k.starts_with(arch) || k.starts_with("general.") || k.starts_with("tokenizer."))
                && !matches!(v, Value::Array(_, a) if a.len() > 1000)
        })
        .map(|(i, _)| i)
        .collect();
    hot.get(rng.below(hot.len())).copied().unwrap_or(0)
}

/// Runs one mutant of `seed`; returns an outcome label. Panics are the caller's to catch
/// (the seed's metadata is then gone: rebuild the seeds). The metadata is mutated in place
/// and restored afterwards: cloning a 262 144-token vocabulary per case would dominate.
pub fn run_case(seed: &mut Seed, rng: &mut Rng) -> String {
    let mut entries = std::mem::take(&mut seed.entries);
    let mut undo: Vec<Undo> = Vec::new();
    let label = mutate_and_run(seed, &mut entries, &mut undo, rng);
    for u in undo.into_iter().rev() {
        match u {
            Undo::Set(i, v) => entries[i].1 = v,
            Undo::Insert(i, e) => entries.insert(i, e),
        }
    }
    seed.entries = entries;
    label
}

/// How to put back one mutation of the seed's metadata.
enum Undo {
    Set(usize, Value),
    Insert(usize, (String, Value)),
}

fn mutate_and_run(seed: &Seed, entries_ref: &mut Vec<(String, Value)>, undo: &mut Vec<Undo>, rng: &mut Rng) -> String {
    let mut entries = std::mem::take(entries_ref);
    let mut dir = seed.tensors.clone();
    let mut tokenizer_touched = false;
    for _ in 0..1 + rng.below(3) {
        match rng.below(10) {
            0 if !dir.is_empty() => {
                let i = rng.below(dir.len());
                let dims = &mut dir[i].1;
                let d = rng.below(dims.len());
                dims[d] = [0, 1, dims[d] * 2, dims[d] + 1, 1 << 40][rng.below(5)];
            }
            1 if !dir.is_empty() => {
                dir.remove(rng.below(dir.len()));
            }
            2 => {
                let i = pick_entry(&entries, &seed.arch, rng);
                tokenizer_touched |= entries[i].0.starts_with("tokenizer.ggml");
                undo.push(Undo::Insert(i, entries.remove(i)));
            }
            _ => {
                let i = pick_entry(&entries, &seed.arch, rng);
                tokenizer_touched |= entries[i].0.starts_with("tokenizer.ggml");
                let new = mutate_value(&entries[i].1, rng);
                undo.push(Undo::Set(i, std::mem::replace(&mut entries[i].1, new)));
            }
        }
    }
    let mut offset = 0u64;
    let tensors: Vec<TensorInfo> = dir
        .iter()
        .map(|(name, dims)| {
            let n = dims.iter().try_fold(1u64, |a, &d| a.checked_mul(d)).unwrap_or(u64::MAX / 8);
            let n_bytes = n.saturating_mul(4);
            let t = TensorInfo { name: name.clone(), dims: dims.clone(), ty: GgmlType::F32, offset, n_bytes };
            offset = offset.saturating_add(n_bytes.next_multiple_of(32));
            t
        })
        .collect();
    let header = Header { version: 3, metadata: Metadata::from_entries(entries), tensors, alignment: 32, data_offset: 0 };
    let label = run_stages(seed, &header, tokenizer_touched, rng);
    *entries_ref = header.metadata.into_entries();
    label
}

/// Config → tokenizer → template → (one case in four, the slow part) build, forward, chat.
fn run_stages(seed: &Seed, header: &Header, tokenizer_touched: bool, rng: &mut Rng) -> String {
    let md = &header.metadata;
    let cfg = match Config::from_header(header) {
        Ok(c) => c,
        Err(e) => return format!("config:{}", label(&e.to_string())),
    };
    let tokenizer = if tokenizer_touched {
        match Tokenizer::from_metadata(md) {
            Ok(t) => Some(t),
            Err(e) => return format!("tokenizer:{}", label(&e.to_string())),
        }
    } else {
        None
    };
    let template = ChatTemplate::from_metadata(md);
    if let Err(e) = &template {
        if !matches!(e, hearth::template::TemplateError::NoTemplate) {
            return format!("template:{}", label(&e.to_string()));
        }
    }
    if tokenizer.is_none() && !rng.chance(4) {
        return "accepted".into();
    }
    let tokenizer = tokenizer.unwrap_or_else(|| seed.tokenizer.clone());
    // The directory matched the configuration, so every tensor is tiny unless a mutation
    // made the configuration itself large; such cases stop here.
    let elements: u64 = header.tensors.iter().map(|t| t.n_elements()).fold(0, u64::saturating_add);
    if elements > 4 << 20 {
        return "accepted-large".into();
    }
    let mut b = CpuBackend::new();
    let mut weights = Weights::default();
    for t in &header.tensors {
        let dims: Vec<usize> = t.dims.iter().map(|&d| d as usize).collect();
        let desc = WeightDesc { name: t.name.clone(), ty: t.ty, dims };
        match b.upload(&desc, &f32_data(&t.dims)) {
            Ok(w) => weights.insert(desc, w),
            Err(e) => return format!("upload:{}", label(&e.to_string())),
        }
    }
    let model = match model::build(&mut b, cfg, weights, ModelOptions { n_ctx: 16, n_batch: 4 }) {
        Ok(m) => m,
        Err(e) => return format!("build:{}", label(&e.to_string())),
    };
    let mut s = Session::new(b, model, tokenizer, template);
    let n_vocab = s.config().n_vocab as u32;
    let out = s.prefill(&[0, 1 % n_vocab, 2 % n_vocab]).map(|_| ());
    let chat = s.chat_tokens(&[ChatMessage::new("user", "Hello")]).map(|_| ());
    let _ = s.text_tokens("Hello world");
    format!("{}:forward-{}:chat-{}", seed.name, out.is_ok(), chat.is_ok())
}

/// The first words of an error, for the outcome histogram.
fn label(e: &str) -> String {
    e.split([':', '=', '(']).next().unwrap_or("?").trim().chars().take(40).collect()
}
