//! Model hyper-parameters, read from GGUF metadata only (no per-model constants).

use super::ModelError;
use crate::gguf::Metadata;

/// Architecture families Hearth can run, by `general.architecture`.
pub const SUPPORTED_ARCHITECTURES: &[&str] = &["llama", "mistral", "qwen2", "qwen3", "smollm", "smollm3", "phi3", "gemma3"];

/// Hyper-parameters of a decoder-only transformer.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `general.architecture`.
    pub arch: String,
    /// `general.name`, when present.
    pub name: Option<String>,
    pub n_vocab: usize,
    /// Training context length (`{arch}.context_length`).
    pub n_ctx_train: usize,
    pub n_embd: usize,
    pub n_layer: usize,
    pub n_ff: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    /// Per-head dimension of queries/keys (`attention.key_length`, else n_embd / n_head).
    pub head_dim: usize,
    pub rms_eps: f32,
    pub rope_theta: f32,
    /// RoPE base for sliding-window layers (Gemma 3 uses 10 000 there).
    pub rope_theta_swa: f32,
    pub n_rot: usize,
    pub rope_neox: bool,
    pub rope_freq_scale: f32,
    /// Sliding-window size, and which layers use it (`true` = windowed).
    pub sliding_window: Option<usize>,
    pub swa_layers: Vec<bool>,
    pub attn_softcap: Option<f32>,
    pub final_softcap: Option<f32>,
    /// RoPE variants, layer patterns and attention scale (`features.rs`).
    pub features: super::features::Features,
}

fn req(md: &Metadata, key: &str) -> Result<usize, ModelError> {
    let v = md.get_u64(key).ok_or_else(|| ModelError::MissingMetadata(key.to_string()))?;
    usize::try_from(v).map_err(|_| ModelError::BadMetadata { key: key.to_string(), detail: format!("{v} too large") })
}

fn opt_f32(md: &Metadata, key: &str) -> Option<f32> {
    md.get_f64(key).map(|v| v as f32)
}

impl Config {
    /// Reads the configuration; `n_vocab` is the length of `tokenizer.ggml.tokens` unless
    /// `{arch}.vocab_size` says otherwise. Errors name the missing or inconsistent key.
    pub fn from_metadata(md: &Metadata) -> Result<Config, ModelError> {
        let arch = md
            .get_str("general.architecture")
            .ok_or_else(|| ModelError::MissingMetadata("general.architecture".into()))?
            .to_string();
        if !SUPPORTED_ARCHITECTURES.contains(&arch.as_str()) {
            return Err(ModelError::UnsupportedArchitecture {
                name: arch,
                supported: SUPPORTED_ARCHITECTURES.iter().map(|s| s.to_string()).collect(),
            });
        }
        let k = |s: &str| format!("{arch}.{s}");
        let n_embd = req(md, &k("embedding_length"))?;
        let n_head = req(md, &k("attention.head_count"))?;
        let n_head_kv = md.get_u64(&k("attention.head_count_kv")).map(|v| v as usize).unwrap_or(n_head);
        if n_head == 0 || n_head_kv == 0 || n_head % n_head_kv != 0 {
            return Err(ModelError::BadMetadata {
                key: k("attention.head_count_kv"),
                detail: format!("{n_head} heads cannot share {n_head_kv} kv heads"),
            });
        }
        let head_dim = md.get_u64(&k("attention.key_length")).map(|v| v as usize).unwrap_or(n_embd / n_head);
        let n_vocab = match md.get_u64(&k("vocab_size")) {
            Some(v) => v as usize,
            None => md.get_array("tokenizer.ggml.tokens").map(|a| a.len()).unwrap_or(0),
        };
        if n_vocab == 0 {
            return Err(ModelError::MissingMetadata("tokenizer.ggml.tokens".into()));
        }
        let n_rot = md.get_u64(&k("rope.dimension_count")).map(|v| v as usize).unwrap_or(head_dim);
        if head_dim == 0 || n_rot > head_dim || n_rot % 2 != 0 {
            return Err(ModelError::BadMetadata { key: k("rope.dimension_count"), detail: format!("{n_rot} vs head dim {head_dim}") });
        }
        let n_layer = req(md, &k("block_count"))?;
        let rope_freq_scale = match (md.get_str(&k("rope.scaling.type")), opt_f32(md, &k("rope.scaling.factor"))) {
            (Some("linear"), Some(f)) if f > 0.0 => 1.0 / f,
            _ => 1.0,
        };
        let gemma = arch.starts_with("gemma");
        let sliding_window = md.get_u64(&k("attention.sliding_window")).map(|v| v as usize).filter(|&w| w > 0);
        // Gemma 3: every sixth layer is global, the others use the sliding window
        // (llama.cpp `hparams.set_swa_pattern(6)`).
        // (llama.cpp `hparams.set_swa_pattern(6)`, or the file's `attention.sliding_window_pattern`).
        let swa_layers = super::features::swa_layers(md, &arch, n_layer, sliding_window)?;
        let n_ctx_train = req(md, &k("context_length"))?;
        let features = super::features::read(md, &arch, n_ctx_train, n_layer, n_embd, n_head, head_dim)?;
        Ok(Config {
            name: md.get_str("general.name").map(str::to_string),
            n_vocab,
            n_ctx_train,
            n_embd,
            n_layer,
            n_ff: req(md, &k("feed_forward_length"))?,
            n_head,
            n_head_kv,
            head_dim,
            rms_eps: opt_f32(md, &k("attention.layer_norm_rms_epsilon")).unwrap_or(1e-5),
            rope_theta: opt_f32(md, &k("rope.freq_base")).unwrap_or(10_000.0),
            rope_theta_swa: if gemma { opt_f32(md, &k("rope.freq_base_swa")).unwrap_or(10_000.0) } else { opt_f32(md, &k("rope.freq_base")).unwrap_or(10_000.0) },
            n_rot,
            rope_neox: matches!(arch.as_str(), "qwen2" | "qwen3" | "gemma3" | "gemma2" | "gemma" | "phi3"),
            rope_freq_scale,
            sliding_window,
            swa_layers,
            attn_softcap: opt_f32(md, &k("attn_logit_softcapping")).filter(|&c| c > 0.0),
            final_softcap: opt_f32(md, &k("final_logit_softcapping")).filter(|&c| c > 0.0),
            features,
            arch,
        })
    }

    /// Width of the key/value projections.
    pub fn kv_dim(&self) -> usize {
        self.n_head_kv * self.head_dim
    }

    /// Width of the query projection.
    pub fn q_dim(&self) -> usize {
        self.n_head * self.head_dim
    }
}
