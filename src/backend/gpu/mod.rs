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
mod pipelines;
mod ring;
#[cfg(test)]
mod tests;

pub use context::{GpuContext, GpuFeatures};
pub use pipelines::{Op, PipelineKey};

use crate::backend::{Activation, AttnParams, Backend, BackendError, RopeParams, WeightDesc};
use crate::quant::{GgmlType, QuantError};
use context::{map_wgpu_error, scoped};
use pipelines::{signature, PipelineCache, Slot, PARAMS_BINDING, TOKENS_PER_DISPATCH};
use ring::ParamRing;
use std::collections::HashMap;
use std::rc::Rc;
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};

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

/// A weight in its GGUF block format, split by rows into buffers no larger than the
/// device's storage-binding limit.
#[derive(Debug)]
pub struct GpuWeight {
    ty: GgmlType,
    rows: usize,
    cols: usize,
    chunks: Vec<WeightChunk>,
}

#[derive(Debug)]
struct WeightChunk {
    id: u64,
    row0: usize,
    rows: usize,
    buf: wgpu::Buffer,
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

/// Construction options.
#[derive(Debug, Clone, Default)]
pub struct GpuOptions {
    /// Split weights into buffers of at most this many bytes (default: the device's
    /// `maxStorageBufferBindingSize`). Smaller values exist for tests.
    pub max_weight_binding: Option<u64>,
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

/// Decode batches at least this large use the tiled matmul instead of matvec.
const MATMUL_MIN_TOKENS: usize = 8;
/// Bytes of the parameter ring: ~4000 dispatches between submissions.
const RING_BYTES: u64 = 1 << 20;
/// Initial size of the readback buffer (grown for larger reads).
const READBACK_BYTES: u64 = 4096;
/// Workgroups of the first argmax stage (and entries of its scratch buffer).
const ARGMAX_GROUPS: usize = 256;

#[derive(Debug, PartialEq, Eq, Hash)]
struct BindKey {
    op: Op,
    ids: [u64; 4],
}

/// A storage buffer bound to a kernel, with the id its bind groups are cached under.
#[derive(Clone, Copy)]
struct Bind<'a> {
    id: u64,
    buf: &'a wgpu::Buffer,
}

impl<'a> From<&'a GpuTensor> for Bind<'a> {
    fn from(t: &'a GpuTensor) -> Self {
        Bind { id: t.id, buf: &t.buf }
    }
}

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

/// Threads per row of the matvec kernel: enough that each thread handles about two of the
/// row's work items (32-element blocks for quantized types, 8-element units for floats), at
/// most the 64 threads of the workgroup.
fn matvec_tpr(ty: GgmlType, cols: usize) -> u32 {
    let items = if matches!(ty, GgmlType::F32 | GgmlType::F16) { cols / 8 } else { cols / 32 };
    items.div_ceil(2).next_power_of_two().clamp(4, 64) as u32
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

    /// Records one dispatch of `key` over `bufs` (the storage bindings of the op, in
    /// binding order), with `params` (and `tokens`, for embed) placed in the ring.
    fn dispatch(&mut self, key: PipelineKey, bufs: &[Bind<'_>], params: &[u32], tokens: Option<&[u32]>, groups: (u32, u32, u32)) -> Result<(), BackendError> {
        self.ctx.errors.check()?;
        if groups.0 == 0 || groups.1 == 0 || groups.2 == 0 {
            return Ok(());
        }
        let params: &[u8] = bytemuck::cast_slice(params);
        let token_bytes: &[u8] = tokens.map(bytemuck::cast_slice).unwrap_or(&[]);
        let mut requests = vec![(params, PARAMS_BINDING)];
        if tokens.is_some() {
            requests.push((token_bytes, (TOKENS_PER_DISPATCH * 4) as u64));
        }
        let offsets = match self.ring.push(&requests) {
            Some(o) => o,
            None => {
                self.submit()?;
                self.ring.push(&requests).ok_or_else(|| shape("dispatch", "parameters larger than the ring"))?
            }
        };

        let device = &self.ctx.device;
        let first = self.stats.pipelines;
        if !self.pipelines.contains(key) {
            self.pipelines.pipeline(device, key)?;
            self.stats.pipelines = first + 1;
        }
        let mut ids = [0u64; 4];
        for (slot, b) in ids.iter_mut().zip(bufs) {
            *slot = b.id;
        }
        let bkey = BindKey { op: key.op, ids };
        if !self.bind_groups.contains_key(&bkey) {
            let layout = self.pipelines.layout(device, key.op);
            let mut storage = bufs.iter();
            let mut entries = Vec::new();
            for &(binding, slot) in signature(key.op) {
                let resource = match slot {
                    Slot::Params => wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                        buffer: self.ring.buffer(),
                        offset: 0,
                        size: wgpu::BufferSize::new(PARAMS_BINDING),
                    }),
                    Slot::RingRead => wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                        buffer: self.ring.buffer(),
                        offset: 0,
                        size: wgpu::BufferSize::new((TOKENS_PER_DISPATCH * 4) as u64),
                    }),
                    Slot::Read | Slot::Write => match storage.next() {
                        Some(b) => b.buf.as_entire_binding(),
                        None => return Err(shape("dispatch", format!("{:?} needs more buffers", key.op))),
                    },
                };
                entries.push(wgpu::BindGroupEntry { binding, resource });
            }
            let (bg, err) = scoped(device, wgpu::ErrorFilter::Validation, || {
                device.create_bind_group(&wgpu::BindGroupDescriptor { label: None, layout, entries: &entries })
            });
            if let Some(e) = err {
                return Err(map_wgpu_error(&e, &format!("bind group for {:?}", key.op), 0));
            }
            self.stats.bind_groups += 1;
            self.bind_groups.insert(bkey, bg);
        }
        let bkey = BindKey { op: key.op, ids };
        let pipeline = self.pipelines.pipeline(device, key)?;
        let bg = self.bind_groups.get(&bkey).ok_or_else(|| shape("dispatch", "bind group missing from cache"))?;
        let encoder = self
            .encoder
            .get_or_insert_with(|| device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("hearth") }));
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: None, timestamp_writes: None });
        pass.set_pipeline(pipeline);
        pass.set_bind_group(0, bg, &offsets);
        pass.dispatch_workgroups(groups.0, groups.1, groups.2);
        self.stats.dispatches += 1;
        Ok(())
    }

    /// Submits the pending encoder (after writing the parameter ring).
    fn submit(&mut self) -> Result<(), BackendError> {
        self.ctx.errors.check()?;
        if self.encoder.is_none() && self.ring.is_empty() {
            return Ok(());
        }
        self.ring.upload(&self.ctx.queue);
        let cmd = self.encoder.take().map(|e| e.finish());
        self.ctx.queue.submit(cmd);
        self.stats.submits += 1;
        Ok(())
    }

    /// Copies `size` bytes at `offset` of `src` into the readback buffer, submits everything
    /// pending and returns the bytes once the GPU is done. Works in the browser.
    async fn read_bytes(&mut self, src: &wgpu::Buffer, offset: u64, size: u64) -> Result<Vec<u8>, BackendError> {
        if size == 0 {
            return Ok(Vec::new());
        }
        if self.readback.size() < size {
            let grown = size.next_power_of_two().max(READBACK_BYTES);
            self.readback = self.new_buffer("readback", grown, wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST)?;
        }
        let device = &self.ctx.device;
        let encoder = self
            .encoder
            .get_or_insert_with(|| device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("hearth") }));
        encoder.copy_buffer_to_buffer(src, offset, &self.readback, 0, size);
        self.submit()?;

        let state: Arc<Mutex<(Option<Result<(), String>>, Option<Waker>)>> = Arc::default();
        {
            let state = state.clone();
            self.readback.map_async(wgpu::MapMode::Read, 0..size, move |r| {
                if let Ok(mut s) = state.lock() {
                    s.0 = Some(r.map_err(|e| e.to_string()));
                    if let Some(w) = s.1.take() {
                        w.wake();
                    }
                }
            });
        }
        #[cfg(not(target_arch = "wasm32"))]
        self.ctx
            .device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| BackendError::DeviceLost(format!("poll: {e}")))?;
        let mapped = std::future::poll_fn(|cx| match state.lock() {
            Ok(mut s) => match s.0.take() {
                Some(r) => Poll::Ready(r),
                None => {
                    s.1 = Some(cx.waker().clone());
                    Poll::Pending
                }
            },
            Err(_) => Poll::Ready(Err("map state poisoned".to_string())),
        })
        .await;
        self.ctx.errors.check()?;
        mapped.map_err(|e| BackendError::DeviceLost(format!("readback map failed: {e}")))?;
        let out = match self.readback.get_mapped_range(0..size) {
            Ok(view) => view.to_vec(),
            Err(e) => {
                self.readback.unmap();
                return Err(BackendError::DeviceLost(format!("readback view: {e}")));
            }
        };
        self.readback.unmap();
        Ok(out)
    }

    /// [`Backend::read`] without blocking (the browser path).
    pub async fn read_nonblocking(&mut self, t: &GpuTensor, offset: usize, len: usize) -> Result<Vec<f32>, BackendError> {
        let end = offset.checked_add(len).ok_or_else(|| shape("read", "range overflows"))?;
        check_len("read", "tensor", t, end)?;
        let buf = t.buf.clone();
        let bytes = self.read_bytes(&buf, offset as u64 * 4, len as u64 * 4).await?;
        Ok(bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect())
    }

    /// [`Backend::argmax`] without blocking (the browser path).
    pub async fn argmax_nonblocking(&mut self, x: &GpuTensor, offset: usize, len: usize) -> Result<u32, BackendError> {
        self.record_argmax(x, offset, len)?;
        let (_, result) = &self.argmax_result;
        let result = result.clone();
        let bytes = self.read_bytes(&result, 0, 4).await?;
        let word: [u8; 4] = bytes.get(..4).and_then(|b| b.try_into().ok()).ok_or_else(|| shape("argmax", "short readback"))?;
        let idx = u32::from_le_bytes(word);
        // All-NaN input leaves no winner; report the first element like a scalar loop would.
        Ok(if (idx as usize) < len { idx } else { 0 })
    }

    fn record_argmax(&mut self, x: &GpuTensor, offset: usize, len: usize) -> Result<(), BackendError> {
        const OP: &str = "argmax";
        if len == 0 {
            return Err(shape(OP, "empty range"));
        }
        let end = offset.checked_add(len).ok_or_else(|| shape(OP, "range overflows"))?;
        check_len(OP, "x", x, end)?;
        let groups = len.div_ceil(256).min(ARGMAX_GROUPS);
        let params = [to_u32(OP, "len", len)?, to_u32(OP, "offset", offset)?, groups as u32];
        let partials = self.argmax_partials.1.clone();
        let result = self.argmax_result.1.clone();
        let bufs = [Bind::from(x), Bind { id: self.argmax_partials.0, buf: &partials }, Bind { id: self.argmax_result.0, buf: &result }];
        let key = |op| PipelineKey { op, ty: GgmlType::F32, variant: 0 };
        self.dispatch(key(Op::ArgmaxPartials), &bufs, &params, None, (groups as u32, 1, 1))?;
        self.dispatch(key(Op::ArgmaxFinish), &bufs, &params, None, (1, 1, 1))
    }

    /// An elementwise kernel over `len` elements, 256 per workgroup.
    fn elementwise(&mut self, op: Op, variant: u32, bufs: &[Bind<'_>], params: &[u32], len: usize) -> Result<(), BackendError> {
        let (gx, gy) = grid("elementwise", len.div_ceil(256), self.ctx.limits.max_compute_workgroups_per_dimension)?;
        self.dispatch(PipelineKey { op, ty: GgmlType::F32, variant }, bufs, params, None, (gx, gy, 1))
    }

    fn f32_vector<'w>(&self, op: &'static str, w: &'w GpuWeight, len: usize) -> Result<&'w WeightChunk, BackendError> {
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

fn create_buffer(device: &wgpu::Device, what: &str, size: u64, usage: wgpu::BufferUsages) -> Result<wgpu::Buffer, BackendError> {
    let (buf, err) = scoped(device, wgpu::ErrorFilter::OutOfMemory, || {
        device.create_buffer(&wgpu::BufferDescriptor { label: Some(what), size, usage, mapped_at_creation: false })
    });
    if let Some(e) = err {
        return Err(map_wgpu_error(&e, what, size));
    }
    Ok(buf)
}

/// Block types the weight kernels read.
fn supported(ty: GgmlType) -> bool {
    matches!(ty, GgmlType::F32 | GgmlType::F16 | GgmlType::Q4_0 | GgmlType::Q4_1 | GgmlType::Q8_0)
}

impl Backend for GpuBackend {
    type Tensor = GpuTensor;
    type Weight = GpuWeight;

    fn describe(&self) -> String {
        self.ctx.describe()
    }

    fn upload(&mut self, desc: &WeightDesc, bytes: &[u8]) -> Result<GpuWeight, BackendError> {
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
            let data = &bytes[start..end];
            let size = (data.len() as u64).div_ceil(4).max(1) * 4;
            let buf = self.new_buffer(&desc.name, size, wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST)?;
            // Whole words directly, the tail padded with zeros to the 4-byte copy alignment.
            let body = data.len() / 4 * 4;
            if body > 0 {
                self.ctx.queue.write_buffer(&buf, 0, &data[..body]);
            }
            if body < data.len() {
                let mut tail = [0u8; 4];
                tail[..data.len() - body].copy_from_slice(&data[body..]);
                self.ctx.queue.write_buffer(&buf, body as u64, &tail);
            }
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
                self.dispatch(key, &bufs, &params, Some(batch), (batch.len() as u32, 1, 1))?;
            }
        }
        Ok(())
    }

    fn matmul(&mut self, w: &GpuWeight, x: &GpuTensor, out: &GpuTensor, n: usize) -> Result<(), BackendError> {
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
        let tpr = matvec_tpr(w.ty, w.cols);
        let (cols, rows, n32) = (to_u32(OP, "cols", w.cols)?, to_u32(OP, "rows", w.rows)?, to_u32(OP, "n", n)?);
        for chunk in &w.chunks {
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
                let (gx, gy) = grid(OP, chunk.rows.div_ceil((64 / tpr) as usize), max)?;
                let key = PipelineKey { op: Op::Matvec, ty: w.ty, variant: tpr };
                self.dispatch(key, &bufs, &params, None, (gx, gy, n32))?;
            }
        }
        Ok(())
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
        self.elementwise(Op::AddBias, 0, &bufs, &params, len)
    }

    fn rope(&mut self, x: &GpuTensor, n_tokens: usize, n_heads: usize, head_dim: usize, pos0: usize, p: RopeParams) -> Result<(), BackendError> {
        const OP: &str = "rope";
        if p.n_rot > head_dim || p.n_rot % 2 != 0 {
            return Err(shape(OP, format!("n_rot {} must be even and ≤ head_dim {head_dim}", p.n_rot)));
        }
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
        ];
        let (gx, gy) = grid(OP, threads.div_ceil(64), self.ctx.limits.max_compute_workgroups_per_dimension)?;
        let bufs = [Bind::from(x)];
        self.dispatch(PipelineKey { op: Op::Rope, ty: GgmlType::F32, variant: 0 }, &bufs, &params, None, (gx, gy, 1))
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
}
