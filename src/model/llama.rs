//! The Llama family: Llama 2/3 (Llama 3 RoPE scaling via `rope_freqs`), SmolLM/SmolLM2/SmolLM3
//! (SmolLM3: every fourth layer without RoPE), Mistral (sliding window when the file gives
//! one), Qwen2 (biases on Q/K/V, NeoX RoPE), Qwen3 (per-head QK-norm) and Phi-3/Phi-4-mini
//! (fused QKV and gate/up, partial rotary, LongRoPE factors).
//!
//! Pre-norm decoder blocks: `x += Wo·attn(rope(Wq·n(x)), rope(Wk·n(x)), Wv·n(x))`, then
//! `x += Wdown·(silu(Wgate·n(x)) ⊙ Wup·n(x))`; tied or separate output projection. Which
//! variant a file is comes from its metadata and tensors only.

use super::features::FreqFactors;
use super::{clamp_options, elems, forward_batches, Config, Forward, Head, ModelError, ModelOptions, Weights};
use crate::backend::{Activation, Backend, BackendError, RopeExt, RopeParams, RopeStore};

/// Query/key/value projections: three matrices, or one fused `attn_qkv` (Phi-3) whose output
/// rows are `[q | k | v]`.
enum Qkv<B: Backend> {
    Split { wq: B::Weight, wk: B::Weight, wv: B::Weight },
    Fused(B::Weight),
}

/// Gate/up projections: two matrices, or one fused `ffn_up` of `2·n_ff` rows (Phi-3) whose
/// output is `[gate | up]` (ggml's swiglu: silu of the first half times the second).
enum GateUp<B: Backend> {
    Split { gate: B::Weight, up: B::Weight },
    Fused(B::Weight),
}

struct Layer<B: Backend> {
    attn_norm: B::Weight,
    qkv: Qkv<B>,
    wo: B::Weight,
    bq: Option<B::Weight>,
    bk: Option<B::Weight>,
    bv: Option<B::Weight>,
    /// Per-head RMSNorm of queries and keys before RoPE (Qwen3).
    q_norm: Option<B::Weight>,
    k_norm: Option<B::Weight>,
    ffn_norm: B::Weight,
    gate_up: GateUp<B>,
    down: B::Weight,
    k_cache: B::Tensor,
    v_cache: B::Tensor,
    /// Whether this layer rotates queries and keys (SmolLM3 skips every fourth).
    rope: bool,
    window: Option<usize>,
}

/// Activation buffers, sized for `n_batch` tokens, allocated once.
struct Scratch<B: Backend> {
    x: B::Tensor,
    h: B::Tensor,
    q: B::Tensor,
    k: B::Tensor,
    v: B::Tensor,
    att: B::Tensor,
    o: B::Tensor,
    gate: B::Tensor,
    up: B::Tensor,
    /// Output of a fused projection (QKV or gate/up), `None` when no layer has one.
    fused: Option<B::Tensor>,
    /// Normalised keys (QK-norm).
    kn: B::Tensor,
    last: B::Tensor,
    logits: B::Tensor,
}

pub struct Llama<B: Backend> {
    cfg: Config,
    opts: ModelOptions,
    tok_embd: B::Weight,
    output_norm: B::Weight,
    /// `None` when the output projection is tied to the embedding.
    output: Option<B::Weight>,
    /// RoPE frequency factors shared by every layer (Llama 3 `rope_freqs`, LongRoPE).
    rope_factors: Option<B::Weight>,
    layers: Vec<Layer<B>>,
    s: Scratch<B>,
}

impl<B: Backend> Llama<B> {
    pub fn build(b: &mut B, cfg: Config, mut w: Weights<B>, opts: ModelOptions) -> Result<Self, ModelError> {
        let opts = clamp_options(&cfg, opts);
        let (d, qd, kvd, ff) = (cfg.n_embd, cfg.q_dim(), cfg.kv_dim(), cfg.n_ff);
        let f = &cfg.features;
        let tok_embd = w.take("token_embd.weight", &[d, cfg.n_vocab])?;
        let output_norm = w.take("output_norm.weight", &[d])?;
        let output = w.take_opt("output.weight", &[d, cfg.n_vocab])?;
        let kv_len = elems("KV cache (context × kv width)", opts.n_ctx, kvd)?;
        let nb = opts.n_batch;
        let e = |w: usize| elems("activations (batch × width)", nb, w);
        // The directory was checked against n_layer (Config::from_header): one entry per block.
        let mut layers = Vec::with_capacity(cfg.n_layer.min(super::config::limits::MAX_LAYERS));
        let half_rot = [cfg.n_rot / 2];
        let rope_factors = match f.factors {
            FreqFactors::None => None,
            FreqFactors::Llama3 => w.take_opt("rope_freqs.weight", &half_rot)?,
            FreqFactors::LongRope => {
                let long = w.take_opt("rope_factors_long.weight", &half_rot)?;
                let short = w.take_opt("rope_factors_short.weight", &half_rot)?;
                if long.is_some() != short.is_some() {
                    return Err(ModelError::MissingTensor("rope_factors_long.weight and rope_factors_short.weight".into()));
                }
                if opts.n_ctx > f.orig_ctx { long } else { short }
            }
        };
        let mut fused_width = 0;
        for il in 0..cfg.n_layer {
            let n = |s: &str| format!("blk.{il}.{s}");
            let attn_norm = w.take(&n("attn_norm.weight"), &[d])?;
            let qkv = match w.take_opt(&n("attn_qkv.weight"), &[d, qd + 2 * kvd])? {
                Some(fused) => {
                    fused_width = fused_width.max(qd + 2 * kvd);
                    Qkv::Fused(fused)
                }
                None => Qkv::Split {
                    wq: w.take(&n("attn_q.weight"), &[d, qd])?,
                    wk: w.take(&n("attn_k.weight"), &[d, kvd])?,
                    wv: w.take(&n("attn_v.weight"), &[d, kvd])?,
                },
            };
            let wo = w.take(&n("attn_output.weight"), &[qd, d])?;
            let ffn_norm = w.take(&n("ffn_norm.weight"), &[d])?;
            let gate_up = match w.take_opt(&n("ffn_gate.weight"), &[d, ff])? {
                Some(gate) => GateUp::Split { gate, up: w.take(&n("ffn_up.weight"), &[d, ff])? },
                None => {
                    fused_width = fused_width.max(2 * ff);
                    GateUp::Fused(w.take(&n("ffn_up.weight"), &[d, 2 * ff])?)
                }
            };
            layers.push(Layer {
                attn_norm,
                qkv,
                wo,
                bq: w.take_opt(&n("attn_q.bias"), &[qd])?,
                bk: w.take_opt(&n("attn_k.bias"), &[kvd])?,
                bv: w.take_opt(&n("attn_v.bias"), &[kvd])?,
                q_norm: w.take_opt(&n("attn_q_norm.weight"), &[cfg.head_dim])?,
                k_norm: w.take_opt(&n("attn_k_norm.weight"), &[cfg.head_dim])?,
                ffn_norm,
                gate_up,
                down: w.take(&n("ffn_down.weight"), &[ff, d])?,
                k_cache: b.alloc(kv_len)?,
                v_cache: b.alloc(kv_len)?,
                rope: f.no_rope_every.is_none_or(|every| (il + 1) % every != 0),
                window: if cfg.swa_layers.get(il).copied().unwrap_or(false) { cfg.sliding_window } else { None },
            });
            let l = layers.last().expect("just pushed");
            if l.q_norm.is_some() != l.k_norm.is_some() {
                return Err(ModelError::MissingTensor(n("attn_q_norm.weight and attn_k_norm.weight")));
            }
        }
        w.finish()?;
        let s = Scratch {
            x: b.alloc(e(d)?)?,
            h: b.alloc(e(d)?)?,
            q: b.alloc(e(qd)?)?,
            k: b.alloc(e(kvd)?)?,
            v: b.alloc(e(kvd)?)?,
            att: b.alloc(e(qd)?)?,
            o: b.alloc(e(d)?)?,
            gate: b.alloc(e(ff)?)?,
            up: b.alloc(e(ff)?)?,
            fused: if fused_width > 0 { Some(b.alloc(e(fused_width)?)?) } else { None },
            kn: b.alloc(e(kvd)?)?,
            last: b.alloc(d)?,
            logits: b.alloc(cfg.n_vocab)?,
        };
        Ok(Llama { cfg, opts, tok_embd, output_norm, output, rope_factors, layers, s })
    }

    /// Splits each token's row of a fused projection (`width` wide) into `parts`
    /// (destination, offset in the row, length).
    fn split(b: &mut B, fused: &B::Tensor, n: usize, width: usize, parts: &[(&B::Tensor, usize, usize)]) -> Result<(), ModelError> {
        for t in 0..n {
            for &(dst, off, len) in parts {
                b.copy(fused, t * width + off, dst, t * len, len)?;
            }
        }
        Ok(())
    }

    /// RoPE of `q` and `k` and the store of `k` and `s.v` into layer `l`'s KV cache (one
    /// fused op: [`Backend::rope_store_kv`]).
    fn rope_store(&self, b: &mut B, q: &B::Tensor, k: &B::Tensor, l: &Layer<B>, n: usize, pos0: usize) -> Result<(), ModelError> {
        let c = &self.cfg;
        let rope = RopeParams { theta: c.rope_theta, n_rot: c.n_rot, neox: c.rope_neox, freq_scale: c.rope_freq_scale };
        let mscale = c.features.attn_factor;
        let ext = if self.rope_factors.is_none() && mscale == 1.0 { None } else { Some(RopeExt { factors: self.rope_factors.as_ref(), mscale }) };
        b.rope_store_kv(RopeStore {
            q,
            k,
            v: &self.s.v,
            k_cache: &l.k_cache,
            v_cache: &l.v_cache,
            n_tokens: n,
            n_head: c.n_head,
            n_head_kv: c.n_head_kv,
            head_dim: c.head_dim,
            pos0,
            rope,
            ext,
        })?;
        Ok(())
    }

    /// One batch of at most `n_batch` tokens through every layer (leaves the result in `s.x`).
    fn layers(&self, b: &mut B, tokens: &[u32], pos0: usize) -> Result<(), ModelError> {
        let c = &self.cfg;
        let n = tokens.len();
        let (d, qd, kvd, ff, hd) = (c.n_embd, c.q_dim(), c.kv_dim(), c.n_ff, c.head_dim);
        let s = &self.s;
        b.embed(&self.tok_embd, tokens, &s.x)?;
        for (i, l) in self.layers.iter().enumerate() {
            let attn = c.attn_params(n, pos0, l.window);
            // Later layers' input norm is fused with the previous layer's last residual add.
            if i == 0 {
                b.rms_norm(&s.x, &l.attn_norm, &s.h, n, d, c.rms_eps)?;
            }
            let biases = [(&l.bq, &s.q, qd), (&l.bk, &s.k, kvd), (&l.bv, &s.v, kvd)];
            match (&l.qkv, &s.fused) {
                (Qkv::Split { wq, wk, wv }, _) => {
                    // Each projection with its bias (Qwen2): one pass on the GPU when decoding.
                    for (w, (bias, t, dim)) in [wq, wk, wv].into_iter().zip(biases) {
                        match bias {
                            Some(bias) => b.matmul_bias(w, &s.h, t, n, bias, dim)?,
                            None => b.matmul(w, &s.h, t, n)?,
                        }
                    }
                }
                (Qkv::Fused(wqkv), Some(f)) => {
                    b.matmul(wqkv, &s.h, f, n)?;
                    Self::split(b, f, n, qd + 2 * kvd, &[(&s.q, 0, qd), (&s.k, qd, kvd), (&s.v, qd + kvd, kvd)])?;
                    for (bias, t, dim) in biases {
                        if let Some(bias) = bias {
                            b.add_bias(t, bias, n, dim)?;
                        }
                    }
                }
                (Qkv::Fused(_), None) => return Err(no_fused_scratch()),
            }
            // Qwen3: RMSNorm over each head of q and k (q into `att` as scratch), then RoPE.
            let (q, k) = match (&l.q_norm, &l.k_norm) {
                (Some(qn), Some(kn)) => {
                    b.rms_norm(&s.q, qn, &s.att, n * c.n_head, hd, c.rms_eps)?;
                    b.rms_norm(&s.k, kn, &s.kn, n * c.n_head_kv, hd, c.rms_eps)?;
                    (&s.att, &s.kn)
                }
                _ => (&s.q, &s.k),
            };
            if l.rope {
                self.rope_store(b, q, k, l, n, pos0)?;
            } else {
                b.copy(k, 0, &l.k_cache, pos0 * kvd, n * kvd)?;
                b.copy(&s.v, 0, &l.v_cache, pos0 * kvd, n * kvd)?;
            }
            // The attention output goes to whichever of q/att does not hold the queries.
            let out = if std::ptr::eq(q, &s.att) { &s.q } else { &s.att };
            b.attention(q, &l.k_cache, &l.v_cache, out, attn)?;
            b.matmul(&l.wo, out, &s.o, n)?;
            b.add_rms_norm(&s.x, &s.o, &l.ffn_norm, &s.h, n, d, c.rms_eps)?;
            match (&l.gate_up, &s.fused) {
                (GateUp::Split { gate, up }, _) => {
                    b.matmul(gate, &s.h, &s.gate, n)?;
                    b.matmul(up, &s.h, &s.up, n)?;
                }
                (GateUp::Fused(w), Some(f)) => {
                    b.matmul(w, &s.h, f, n)?;
                    Self::split(b, f, n, 2 * ff, &[(&s.gate, 0, ff), (&s.up, ff, ff)])?;
                }
                (GateUp::Fused(_), None) => return Err(no_fused_scratch()),
            }
            b.glu(&s.gate, &s.up, n * ff, Activation::Silu)?;
            b.matmul(&l.down, &s.gate, &s.o, n)?;
            match self.layers.get(i + 1) {
                Some(next) => b.add_rms_norm(&s.x, &s.o, &next.attn_norm, &s.h, n, d, c.rms_eps)?,
                None => b.add_assign(&s.x, &s.o, n * d)?,
            }
        }
        Ok(())
    }
}

/// A fused layer without its scratch buffer (cannot happen: `build` allocates it).
fn no_fused_scratch() -> ModelError {
    BackendError::Shape { op: "forward", detail: "fused projection without its scratch buffer".into() }.into()
}

impl<B: Backend> Forward<B> for Llama<B> {
    fn config(&self) -> &Config {
        &self.cfg
    }

    fn n_ctx(&self) -> usize {
        self.opts.n_ctx
    }

    fn kv_cache(&self) -> Vec<(&B::Tensor, &B::Tensor)> {
        self.layers.iter().map(|l| (&l.k_cache, &l.v_cache)).collect()
    }

    fn forward(&mut self, b: &mut B, tokens: &[u32], pos0: usize) -> Result<B::Tensor, ModelError> {
        let s = &self.s;
        let head = Head {
            cfg: &self.cfg,
            opts: self.opts,
            x: &s.x,
            h: &s.h,
            last: &s.last,
            logits: &s.logits,
            norm: &self.output_norm,
            output: self.output.as_ref().unwrap_or(&self.tok_embd),
        };
        forward_batches(b, head, tokens, pos0, |b, chunk, pos| self.layers(b, chunk, pos))
    }
}
