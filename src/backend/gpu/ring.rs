//! The per-submission parameter ring: every dispatch's uniform parameters (and embed's
//! token ids) are appended to a host-side byte vector at offsets aligned for dynamic
//! binding, and the whole vector is written to one GPU buffer just before the submission
//! that uses it. One `write_buffer` per submission, no buffer or bind group per dispatch.

/// Host staging plus the GPU buffer it is uploaded to.
pub struct ParamRing {
    buf: wgpu::Buffer,
    data: Vec<u8>,
    cap: u64,
    align: u64,
}

impl ParamRing {
    pub fn new(buf: wgpu::Buffer, cap: u64, align: u64) -> ParamRing {
        ParamRing { buf, data: Vec::new(), cap, align: align.max(4) }
    }

    pub fn buffer(&self) -> &wgpu::Buffer {
        &self.buf
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    /// Appends each `(bytes, binding_size)` at an aligned offset with room for a binding of
    /// that size, returning the offsets; `None` (and nothing appended) when the ring is full.
    pub fn push(&mut self, items: &[(&[u8], u64)]) -> Option<Vec<u32>> {
        let mut end = self.data.len() as u64;
        let mut offsets = Vec::with_capacity(items.len());
        for &(bytes, binding) in items {
            let off = end.div_ceil(self.align) * self.align;
            let room = binding.max(bytes.len() as u64);
            if off + room > self.cap {
                return None;
            }
            offsets.push(off as u32);
            end = off + bytes.len() as u64;
        }
        for (&(bytes, _), &off) in items.iter().zip(&offsets) {
            self.data.resize(off as usize, 0);
            self.data.extend_from_slice(bytes);
        }
        Some(offsets)
    }

    /// Writes the staged parameters to the GPU buffer (ordered before the next submission)
    /// and starts an empty ring.
    pub fn upload(&mut self, queue: &wgpu::Queue) {
        if self.data.is_empty() {
            return;
        }
        let padded = self.data.len().div_ceil(4) * 4;
        self.data.resize(padded, 0);
        queue.write_buffer(&self.buf, 0, &self.data);
        self.data.clear();
    }
}
