//! Model hyper-parameters, read from GGUF metadata only (no per-model constants).
//!
//! Every value is untrusted: [`Config::from_metadata`] checks each one against the rules in
//! [`limits`] with checked arithmetic before anything is sized by it, and
//! [`Config::from_header`] also checks them against the tensor directory (see `validate`).
//! A violation is [`ModelError::Invalid`], naming the key, its value and the rule.

use super::arch::{architecture, Family};
use super::{invalid, ModelError};
use crate::backend::AttnParams;
use crate::gguf::{Header, Metadata, TensorInfo, Value};

/// Bounds on hyper-parameters, far above any model Hearth can run in a browser (the largest
/// open models have ~130 layers, widths of ~30 000, vocabularies of ~260 000) and far below
/// what would overflow a 32-bit `usize` when multiplied together.
pub mod limits {
    /// Most transformer blocks (`{arch}.block_count`).
    pub const MAX_LAYERS: usize = 1024;
    /// Largest width: embedding, feed-forward, per-head size, and heads × head size.
    pub const MAX_WIDTH: usize = 1 << 18;
    /// Most attention heads.
    pub const MAX_HEADS: usize = 1024;
    /// Largest vocabulary.
    pub const MAX_VOCAB: usize = 1 << 22;
}

/// Hyper-parameters of a decoder-only transformer.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// `general.architecture`.
    pub arch: String,
    /// `general.name`, when present.
    pub name: Option<String>,
    pub n_vocab: usize,
    /// True when `n_vocab` came from `{arch}.vocab_size`, false when from the token list.
    pub vocab_from_key: bool,
    /// Training context length (`{arch}.context_length`); the KV cache is clamped to it.
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
    /// RoPE base for sliding-window layers (Gemma 3 uses 10 000 there; Gemma 2 the global base).
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

/// An optional unsigned integer: absent is `None`, present with another type is an error
/// (a per-layer array where Hearth expects one number must not be silently ignored).
fn opt_usize(md: &Metadata, key: &str) -> Result<Option<usize>, ModelError> {
    match md.get(key) {
        None => Ok(None),
        Some(v) => match v.as_u64().map(usize::try_from) {
            Some(Ok(n)) => Ok(Some(n)),
            Some(Err(_)) => Err(invalid(key, v.summary(), "does not fit in memory addresses")),
            None => Err(invalid(key, v.summary(), "must be a non-negative integer")),
        },
    }
}

/// A required unsigned integer in `lo..=hi`.
fn req_in(md: &Metadata, key: &str, lo: usize, hi: usize) -> Result<usize, ModelError> {
    let n = opt_usize(md, key)?.ok_or_else(|| ModelError::MissingMetadata(key.to_string()))?;
    in_range(key, n, lo, hi)
}

fn in_range(key: &str, n: usize, lo: usize, hi: usize) -> Result<usize, ModelError> {
    if n < lo || n > hi {
        return Err(invalid(key, n, format!("must be between {lo} and {hi}")));
    }
    Ok(n)
}

/// An optional float that, when present, must be finite and positive.
fn opt_pos_f32(md: &Metadata, key: &str) -> Result<Option<f32>, ModelError> {
    let Some(v) = md.get(key) else { return Ok(None) };
    let x = v.as_f64().ok_or_else(|| invalid(key, v.summary(), "must be a number"))? as f32;
    if !x.is_finite() || x <= 0.0 {
        return Err(invalid(key, v.summary(), "must be a finite number above 0"));
    }
    Ok(Some(x))
}

/// An optional soft-cap: absent or 0 is off; otherwise finite and positive.
fn opt_softcap(md: &Metadata, key: &str) -> Result<Option<f32>, ModelError> {
    match md.get(key).and_then(Value::as_f64) {
        Some(x) if x == 0.0 => Ok(None),
        _ => opt_pos_f32(md, key),
    }
}

impl Config {
    /// Attention over `n_tokens` tokens from position `pos0` in a layer with sliding `window`
    /// (the one place the model families build [`AttnParams`] from the configuration).
    pub fn attn_params(&self, n_tokens: usize, pos0: usize, window: Option<usize>) -> AttnParams {
        AttnParams {
            n_tokens,
            pos0,
            n_head: self.n_head,
            n_head_kv: self.n_head_kv,
            head_dim: self.head_dim,
            scale: self.features.attn_scale,
            window,
            softcap: self.attn_softcap,
        }
    }

    /// Reads and checks the configuration, then checks it against the tensor directory
    /// (layer count, every projection's shape, vocabulary vs embedding): what the loader
    /// calls as soon as the header is parsed, before any weight is allocated.
    pub fn from_header(header: &Header) -> Result<Config, ModelError> {
        let cfg = Config::from_metadata(&header.metadata)?;
        cfg.check_directory(&header.tensors)?;
        Ok(cfg)
    }

    /// Checks the configuration against a tensor directory (layer count, every projection's
    /// shape, vocabulary vs embedding): for a split model, the directory of all its parts.
    pub fn check_directory(&self, tensors: &[TensorInfo]) -> Result<(), ModelError> {
        super::validate::check_directory(self, tensors)
    }

    /// Reads the configuration; `n_vocab` is the length of `tokenizer.ggml.tokens` unless
    /// `{arch}.vocab_size` says otherwise. Errors name the missing key, or the key, its value
    /// and the rule it breaks ([`ModelError::Invalid`]); nothing is allocated by a value
    /// before it is checked.
    pub fn from_metadata(md: &Metadata) -> Result<Config, ModelError> {
        use limits::*;
        let arch = md
            .get_str("general.architecture")
            .ok_or_else(|| ModelError::MissingMetadata("general.architecture".into()))?
            .to_string();
        let info = architecture(&arch)?;
        let k = |s: &str| format!("{arch}.{s}");
        let n_layer = req_in(md, &k("block_count"), 1, MAX_LAYERS)?;
        let n_embd = req_in(md, &k("embedding_length"), 1, MAX_WIDTH)?;
        let n_ff = req_in(md, &k("feed_forward_length"), 1, MAX_WIDTH)?;
        let n_ctx_train = req_in(md, &k("context_length"), 1, usize::MAX)?;
        let n_head = req_in(md, &k("attention.head_count"), 1, MAX_HEADS)?;
        let key_kv = k("attention.head_count_kv");
        let n_head_kv = in_range(&key_kv, opt_usize(md, &key_kv)?.unwrap_or(n_head), 1, n_head)?;
        if n_head % n_head_kv != 0 {
            return Err(invalid(&key_kv, n_head_kv, format!("must divide {} = {n_head}", k("attention.head_count"))));
        }
        let key_len = k("attention.key_length");
        let head_dim = match opt_usize(md, &key_len)? {
            Some(hd) => in_range(&key_len, hd, 1, MAX_WIDTH)?,
            None if n_embd % n_head == 0 => n_embd / n_head,
            None => {
                return Err(invalid(
                    &k("attention.head_count"),
                    n_head,
                    format!("must divide {} = {n_embd} when {key_len} is absent", k("embedding_length")),
                ))
            }
        };
        let key_vlen = k("attention.value_length");
        if let Some(vl) = opt_usize(md, &key_vlen)? {
            if vl != head_dim {
                return Err(invalid(&key_vlen, vl, format!("must equal the key length {head_dim} (Hearth uses one head size)")));
            }
        }
        let q_dim = n_head.checked_mul(head_dim).filter(|&q| q <= MAX_WIDTH);
        if q_dim.is_none() {
            return Err(invalid(&key_len, head_dim, format!("× {n_head} heads must be at most {MAX_WIDTH}")));
        }
        let vocab_size = opt_usize(md, &k("vocab_size"))?;
        let n_vocab = match vocab_size {
            Some(v) => in_range(&k("vocab_size"), v, 1, MAX_VOCAB)?,
            None => {
                let n = md.get_array("tokenizer.ggml.tokens").map_or(0, <[Value]>::len);
                if n == 0 {
                    return Err(ModelError::MissingMetadata("tokenizer.ggml.tokens".into()));
                }
                in_range("tokenizer.ggml.tokens", n, 1, MAX_VOCAB)?
            }
        };
        let key_rot = k("rope.dimension_count");
        let n_rot = opt_usize(md, &key_rot)?.unwrap_or(head_dim);
        if n_rot == 0 || n_rot > head_dim || n_rot % 2 != 0 {
            return Err(invalid(&key_rot, n_rot, format!("must be even, above 0 and at most the head size {head_dim}")));
        }
        let rope_freq_scale = match (md.get_str(&k("rope.scaling.type")), opt_pos_f32(md, &k("rope.scaling.factor"))?) {
            (Some("linear"), Some(f)) => 1.0 / f,
            _ => 1.0,
        };
        let gemma = info.family == Family::Gemma;
        let gemma2 = arch == "gemma2";
        // Gemma 2 always has windowed layers (llama.cpp: 4096 unless the file says otherwise).
        let key_swa = k("attention.sliding_window");
        let sliding_window = match opt_usize(md, &key_swa)? {
            Some(0) if gemma2 => return Err(invalid(&key_swa, 0, "must be above 0 for gemma2 (every other layer is windowed)")),
            None if gemma2 => Some(4096),
            w => w.filter(|&w| w > 0),
        };
        // Gemma 3: every sixth layer is global, the others use the sliding window
        // (llama.cpp `hparams.set_swa_pattern(6)`, or the file's `attention.sliding_window_pattern`).
        let swa_layers = super::features::swa_layers(md, &arch, n_layer, sliding_window)?;
        let features = super::features::read(md, &arch, n_ctx_train, n_layer, n_embd, n_head, head_dim)?;
        let rope_theta = opt_pos_f32(md, &k("rope.freq_base"))?.unwrap_or(10_000.0);
        let swa_default = if gemma2 { rope_theta } else { 10_000.0 };
        let rope_theta_swa = if gemma { opt_pos_f32(md, &k("rope.freq_base_swa"))?.unwrap_or(swa_default) } else { rope_theta };
        // Gemma 2 soft-caps attention scores and final logits always (llama.cpp's defaults 50
        // and 30 when the file has no key).
        let softcap = |key: &str, default: f32| -> Result<Option<f32>, ModelError> {
            match (opt_softcap(md, &k(key))?, md.get(&k(key))) {
                (None, None) if gemma2 => Ok(Some(default)),
                (None, Some(_)) if gemma2 => Err(invalid(&k(key), 0, "must be above 0 for gemma2 (llama.cpp always applies it)")),
                (cap, _) => Ok(cap),
            }
        };
        Ok(Config {
            name: md.get_str("general.name").map(str::to_string),
            n_vocab,
            vocab_from_key: vocab_size.is_some(),
            n_ctx_train,
            n_embd,
            n_layer,
            n_ff,
            n_head,
            n_head_kv,
            head_dim,
            rms_eps: opt_pos_f32(md, &k("attention.layer_norm_rms_epsilon"))?.unwrap_or(1e-5),
            rope_theta,
            rope_theta_swa,
            n_rot,
            rope_neox: info.rope_neox,
            rope_freq_scale,
            sliding_window,
            swa_layers,
            attn_softcap: softcap("attn_logit_softcapping", 50.0)?,
            final_softcap: softcap("final_logit_softcapping", 30.0)?,
            features,
            arch,
        })
    }

    /// Width of the key/value projections (checked against [`limits::MAX_WIDTH`] when read).
    pub fn kv_dim(&self) -> usize {
        self.n_head_kv.saturating_mul(self.head_dim)
    }

    /// Width of the query projection (checked against [`limits::MAX_WIDTH`] when read).
    pub fn q_dim(&self) -> usize {
        self.n_head.saturating_mul(self.head_dim)
    }
}
