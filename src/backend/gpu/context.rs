//! The WebGPU device: adapter selection, the limits and optional features we ask for, and
//! how device errors become [`BackendError`] values instead of panics.

use crate::backend::BackendError;
use std::sync::{Arc, Mutex};

/// Optional adapter features the kernels can use; each has a path without it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GpuFeatures {
    /// `shader-f16` (unused by the current kernels: f16 is read with `unpack2x16float`).
    pub shader_f16: bool,
    /// `subgroups` (reserved for subgroup-reduction kernel variants).
    pub subgroups: bool,
    /// `timestamp-query` (used by benchmarks when present).
    pub timestamp_query: bool,
}

/// A device and queue plus what we know about the adapter they came from.
///
/// Cloning is cheap (wgpu handles are reference counted); all clones share the device-error
/// state, so a lost device is seen by every user.
#[derive(Clone, Debug)]
pub struct GpuContext {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    pub features: GpuFeatures,
    /// The limits the device was created with (what validation enforces).
    pub limits: wgpu::Limits,
    pub(crate) errors: Arc<ErrorSink>,
}

/// Device-level failures reported asynchronously by wgpu (device lost, errors outside any
/// error scope). They are stored here and returned by the next backend call.
#[derive(Debug, Default)]
pub(crate) struct ErrorSink {
    lost: Mutex<Option<String>>,
    pending: Mutex<Option<BackendError>>,
}

impl ErrorSink {
    /// The stored failure, if any: a lost device stays lost; other errors are reported once.
    pub(crate) fn check(&self) -> Result<(), BackendError> {
        if let Some(msg) = self.lost.lock().map(|g| g.clone()).unwrap_or(Some("poisoned lock".into())) {
            return Err(BackendError::DeviceLost(msg));
        }
        match self.pending.lock().ok().and_then(|mut g| g.take()) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    fn record(&self, e: BackendError) {
        if let Ok(mut g) = self.pending.lock() {
            g.get_or_insert(e);
        }
    }
}

/// Converts a wgpu error into ours. Validation and internal errors mean a bug or a device
/// in an unknown state; they are reported as a lost device so the caller re-creates it.
pub(crate) fn map_wgpu_error(e: &wgpu::Error, what: &str, bytes: u64) -> BackendError {
    match e {
        wgpu::Error::OutOfMemory { .. } => BackendError::OutOfMemory { what: what.to_string(), bytes },
        wgpu::Error::Validation { description, .. } | wgpu::Error::Internal { description, .. } => {
            BackendError::DeviceLost(format!("{what}: {description}"))
        }
    }
}

/// Runs `f` inside an error scope and returns the error it raised, if that is known now.
///
/// wgpu-core resolves the scope immediately, so natively every error is caught here. In the
/// browser the scope would resolve later, after we returned; there no scope is pushed, so
/// errors reach the uncaptured-error handler and are reported by the next backend call.
pub(crate) fn scoped<T>(device: &wgpu::Device, filter: wgpu::ErrorFilter, f: impl FnOnce() -> T) -> (T, Option<wgpu::Error>) {
    #[cfg(not(target_arch = "wasm32"))]
    {
        let scope = device.push_error_scope(filter);
        let value = f();
        use std::future::Future;
        use std::task::{Context, Poll, Waker};
        let mut pop = std::pin::pin!(scope.pop());
        let err = match pop.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(e) => e,
            Poll::Pending => None,
        };
        (value, err)
    }
    #[cfg(target_arch = "wasm32")]
    {
        let _ = (device, filter);
        (f(), None)
    }
}

impl GpuContext {
    /// Finds a high-performance adapter (Vulkan/Metal/DX12 natively, WebGPU in the browser)
    /// and creates a device on it.
    ///
    /// Errors: [`BackendError::NoAdapter`] when there is none (or the browser lacks WebGPU),
    /// [`BackendError::LimitsTooSmall`] when its limits cannot run our kernels.
    pub async fn new() -> Result<GpuContext, BackendError> {
        let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
        desc.backends = wgpu::Backends::PRIMARY;
        let instance = wgpu::Instance::new(desc);
        let adapter = instance
            .request_adapter(&wgpu::RequestAdapterOptions {
                power_preference: wgpu::PowerPreference::HighPerformance,
                force_fallback_adapter: false,
                compatible_surface: None,
                apply_limit_buckets: false,
            })
            .await
            .map_err(|e| BackendError::NoAdapter(e.to_string()))?;
        Self::from_adapter(&adapter).await
    }

    /// Blocking [`GpuContext::new`] for native code (CLI, tests, benchmarks).
    #[cfg(not(target_arch = "wasm32"))]
    pub fn new_blocking() -> Result<GpuContext, BackendError> {
        pollster::block_on(Self::new())
    }

    /// Creates a device on `adapter`, asking only for the limits the kernels need, raised to
    /// the adapter's storage-binding and buffer sizes (so large weights need fewer splits),
    /// and for the optional features the adapter has.
    pub async fn from_adapter(adapter: &wgpu::Adapter) -> Result<GpuContext, BackendError> {
        let have = adapter.limits();
        let mut need = wgpu::Limits::downlevel_defaults();
        // What the kernels use: 256 invocations and two 32x33 f32 tiles per workgroup,
        // up to 4 storage buffers per dispatch, one dynamic uniform + one dynamic storage.
        let checks: [(&'static str, u64, u64); 5] = [
            ("maxComputeInvocationsPerWorkgroup", have.max_compute_invocations_per_workgroup.into(), 256),
            ("maxComputeWorkgroupSizeX", have.max_compute_workgroup_size_x.into(), 256),
            ("maxComputeWorkgroupStorageSize", have.max_compute_workgroup_storage_size.into(), 8448),
            ("maxStorageBuffersPerShaderStage", have.max_storage_buffers_per_shader_stage.into(), 4),
            ("maxStorageBufferBindingSize", have.max_storage_buffer_binding_size, 1 << 20),
        ];
        for (limit, have, need) in checks {
            if have < need {
                return Err(BackendError::LimitsTooSmall { limit, have, need });
            }
        }
        need.max_compute_invocations_per_workgroup = 256;
        need.max_compute_workgroup_size_x = 256;
        need.max_compute_workgroup_storage_size = need.max_compute_workgroup_storage_size.max(8448);
        // Five for the fused RoPE/KV-store kernel where the adapter has them (WebGPU's
        // default is 8); with four it falls back to separate passes.
        need.max_storage_buffers_per_shader_stage = have.max_storage_buffers_per_shader_stage.min(8).max(4);
        need.max_storage_buffer_binding_size = have.max_storage_buffer_binding_size;
        need.max_buffer_size = have.max_buffer_size;
        need.max_compute_workgroups_per_dimension =
            have.max_compute_workgroups_per_dimension.min(need.max_compute_workgroups_per_dimension.max(65535));
        let need = need.using_alignment(have.clone());

        let af = adapter.features();
        let features = GpuFeatures {
            shader_f16: af.contains(wgpu::Features::SHADER_F16),
            subgroups: af.contains(wgpu::Features::SUBGROUP),
            timestamp_query: af.contains(wgpu::Features::TIMESTAMP_QUERY),
        };
        let mut required = wgpu::Features::empty();
        for (on, f) in [
            (features.shader_f16, wgpu::Features::SHADER_F16),
            (features.subgroups, wgpu::Features::SUBGROUP),
            (features.timestamp_query, wgpu::Features::TIMESTAMP_QUERY),
        ] {
            if on {
                required |= f;
            }
        }
        let (device, queue) = adapter
            .request_device(&wgpu::DeviceDescriptor {
                label: Some("hearth"),
                required_features: required,
                required_limits: need.clone(),
                experimental_features: wgpu::ExperimentalFeatures::disabled(),
                memory_hints: wgpu::MemoryHints::Performance,
                trace: wgpu::Trace::Off,
            })
            .await
            .map_err(|e| BackendError::NoAdapter(format!("request_device failed: {e}")))?;

        let errors = Arc::new(ErrorSink::default());
        {
            let errors = errors.clone();
            device.set_device_lost_callback(move |reason, msg| {
                if let Ok(mut g) = errors.lost.lock() {
                    g.get_or_insert(format!("{reason:?}: {msg}"));
                }
            });
        }
        {
            // Without a handler wgpu panics on an uncaptured error, which would kill the
            // page's engine; record it and return it from the next call instead.
            let errors = errors.clone();
            device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
                errors.record(map_wgpu_error(&e, "GPU error", 0));
            }));
        }
        Ok(GpuContext { device, queue, info: adapter.get_info(), features, limits: need, errors })
    }

    /// `"webgpu: llvmpipe (Vulkan)"`.
    pub fn describe(&self) -> String {
        format!("webgpu: {} ({:?})", self.info.name, self.info.backend)
    }
}
