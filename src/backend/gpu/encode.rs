//! Recording work: one compute pass per dispatch into the pending encoder, parameters in the
//! uniform ring, bind groups cached by op and buffer ids; submission; buffer creation.

use super::context::{map_wgpu_error, scoped};
use super::pipelines::{signature, Slot, PARAMS_BINDING, TOKENS_PER_DISPATCH};
use super::{grid, profile, shape, GpuBackend, GpuTensor, Op, PipelineKey};
use crate::backend::BackendError;
use crate::quant::GgmlType;

#[derive(Debug, PartialEq, Eq, Hash)]
pub(super) struct BindKey {
    pub(super) op: Op,
    pub(super) ids: [u64; 6],
}

/// A storage buffer bound to a kernel, with the id its bind groups are cached under.
#[derive(Clone, Copy)]
pub(super) struct Bind<'a> {
    pub(super) id: u64,
    pub(super) buf: &'a wgpu::Buffer,
}

impl<'a> From<&'a GpuTensor> for Bind<'a> {
    fn from(t: &'a GpuTensor) -> Self {
        Bind { id: t.id, buf: &t.buf }
    }
}

impl GpuBackend {
    /// Records one dispatch of `key` over `bufs` (the storage bindings of the op, in
    /// binding order), with `params` (and `tokens`, for embed) placed in the ring.
    pub(super) fn dispatch(&mut self, key: PipelineKey, bufs: &[Bind<'_>], params: &[u32], tokens: Option<&[u32]>, groups: (u32, u32, u32)) -> Result<(), BackendError> {
        self.ctx.errors.check()?;
        self.q8_note_op(key.op);
        if groups.0 == 0 || groups.1 == 0 || groups.2 == 0 {
            self.profiler.pending_weight_bytes = 0;
            return Ok(());
        }
        let t0 = if self.profiler.on { profile::now_ns() } else { 0 };
        if self.timer_full() {
            self.submit()?;
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
        let mut ids = [0u64; 6];
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
        let slot = self.timestamp_slot(key.op);
        let device = &self.ctx.device;
        let pipeline = self.pipelines.pipeline(device, key)?;
        let bg = self.bind_groups.get(&bkey).ok_or_else(|| shape("dispatch", "bind group missing from cache"))?;
        let encoder = self
            .encoder
            .get_or_insert_with(|| device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("hearth") }));
        let timestamp_writes = match (slot, self.profiler.timer.as_ref()) {
            (Some(i), Some(t)) => Some(wgpu::ComputePassTimestampWrites {
                query_set: t.query_set(),
                beginning_of_pass_write_index: Some(2 * i),
                end_of_pass_write_index: Some(2 * i + 1),
            }),
            _ => None,
        };
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor { label: None, timestamp_writes });
        pass.set_pipeline(pipeline);
        pass.set_bind_group(0, bg, &offsets);
        pass.dispatch_workgroups(groups.0, groups.1, groups.2);
        drop(pass);
        self.stats.dispatches += 1;
        self.account(key.op, t0);
        Ok(())
    }

    /// Submits the pending encoder (after writing the parameter ring).
    pub(super) fn submit(&mut self) -> Result<(), BackendError> {
        self.ctx.errors.check()?;
        if self.encoder.is_none() && self.ring.is_empty() {
            return Ok(());
        }
        self.ring.upload(&self.ctx.queue);
        let mut encoder = self.encoder.take();
        let timed = match encoder.as_mut() {
            Some(e) => self.resolve_timestamps(e),
            None => 0,
        };
        self.ctx.queue.submit(encoder.map(|e| e.finish()));
        self.stats.submits += 1;
        self.collect_timestamps(timed)
    }

    /// An elementwise kernel over `len` elements, 256 per workgroup.
    pub(super) fn elementwise(&mut self, op: Op, variant: u32, bufs: &[Bind<'_>], params: &[u32], len: usize) -> Result<(), BackendError> {
        let (gx, gy) = grid("elementwise", len.div_ceil(256), self.ctx.limits.max_compute_workgroups_per_dimension)?;
        self.dispatch(PipelineKey { op, ty: GgmlType::F32, variant }, bufs, params, None, (gx, gy, 1))
    }
}

pub(super) fn create_buffer(device: &wgpu::Device, what: &str, size: u64, usage: wgpu::BufferUsages) -> Result<wgpu::Buffer, BackendError> {
    let (buf, err) = scoped(device, wgpu::ErrorFilter::OutOfMemory, || {
        device.create_buffer(&wgpu::BufferDescriptor { label: Some(what), size, usage, mapped_at_creation: false })
    });
    if let Some(e) = err {
        return Err(map_wgpu_error(&e, what, size));
    }
    Ok(buf)
}
