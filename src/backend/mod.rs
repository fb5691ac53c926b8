//! The compute interface every model family is written against, once.
//!
//! A backend owns its buffers: quantized weights (`Weight`, kept in their GGUF block
//! format) and f32 activation tensors (`Tensor`, row-major `[rows, dim]`). Model code
//! allocates every tensor once at load time and then only records operations on them;
//! the GPU backend turns a whole decode step into one command submission and reads back
//! only what [`Backend::read`] or [`Backend::argmax`] asks for. Operations that update a
//! tensor do it in place, so no operation ever binds the same buffer twice (WebGPU forbids
//! a writable binding that aliases another).

pub mod cpu;
#[cfg(feature = "gpu")]
pub mod gpu;
pub mod probe;

use crate::gguf::TensorBytes;
use crate::quant::{GgmlType, QuantError};
use thiserror::Error;

/// Errors from a backend. Every one leaves the backend usable for the next request,
/// except [`BackendError::DeviceLost`], after which the backend must be re-created.
#[derive(Debug, Error, Clone, PartialEq)]
pub enum BackendError {
    /// No GPU adapter was found (or the platform has no WebGPU).
    #[error("no GPU adapter available: {0}")]
    NoAdapter(String),
    /// The adapter's limits are too small for this model.
    #[error("GPU limit {limit} is {have}, this model needs {need}")]
    LimitsTooSmall { limit: &'static str, have: u64, need: u64 },
    /// Allocation failed.
    #[error("out of memory allocating {bytes} bytes for {what}")]
    OutOfMemory { what: String, bytes: u64 },
    /// The GPU device was lost; re-create the backend.
    #[error("GPU device lost: {0}")]
    DeviceLost(String),
    /// This backend has no kernel for the block type in this operation.
    #[error("{op}: block type {ty:?} is not supported by this backend")]
    UnsupportedType { op: &'static str, ty: GgmlType },
    /// Operand shapes do not agree (a bug in the caller, reported instead of panicking).
    #[error("{op}: {detail}")]
    Shape { op: &'static str, detail: String },
    /// A block-format error (bad byte length for the shape).
    #[error(transparent)]
    Quant(#[from] QuantError),
}

/// Shape and format of a weight tensor as stored in GGUF.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeightDesc {
    /// GGUF tensor name (`blk.0.attn_q.weight`).
    pub name: String,
    /// Block format of the bytes.
    pub ty: GgmlType,
    /// GGUF dimensions, innermost first: a matrix is `[cols, rows]`, a vector `[len]`.
    pub dims: Vec<usize>,
}

impl WeightDesc {
    /// Inner (contiguous) dimension: the length of one row.
    pub fn cols(&self) -> usize {
        self.dims.first().copied().unwrap_or(1)
    }
    /// Number of rows (product of the outer dimensions).
    pub fn rows(&self) -> usize {
        self.dims.iter().skip(1).product()
    }
}

/// Rotary position embedding parameters (RoFormer, arXiv 2104.09864).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RopeParams {
    /// Base frequency (`rope.freq_base`).
    pub theta: f32,
    /// Dimensions rotated in each head (`rope.dimension_count`), ≤ head_dim.
    pub n_rot: usize,
    /// NeoX ordering rotates pairs `(i, i + n_rot/2)`; normal ordering `(2i, 2i+1)`.
    pub neox: bool,
    /// Linear position scaling (1.0 = none).
    pub freq_scale: f32,
}

/// What [`Backend::rope_ext`] adds to [`RopeParams`] (ggml `rope_ext`'s frequency factors and
/// magnitude scale, with YaRN's extrapolation mix off).
#[derive(Debug)]
pub struct RopeExt<'a, W> {
    /// An F32 vector of `n_rot / 2` factors: pair `i`'s angle is divided by `factors[i]`
    /// (Llama 3's `rope_freqs`, LongRoPE's `rope_factors_short`/`_long`).
    pub factors: Option<&'a W>,
    /// Multiplies the rotated pairs (LongRoPE's attention factor); 1.0 leaves them as they are.
    /// Dimensions past `n_rot` are not scaled (as in ggml).
    pub mscale: f32,
}

/// One batch's RoPE and KV-cache store ([`Backend::rope_store_kv`]): `q` (`[n_tokens,
/// n_head*head_dim]`) is rotated in place; `k` is rotated and stored, with `v`, at row `pos0`
/// of the caches (`[n_ctx, n_head_kv*head_dim]`). `k` itself may be left unrotated.
#[derive(Debug)]
pub struct RopeStore<'a, T, W> {
    pub q: &'a T,
    pub k: &'a T,
    pub v: &'a T,
    pub k_cache: &'a T,
    pub v_cache: &'a T,
    pub n_tokens: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    pub pos0: usize,
    pub rope: RopeParams,
    /// `None`: plain [`Backend::rope`]; otherwise [`Backend::rope_ext`] with these.
    pub ext: Option<RopeExt<'a, W>>,
}

/// [`Backend::rope_store_kv`] as four separate ops (the default, and the GPU's fallback).
pub fn rope_store_kv_unfused<B: Backend + ?Sized>(b: &mut B, r: RopeStore<'_, B::Tensor, B::Weight>) -> Result<(), BackendError> {
    let kvd = r.n_head_kv * r.head_dim;
    match r.ext {
        None => {
            b.rope(r.q, r.n_tokens, r.n_head, r.head_dim, r.pos0, r.rope)?;
            b.rope(r.k, r.n_tokens, r.n_head_kv, r.head_dim, r.pos0, r.rope)?;
        }
        Some(ext) => {
            let again = RopeExt { factors: ext.factors, mscale: ext.mscale };
            b.rope_ext(r.q, r.n_tokens, r.n_head, r.head_dim, r.pos0, r.rope, ext)?;
            b.rope_ext(r.k, r.n_tokens, r.n_head_kv, r.head_dim, r.pos0, r.rope, again)?;
        }
    }
    b.copy(r.k, 0, r.k_cache, r.pos0 * kvd, r.n_tokens * kvd)?;
    b.copy(r.v, 0, r.v_cache, r.pos0 * kvd, r.n_tokens * kvd)
}

/// Parameters of one causal attention call over the KV cache.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AttnParams {
    /// Tokens in this batch (rows of `q` and `out`).
    pub n_tokens: usize,
    /// Position of the first token of the batch; the cache holds `pos0 + n_tokens` rows.
    pub pos0: usize,
    pub n_head: usize,
    pub n_head_kv: usize,
    pub head_dim: usize,
    /// Multiplier applied to q·k (usually `1/sqrt(head_dim)`).
    pub scale: f32,
    /// Sliding window: a token attends to at most this many positions ending at itself.
    pub window: Option<usize>,
    /// Soft-capping of attention logits: `cap * tanh(s / cap)`.
    pub softcap: Option<f32>,
}

/// Work counters of a GPU backend (see [`Backend::counters`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Command submissions to the queue.
    pub submits: u64,
    /// Compute dispatches recorded.
    pub dispatches: u64,
}

/// Gated activation for the feed-forward block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `silu(gate) * up` (SwiGLU, Llama).
    Silu,
    /// `gelu_tanh(gate) * up` (GeGLU, Gemma).
    Gelu,
}

/// The operations a model forward pass needs. Shapes are passed explicitly; a backend
/// checks them and returns [`BackendError::Shape`] instead of panicking.
pub trait Backend {
    /// An f32 activation buffer owned by the backend.
    type Tensor: Clone + std::fmt::Debug;
    /// A weight in its GGUF block format, owned by the backend.
    type Weight;

    /// Human-readable backend description (`"cpu (8 threads)"`, `"webgpu: llvmpipe"`).
    fn describe(&self) -> String;

    /// The most bytes of weights, KV cache and working memory this backend can hold, when it
    /// has a hard cap the loader can check from the GGUF header before the weights arrive: the
    /// CPU backend in wasm32 keeps everything in the 4 GiB linear memory. `None`: no fixed cap
    /// (native memory, GPU buffers).
    fn memory_cap(&self) -> Option<u64> {
        None
    }

    /// Whether the backend keeps each weight in one contiguous buffer of host memory (the
    /// CPU): the loader then has the reader assemble each tensor in one allocation of its
    /// size, which [`Backend::upload_pieces`] keeps without a copy. `false` (the GPU): the
    /// pieces are written to device buffers one by one and host memory stays at one piece.
    fn contiguous_weights(&self) -> bool {
        false
    }

    /// Uploads one GGUF tensor's bytes (exactly `desc.ty.bytes_for(elems)` bytes).
    fn upload(&mut self, desc: &WeightDesc, bytes: &[u8]) -> Result<Self::Weight, BackendError>;
    /// Uploads a tensor as the streaming loader assembled it (pieces in order; the backend may
    /// keep them). The default copies them into one exactly-sized buffer first; backends that can
    /// place each piece directly (the GPU's `write_buffer` at an offset) or keep a one-piece
    /// tensor as it is (the CPU) override it to skip that copy.
    fn upload_pieces(&mut self, desc: &WeightDesc, bytes: TensorBytes) -> Result<Self::Weight, BackendError> {
        let mut all = Vec::new();
        all.try_reserve_exact(bytes.len())
            .map_err(|_| BackendError::OutOfMemory { what: desc.name.clone(), bytes: bytes.len() as u64 })?;
        bytes.pieces().for_each(|p| all.extend_from_slice(p));
        self.upload(desc, &all)
    }
    /// Allocates a zeroed f32 tensor of `len` elements.
    fn alloc(&mut self, len: usize) -> Result<Self::Tensor, BackendError>;
    /// Writes `data` at element `offset` of `t`.
    fn write(&mut self, t: &Self::Tensor, offset: usize, data: &[f32]) -> Result<(), BackendError>;
    /// Reads `len` elements from element `offset` (waits for all recorded work).
    fn read(&mut self, t: &Self::Tensor, offset: usize, len: usize) -> Result<Vec<f32>, BackendError>;

    /// `out[i, :] = table[tokens[i], :]` dequantized; `out` has `tokens.len() * cols` elements.
    fn embed(&mut self, table: &Self::Weight, tokens: &[u32], out: &Self::Tensor) -> Result<(), BackendError>;
    /// `out[t, r] = Σ_c w[r, c] · x[t, c]` for `t < n`: `x` is `[n, cols]`, `out` is `[n, rows]`.
    fn matmul(&mut self, w: &Self::Weight, x: &Self::Tensor, out: &Self::Tensor, n: usize) -> Result<(), BackendError>;
    /// Row-wise RMSNorm: `out[r] = x[r] / sqrt(mean(x[r]²) + eps) * w` over `rows` rows of `dim`.
    fn rms_norm(&mut self, x: &Self::Tensor, w: &Self::Weight, out: &Self::Tensor, rows: usize, dim: usize, eps: f32) -> Result<(), BackendError>;
    /// Adds a bias vector of `dim` to each of `rows` rows of `x`, in place.
    fn add_bias(&mut self, x: &Self::Tensor, bias: &Self::Weight, rows: usize, dim: usize) -> Result<(), BackendError>;
    /// Rotates `x` (`[n_tokens, n_heads * head_dim]`) in place; token `t` is at position `pos0 + t`.
    fn rope(&mut self, x: &Self::Tensor, n_tokens: usize, n_heads: usize, head_dim: usize, pos0: usize, p: RopeParams) -> Result<(), BackendError>;
    /// [`Backend::rope`] with frequency factors and a magnitude scale: pair `i` of a token at
    /// position `pos` turns by `pos · freq_scale · theta^(-2i/n_rot) / factors[i]`, and the
    /// rotated pair is multiplied by `ext.mscale`.
    #[allow(clippy::too_many_arguments)]
    fn rope_ext(&mut self, x: &Self::Tensor, n_tokens: usize, n_heads: usize, head_dim: usize, pos0: usize, p: RopeParams, ext: RopeExt<'_, Self::Weight>) -> Result<(), BackendError>;
    /// Copies `len` elements from `src[src_off..]` to `dst[dst_off..]` (`src` and `dst` differ).
    fn copy(&mut self, src: &Self::Tensor, src_off: usize, dst: &Self::Tensor, dst_off: usize, len: usize) -> Result<(), BackendError>;
    /// Causal grouped-query attention of `q` (`[n_tokens, n_head*head_dim]`) over the caches
    /// (`[n_ctx, n_head_kv*head_dim]`, already holding rows `0..pos0+n_tokens`) into `out`.
    fn attention(&mut self, q: &Self::Tensor, k_cache: &Self::Tensor, v_cache: &Self::Tensor, out: &Self::Tensor, p: AttnParams) -> Result<(), BackendError>;
    /// `x += y` over `len` elements.
    fn add_assign(&mut self, x: &Self::Tensor, y: &Self::Tensor, len: usize) -> Result<(), BackendError>;
    /// `gate = act(gate) * up` over `len` elements.
    fn glu(&mut self, gate: &Self::Tensor, up: &Self::Tensor, len: usize, act: Activation) -> Result<(), BackendError>;
    /// `x *= s` over `len` elements.
    fn scale(&mut self, x: &Self::Tensor, len: usize, s: f32) -> Result<(), BackendError>;
    /// `x = cap * tanh(x / cap)` over `len` elements (logit soft-capping).
    fn softcap(&mut self, x: &Self::Tensor, len: usize, cap: f32) -> Result<(), BackendError>;
    /// Index of the largest of `len` elements from `offset` (first one on ties).
    fn argmax(&mut self, x: &Self::Tensor, offset: usize, len: usize) -> Result<u32, BackendError>;
    /// [`Backend::read`] for callers that cannot block (the browser's GPU maps buffers
    /// asynchronously). The default is the synchronous read, already complete.
    fn read_async(&mut self, t: &Self::Tensor, offset: usize, len: usize) -> impl std::future::Future<Output = Result<Vec<f32>, BackendError>> {
        std::future::ready(self.read(t, offset, len))
    }
    /// [`Backend::argmax`] for callers that cannot block.
    fn argmax_async(&mut self, x: &Self::Tensor, offset: usize, len: usize) -> impl std::future::Future<Output = Result<u32, BackendError>> {
        std::future::ready(self.argmax(x, offset, len))
    }
    /// Submissions and dispatches so far, for backends that batch work (`None` on the CPU).
    fn counters(&self) -> Option<Counters> {
        None
    }
    /// Submits recorded work without reading anything back (no-op on the CPU).
    fn flush(&mut self) -> Result<(), BackendError> {
        Ok(())
    }
    /// `x += y`, then `out = rms_norm(x) * w` over `rows` rows of `dim`: the residual add and
    /// the next norm (one pass on the GPU). The default is [`Backend::add_assign`] then
    /// [`Backend::rms_norm`].
    #[allow(clippy::too_many_arguments)]
    fn add_rms_norm(&mut self, x: &Self::Tensor, y: &Self::Tensor, w: &Self::Weight, out: &Self::Tensor, rows: usize, dim: usize, eps: f32) -> Result<(), BackendError> {
        self.add_assign(x, y, rows.checked_mul(dim).ok_or(BackendError::Shape { op: "add_rms_norm", detail: "size overflows".into() })?)?;
        self.rms_norm(x, w, out, rows, dim, eps)
    }
    /// `out = w·x + bias` for `n` tokens, `bias` an F32 vector of the weight's `rows`: a
    /// projection with its bias (Qwen2's q, k and v). The default is [`Backend::matmul`] then
    /// [`Backend::add_bias`]; the GPU folds the bias into the decode matvec's write (the same
    /// one addition, so the same bits).
    fn matmul_bias(&mut self, w: &Self::Weight, x: &Self::Tensor, out: &Self::Tensor, n: usize, bias: &Self::Weight, rows: usize) -> Result<(), BackendError> {
        self.matmul(w, x, out, n)?;
        self.add_bias(out, bias, n, rows)
    }
    /// RoPE of q and k and the store of k and v into the KV cache (see [`RopeStore`]; one
    /// pass on the GPU). The default is [`rope_store_kv_unfused`].
    fn rope_store_kv(&mut self, r: RopeStore<'_, Self::Tensor, Self::Weight>) -> Result<(), BackendError> {
        rope_store_kv_unfused(self, r)
    }
}
