//! Model families, each written once over the [`Backend`] trait.
//!
//! [`load`] picks the family from `general.architecture`, checks every tensor's shape
//! against the configuration, and returns a [`Forward`] implementation that owns its
//! weights, KV cache and activation buffers (all allocated here, before the first token).

pub mod arch;
pub mod config;
pub mod features;
mod gemma;
mod llama;
mod validate;
pub mod synthetic;

use crate::backend::{Backend, BackendError, WeightDesc};
pub use arch::{Architecture, Family, ARCHITECTURES};
pub use config::Config;
use std::collections::HashMap;
use thiserror::Error;

/// Errors from building or running a model.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum ModelError {
    #[error("unsupported architecture {name:?}; supported: {}", supported.join(", "))]
    UnsupportedArchitecture { name: String, supported: Vec<String> },
    #[error("missing metadata key {0}")]
    MissingMetadata(String),
    /// A hyper-parameter (or a tensor it must match) breaks a rule: the file is malformed.
    #[error("invalid model: {key} = {value}: {rule}")]
    Invalid { key: String, value: String, rule: String },
    /// A well-formed file using a feature Hearth does not implement (refused, never ignored).
    #[error("unsupported model: {key}: {detail}")]
    Unsupported { key: String, detail: String },
    #[error("missing tensor {0}")]
    MissingTensor(String),
    #[error("tensor {name} has shape {got:?}, expected {expected:?}")]
    TensorShape { name: String, expected: Vec<usize>, got: Vec<usize> },
    #[error("unsupported model: tensor {0} is not used by Hearth's implementation of this architecture")]
    UnusedTensor(String),
    #[error("context overflow: position {needed} exceeds the context of {n_ctx} tokens")]
    ContextOverflow { needed: usize, n_ctx: usize },
    #[error(transparent)]
    Backend(#[from] BackendError),
}

/// The error for `key` holding `value`, which breaks `rule`.
pub(crate) fn invalid(key: &str, value: impl std::fmt::Display, rule: impl Into<String>) -> ModelError {
    ModelError::Invalid { key: key.to_string(), value: value.to_string(), rule: rule.into() }
}

/// Options fixed when a model is built.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ModelOptions {
    /// Context length to allocate the KV cache for (capped at the training context).
    pub n_ctx: usize,
    /// Most tokens processed in one forward call (prefill is split into such batches).
    pub n_batch: usize,
}

impl Default for ModelOptions {
    fn default() -> Self {
        ModelOptions { n_ctx: 2048, n_batch: 64 }
    }
}

/// A loaded model: runs tokens through the network and returns the last token's logits.
pub trait Forward<B: Backend> {
    /// The hyper-parameters.
    fn config(&self) -> &Config;
    /// Allocated context length.
    fn n_ctx(&self) -> usize;
    /// Processes `tokens` at positions `pos0..pos0+len` (the KV cache must hold `0..pos0`)
    /// and returns the logits tensor (`n_vocab` elements) of the last token.
    /// Fails with [`ModelError::ContextOverflow`] beyond `n_ctx`.
    fn forward(&mut self, b: &mut B, tokens: &[u32], pos0: usize) -> Result<B::Tensor, ModelError>;
    /// Each layer's key and value caches, in layer order: `[n_ctx, kv_dim]` f32 tensors whose
    /// row `p` holds position `p` (what `engine::kv_snapshot` exports and restores).
    fn kv_cache(&self) -> Vec<(&B::Tensor, &B::Tensor)>;
}

/// The buffers and weights every family's forward pass ends with.
pub(crate) struct Head<'a, B: Backend> {
    pub cfg: &'a Config,
    pub opts: ModelOptions,
    /// Hidden states `[n_batch, n_embd]` after the last block.
    pub x: &'a B::Tensor,
    /// Scratch of at least `n_embd` elements.
    pub h: &'a B::Tensor,
    pub last: &'a B::Tensor,
    pub logits: &'a B::Tensor,
    pub norm: &'a B::Weight,
    /// The output projection (the embedding when tied).
    pub output: &'a B::Weight,
}

/// Runs `tokens` through `layers` in batches of `n_batch` starting at `pos0`, then the final
/// norm, output projection and optional soft-cap on the last token: the part of
/// [`Forward::forward`] that is the same for every family.
pub(crate) fn forward_batches<B: Backend>(
    b: &mut B,
    head: Head<'_, B>,
    tokens: &[u32],
    pos0: usize,
    layers: impl Fn(&mut B, &[u32], usize) -> Result<(), ModelError>,
) -> Result<B::Tensor, ModelError> {
    let n_ctx = head.opts.n_ctx;
    let end = pos0.saturating_add(tokens.len());
    if end > n_ctx {
        return Err(ModelError::ContextOverflow { needed: end, n_ctx });
    }
    if tokens.is_empty() {
        return Err(BackendError::Shape { op: "forward", detail: "no tokens".into() }.into());
    }
    let d = head.cfg.n_embd;
    let mut pos = pos0;
    let mut n_last = 0;
    for chunk in tokens.chunks(head.opts.n_batch.max(1)) {
        layers(b, chunk, pos)?;
        pos += chunk.len();
        n_last = chunk.len();
    }
    b.copy(head.x, (n_last - 1) * d, head.h, 0, d)?;
    b.rms_norm(head.h, head.norm, head.last, 1, d, head.cfg.rms_eps)?;
    b.matmul(head.output, head.last, head.logits, 1)?;
    if let Some(cap) = head.cfg.final_softcap {
        b.softcap(head.logits, head.cfg.n_vocab, cap)?;
    }
    Ok(head.logits.clone())
}

/// Uploaded weights by GGUF name, with their shapes.
pub struct Weights<B: Backend> {
    map: HashMap<String, (WeightDesc, B::Weight)>,
}

impl<B: Backend> Default for Weights<B> {
    fn default() -> Self {
        Weights { map: HashMap::new() }
    }
}

impl<B: Backend> Weights<B> {
    /// Adds one uploaded weight.
    pub fn insert(&mut self, desc: WeightDesc, w: B::Weight) {
        self.map.insert(desc.name.clone(), (desc, w));
    }
    /// Number of weights held.
    pub fn len(&self) -> usize {
        self.map.len()
    }
    /// True when empty.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
    /// Takes a weight and checks its GGUF dims (innermost first).
    fn take(&mut self, name: &str, dims: &[usize]) -> Result<B::Weight, ModelError> {
        let (desc, w) = self.map.remove(name).ok_or_else(|| ModelError::MissingTensor(name.to_string()))?;
        if desc.dims != dims {
            return Err(ModelError::TensorShape { name: name.to_string(), expected: dims.to_vec(), got: desc.dims });
        }
        Ok(w)
    }
    /// Refuses a file with tensors the model did not take: a feature Hearth does not implement
    /// (an output bias, extra norms, experts, …) is an error, never silently skipped.
    fn finish(self) -> Result<(), ModelError> {
        let mut left: Vec<&String> = self.map.keys().collect();
        left.sort();
        match left.first() {
            None => Ok(()),
            Some(name) => Err(ModelError::UnusedTensor(name.to_string())),
        }
    }
    fn take_opt(&mut self, name: &str, dims: &[usize]) -> Result<Option<B::Weight>, ModelError> {
        if self.map.contains_key(name) {
            self.take(name, dims).map(Some)
        } else {
            Ok(None)
        }
    }
}

/// `a × b` elements for an allocation, or [`ModelError::Invalid`] naming `what` when it
/// overflows (the configuration's limits keep real models far from that).
pub(crate) fn elems(what: &str, a: usize, b: usize) -> Result<usize, ModelError> {
    a.checked_mul(b).ok_or_else(|| invalid(what, format!("{a} × {b}"), "overflows the address space"))
}

/// The options a builder uses: the context clamped to `1..=n_ctx_train`, a batch of at
/// least one token.
pub(crate) fn clamp_options(cfg: &Config, opts: ModelOptions) -> ModelOptions {
    ModelOptions { n_ctx: opts.n_ctx.clamp(1, cfg.n_ctx_train.max(1)), n_batch: opts.n_batch.max(1) }
}

/// Builds the model for `cfg.arch` from uploaded weights.
pub fn build<B: Backend + 'static>(
    b: &mut B,
    cfg: Config,
    weights: Weights<B>,
    opts: ModelOptions,
) -> Result<Box<dyn Forward<B>>, ModelError> {
    match arch::architecture(&cfg.arch)?.family {
        Family::Llama => Ok(Box::new(llama::Llama::build(b, cfg, weights, opts)?)),
        Family::Gemma => Ok(Box::new(gemma::Gemma::build(b, cfg, weights, opts)?)),
    }
}
