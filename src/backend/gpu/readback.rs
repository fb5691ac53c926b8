//! Reading results back: copy into the mappable readback buffer, submit, await the map.
//! Natively the wait blocks on `device.poll`; in the browser it yields to the event loop.

use super::{check_len, shape, to_u32, Bind, GpuBackend, GpuTensor, Op, PipelineKey, ARGMAX_GROUPS, READBACK_BYTES};
use crate::backend::BackendError;
use crate::quant::GgmlType;
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};

impl GpuBackend {
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
}
