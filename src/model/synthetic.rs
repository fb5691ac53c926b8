//! Tiny synthetic models: the tensor directory a configuration needs, with small F32 data.
//!
//! For tests, the structure-aware fuzzer and the CLI's malformed-file checks: a real model's
//! metadata with its sizes overridden by [`TINY_SIZES`] plus [`tensors`] makes a file every
//! stage (config, tokenizer, template, model build, one forward pass) runs on in
//! milliseconds; overriding one key afterwards makes a malformed one.

use crate::gguf::{Value, Writer};
use crate::quant::GgmlType;

/// Size keys (without the `{arch}.` prefix) and the tiny values [`tensors`] is built for:
/// width 8, two heads of 4 sharing one KV head, feed-forward 16, two blocks.
pub const TINY_SIZES: &[(&str, u32)] = &[
    ("embedding_length", 8),
    ("attention.head_count", 2),
    ("attention.head_count_kv", 1),
    ("attention.key_length", 4),
    ("attention.value_length", 4),
    ("rope.dimension_count", 4),
    ("feed_forward_length", 16),
    ("block_count", 2),
];

/// Names and GGUF dims (innermost first) of every tensor the family of `arch` needs for
/// [`TINY_SIZES`] and a vocabulary of `n_vocab` tokens.
pub fn tensors(arch: &str, n_vocab: u64) -> Vec<(String, Vec<u64>)> {
    let size = |k: &str| TINY_SIZES.iter().find(|(n, _)| *n == k).map_or(1, |&(_, v)| u64::from(v));
    let (d, ff, hd) = (size("embedding_length"), size("feed_forward_length"), size("attention.key_length"));
    let (qd, kvd) = (size("attention.head_count") * hd, size("attention.head_count_kv") * hd);
    let mut t = vec![("token_embd.weight".to_string(), vec![d, n_vocab]), ("output_norm.weight".to_string(), vec![d])];
    let gemma = arch.starts_with("gemma");
    for il in 0..size("block_count") {
        let n = |s: &str| format!("blk.{il}.{s}");
        t.extend([
            (n("attn_norm.weight"), vec![d]),
            (n("attn_q.weight"), vec![d, qd]),
            (n("attn_k.weight"), vec![d, kvd]),
            (n("attn_v.weight"), vec![d, kvd]),
            (n("attn_output.weight"), vec![qd, d]),
            (n("ffn_norm.weight"), vec![d]),
            (n("ffn_gate.weight"), vec![d, ff]),
            (n("ffn_up.weight"), vec![d, ff]),
            (n("ffn_down.weight"), vec![ff, d]),
        ]);
        if arch == "gemma3" {
            t.extend([(n("attn_q_norm.weight"), vec![hd]), (n("attn_k_norm.weight"), vec![hd])]);
        }
        if gemma {
            t.extend([
                (n("post_attention_norm.weight"), vec![d]),
                (n("post_ffw_norm.weight"), vec![d]),
            ]);
        }
    }
    t
}

/// Small deterministic F32 data for a tensor of `dims` (values in ±0.05).
pub fn f32_data(dims: &[u64]) -> Vec<u8> {
    let n = dims.iter().product::<u64>() as usize;
    (0..n).flat_map(|i| (((i * 7919) % 101) as f32 / 1000.0 - 0.05).to_le_bytes()).collect()
}

/// A complete tiny Llama-family GGUF: a 4-token GPT-2 vocabulary, a chat template, the
/// tensors of [`TINY_SIZES`]. `extra` key/values are appended last, so they override.
pub fn tiny_llama(extra: &[(&str, Value)]) -> Vec<u8> {
    let strings = |v: &[&str]| Value::Array(crate::gguf::ValueType::String, v.iter().map(|s| Value::String((*s).into())).collect());
    let mut w = Writer::new();
    w.kv("general.architecture", Value::String("llama".into()))
        .kv("llama.context_length", Value::U32(64))
        .kv("tokenizer.ggml.model", Value::String("gpt2".into()))
        .kv("tokenizer.ggml.pre", Value::String("default".into()))
        .kv("tokenizer.ggml.tokens", strings(&["a", "b", "ab", "<s>"]))
        .kv("tokenizer.ggml.merges", strings(&["a b"]))
        .kv("tokenizer.ggml.bos_token_id", Value::U32(3))
        .kv("tokenizer.ggml.eos_token_id", Value::U32(3))
        .kv("tokenizer.chat_template", Value::String("{% for m in messages %}{{ m.role }}: {{ m.content }}\n{% endfor %}".into()));
    for &(k, v) in TINY_SIZES {
        w.kv(&format!("llama.{k}"), Value::U32(v));
    }
    for (k, v) in extra {
        w.kv(k, v.clone());
    }
    for (name, dims) in tensors("llama", 4) {
        let data = f32_data(&dims);
        w.tensor(&name, &dims, GgmlType::F32, data);
    }
    w.to_bytes()
}
