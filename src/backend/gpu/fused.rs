//! Fused ops (fewer dispatches per layer): the residual add with the next RMSNorm, and RoPE of
//! q and k with the KV-cache store. Each equals the sequence of ops it replaces (the scalar
//! reference is that sequence; see tests.rs).

use super::{check_len, distinct, grid, shape, to_u32, Bind, GpuBackend, GpuTensor, GpuWeight, Op, PipelineKey};
use crate::backend::{rope_store_kv_unfused, BackendError, RopeStore};
use crate::quant::GgmlType;

/// Storage buffers the fused RoPE/KV kernel binds (q, k, v, k_cache, v_cache).
const ROPE_KV_BUFFERS: u32 = 5;

impl GpuBackend {
    /// [`crate::backend::Backend::add_rms_norm`] in one pass.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn add_rms_norm_fused(&mut self, x: &GpuTensor, y: &GpuTensor, w: &GpuWeight, out: &GpuTensor, rows: usize, dim: usize, eps: f32) -> Result<(), BackendError> {
        const OP: &str = "add_rms_norm";
        let chunk = self.f32_vector(OP, w, dim)?;
        distinct(OP, x, out)?;
        distinct(OP, x, y)?;
        distinct(OP, y, out)?;
        let len = rows.checked_mul(dim).ok_or_else(|| shape(OP, "size overflows"))?;
        for (name, t) in [("x", x), ("y", y), ("out", out)] {
            check_len(OP, name, t, len)?;
        }
        let params = [to_u32(OP, "rows", rows)?, to_u32(OP, "dim", dim)?, eps.to_bits()];
        let (gx, gy) = grid(OP, rows, self.ctx.limits.max_compute_workgroups_per_dimension)?;
        let bufs = [Bind::from(x), Bind::from(y), Bind { id: chunk.id, buf: &chunk.buf }, Bind::from(out)];
        self.profiler.pending_weight_bytes = (len * 4) as u64;
        self.dispatch(PipelineKey { op: Op::AddRmsNorm, ty: GgmlType::F32, variant: 0 }, &bufs, &params, None, (gx, gy, 1))
    }

    /// [`crate::backend::Backend::rope_store_kv`]: one pass, except with frequency factors or
    /// on a device with fewer than five storage buffers per stage (then the four ops).
    pub(super) fn rope_store_kv_fused(&mut self, r: RopeStore<'_, GpuTensor, GpuWeight>) -> Result<(), BackendError> {
        const OP: &str = "rope_store_kv";
        let mscale = match &r.ext {
            None => 1.0,
            Some(e) if e.factors.is_none() => e.mscale,
            Some(_) => return rope_store_kv_unfused(self, r),
        };
        if self.ctx.limits.max_storage_buffers_per_shader_stage < ROPE_KV_BUFFERS {
            return rope_store_kv_unfused(self, r);
        }
        let p = r.rope;
        if p.n_rot > r.head_dim || p.n_rot % 2 != 0 || p.n_rot == 0 {
            return Err(shape(OP, format!("n_rot {} must be even, non-zero and ≤ head_dim {}", p.n_rot, r.head_dim)));
        }
        let ts = [r.q, r.k, r.v, r.k_cache, r.v_cache];
        for (i, a) in ts.iter().enumerate() {
            for b in &ts[i + 1..] {
                distinct(OP, a, b)?;
            }
        }
        let big = |a: usize, b: usize| a.checked_mul(b).ok_or_else(|| shape(OP, "size overflows"));
        let kvd = big(r.n_head_kv, r.head_dim)?;
        let n_kv = big(r.n_tokens, kvd)?;
        let kv_off = big(r.pos0, kvd)?;
        check_len(OP, "q", r.q, big(big(r.n_tokens, r.n_head)?, r.head_dim)?)?;
        check_len(OP, "k", r.k, n_kv)?;
        check_len(OP, "v", r.v, n_kv)?;
        let end = kv_off.checked_add(n_kv).ok_or_else(|| shape(OP, "size overflows"))?;
        check_len(OP, "k_cache", r.k_cache, end)?;
        check_len(OP, "v_cache", r.v_cache, end)?;
        to_u32(OP, "last position", r.pos0.saturating_add(r.n_tokens))?;
        to_u32(OP, "cache end", end)?;
        let threads = big(big(r.n_tokens, r.n_head)?, p.n_rot / 2)?.checked_add(big(n_kv, 2)?).ok_or_else(|| shape(OP, "size overflows"))?;
        to_u32(OP, "threads", threads)?;
        let params = [
            to_u32(OP, "n_tokens", r.n_tokens)?,
            to_u32(OP, "n_head", r.n_head)?,
            to_u32(OP, "n_head_kv", r.n_head_kv)?,
            to_u32(OP, "head_dim", r.head_dim)?,
            to_u32(OP, "pos0", r.pos0)?,
            p.n_rot as u32,
            u32::from(p.neox),
            p.theta.to_bits(),
            p.freq_scale.to_bits(),
            f32::to_bits(mscale),
            kv_off as u32,
        ];
        let (gx, gy) = grid(OP, threads.div_ceil(64), self.ctx.limits.max_compute_workgroups_per_dimension)?;
        let bufs = ts.map(Bind::from);
        self.dispatch(PipelineKey { op: Op::RopeKv, ty: GgmlType::F32, variant: 0 }, &bufs, &params, None, (gx, gy, 1))
    }
}
