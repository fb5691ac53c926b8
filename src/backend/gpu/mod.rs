//! The WebGPU backend: GGUF weight blocks in storage buffers, f32 activations, our WGSL
//! kernels (`kernels/*.wgsl`).
//!
//! Every op records one compute pass into a pending command encoder; its parameters go into
//! a uniform ring (one slot per dispatch, bound at a dynamic offset) that is written once,
//! just before the encoder is submitted. Bind groups are cached by op and buffer ids, so
//! after the first decoded token a token records passes and nothing else, and reading the
//! sampled token back is the one `queue.submit` of that token.
//!
//! Reads block the calling thread natively ([`Backend::read`], [`Backend::argmax`]); in the
//! browser the main thread cannot block, so there use [`GpuBackend::read_async`] and
//! [`GpuBackend::argmax_async`].

pub mod context;
mod encode;
mod fused;
mod int8;
mod pipelines;
mod profile;
mod readback;
mod ring;
pub mod selfcheck;
pub mod tune;
#[cfg(test)]
mod tune_tests;
mod weights;
#[cfg(test)]
mod tests;

pub use context::{GpuContext, GpuFeatures};
pub use profile::{GpuProfile, OpProfile};
pub use pipelines::{kernel_source, MatvecShape, Op, PipelineKey, WeightKernel, WEIGHT_KERNELS};
pub use int8::default_on as int8_default_on;
pub use weights::GpuWeight;

use crate::backend::{Activation, AttnParams, Backend, BackendError, RopeExt, RopeParams, RopeStore, WeightDesc};
use crate::gguf::TensorBytes;
use crate::quant::GgmlType;
use encode::{create_buffer, Bind, BindKey};
use pipelines::PipelineCache;
use ring::ParamRing;
use std::collections::HashMap;
use std::rc::Rc;

/// An f32 activation buffer. Cloning shares the buffer.
#[derive(Clone, Debug)]
pub struct GpuTensor {
    id: u64,
    len: usize,
    buf: Rc<wgpu::Buffer>,
}

impl GpuTensor {
    /// Number of f32 elements.
    pub fn len(&self) -> usize {
        self.len
    }
    /// Whether the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Construction options.
#[derive(Debug, Clone, Default)]
pub struct GpuOptions {
    /// Split weights into buffers of at most this many bytes (default: the device's
    /// `maxStorageBufferBindingSize`). Smaller values exist for tests.
    pub max_weight_binding: Option<u64>,
    /// Products with 8-bit activations and integer dots (`weights_q8.wgsl`) for the formats
    /// that have them: `Some(true)` / `Some(false)` forces them on / off, `None` is the
    /// measured default per format ([`int8_default_on`]).
    pub int8: Option<bool>,
}

/// Counters of GPU objects created and submissions made, to check the steady state of a
/// decode loop (no creation after the first token, one submit per token).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GpuStats {
    pub submits: u64,
    pub dispatches: u64,
    pub buffers: u64,
    pub bind_groups: u64,
    pub pipelines: u64,
}

/// Bytes of the parameter ring: ~4000 dispatches between submissions.
const RING_BYTES: u64 = 1 << 20;
/// Initial size of the readback buffer (grown for larger reads).
const READBACK_BYTES: u64 = 4096;
/// Workgroups of the first argmax stage (and entries of its scratch buffer).
const ARGMAX_GROUPS: usize = 256;

/// The WebGPU implementation of [`Backend`].
pub struct GpuBackend {
    ctx: GpuContext,
    pipelines: PipelineCache,
    bind_groups: HashMap<BindKey, wgpu::BindGroup>,
    ring: ParamRing,
    encoder: Option<wgpu::CommandEncoder>,
    readback: wgpu::Buffer,
    argmax_partials: (u64, wgpu::Buffer),
    argmax_result: (u64, wgpu::Buffer),
    max_binding: u64,
    next_id: u64,
    stats: GpuStats,
    profiler: profile::Profiler,
    tuning: tune::Tuning,
    int8: Option<bool>,
    q8: Option<int8::Q8Scratch>,
}

fn shape(op: &'static str, detail: impl Into<String>) -> BackendError {
    BackendError::Shape { op, detail: detail.into() }
}

fn to_u32(op: &'static str, what: &str, v: usize) -> Result<u32, BackendError> {
    u32::try_from(v).map_err(|_| shape(op, format!("{what} = {v} does not fit in 32 bits")))
}

/// `(x, y)` workgroup counts covering `groups` when one dimension holds at most `max`.
fn grid(op: &'static str, groups: usize, max: u32) -> Result<(u32, u32), BackendError> {
    let max = max.max(1) as usize;
    let x = groups.min(max);
    let y = groups.div_ceil(x.max(1));
    if y > max {
        return Err(shape(op, format!("{groups} workgroups exceed the dispatch limit")));
    }
    Ok((x as u32, y.max(1) as u32))
}

fn check_len(op: &'static str, name: &str, t: &GpuTensor, need: usize) -> Result<(), BackendError> {
    if t.len < need {
        return Err(shape(op, format!("{name} has {} elements, needs {need}", t.len)));
    }
    Ok(())
}

fn distinct(op: &'static str, a: &GpuTensor, b: &GpuTensor) -> Result<(), BackendError> {
    if a.id == b.id {
        return Err(shape(op, "input and output must be different tensors"));
    }
    Ok(())
}

impl GpuBackend {
    /// A backend on the default adapter (see [`GpuContext::new`] for the errors).
    pub async fn new() -> Result<GpuBackend, BackendError> {
        Self::from_context(GpuContext::new().await?)
    }

    /// A backend on `ctx` (an injected device: lavapipe in tests, the page's in a browser)
    /// with default options.
    pub fn from_context(ctx: GpuContext) -> Result<GpuBackend, BackendError> {
        Self::with_options(ctx, GpuOptions::default())
    }

    /// A backend on `ctx`. Errors: [`BackendError::OutOfMemory`] if its few fixed buffers
    /// cannot be allocated.
    pub fn with_options(ctx: GpuContext, opts: GpuOptions) -> Result<GpuBackend, BackendError> {
        let limit = ctx.limits.max_storage_buffer_binding_size.min(ctx.limits.max_buffer_size);
        let max_binding = opts.max_weight_binding.map_or(limit, |m| m.min(limit)).max(4);
        let align = u64::from(ctx.limits.min_uniform_buffer_offset_alignment.max(ctx.limits.min_storage_buffer_offset_alignment));
        let device = &ctx.device;
        let mut stats = GpuStats::default();
        let mut make = |what: &str, size: u64, usage: wgpu::BufferUsages| {
            stats.buffers += 1;
            create_buffer(device, what, size, usage)
        };
        let ring_buf = make("param ring", RING_BYTES, wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST)?;
        let readback = make("readback", READBACK_BYTES, wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST)?;
        let partials = make("argmax partials", (ARGMAX_GROUPS * 8) as u64, wgpu::BufferUsages::STORAGE)?;
        let result = make("argmax result", 16, wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC)?;
        Ok(GpuBackend {
            ring: ParamRing::new(ring_buf, RING_BYTES, align),
            ctx,
            pipelines: PipelineCache::default(),
            bind_groups: HashMap::new(),
            encoder: None,
            readback,
            argmax_partials: (1, partials),
            argmax_result: (2, result),
            max_binding,
            next_id: 3,
            stats,
            profiler: profile::Profiler::default(),
            tuning: tune::Tuning::default(),
            int8: opts.int8,
            q8: None,
        })
    }

    /// The device this backend records on.
    pub fn context(&self) -> &GpuContext {
        &self.ctx
    }

    /// Objects created and submissions made so far.
    pub fn stats(&self) -> GpuStats {
        self.stats
    }

    fn fresh_id(&mut self) -> u64 {
        self.next_id += 1;
        self.next_id
    }

    fn new_buffer(&mut self, what: &str, size: u64, usage: wgpu::BufferUsages) -> Result<wgpu::Buffer, BackendError> {
        if size > self.ctx.limits.max_buffer_size {
            return Err(BackendError::LimitsTooSmall { limit: "maxBufferSize", have: self.ctx.limits.max_buffer_size, need: size });
        }
        self.stats.buffers += 1;
        create_buffer(&self.ctx.device, what, size, usage)
    }

}

impl Backend for GpuBackend {
    type Tensor = GpuTensor;
    type Weight = GpuWeight;

    fn describe(&self) -> String {
        self.ctx.describe()
    }

    fn upload(&mut self, desc: &WeightDesc, bytes: &[u8]) -> Result<GpuWeight, BackendError> {
        self.tuning.note(desc.ty, desc.rows(), desc.cols());
        self.upload_weight(desc, weights::Src::Whole(bytes))
    }

    /// Each piece goes straight into its GPU buffer: the host never holds a contiguous copy.
    fn upload_pieces(&mut self, desc: &WeightDesc, bytes: TensorBytes) -> Result<GpuWeight, BackendError> {
        self.tuning.note(desc.ty, desc.rows(), desc.cols());
        self.upload_weight(desc, weights::Src::Pieces(&bytes))
    }

    fn alloc(&mut self, len: usize) -> Result<GpuTensor, BackendError> {
        let size = (len as u64).checked_mul(4).ok_or_else(|| shape("alloc", "size overflows"))?.max(4);
        let buf = self.new_buffer("tensor", size, wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST)?;
        let id = self.fresh_id();
        Ok(GpuTensor { id, len, buf: Rc::new(buf) })
    }

    fn write(&mut self, t: &GpuTensor, offset: usize, data: &[f32]) -> Result<(), BackendError> {
        let end = offset.checked_add(data.len()).ok_or_else(|| shape("write", "range overflows"))?;
        check_len("write", "tensor", t, end)?;
        if data.is_empty() {
            return Ok(());
        }
        // queue.write_buffer lands before the next submission: submit recorded work first so
        // the write is ordered after it.
        if self.encoder.is_some() {
            self.submit()?;
        }
        self.q8_written(t);
        self.ctx.queue.write_buffer(&t.buf, offset as u64 * 4, bytemuck::cast_slice(data));
        self.ctx.errors.check()
    }

    fn read(&mut self, t: &GpuTensor, offset: usize, len: usize) -> Result<Vec<f32>, BackendError> {
        #[cfg(not(target_arch = "wasm32"))]
        {
            pollster::block_on(self.read_nonblocking(t, offset, len))
        }
        #[cfg(target_arch = "wasm32")]
        {
            let _ = (t, offset, len);
            Err(shape("read", "blocking reads are impossible in the browser; use read_async"))
        }
    }

    fn embed(&mut self, table: &GpuWeight, tokens: &[u32], out: &GpuTensor) -> Result<(), BackendError> {
        self.embed_rows(table, tokens, out)
    }

    fn matmul(&mut self, w: &GpuWeight, x: &GpuTensor, out: &GpuTensor, n: usize) -> Result<(), BackendError> {
        self.matmul_weight(w, x, out, n)
    }

    fn rms_norm(&mut self, x: &GpuTensor, w: &GpuWeight, out: &GpuTensor, rows: usize, dim: usize, eps: f32) -> Result<(), BackendError> {
        const OP: &str = "rms_norm";
        let chunk = self.f32_vector(OP, w, dim)?;
        distinct(OP, x, out)?;
        let len = rows.checked_mul(dim).ok_or_else(|| shape(OP, "size overflows"))?;
        check_len(OP, "x", x, len)?;
        check_len(OP, "out", out, len)?;
        let params = [to_u32(OP, "rows", rows)?, to_u32(OP, "dim", dim)?, eps.to_bits()];
        let (gx, gy) = grid(OP, rows, self.ctx.limits.max_compute_workgroups_per_dimension)?;
        let bufs = [Bind::from(x), Bind { id: chunk.id, buf: &chunk.buf }, Bind::from(out)];
        self.profiler.pending_weight_bytes = (len * 4) as u64;
        self.dispatch(PipelineKey { op: Op::RmsNorm, ty: GgmlType::F32, variant: 0 }, &bufs, &params, None, (gx, gy, 1))
    }

    fn add_bias(&mut self, x: &GpuTensor, bias: &GpuWeight, rows: usize, dim: usize) -> Result<(), BackendError> {
        const OP: &str = "add_bias";
        let chunk = self.f32_vector(OP, bias, dim)?;
        let len = rows.checked_mul(dim).ok_or_else(|| shape(OP, "size overflows"))?;
        check_len(OP, "x", x, len)?;
        let params = [to_u32(OP, "rows", rows)?, to_u32(OP, "dim", dim)?];
        let bufs = [Bind::from(x), Bind { id: chunk.id, buf: &chunk.buf }];
        to_u32(OP, "len", len)?;
        self.profiler.pending_weight_bytes = (len * 4) as u64;
        self.elementwise(Op::AddBias, 0, &bufs, &params, len)
    }

    fn rope(&mut self, x: &GpuTensor, n_tokens: usize, n_heads: usize, head_dim: usize, pos0: usize, p: RopeParams) -> Result<(), BackendError> {
        self.rope_ext(x, n_tokens, n_heads, head_dim, pos0, p, RopeExt { factors: None, mscale: 1.0 })
    }

    fn rope_ext(&mut self, x: &GpuTensor, n_tokens: usize, n_heads: usize, head_dim: usize, pos0: usize, p: RopeParams, ext: RopeExt<'_, GpuWeight>) -> Result<(), BackendError> {
        const OP: &str = "rope";
        if p.n_rot > head_dim || p.n_rot % 2 != 0 {
            return Err(shape(OP, format!("n_rot {} must be even and ≤ head_dim {head_dim}", p.n_rot)));
        }
        let factors = match ext.factors {
            Some(w) => Some(self.f32_vector(OP, w, p.n_rot / 2)?),
            None => None,
        };
        let len = n_tokens.saturating_mul(n_heads).saturating_mul(head_dim);
        check_len(OP, "x", x, len)?;
        to_u32(OP, "last position", pos0.saturating_add(n_tokens))?;
        let threads = n_tokens * n_heads * (p.n_rot / 2);
        let params = [
            to_u32(OP, "n_tokens", n_tokens)?,
            to_u32(OP, "n_heads", n_heads)?,
            to_u32(OP, "head_dim", head_dim)?,
            to_u32(OP, "pos0", pos0)?,
            p.n_rot as u32,
            u32::from(p.neox),
            p.theta.to_bits(),
            p.freq_scale.to_bits(),
            ext.mscale.to_bits(),
        ];
        let (gx, gy) = grid(OP, threads.div_ceil(64), self.ctx.limits.max_compute_workgroups_per_dimension)?;
        match factors {
            None => {
                let bufs = [Bind::from(x)];
                self.dispatch(PipelineKey { op: Op::Rope, ty: GgmlType::F32, variant: 0 }, &bufs, &params, None, (gx, gy, 1))
            }
            Some(f) => {
                let bufs = [Bind::from(x), Bind { id: f.id, buf: &f.buf }];
                self.dispatch(PipelineKey { op: Op::RopeFactors, ty: GgmlType::F32, variant: 0 }, &bufs, &params, None, (gx, gy, 1))
            }
        }
    }

    fn copy(&mut self, src: &GpuTensor, src_off: usize, dst: &GpuTensor, dst_off: usize, len: usize) -> Result<(), BackendError> {
        const OP: &str = "copy";
        distinct(OP, src, dst)?;
        check_len(OP, "src", src, src_off.checked_add(len).ok_or_else(|| shape(OP, "range overflows"))?)?;
        check_len(OP, "dst", dst, dst_off.checked_add(len).ok_or_else(|| shape(OP, "range overflows"))?)?;
        let params = [to_u32(OP, "len", len)?, to_u32(OP, "src_off", src_off)?, to_u32(OP, "dst_off", dst_off)?];
        self.elementwise(Op::Copy, 0, &[Bind::from(src), Bind::from(dst)], &params, len)
    }

    fn attention(&mut self, q: &GpuTensor, k_cache: &GpuTensor, v_cache: &GpuTensor, out: &GpuTensor, p: AttnParams) -> Result<(), BackendError> {
        const OP: &str = "attention";
        if p.n_head == 0 || p.n_head_kv == 0 || p.n_head % p.n_head_kv != 0 {
            return Err(shape(OP, format!("n_head {} is not a multiple of n_head_kv {}", p.n_head, p.n_head_kv)));
        }
        if p.head_dim == 0 || p.head_dim > 256 {
            return Err(shape(OP, format!("head_dim {} is not in 1..=256", p.head_dim)));
        }
        if p.window == Some(0) {
            return Err(shape(OP, "sliding window of 0 positions"));
        }
        for t in [q, k_cache, v_cache] {
            distinct(OP, t, out)?;
        }
        let q_len = p.n_tokens.saturating_mul(p.n_head).saturating_mul(p.head_dim);
        let kv_len = p.pos0.saturating_add(p.n_tokens).saturating_mul(p.n_head_kv).saturating_mul(p.head_dim);
        check_len(OP, "q", q, q_len)?;
        check_len(OP, "out", out, q_len)?;
        check_len(OP, "k_cache", k_cache, kv_len)?;
        check_len(OP, "v_cache", v_cache, kv_len)?;
        let max = self.ctx.limits.max_compute_workgroups_per_dimension as usize;
        if p.n_head > max || p.n_tokens > max {
            return Err(shape(OP, "too many heads or tokens for one dispatch"));
        }
        to_u32(OP, "kv length", kv_len)?;
        let params = [
            p.n_tokens as u32,
            p.pos0 as u32,
            p.n_head as u32,
            p.n_head_kv as u32,
            p.head_dim as u32,
            to_u32(OP, "window", p.window.unwrap_or(0))?,
            p.scale.to_bits(),
            p.softcap.unwrap_or(0.0).to_bits(),
        ];
        let bufs = [Bind::from(q), Bind::from(k_cache), Bind::from(v_cache), Bind::from(out)];
        let key = PipelineKey { op: Op::Attention, ty: GgmlType::F32, variant: 0 };
        self.dispatch(key, &bufs, &params, None, (p.n_head as u32, p.n_tokens as u32, 1))
    }

    fn add_assign(&mut self, x: &GpuTensor, y: &GpuTensor, len: usize) -> Result<(), BackendError> {
        const OP: &str = "add_assign";
        distinct(OP, x, y)?;
        check_len(OP, "x", x, len)?;
        check_len(OP, "y", y, len)?;
        self.elementwise(Op::AddAssign, 0, &[Bind::from(x), Bind::from(y)], &[to_u32(OP, "len", len)?], len)
    }

    fn glu(&mut self, gate: &GpuTensor, up: &GpuTensor, len: usize, act: Activation) -> Result<(), BackendError> {
        const OP: &str = "glu";
        distinct(OP, gate, up)?;
        check_len(OP, "gate", gate, len)?;
        check_len(OP, "up", up, len)?;
        let variant = u32::from(act == Activation::Gelu);
        self.elementwise(Op::Glu, variant, &[Bind::from(gate), Bind::from(up)], &[to_u32(OP, "len", len)?], len)
    }

    fn scale(&mut self, x: &GpuTensor, len: usize, s: f32) -> Result<(), BackendError> {
        check_len("scale", "x", x, len)?;
        self.elementwise(Op::Scale, 0, &[Bind::from(x)], &[to_u32("scale", "len", len)?, s.to_bits()], len)
    }

    fn softcap(&mut self, x: &GpuTensor, len: usize, cap: f32) -> Result<(), BackendError> {
        if !(cap > 0.0) {
            return Err(shape("softcap", format!("cap {cap} must be positive")));
        }
        check_len("softcap", "x", x, len)?;
        self.elementwise(Op::Softcap, 0, &[Bind::from(x)], &[to_u32("softcap", "len", len)?, cap.to_bits()], len)
    }

    fn counters(&self) -> Option<crate::backend::Counters> {
        Some(crate::backend::Counters { submits: self.stats.submits, dispatches: self.stats.dispatches })
    }

    fn read_async(&mut self, t: &GpuTensor, offset: usize, len: usize) -> impl std::future::Future<Output = Result<Vec<f32>, BackendError>> {
        self.read_nonblocking(t, offset, len)
    }

    fn argmax_async(&mut self, x: &GpuTensor, offset: usize, len: usize) -> impl std::future::Future<Output = Result<u32, BackendError>> {
        self.argmax_nonblocking(x, offset, len)
    }

    fn argmax(&mut self, x: &GpuTensor, offset: usize, len: usize) -> Result<u32, BackendError> {
        #[cfg(not(target_arch = "wasm32"))]
        {
            pollster::block_on(self.argmax_nonblocking(x, offset, len))
        }
        #[cfg(target_arch = "wasm32")]
        {
            let _ = (x, offset, len);
            Err(shape("argmax", "blocking reads are impossible in the browser; use argmax_async"))
        }
    }

    fn flush(&mut self) -> Result<(), BackendError> {
        self.submit()
    }

    fn add_rms_norm(&mut self, x: &GpuTensor, y: &GpuTensor, w: &GpuWeight, out: &GpuTensor, rows: usize, dim: usize, eps: f32) -> Result<(), BackendError> {
        self.add_rms_norm_fused(x, y, w, out, rows, dim, eps)
    }

    fn rope_store_kv(&mut self, r: RopeStore<'_, GpuTensor, GpuWeight>) -> Result<(), BackendError> {
        self.rope_store_kv_fused(r)
    }

    fn matmul_bias(&mut self, w: &GpuWeight, x: &GpuTensor, out: &GpuTensor, n: usize, bias: &GpuWeight, rows: usize) -> Result<(), BackendError> {
        self.matmul_bias_fused(w, x, out, n, bias, rows)
    }
}
