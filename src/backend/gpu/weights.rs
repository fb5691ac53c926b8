//! Weights on the GPU: upload of GGUF tensors (as stored, split by rows over buffers no
//! larger than one storage binding) and the ops that read them (matvec/matmul, embedding).

use super::pipelines::{self, TOKENS_PER_DISPATCH};
use super::{check_len, distinct, grid, shape, to_u32, Bind, GpuBackend, GpuTensor, MatvecShape, Op, PipelineKey};
use crate::backend::{BackendError, WeightDesc};
use crate::gguf::TensorBytes;
use crate::quant::{GgmlType, QuantError};

/// A weight in its GGUF block format, split by rows into buffers no larger than the
/// device's storage-binding limit.
#[derive(Debug)]
pub struct GpuWeight {
    ty: GgmlType,
    pub(super) rows: usize,
    pub(super) cols: usize,
    pub(super) chunks: Vec<WeightChunk>,
}

#[derive(Debug)]
pub(super) struct WeightChunk {
    pub(super) id: u64,
    pub(super) row0: usize,
    pub(super) rows: usize,
    pub(super) buf: wgpu::Buffer,
}

impl GpuWeight {
    /// The block format.
    pub fn ty(&self) -> GgmlType {
        self.ty
    }
    /// Number of storage buffers the rows are split over.
    pub fn n_chunks(&self) -> usize {
        self.chunks.len()
    }
}

/// Decode batches at least this large use the tiled matmul instead of matvec.
pub(super) const MATMUL_MIN_TOKENS: usize = 8;

/// Block types the weight kernels read: those with a [`pipelines::WEIGHT_KERNELS`] row.
pub(super) fn supported(ty: GgmlType) -> bool {
    pipelines::weight_kernel(ty).is_some()
}

impl GpuBackend {
    pub(super) fn upload_weight(&mut self, desc: &WeightDesc, bytes: Src<'_>) -> Result<GpuWeight, BackendError> {
        let ty = desc.ty;
        if !supported(ty) {
            return Err(BackendError::UnsupportedType { op: "upload", ty });
        }
        let (rows, cols) = (desc.rows(), desc.cols());
        let elems = rows.checked_mul(cols).ok_or_else(|| shape("upload", format!("{} dims overflow", desc.name)))?;
        let expected = ty
            .bytes_for(elems as u64)
            .ok_or(QuantError::NotBlockAligned { ty, elems, block: ty.block_size() })?;
        if bytes.len() as u64 != expected {
            return Err(QuantError::BadLength { ty, elems, expected: expected as usize, got: bytes.len() }.into());
        }
        let row_bytes = ty
            .bytes_for(cols as u64)
            .ok_or(QuantError::NotBlockAligned { ty, elems: cols, block: ty.block_size() })?;
        let rows_per_chunk = (self.max_binding / row_bytes.max(1)) as usize;
        if rows_per_chunk == 0 {
            return Err(BackendError::LimitsTooSmall { limit: "maxStorageBufferBindingSize", have: self.max_binding, need: row_bytes });
        }
        let mut chunks = Vec::new();
        let mut row0 = 0;
        while row0 < rows.max(1) {
            let n = rows_per_chunk.min(rows - row0).max(1);
            let start = (row0 as u64 * row_bytes) as usize;
            let end = (start as u64 + n as u64 * row_bytes).min(bytes.len() as u64) as usize;
            let size = ((end - start) as u64).div_ceil(4).max(1) * 4;
            let buf = self.new_buffer(&desc.name, size, wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST)?;
            write_words(&self.ctx.queue, &buf, bytes.slices(start, end));
            let id = self.fresh_id();
            chunks.push(WeightChunk { id, row0, rows: n, buf });
            row0 += n;
        }
        // Hand the staged bytes to the GPU now, so host memory stays bounded while a whole
        // model streams in. The pending encoder (if any) cannot reference these new buffers.
        self.ctx.queue.submit([]);
        self.ctx.errors.check()?;
        Ok(GpuWeight { ty, rows, cols, chunks })
    }

    pub(super) fn embed_rows(&mut self, table: &GpuWeight, tokens: &[u32], out: &GpuTensor) -> Result<(), BackendError> {
        const OP: &str = "embed";
        let cols = table.cols;
        if cols % 8 != 0 {
            return Err(shape(OP, format!("row length {cols} is not a multiple of 8")));
        }
        check_len(OP, "out", out, tokens.len().saturating_mul(cols))?;
        if let Some(&bad) = tokens.iter().find(|&&t| t as usize >= table.rows) {
            return Err(shape(OP, format!("token {bad} is outside the table of {} rows", table.rows)));
        }
        let key = PipelineKey { op: Op::Embed, ty: table.ty, variant: 0 };
        for (batch_idx, batch) in tokens.chunks(TOKENS_PER_DISPATCH).enumerate() {
            let tok_off = batch_idx * TOKENS_PER_DISPATCH;
            for chunk in &table.chunks {
                let range = chunk.row0..chunk.row0 + chunk.rows;
                if !batch.iter().any(|&t| range.contains(&(t as usize))) {
                    continue;
                }
                let params = [chunk.rows as u32, to_u32(OP, "cols", cols)?, batch.len() as u32, chunk.row0 as u32, 0, to_u32(OP, "tokens", tok_off)?];
                let bufs = [Bind { id: chunk.id, buf: &chunk.buf }, Bind::from(out)];
                let hits = batch.iter().filter(|&&t| range.contains(&(t as usize))).count() as u64;
                self.profiler.pending_weight_bytes = hits * table.ty.bytes_for(cols as u64).unwrap_or(0);
                self.dispatch(key, &bufs, &params, Some(batch), (batch.len() as u32, 1, 1))?;
            }
        }
        Ok(())
    }

    pub(super) fn matmul_weight(&mut self, w: &GpuWeight, x: &GpuTensor, out: &GpuTensor, n: usize) -> Result<(), BackendError> {
        const OP: &str = "matmul";
        if !supported(w.ty) {
            return Err(BackendError::UnsupportedType { op: OP, ty: w.ty });
        }
        if w.cols % 8 != 0 {
            return Err(shape(OP, format!("row length {} is not a multiple of 8", w.cols)));
        }
        distinct(OP, x, out)?;
        check_len(OP, "x", x, n.saturating_mul(w.cols))?;
        check_len(OP, "out", out, n.saturating_mul(w.rows))?;
        let max = self.ctx.limits.max_compute_workgroups_per_dimension;
        let tiled = n >= MATMUL_MIN_TOKENS && w.cols % 32 == 0;
        let mv = self.matvec_shape(w.ty, w.cols);
        if self.int8_for(w.ty, w.cols, tiled) {
            return self.matmul_int8(w, x, out, n, None, tiled, MatvecShape::default_for(w.ty, w.cols).tpr);
        }
        let (cols, rows, n32) = (to_u32(OP, "cols", w.cols)?, to_u32(OP, "rows", w.rows)?, to_u32(OP, "n", n)?);
        let row_bytes = w.ty.bytes_for(w.cols as u64).unwrap_or(0);
        // Weight reads: matvec reads its rows once per token, the tiled matmul once per 32.
        let passes = if tiled { n.div_ceil(32) } else { n } as u64;
        for chunk in &w.chunks {
            self.profiler.pending_weight_bytes = chunk.rows as u64 * row_bytes * passes;
            let params = [chunk.rows as u32, cols, n32, chunk.row0 as u32, rows, 0];
            let bufs = [Bind { id: chunk.id, buf: &chunk.buf }, Bind::from(x), Bind::from(out)];
            if tiled {
                let (gx, gy) = (chunk.rows.div_ceil(32), n.div_ceil(32));
                if gx > max as usize || gy > max as usize {
                    return Err(shape(OP, "too many tiles for one dispatch"));
                }
                let key = PipelineKey { op: Op::Matmul, ty: w.ty, variant: 0 };
                self.dispatch(key, &bufs, &params, None, (gx as u32, gy as u32, 1))?;
            } else {
                if n > max as usize {
                    return Err(shape(OP, format!("{n} tokens exceed the dispatch limit")));
                }
                let (gx, gy) = grid(OP, chunk.rows.div_ceil(mv.rows_per_group()), max)?;
                let key = PipelineKey { op: Op::Matvec, ty: w.ty, variant: mv.variant() };
                self.dispatch(key, &bufs, &params, None, (gx, gy, n32))?;
            }
        }
        self.q8_written(out);
        Ok(())
    }

    /// [`crate::backend::Backend::matmul_bias`]: one token through the decode matvec with the
    /// bias added as it writes; anything else (several tokens, the tiled path) as the default,
    /// the product then [`crate::backend::Backend::add_bias`].
    pub(super) fn matmul_bias_fused(&mut self, w: &GpuWeight, x: &GpuTensor, out: &GpuTensor, n: usize, bias: &GpuWeight, rows: usize) -> Result<(), BackendError> {
        const OP: &str = "matmul_bias";
        if n != 1 || rows != w.rows || !supported(w.ty) || w.cols % 8 != 0 {
            self.matmul_weight(w, x, out, n)?;
            return crate::backend::Backend::add_bias(self, out, bias, n, rows);
        }
        let b = self.f32_vector(OP, bias, rows)?;
        distinct(OP, x, out)?;
        check_len(OP, "x", x, w.cols)?;
        check_len(OP, "out", out, w.rows)?;
        let max = self.ctx.limits.max_compute_workgroups_per_dimension;
        let mv = self.matvec_shape(w.ty, w.cols);
        if self.int8_for(w.ty, w.cols, false) {
            return self.matmul_int8(w, x, out, 1, Some(Bind { id: b.id, buf: &b.buf }), false, MatvecShape::default_for(w.ty, w.cols).tpr);
        }
        let (cols, all_rows) = (to_u32(OP, "cols", w.cols)?, to_u32(OP, "rows", w.rows)?);
        let row_bytes = w.ty.bytes_for(w.cols as u64).unwrap_or(0);
        for chunk in &w.chunks {
            self.profiler.pending_weight_bytes = chunk.rows as u64 * row_bytes + chunk.rows as u64 * 4;
            let params = [chunk.rows as u32, cols, 1, chunk.row0 as u32, all_rows, 0];
            let bufs = [Bind { id: chunk.id, buf: &chunk.buf }, Bind::from(x), Bind::from(out), Bind { id: b.id, buf: &b.buf }];
            let (gx, gy) = grid(OP, chunk.rows.div_ceil(mv.rows_per_group()), max)?;
            self.dispatch(PipelineKey { op: Op::MatvecBias, ty: w.ty, variant: mv.variant() }, &bufs, &params, None, (gx, gy, 1))?;
        }
        self.q8_written(out);
        Ok(())
    }

    pub(super) fn f32_vector<'w>(&self, op: &'static str, w: &'w GpuWeight, len: usize) -> Result<&'w WeightChunk, BackendError> {
        if w.ty != GgmlType::F32 {
            return Err(BackendError::UnsupportedType { op, ty: w.ty });
        }
        if w.rows * w.cols < len {
            return Err(shape(op, format!("weight has {} elements, needs {len}", w.rows * w.cols)));
        }
        match w.chunks.as_slice() {
            [c] => Ok(c),
            _ => Err(shape(op, "vector weight split over several buffers")),
        }
    }
}

/// A tensor's bytes: whole, or as the pieces the streaming loader assembled.
pub(super) enum Src<'a> {
    Whole(&'a [u8]),
    Pieces(&'a TensorBytes),
}

impl Src<'_> {
    fn len(&self) -> usize {
        match self {
            Src::Whole(b) => b.len(),
            Src::Pieces(t) => t.len(),
        }
    }

    /// Bytes `start..end` as consecutive slices.
    fn slices(&self, start: usize, end: usize) -> Box<dyn Iterator<Item = &[u8]> + '_> {
        match self {
            Src::Whole(b) => Box::new(b.get(start..end.min(b.len())).into_iter()),
            Src::Pieces(t) => Box::new(t.slices(start, end)),
        }
    }
}

/// Writes the concatenation of `slices` into `buf` from offset 0 with `write_buffer`, whose
/// offsets and sizes must be multiples of 4: whole words straight from each slice, the bytes
/// that straddle a slice boundary through a 4-byte carry, the end padded with zeros.
fn write_words<'a>(queue: &wgpu::Queue, buf: &wgpu::Buffer, slices: impl Iterator<Item = &'a [u8]>) {
    let mut at = 0u64;
    let mut carry = [0u8; 4];
    let mut held = 0usize;
    for mut s in slices {
        if held > 0 {
            let k = (4 - held).min(s.len());
            carry[held..held + k].copy_from_slice(&s[..k]);
            held += k;
            s = &s[k..];
            if held < 4 {
                continue;
            }
            queue.write_buffer(buf, at, &carry);
            at += 4;
        }
        let body = s.len() / 4 * 4;
        if body > 0 {
            queue.write_buffer(buf, at, &s[..body]);
            at += body as u64;
        }
        held = s.len() - body;
        carry[..held].copy_from_slice(&s[body..]);
    }
    if held > 0 {
        carry[held..].fill(0);
        queue.write_buffer(buf, at, &carry);
    }
}
