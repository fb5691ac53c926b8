//! Building the synthetic conformance models from their recipes
//! (tests/goldens/synthetic/recipes.json, written by tests/goldens/make_synthetic.py): shared by
//! tests/synthetic.rs and examples/synthetic_gguf.rs (which writes the files the browser tests
//! load), included in each with `#[path]`.
#![allow(dead_code)]

use hearth::gguf::{parse_header, Value, Writer};
use hearth::quant::GgmlType;
use serde::Deserialize;
use std::path::PathBuf;

/// The repository root.
fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

#[derive(Debug, Deserialize)]
pub struct Doc {
    pub n_ctx: usize,
    pub models: Vec<Model>,
}

#[derive(Debug, Deserialize)]
pub struct Model {
    pub name: String,
    pub family: String,
    pub vocab: String,
    pub metadata: Vec<(String, String, serde_json::Value)>,
    pub tensors: Vec<TensorRecipe>,
    pub n_vocab: usize,
    pub prompts: Vec<Prompt>,
    /// A 7B-shaped model: only in `seven_b_shaped_models_match_llama_cpp` (`make test-7b`).
    #[serde(default)]
    pub big: bool,
}

#[derive(Debug, Deserialize)]
pub struct TensorRecipe {
    pub name: String,
    pub dims: Vec<serde_json::Value>,
    #[serde(rename = "type")]
    pub ty: String,
    pub kind: String,
    #[serde(default)]
    pub seed: u64,
    #[serde(default)]
    pub e: u16,
    #[serde(default)]
    pub d: u16,
    #[serde(default)]
    pub dmin: u16,
    #[serde(default)]
    pub values: Vec<f32>,
}

#[derive(Debug, Deserialize)]
pub struct Prompt {
    pub text: String,
    pub ids: Vec<u32>,
    pub greedy: Vec<u32>,
    pub gaps: Vec<f32>,
}

pub fn doc() -> Doc {
    let p = root().join("tests/goldens/synthetic/recipes.json");
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))).unwrap()
}

/// `nbytes` bytes of splitmix64 over `seed + (j+1)·φ` (make_synthetic.py's `stream`).
pub fn stream(seed: u64, nbytes: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(nbytes + 8);
    let mut j: u64 = 1;
    while out.len() < nbytes {
        let mut z = seed.wrapping_add(j.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        out.extend_from_slice(&z.to_le_bytes());
        j += 1;
    }
    out.truncate(nbytes);
    out
}

pub fn ggml_type(s: &str) -> GgmlType {
    match s {
        "F32" => GgmlType::F32,
        "F16" => GgmlType::F16,
        "Q8_0" => GgmlType::Q8_0,
        "Q4_K" => GgmlType::Q4_K,
        "Q6_K" => GgmlType::Q6_K,
        other => panic!("recipe type {other}"),
    }
}

/// A tensor's bytes from its recipe (make_synthetic.py's `tensor_bytes`).
pub fn tensor_bytes(t: &TensorRecipe, n: usize) -> Vec<u8> {
    let f32s = |v: Vec<f32>| v.iter().flat_map(|x| x.to_le_bytes()).collect::<Vec<u8>>();
    match (t.kind.as_str(), t.ty.as_str()) {
        ("values", _) => f32s(t.values.clone()),
        ("norm", _) => f32s(stream(t.seed, n).iter().map(|&b| 1.0 + (b as f32 - 128.0) / 1024.0).collect()),
        ("bias", _) => f32s(stream(t.seed, n).iter().map(|&b| (b as f32 - 128.0) / 256.0).collect()),
        (_, "F16") => stream(t.seed, 2 * n)
            .chunks_exact(2)
            .flat_map(|c| {
                let u = u16::from_le_bytes([c[0], c[1]]);
                ((u & 0x83FF) | ((t.e + ((u >> 10) & 1)) << 10)).to_le_bytes()
            })
            .collect(),
        (_, ty) => {
            let (qk, size) = match ty {
                "Q8_0" => (32, 34),
                "Q4_K" => (256, 144),
                "Q6_K" => (256, 210),
                other => panic!("recipe type {other}"),
            };
            assert_eq!(n % qk, 0, "{}", t.name);
            let mut b = stream(t.seed, n / qk * size);
            for block in b.chunks_exact_mut(size) {
                match ty {
                    "Q8_0" => block[0..2].copy_from_slice(&t.d.to_le_bytes()),
                    "Q4_K" => {
                        block[0..2].copy_from_slice(&t.d.to_le_bytes());
                        block[2..4].copy_from_slice(&t.dmin.to_le_bytes());
                    }
                    _ => block[208..210].copy_from_slice(&t.d.to_le_bytes()),
                }
            }
            b
        }
    }
}

/// A writer holding recipe `m`'s metadata (`block_count` replaced where given) and its
/// vocabulary's `tokenizer.*` keys (read from llama.cpp's test vocabulary, `make test-data`).
fn metadata_writer(m: &Model, block_count: Option<u32>) -> Writer {
    let vocab_path = root().join(".cache/llama-vocab").join(&m.vocab);
    let vocab = std::fs::read(&vocab_path).unwrap_or_else(|e| panic!("{}: {e} (run `make test-data`)", vocab_path.display()));
    let vocab = parse_header(&vocab).expect("vocabulary header").metadata;
    let mut w = Writer::new();
    for (key, ty, v) in &m.metadata {
        let value = match (ty.as_str(), block_count) {
            (_, Some(n)) if key.ends_with(".block_count") => Value::U32(n),
            ("u32", _) => Value::U32(v.as_u64().expect("u32") as u32),
            ("f32", _) => Value::F32(v.as_f64().expect("f32") as f32),
            ("str", _) => Value::String(v.as_str().expect("str").to_string()),
            ("bool", _) => Value::Bool(v.as_bool().expect("bool")),
            (other, _) => panic!("metadata type {other}"),
        };
        w.kv(key, value);
    }
    for (key, v) in vocab.iter().filter(|(k, _)| k.starts_with("tokenizer.")) {
        w.kv(key, v.clone());
    }
    w
}

/// The GGUF file of a recipe: its metadata, the vocabulary's `tokenizer.*` keys, its tensors.
pub fn build_gguf(m: &Model) -> Vec<u8> {
    let mut w = metadata_writer(m, None);
    for t in &m.tensors {
        let dims: Vec<u64> = t.dims.iter().map(|d| d.as_u64().unwrap_or(m.n_vocab as u64)).collect();
        let n = dims.iter().product::<u64>() as usize;
        w.tensor(&t.name, &dims, ggml_type(&t.ty), tensor_bytes(t, n));
    }
    w.to_bytes()
}

/// Model `m` with its layers repeated to `layers` (block_count too), as a header for a sparse
/// file: (the header bytes, the whole file's length). Every tensor is declared, none held: the
/// file is the header and zeros (`set_len`), a model too large to write, for refusals that must
/// come from the header (the browser CPU backend's 4 GiB).
pub fn sparse_deep(m: &Model, layers: usize) -> (Vec<u8>, u64) {
    let mut w = metadata_writer(m, Some(layers as u32));
    let mut declare = |name: &str, t: &TensorRecipe| {
        let dims: Vec<u64> = t.dims.iter().map(|d| d.as_u64().unwrap_or(m.n_vocab as u64)).collect();
        let ty = ggml_type(&t.ty);
        let len = ty.bytes_for(dims.iter().product::<u64>()).expect("block-aligned");
        w.tensor_declared(name, &dims, ty, len);
    };
    for t in m.tensors.iter().filter(|t| !t.name.starts_with("blk.")) {
        declare(&t.name, t);
    }
    for il in 0..layers {
        for t in m.tensors.iter().filter(|t| t.name.starts_with("blk.0.")) {
            declare(&format!("blk.{il}.{}", &t.name["blk.0.".len()..]), t);
        }
    }
    w.header_bytes()
}

#[derive(Debug, Deserialize)]
pub struct SplitDoc {
    pub model: String,
    pub max_tensors: usize,
    pub parts: Vec<SplitPart>,
}

#[derive(Debug, Deserialize)]
pub struct SplitPart {
    pub name: String,
    pub bytes: usize,
    pub sha256: String,
}

pub fn split_doc() -> SplitDoc {
    let p = root().join("tests/goldens/synthetic/split.json");
    serde_json::from_str(&std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))).unwrap()
}

/// Splits a GGUF file as `gguf-split --split --split-max-tensors n` does: `n` tensors per part
/// in directory order; the first part keeps all metadata, every part gets `split.no` (u16),
/// `split.tensors.count` (i32) and `split.count` (u16), in that order.
pub fn split_gguf(bytes: &[u8], max_tensors: usize) -> Vec<Vec<u8>> {
    let h = parse_header(bytes).expect("header");
    let chunks: Vec<_> = h.tensors.chunks(max_tensors).collect();
    let split = |w: &mut Writer, i: usize| {
        w.kv("split.no", Value::U16(i as u16))
            .kv("split.tensors.count", Value::I32(h.tensors.len() as i32))
            .kv("split.count", Value::U16(chunks.len() as u16));
    };
    let mut parts = Vec::new();
    for (i, ts) in chunks.iter().enumerate() {
        let mut w = Writer::new();
        if i == 0 {
            for (k, v) in h.metadata.iter() {
                w.kv(k, v.clone());
            }
        }
        split(&mut w, i);
        for t in *ts {
            let start = (h.data_offset + t.offset) as usize;
            w.tensor(&t.name, &t.dims, t.ty, bytes[start..start + t.n_bytes as usize].to_vec());
        }
        parts.push(w.to_bytes());
    }
    parts
}

