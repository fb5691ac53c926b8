//! The integer products: activations quantized to 8 bits per 32-element block on the GPU
//! (`quantize_q8.wgsl`, once per input: the q, k and v products of a layer share one), then
//! the decode matvec or the tiled prefill matmul with `dot4I8Packed` (`weights_q8.wgsl`).
//!
//! Not bit-equal to the f32 products: the activation's rounding (|x − d·q| ≤ d/2 per element,
//! d = max|x|/127 per block) is the CPU backend's default (`cpu::kernels::q8`), so the GPU
//! and the CPU make the same kind of error. Which formats use it by default is [`default_on`].

use super::{check_len, distinct, grid, shape, to_u32, Bind, GpuBackend, GpuTensor, GpuWeight, Op, PipelineKey};
use crate::backend::BackendError;
use crate::quant::GgmlType;

/// Bytes of one quantized 32-element block (`quantize_q8.wgsl`: scale, two half sums, 32 bytes).
const BLOCK_BYTES: u64 = 48;

/// The quantized activations and which input they hold.
pub(super) struct Q8Scratch {
    buf: GpuTensor,
    /// `(tensor id, tokens, cols)` of the input now quantized in `buf`; `None` when stale.
    holds: Option<(u64, usize, usize)>,
}

/// Whether the integer path is the default for a product with weights of `ty`, tiled (prefill,
/// 8 tokens or more) or not (the decode matvec): for none of them yet. Measured on lavapipe
/// (BENCHMARKS.md, "#21 integer path on lavapipe"): the tiled product is ~3x faster with it and
/// the matvec the same within noise, but SmolLM2's prefill logits then fall to cosine 0.99893
/// against the f32 CPU oracle (`tests/parity_gpu.rs` asks ≥ 0.999), so it stays opt-in
/// ([`super::GpuOptions::int8`]) until it is gated against llama.cpp's goldens.
pub fn default_on(ty: GgmlType, tiled: bool) -> bool {
    let _ = (ty, tiled);
    false
}

impl GpuBackend {
    /// Whether products with weights of `ty` and rows of `cols` take the integer path.
    pub(super) fn int8_for(&self, ty: GgmlType, cols: usize, tiled: bool) -> bool {
        let has = super::pipelines::weight_kernel(ty).is_some_and(|k| k.int8.is_some());
        has && cols % 32 == 0 && self.int8.unwrap_or_else(|| default_on(ty, tiled))
    }

    /// The formats whose products (any of them: tiled or matvec) this backend may run with
    /// 8-bit activations (the selfcheck gives their products the 8-bit tolerance).
    pub fn int8_types(&self) -> Vec<GgmlType> {
        let types = super::pipelines::WEIGHT_KERNELS.iter().map(|k| k.ty);
        types.filter(|&ty| self.int8_for(ty, 32, true) || self.int8_for(ty, 32, false)).collect()
    }

    /// Marks the quantized copy stale if `op` may write the tensor it was made from: anything
    /// but the products (which write only their distinct `out`, see [`Self::q8_written`]).
    pub(super) fn q8_note_op(&mut self, op: Op) {
        if !matches!(op, Op::QuantizeQ8 | Op::Matvec | Op::MatvecBias | Op::Matmul) && !op.integer() {
            if let Some(s) = self.q8.as_mut() {
                s.holds = None;
            }
        }
    }

    /// Marks the quantized copy stale if it was made from `t` (which was just written).
    pub(super) fn q8_written(&mut self, t: &GpuTensor) {
        if let Some(s) = self.q8.as_mut() {
            if s.holds.is_some_and(|h| h.0 == t.id) {
                s.holds = None;
            }
        }
    }

    /// Quantizes `n` rows of `cols` of `x` into the scratch buffer (unless it holds them
    /// already) and returns it.
    fn quantize_q8(&mut self, x: &GpuTensor, n: usize, cols: usize) -> Result<GpuTensor, BackendError> {
        const OP: &str = "quantize_q8";
        let blocks = n.checked_mul(cols / 32).ok_or_else(|| shape(OP, "size overflows"))?;
        if let Some(s) = &self.q8 {
            if s.holds == Some((x.id, n, cols)) {
                return Ok(s.buf.clone());
            }
        }
        let bytes = (blocks as u64).checked_mul(BLOCK_BYTES).ok_or_else(|| shape(OP, "size overflows"))?;
        let limit = self.ctx.limits.max_storage_buffer_binding_size.min(self.ctx.limits.max_buffer_size);
        if bytes > limit {
            return Err(BackendError::LimitsTooSmall { limit: "maxStorageBufferBindingSize", have: limit, need: bytes });
        }
        if self.q8.as_ref().is_none_or(|s| (s.buf.len as u64) * 4 < bytes) {
            // Grown to the largest batch seen; a decode loop reuses it (and its bind groups).
            let buf = crate::backend::Backend::alloc(self, (bytes / 4) as usize)?;
            self.q8 = Some(Q8Scratch { buf, holds: None });
        }
        let buf = self.q8.as_ref().map(|s| s.buf.clone()).ok_or_else(|| shape(OP, "no scratch buffer"))?;
        let params = [to_u32(OP, "blocks", blocks)?];
        let (gx, gy) = grid(OP, blocks.div_ceil(8), self.ctx.limits.max_compute_workgroups_per_dimension)?;
        self.profiler.pending_weight_bytes = 0;
        self.dispatch(PipelineKey { op: Op::QuantizeQ8, ty: GgmlType::F32, variant: 0 }, &[Bind::from(x), Bind::from(&buf)], &params, None, (gx, gy, 1))?;
        if let Some(s) = self.q8.as_mut() {
            s.holds = Some((x.id, n, cols));
        }
        Ok(buf)
    }

    /// `out = x · wᵀ` (plus `bias` per row, decode only) through the integer kernels. The caller
    /// checked the shapes and that [`Self::int8_for`] holds.
    pub(super) fn matmul_int8(&mut self, w: &GpuWeight, x: &GpuTensor, out: &GpuTensor, n: usize, bias: Option<Bind<'_>>, tiled: bool, tpr: u32) -> Result<(), BackendError> {
        const OP: &str = "matmul";
        distinct(OP, x, out)?;
        check_len(OP, "x", x, n.saturating_mul(w.cols))?;
        let xq = self.quantize_q8(x, n, w.cols)?;
        let max = self.ctx.limits.max_compute_workgroups_per_dimension;
        let (cols, rows, n32) = (to_u32(OP, "cols", w.cols)?, to_u32(OP, "rows", w.rows)?, to_u32(OP, "n", n)?);
        let row_bytes = w.ty().bytes_for(w.cols as u64).unwrap_or(0);
        let passes = if tiled { n.div_ceil(32) } else { n } as u64;
        for chunk in &w.chunks {
            self.profiler.pending_weight_bytes = chunk.rows as u64 * row_bytes * passes;
            let params = [chunk.rows as u32, cols, n32, chunk.row0 as u32, rows, 0];
            let wb = Bind { id: chunk.id, buf: &chunk.buf };
            if tiled {
                let (gx, gy) = (chunk.rows.div_ceil(32), n.div_ceil(32));
                if gx > max as usize || gy > max as usize {
                    return Err(shape(OP, "too many tiles for one dispatch"));
                }
                let key = PipelineKey { op: Op::MatmulQ8, ty: w.ty(), variant: 0 };
                self.dispatch(key, &[wb, Bind::from(&xq), Bind::from(out)], &params, None, (gx as u32, gy as u32, 1))?;
            } else {
                if n > max as usize {
                    return Err(shape(OP, format!("{n} tokens exceed the dispatch limit")));
                }
                let (gx, gy) = grid(OP, chunk.rows.div_ceil((64 / tpr) as usize), max)?;
                match bias {
                    None => {
                        let key = PipelineKey { op: Op::MatvecQ8, ty: w.ty(), variant: tpr };
                        self.dispatch(key, &[wb, Bind::from(&xq), Bind::from(out)], &params, None, (gx, gy, n32))?;
                    }
                    Some(b) => {
                        self.profiler.pending_weight_bytes += chunk.rows as u64 * 4;
                        let key = PipelineKey { op: Op::MatvecQ8Bias, ty: w.ty(), variant: tpr };
                        self.dispatch(key, &[wb, Bind::from(&xq), Bind::from(out), b], &params, None, (gx, gy, n32))?;
                    }
                }
            }
        }
        self.q8_written(out);
        Ok(())
    }
}
