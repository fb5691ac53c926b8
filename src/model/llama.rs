//! The Llama family: Llama 2/3, SmolLM/SmolLM2, Mistral, Qwen2 (biases on Q/K/V, NeoX RoPE).
//!
//! Pre-norm decoder blocks: `x += Wo·attn(rope(Wq·n(x)), rope(Wk·n(x)), Wv·n(x))`, then
//! `x += Wdown·(silu(Wgate·n(x)) ⊙ Wup·n(x))`; tied or separate output projection.

use super::{clamp_options, elems, forward_batches, Config, Forward, Head, ModelError, ModelOptions, Weights};
use crate::backend::{Activation, AttnParams, Backend, RopeParams};

struct Layer<B: Backend> {
    attn_norm: B::Weight,
    wq: B::Weight,
    wk: B::Weight,
    wv: B::Weight,
    wo: B::Weight,
    bq: Option<B::Weight>,
    bk: Option<B::Weight>,
    bv: Option<B::Weight>,
    ffn_norm: B::Weight,
    gate: B::Weight,
    up: B::Weight,
    down: B::Weight,
    k_cache: B::Tensor,
    v_cache: B::Tensor,
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
    layers: Vec<Layer<B>>,
    s: Scratch<B>,
}

impl<B: Backend> Llama<B> {
    pub fn build(b: &mut B, cfg: Config, mut w: Weights<B>, opts: ModelOptions) -> Result<Self, ModelError> {
        let opts = clamp_options(&cfg, opts);
        let (d, qd, kvd, ff) = (cfg.n_embd, cfg.q_dim(), cfg.kv_dim(), cfg.n_ff);
        let tok_embd = w.take("token_embd.weight", &[d, cfg.n_vocab])?;
        let output_norm = w.take("output_norm.weight", &[d])?;
        let output = w.take_opt("output.weight", &[d, cfg.n_vocab])?;
        let kv_len = elems("KV cache (context × kv width)", opts.n_ctx, kvd)?;
        let nb = opts.n_batch;
        let e = |w: usize| elems("activations (batch × width)", nb, w);
        // The directory was checked against n_layer (Config::from_header): one entry per block.
        let mut layers = Vec::with_capacity(cfg.n_layer.min(super::config::limits::MAX_LAYERS));
        for il in 0..cfg.n_layer {
            let n = |s: &str| format!("blk.{il}.{s}");
            layers.push(Layer {
                attn_norm: w.take(&n("attn_norm.weight"), &[d])?,
                wq: w.take(&n("attn_q.weight"), &[d, qd])?,
                wk: w.take(&n("attn_k.weight"), &[d, kvd])?,
                wv: w.take(&n("attn_v.weight"), &[d, kvd])?,
                wo: w.take(&n("attn_output.weight"), &[qd, d])?,
                bq: w.take_opt(&n("attn_q.bias"), &[qd])?,
                bk: w.take_opt(&n("attn_k.bias"), &[kvd])?,
                bv: w.take_opt(&n("attn_v.bias"), &[kvd])?,
                ffn_norm: w.take(&n("ffn_norm.weight"), &[d])?,
                gate: w.take(&n("ffn_gate.weight"), &[d, ff])?,
                up: w.take(&n("ffn_up.weight"), &[d, ff])?,
                down: w.take(&n("ffn_down.weight"), &[ff, d])?,
                k_cache: b.alloc(kv_len)?,
                v_cache: b.alloc(kv_len)?,
            });
        }
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
            last: b.alloc(d)?,
            logits: b.alloc(cfg.n_vocab)?,
        };
        Ok(Llama { cfg, opts, tok_embd, output_norm, output, layers, s })
    }

    /// One batch of at most `n_batch` tokens through every layer (leaves the result in `s.x`).
    fn layers(&self, b: &mut B, tokens: &[u32], pos0: usize) -> Result<(), ModelError> {
        let c = &self.cfg;
        let n = tokens.len();
        let (d, qd, kvd, ff) = (c.n_embd, c.q_dim(), c.kv_dim(), c.n_ff);
        let s = &self.s;
        let rope = RopeParams { theta: c.rope_theta, n_rot: c.n_rot, neox: c.rope_neox, freq_scale: c.rope_freq_scale };
        let attn = AttnParams {
            n_tokens: n,
            pos0,
            n_head: c.n_head,
            n_head_kv: c.n_head_kv,
            head_dim: c.head_dim,
            scale: 1.0 / (c.head_dim as f32).sqrt(),
            window: None,
            softcap: c.attn_softcap,
        };
        b.embed(&self.tok_embd, tokens, &s.x)?;
        for l in &self.layers {
            b.rms_norm(&s.x, &l.attn_norm, &s.h, n, d, c.rms_eps)?;
            b.matmul(&l.wq, &s.h, &s.q, n)?;
            b.matmul(&l.wk, &s.h, &s.k, n)?;
            b.matmul(&l.wv, &s.h, &s.v, n)?;
            for (bias, t, dim) in [(&l.bq, &s.q, qd), (&l.bk, &s.k, kvd), (&l.bv, &s.v, kvd)] {
                if let Some(bias) = bias {
                    b.add_bias(t, bias, n, dim)?;
                }
            }
            b.rope(&s.q, n, c.n_head, c.head_dim, pos0, rope)?;
            b.rope(&s.k, n, c.n_head_kv, c.head_dim, pos0, rope)?;
            b.copy(&s.k, 0, &l.k_cache, pos0 * kvd, n * kvd)?;
            b.copy(&s.v, 0, &l.v_cache, pos0 * kvd, n * kvd)?;
            b.attention(&s.q, &l.k_cache, &l.v_cache, &s.att, attn)?;
            b.matmul(&l.wo, &s.att, &s.o, n)?;
            b.add_assign(&s.x, &s.o, n * d)?;
            b.rms_norm(&s.x, &l.ffn_norm, &s.h, n, d, c.rms_eps)?;
            b.matmul(&l.gate, &s.h, &s.gate, n)?;
            b.matmul(&l.up, &s.h, &s.up, n)?;
            b.glu(&s.gate, &s.up, n * ff, Activation::Silu)?;
            b.matmul(&l.down, &s.gate, &s.o, n)?;
            b.add_assign(&s.x, &s.o, n * d)?;
        }
        Ok(())
    }
}

impl<B: Backend> Forward<B> for Llama<B> {
    fn config(&self) -> &Config {
        &self.cfg
    }

    fn n_ctx(&self) -> usize {
        self.opts.n_ctx
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
