//! Per-op accounting for `hearth bench --profile`: dispatches, bind groups created, bytes of
//! weights read, CPU-side encode time and, where the adapter has `timestamp-query`, GPU time.
//!
//! Off by default (no cost beyond one branch per dispatch). When on and the device has
//! timestamp queries, every compute pass writes a begin/end timestamp into a query set;
//! `submit` resolves them, waits for the GPU (natively) and adds each pass's time to its op.
//! In the browser the wait is impossible, so GPU times are native-only there.

use super::{GpuBackend, Op};
use crate::backend::BackendError;
use std::collections::BTreeMap;

/// Passes timed between two submissions (two queries each; wgpu's query-set maximum is 4096).
pub(super) const TIMED_PASSES: u32 = 2048;

/// What one op cost over the profiled interval.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct OpProfile {
    pub dispatches: u64,
    /// Bytes of weights (quantized blocks, norm vectors) the op's kernels read.
    pub weight_bytes: u64,
    /// Nanoseconds spent on the CPU recording the op (parameters, bind group, pass).
    pub encode_ns: u64,
    /// Nanoseconds the GPU spent in the op's passes (0 without timestamp queries).
    pub gpu_ns: u64,
}

/// A snapshot of the profile counters, per op.
#[derive(Debug, Clone, Default)]
pub struct GpuProfile {
    pub ops: BTreeMap<String, OpProfile>,
    /// Whether `gpu_ns` was measured (the adapter has `timestamp-query`).
    pub gpu_timed: bool,
}

impl GpuProfile {
    /// Sum over ops.
    pub fn total(&self) -> OpProfile {
        self.ops.values().fold(OpProfile::default(), |a, o| OpProfile {
            dispatches: a.dispatches + o.dispatches,
            weight_bytes: a.weight_bytes + o.weight_bytes,
            encode_ns: a.encode_ns + o.encode_ns,
            gpu_ns: a.gpu_ns + o.gpu_ns,
        })
    }

    /// `self - before`, op by op (for per-token figures over an interval).
    pub fn since(&self, before: &GpuProfile) -> GpuProfile {
        let mut ops = BTreeMap::new();
        for (k, o) in &self.ops {
            let b = before.ops.get(k).copied().unwrap_or_default();
            let d = OpProfile {
                dispatches: o.dispatches - b.dispatches,
                weight_bytes: o.weight_bytes - b.weight_bytes,
                encode_ns: o.encode_ns - b.encode_ns,
                gpu_ns: o.gpu_ns - b.gpu_ns,
            };
            if d != OpProfile::default() {
                ops.insert(k.clone(), d);
            }
        }
        GpuProfile { ops, gpu_timed: self.gpu_timed }
    }
}

impl GpuProfile {
    /// A plain-text table of this interval divided by `tokens`: one row per op, then the
    /// total (`submits` and `bind_groups` are the backend's counters over the same interval).
    pub fn table(&self, title: &str, tokens: usize, submits: u64, bind_groups: u64) -> String {
        let n = tokens.max(1) as f64;
        let gpu = |ns: u64| if self.gpu_timed { format!("{:>10.1}", ns as f64 / n / 1e3) } else { format!("{:>10}", "-") };
        let mut s = format!(
            "{title}: per token over {tokens} token(s); GPU time {}\n  {:<16} {:>10} {:>14} {:>10} {:>10}\n",
            if self.gpu_timed { "from timestamp queries" } else { "not measured (no timestamp-query): CPU encode time only" },
            "op", "dispatches", "weight bytes", "encode us", "GPU us"
        );
        let row = |name: &str, o: &OpProfile| {
            format!(
                "  {name:<16} {:>10.1} {:>14.0} {:>10.1} {}\n",
                o.dispatches as f64 / n,
                o.weight_bytes as f64 / n,
                o.encode_ns as f64 / n / 1e3,
                gpu(o.gpu_ns)
            )
        };
        for (k, o) in &self.ops {
            s += &row(k, o);
        }
        s += &row("total", &self.total());
        s += &format!("  submits {:.2}, bind groups created {:.2} per token\n", submits as f64 / n, bind_groups as f64 / n);
        s
    }
}

pub(super) struct Timer {
    set: wgpu::QuerySet,
    resolve: wgpu::Buffer,
    read: wgpu::Buffer,
    /// The op of each timed pass since the last submission.
    passes: Vec<Op>,
}

#[derive(Default)]
pub(super) struct Profiler {
    pub(super) on: bool,
    pub(super) ops: BTreeMap<Op, OpProfile>,
    pub(super) timer: Option<Timer>,
    /// Weight bytes of the dispatch being recorded (set by the weight ops).
    pub(super) pending_weight_bytes: u64,
}

/// Nanoseconds since the first call (0 in the browser, where `std::time::Instant` panics).
pub(super) fn now_ns() -> u64 {
    #[cfg(not(target_arch = "wasm32"))]
    {
        use std::sync::OnceLock;
        static START: OnceLock<std::time::Instant> = OnceLock::new();
        START.get_or_init(std::time::Instant::now).elapsed().as_nanos() as u64
    }
    #[cfg(target_arch = "wasm32")]
    0
}

impl Timer {
    pub(super) fn query_set(&self) -> &wgpu::QuerySet {
        &self.set
    }
}

impl GpuBackend {
    /// Turns per-op accounting on or off (see [`GpuBackend::profile`]). GPU times need the
    /// `timestamp-query` feature and a native build.
    ///
    /// Errors: [`BackendError::OutOfMemory`] if the query buffers cannot be allocated.
    pub fn set_profiling(&mut self, on: bool) -> Result<(), BackendError> {
        self.submit()?;
        self.profiler.on = on;
        let want_timer = on && self.ctx.features.timestamp_query && cfg!(not(target_arch = "wasm32"));
        if want_timer && self.profiler.timer.is_none() {
            let bytes = u64::from(TIMED_PASSES) * 16;
            let set = self.ctx.device.create_query_set(&wgpu::QuerySetDescriptor {
                label: Some("hearth profile"),
                ty: wgpu::QueryType::Timestamp,
                count: TIMED_PASSES * 2,
            });
            let resolve = self.new_buffer("profile resolve", bytes, wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC)?;
            let read = self.new_buffer("profile read", bytes, wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST)?;
            self.profiler.timer = Some(Timer { set, resolve, read, passes: Vec::new() });
        }
        if !want_timer {
            self.profiler.timer = None;
        }
        Ok(())
    }

    /// The per-op counters so far (empty while profiling is off).
    pub fn profile(&self) -> GpuProfile {
        let ops = self.profiler.ops.iter().map(|(op, p)| (format!("{op:?}"), *p)).collect();
        GpuProfile { ops, gpu_timed: self.profiler.timer.is_some() }
    }

    /// The timestamp writes of the next pass, when timing (and room in the query set).
    pub(super) fn timestamp_slot(&mut self, op: Op) -> Option<u32> {
        let t = self.profiler.timer.as_mut()?;
        if t.passes.len() as u32 >= TIMED_PASSES {
            return None;
        }
        t.passes.push(op);
        Some(t.passes.len() as u32 - 1)
    }

    /// Whether the query set is full (the caller submits before the next pass).
    pub(super) fn timer_full(&self) -> bool {
        self.profiler.timer.as_ref().is_some_and(|t| t.passes.len() as u32 >= TIMED_PASSES)
    }

    /// Adds the time of one recorded dispatch to its op.
    pub(super) fn account(&mut self, op: Op, t0: u64) {
        let weight_bytes = std::mem::take(&mut self.profiler.pending_weight_bytes);
        if !self.profiler.on {
            return;
        }
        let e = self.profiler.ops.entry(op).or_default();
        e.dispatches += 1;
        e.weight_bytes += weight_bytes;
        e.encode_ns += now_ns().saturating_sub(t0);
    }

    /// Records the resolve of this submission's timestamps into the encoder.
    pub(super) fn resolve_timestamps(&mut self, encoder: &mut wgpu::CommandEncoder) -> usize {
        let Some(t) = self.profiler.timer.as_ref() else { return 0 };
        let n = t.passes.len() as u32;
        if n == 0 {
            return 0;
        }
        encoder.resolve_query_set(&t.set, 0..n * 2, &t.resolve, 0);
        encoder.copy_buffer_to_buffer(&t.resolve, 0, &t.read, 0, u64::from(n) * 16);
        n as usize
    }

    /// After the submission that resolved `n` passes: waits for the GPU and adds each
    /// pass's time to its op (native only; a no-op in the browser).
    pub(super) fn collect_timestamps(&mut self, n: usize) -> Result<(), BackendError> {
        if n == 0 {
            return Ok(());
        }
        let Some(t) = self.profiler.timer.as_mut() else { return Ok(()) };
        let passes = std::mem::take(&mut t.passes);
        #[cfg(not(target_arch = "wasm32"))]
        {
            let size = n as u64 * 16;
            let done: std::sync::Arc<std::sync::Mutex<Option<bool>>> = Default::default();
            let d = done.clone();
            t.read.map_async(wgpu::MapMode::Read, 0..size, move |r| {
                if let Ok(mut g) = d.lock() {
                    *g = Some(r.is_ok());
                }
            });
            self.ctx
                .device
                .poll(wgpu::PollType::wait_indefinitely())
                .map_err(|e| BackendError::DeviceLost(format!("poll: {e}")))?;
            if done.lock().ok().and_then(|g| *g) != Some(true) {
                return Err(BackendError::DeviceLost("profile timestamps could not be mapped".into()));
            }
            let period = f64::from(self.ctx.queue.get_timestamp_period());
            let stamps: Vec<u64> = match t.read.get_mapped_range(0..size) {
                Ok(view) => view.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().unwrap_or([0; 8]))).collect(),
                Err(e) => {
                    t.read.unmap();
                    return Err(BackendError::DeviceLost(format!("profile timestamps: {e}")));
                }
            };
            t.read.unmap();
            for (op, pair) in passes.iter().zip(stamps.chunks_exact(2)) {
                let ns = (pair[1].saturating_sub(pair[0]) as f64 * period) as u64;
                self.profiler.ops.entry(*op).or_default().gpu_ns += ns;
            }
        }
        #[cfg(target_arch = "wasm32")]
        let _ = passes;
        Ok(())
    }
}
