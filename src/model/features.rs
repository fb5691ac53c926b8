//! Per-family features beyond the common hyper-parameters, read from metadata only, and the
//! refusal of everything else: a metadata key under `{arch}.` that Hearth does not implement
//! (YaRN, M-RoPE sections, experts, …) is an error naming it, never ignored.
//!
//! Kept apart from `config.rs` (which only gains the [`Features`] field): the RoPE variants
//! (Llama 3 frequency factors, LongRoPE, layers without RoPE), the sliding-window layer pattern,
//! and the attention scale of the few models whose scale is not `1/sqrt(head_dim)`.

use super::ModelError;
use crate::gguf::{Metadata, Value};

/// Where per-pair RoPE frequency factors come from (ggml `rope_ext`'s `c` argument).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FreqFactors {
    /// No factors.
    None,
    /// `rope_freqs.weight` when the file has it (Llama 3.1/3.2 RoPE scaling): one vector for
    /// every layer. Whether it is there is known only from the tensors, so this is the
    /// default and the model looks for the tensor.
    Llama3,
    /// LongRoPE (`rope.scaling.type` longrope, or Phi-3's `rope_factors_long/short`): the short
    /// factors when the allocated context is at most `orig_ctx`, else the long ones (as
    /// llama.cpp `get_rope_factors`).
    LongRope,
}

/// Features of a family read from metadata (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct Features {
    pub factors: FreqFactors,
    /// `rope.scaling.original_context_length` (else the training context).
    pub orig_ctx: usize,
    /// Multiplier of the rotated pairs: `rope.scaling.attn_factor` (LongRoPE), else 1.
    pub attn_factor: f32,
    /// Every `n`-th layer (1-based) skips RoPE (SmolLM3: 4, as llama.cpp's
    /// `n_no_rope_layer_step`, which the files do not carry).
    pub no_rope_every: Option<usize>,
    /// Multiplier of q·k: `1/sqrt(head_dim)` except Gemma 3 27B (`1/sqrt(n_embd/n_head)`).
    pub attn_scale: f32,
}

/// The keys under `{arch}.` that Hearth reads (or knows to be harmless); any other is refused.
const KNOWN_KEYS: &[&str] = &[
    "context_length",
    "embedding_length",
    "block_count",
    "feed_forward_length",
    "vocab_size",
    "attention.head_count",
    "attention.head_count_kv",
    "attention.layer_norm_rms_epsilon",
    "attention.key_length",
    "attention.value_length",
    "attention.sliding_window",
    "attention.sliding_window_pattern",
    "attn_logit_softcapping",
    "final_logit_softcapping",
    "rope.freq_base",
    "rope.freq_base_swa",
    "rope.dimension_count",
    "rope.scaling.type",
    "rope.scaling.factor",
    "rope.scaling.original_context_length",
    "rope.scaling.attn_factor",
    "rope.scaling.finetuned",
    // Mixture-of-experts counts: accepted only when 0 (checked below).
    "expert_count",
    "expert_used_count",
];

fn unsupported(key: &str, detail: impl Into<String>) -> ModelError {
    ModelError::Unsupported { key: key.to_string(), detail: detail.into() }
}

fn f32_of(md: &Metadata, key: &str) -> Option<f32> {
    md.get_f64(key).map(|v| v as f32)
}

/// Reads the features of `arch` (already known to be supported) and refuses unknown keys.
pub fn read(md: &Metadata, arch: &str, n_ctx_train: usize, n_layer: usize, n_embd: usize, n_head: usize, head_dim: usize) -> Result<Features, ModelError> {
    let k = |s: &str| format!("{arch}.{s}");
    let prefix = format!("{arch}.");
    for (key, _) in md.iter() {
        if let Some(rest) = key.strip_prefix(&prefix) {
            if !KNOWN_KEYS.contains(&rest) {
                return Err(unsupported(key, "Hearth does not implement this metadata key"));
            }
        }
    }
    for key in ["expert_count", "expert_used_count"] {
        if md.get_u64(&k(key)).is_some_and(|n| n > 0) {
            return Err(unsupported(&k(key), "mixture-of-experts models are not supported"));
        }
    }
    let scaling = md.get_str(&k("rope.scaling.type"));
    let factors = match scaling {
        None | Some("none") | Some("linear") => {
            if arch == "phi3" {
                FreqFactors::LongRope
            } else {
                FreqFactors::Llama3
            }
        }
        Some("longrope") if matches!(arch, "llama" | "phi3") => FreqFactors::LongRope,
        Some(other) => return Err(unsupported(&k("rope.scaling.type"), format!("RoPE scaling {other:?}"))),
    };
    if scaling == Some("none") && f32_of(md, &k("rope.scaling.factor")).is_some_and(|f| f != 1.0 && f != 0.0) {
        return Err(unsupported(&k("rope.scaling.factor"), "a scaling factor with scaling type none"));
    }
    if matches!(scaling, None | Some("linear")) {
        if let Some(f) = f32_of(md, &k("rope.scaling.factor")) {
            if !(f == 0.0 || f.is_finite() && f > 0.0) {
                return Err(unsupported(&k("rope.scaling.factor"), format!("{f}")));
            }
        }
    }
    let orig_ctx = md
        .get_u64(&k("rope.scaling.original_context_length"))
        .map(|v| usize::try_from(v).unwrap_or(usize::MAX))
        .unwrap_or(n_ctx_train);
    let attn_factor = f32_of(md, &k("rope.scaling.attn_factor")).unwrap_or(1.0);
    if !(attn_factor.is_finite() && attn_factor > 0.0) {
        return Err(unsupported(&k("rope.scaling.attn_factor"), format!("{attn_factor}")));
    }
    if arch == "gemma3" && scaling.is_some() && md.get_u64(&k("rope.scaling.original_context_length")).is_some() {
        return Err(unsupported(&k("rope.scaling.original_context_length"), "with Gemma 3"));
    }
    // Gemma 2 27B (46 layers) and Gemma 3 27B (62 layers): llama.cpp scales queries by
    // 1/sqrt(n_embd/n_head) (their `query_pre_attn_scalar`), the others by 1/sqrt(head_dim).
    let big = (arch == "gemma3" && n_layer == 62) || (arch == "gemma2" && n_layer == 46);
    let attn_scale = if big && n_head > 0 {
        1.0 / ((n_embd / n_head) as f32).sqrt()
    } else {
        1.0 / (head_dim as f32).sqrt()
    };
    Ok(Features {
        factors,
        orig_ctx,
        attn_factor,
        no_rope_every: (arch == "smollm3").then_some(4),
        attn_scale,
    })
}

/// Which layers use the sliding window (`true` = windowed), for a model whose window is
/// `window`. Gemma 3: `attention.sliding_window_pattern` (a period `n`: layer `il` is windowed
/// when `il % n < n - 1`, 0 = every layer; or one bool per layer), default period 6; Gemma 2
/// the same with default period 2 (even layers windowed). Other families: every layer when the
/// file gives a window.
pub fn swa_layers(md: &Metadata, arch: &str, n_layer: usize, window: Option<usize>) -> Result<Vec<bool>, ModelError> {
    if window.is_none() {
        return Ok(vec![false; n_layer]);
    }
    if !arch.starts_with("gemma") {
        return Ok(vec![true; n_layer]);
    }
    let key = format!("{arch}.attention.sliding_window_pattern");
    if let Some(Value::Array(_, items)) = md.get(&key) {
        if items.len() != n_layer {
            return Err(super::invalid(&key, items.len(), format!("must have one entry per layer ({n_layer})")));
        }
        return items
            .iter()
            .map(|v| match v {
                Value::Bool(b) => Ok(*b),
                _ => Err(super::invalid(&key, v.summary(), "must be an array of bools")),
            })
            .collect();
    }
    let n = md.get_u64(&key).unwrap_or(if arch == "gemma2" { 2 } else { 6 });
    Ok((0..n_layer as u64).map(|il| n == 0 || il % n < n - 1).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn md(kv: &[(&str, Value)]) -> Metadata {
        Metadata::from_entries(kv.iter().map(|(k, v)| (k.to_string(), v.clone())).collect())
    }

    #[test]
    fn unknown_keys_and_rope_scaling_types_are_refused() {
        let yarn = md(&[("qwen3.rope.scaling.type", Value::String("yarn".into()))]);
        let e = read(&yarn, "qwen3", 4096, 2, 256, 4, 64).unwrap_err();
        assert!(e.to_string().contains("yarn"), "{e}");
        let sections = md(&[("qwen2.rope.dimension_sections", Value::U32(3))]);
        let e = read(&sections, "qwen2", 4096, 2, 256, 4, 64).unwrap_err();
        assert!(e.to_string().contains("rope.dimension_sections"), "{e}");
        let moe = md(&[("llama.expert_count", Value::U32(8))]);
        assert!(read(&moe, "llama", 4096, 2, 256, 4, 64).is_err());
        let fine = md(&[("llama.expert_count", Value::U32(0)), ("llama.rope.freq_base", Value::F32(5e5))]);
        let f = read(&fine, "llama", 4096, 2, 256, 4, 64).unwrap();
        assert_eq!(f.factors, FreqFactors::Llama3);
        assert_eq!((f.orig_ctx, f.attn_factor, f.no_rope_every), (4096, 1.0, None));
    }

    #[test]
    fn longrope_smollm3_and_gemma_scale_are_read() {
        let phi = md(&[
            ("phi3.rope.scaling.original_context_length", Value::U32(4096)),
            ("phi3.rope.scaling.attn_factor", Value::F32(1.19)),
        ]);
        let f = read(&phi, "phi3", 131072, 2, 256, 2, 128).unwrap();
        assert_eq!((f.factors, f.orig_ctx, f.attn_factor), (FreqFactors::LongRope, 4096, 1.19));
        assert_eq!(read(&md(&[]), "smollm3", 4096, 4, 256, 4, 64).unwrap().no_rope_every, Some(4));
        assert_eq!(read(&md(&[]), "gemma3", 4096, 26, 1152, 4, 256).unwrap().attn_scale, 1.0 / 16.0);
        assert_eq!(read(&md(&[]), "gemma3", 4096, 62, 5376, 32, 128).unwrap().attn_scale, 1.0 / 168f32.sqrt());
        assert_eq!(read(&md(&[]), "gemma2", 4096, 42, 3584, 16, 256).unwrap().attn_scale, 1.0 / 16.0);
        assert_eq!(read(&md(&[]), "gemma2", 4096, 46, 4608, 32, 128).unwrap().attn_scale, 1.0 / 144f32.sqrt());
    }

    #[test]
    fn sliding_window_patterns() {
        let none = md(&[]);
        assert_eq!(swa_layers(&none, "gemma3", 7, Some(512)).unwrap(), [true, true, true, true, true, false, true]);
        assert_eq!(swa_layers(&none, "gemma3", 3, None).unwrap(), [false; 3]);
        assert_eq!(swa_layers(&none, "gemma2", 3, Some(4096)).unwrap(), [true, false, true]);
        assert_eq!(swa_layers(&none, "llama", 2, Some(4096)).unwrap(), [true, true]);
        let two = md(&[("gemma3.attention.sliding_window_pattern", Value::U32(2))]);
        assert_eq!(swa_layers(&two, "gemma3", 4, Some(8)).unwrap(), [true, false, true, false]);
        let arr = md(&[(
            "gemma3.attention.sliding_window_pattern",
            Value::Array(crate::gguf::ValueType::Bool, vec![Value::Bool(false), Value::Bool(true)]),
        )]);
        assert_eq!(swa_layers(&arr, "gemma3", 2, Some(8)).unwrap(), [false, true]);
        assert!(swa_layers(&arr, "gemma3", 3, Some(8)).is_err());
    }
}
