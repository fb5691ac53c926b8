//! Gemma 3: GeGLU, RMSNorm before and after both sub-blocks, QK-norm, embeddings scaled by
//! √d, sliding-window attention on most layers with global layers between (each with its
//! own RoPE base), tied output. Follows llama.cpp's `llm_build_gemma3_iswa`.
//!
//! Gemma 2 is the same without QK-norm, with windowed and global layers alternating (one RoPE
//! base and scale for both), attention scores and final logits soft-capped (`Config`'s
//! `attn_softcap`/`final_softcap`), and always the embedding as output (llama.cpp
//! `llama_model_gemma2`).

use super::{clamp_options, elems, forward_batches, Config, Forward, Head, ModelError, ModelOptions, Weights};
use crate::backend::{Activation, Backend, RopeParams};

struct Layer<B: Backend> {
    attn_norm: B::Weight,
    wq: B::Weight,
    wk: B::Weight,
    wv: B::Weight,
    wo: B::Weight,
    /// QK-norm weights (Gemma 3; Gemma 2 has none).
    qk_norm: Option<(B::Weight, B::Weight)>,
    post_attn_norm: B::Weight,
    ffn_norm: B::Weight,
    gate: B::Weight,
    up: B::Weight,
    down: B::Weight,
    post_ffn_norm: B::Weight,
    k_cache: B::Tensor,
    v_cache: B::Tensor,
    sliding: bool,
}

struct Scratch<B: Backend> {
    x: B::Tensor,
    h: B::Tensor,
    q: B::Tensor,
    qn: B::Tensor,
    k: B::Tensor,
    kn: B::Tensor,
    v: B::Tensor,
    o: B::Tensor,
    on: B::Tensor,
    gate: B::Tensor,
    up: B::Tensor,
    last: B::Tensor,
    logits: B::Tensor,
}

pub struct Gemma<B: Backend> {
    cfg: Config,
    opts: ModelOptions,
    tok_embd: B::Weight,
    output_norm: B::Weight,
    output: Option<B::Weight>,
    layers: Vec<Layer<B>>,
    s: Scratch<B>,
}

impl<B: Backend> Gemma<B> {
    pub fn build(b: &mut B, cfg: Config, mut w: Weights<B>, opts: ModelOptions) -> Result<Self, ModelError> {
        let opts = clamp_options(&cfg, opts);
        let (d, qd, kvd, ff, hd) = (cfg.n_embd, cfg.q_dim(), cfg.kv_dim(), cfg.n_ff, cfg.head_dim);
        let tok_embd = w.take("token_embd.weight", &[d, cfg.n_vocab])?;
        let output_norm = w.take("output_norm.weight", &[d])?;
        let gemma2 = cfg.arch == "gemma2";
        // Gemma 2 always projects with the embedding (an output tensor is refused as unused).
        let output = if gemma2 { None } else { w.take_opt("output.weight", &[d, cfg.n_vocab])? };
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
                qk_norm: if gemma2 { None } else { Some((w.take(&n("attn_q_norm.weight"), &[hd])?, w.take(&n("attn_k_norm.weight"), &[hd])?)) },
                post_attn_norm: w.take(&n("post_attention_norm.weight"), &[d])?,
                ffn_norm: w.take(&n("ffn_norm.weight"), &[d])?,
                gate: w.take(&n("ffn_gate.weight"), &[d, ff])?,
                up: w.take(&n("ffn_up.weight"), &[d, ff])?,
                down: w.take(&n("ffn_down.weight"), &[ff, d])?,
                post_ffn_norm: w.take(&n("post_ffw_norm.weight"), &[d])?,
                k_cache: b.alloc(kv_len)?,
                v_cache: b.alloc(kv_len)?,
                sliding: cfg.swa_layers.get(il).copied().unwrap_or(false),
            });
        }
        w.finish()?;
        let s = Scratch {
            x: b.alloc(e(d)?)?,
            h: b.alloc(e(d)?)?,
            q: b.alloc(e(qd)?)?,
            qn: b.alloc(e(qd)?)?,
            k: b.alloc(e(kvd)?)?,
            kn: b.alloc(e(kvd)?)?,
            v: b.alloc(e(kvd)?)?,
            o: b.alloc(e(d)?)?,
            on: b.alloc(e(d)?)?,
            gate: b.alloc(e(ff)?)?,
            up: b.alloc(e(ff)?)?,
            last: b.alloc(d)?,
            logits: b.alloc(cfg.n_vocab)?,
        };
        Ok(Gemma { cfg, opts, tok_embd, output_norm, output, layers, s })
    }

    fn layers(&self, b: &mut B, tokens: &[u32], pos0: usize) -> Result<(), ModelError> {
        let c = &self.cfg;
        let n = tokens.len();
        let (d, kvd, ff, hd) = (c.n_embd, c.kv_dim(), c.n_ff, c.head_dim);
        let s = &self.s;
        let eps = c.rms_eps;
        b.embed(&self.tok_embd, tokens, &s.x)?;
        b.scale(&s.x, n * d, (d as f32).sqrt())?;
        for l in &self.layers {
            // Gemma 3's windowed layers have their own base and no scaling; Gemma 2's share both.
            let swa_scale = if l.qk_norm.is_some() { 1.0 } else { c.rope_freq_scale };
            let (theta, freq_scale) = if l.sliding { (c.rope_theta_swa, swa_scale) } else { (c.rope_theta, c.rope_freq_scale) };
            let rope = RopeParams { theta, n_rot: c.n_rot, neox: c.rope_neox, freq_scale };
            let attn = c.attn_params(n, pos0, if l.sliding { c.sliding_window } else { None });
            b.rms_norm(&s.x, &l.attn_norm, &s.h, n, d, eps)?;
            b.matmul(&l.wq, &s.h, &s.q, n)?;
            b.matmul(&l.wk, &s.h, &s.k, n)?;
            b.matmul(&l.wv, &s.h, &s.v, n)?;
            // Queries and keys to rotate, and where attention writes (not over its queries).
            let (q, k, out) = match &l.qk_norm {
                Some((q_norm, k_norm)) => {
                    b.rms_norm(&s.q, q_norm, &s.qn, n * c.n_head, hd, eps)?;
                    b.rms_norm(&s.k, k_norm, &s.kn, n * c.n_head_kv, hd, eps)?;
                    (&s.qn, &s.kn, &s.q)
                }
                None => (&s.q, &s.k, &s.qn),
            };
            b.rope(q, n, c.n_head, hd, pos0, rope)?;
            b.rope(k, n, c.n_head_kv, hd, pos0, rope)?;
            b.copy(k, 0, &l.k_cache, pos0 * kvd, n * kvd)?;
            b.copy(&s.v, 0, &l.v_cache, pos0 * kvd, n * kvd)?;
            b.attention(q, &l.k_cache, &l.v_cache, out, attn)?;
            b.matmul(&l.wo, out, &s.o, n)?;
            b.rms_norm(&s.o, &l.post_attn_norm, &s.on, n, d, eps)?;
            b.add_assign(&s.x, &s.on, n * d)?;
            b.rms_norm(&s.x, &l.ffn_norm, &s.h, n, d, eps)?;
            b.matmul(&l.gate, &s.h, &s.gate, n)?;
            b.matmul(&l.up, &s.h, &s.up, n)?;
            b.glu(&s.gate, &s.up, n * ff, Activation::Gelu)?;
            b.matmul(&l.down, &s.gate, &s.o, n)?;
            b.rms_norm(&s.o, &l.post_ffn_norm, &s.on, n, d, eps)?;
            b.add_assign(&s.x, &s.on, n * d)?;
        }
        Ok(())
    }
}

impl<B: Backend> Forward<B> for Gemma<B> {
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
