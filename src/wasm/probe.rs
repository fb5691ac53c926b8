//! `probe_backend`: the timed probe `backend: "auto"` runs before choosing between WebGPU and
//! the CPU (`www/src/backend-choice.ts`). The work is [`crate::backend::probe`]'s; this file
//! only times it with the page's clock and answers JSON.

use super::errors::{install_panic_hook, js_error};
use crate::backend::probe::{Probe, ProbeShape};
use crate::backend::{Backend, BackendError};
use crate::quant::GgmlType;
use wasm_bindgen::prelude::*;

/// Steps timed at most (a probe must stay short whatever the budget).
const MAX_STEPS: usize = 200;
/// Steps timed at least (a median needs a few).
const MIN_STEPS: usize = 3;

/// `performance.now()` of this realm (a Window or a Worker), in ms.
pub(super) fn now() -> f64 {
    let perf = js_sys::Reflect::get(&js_sys::global(), &"performance".into()).ok();
    let f = perf.as_ref().and_then(|p| js_sys::Reflect::get(p, &"now".into()).ok()).and_then(|f| f.dyn_into::<js_sys::Function>().ok());
    match (perf, f) {
        (Some(p), Some(f)) => f.call0(&p).ok().and_then(|v| v.as_f64()).unwrap_or_else(js_sys::Date::now),
        _ => js_sys::Date::now(),
    }
}

/// One warm-up step, then steps until `budget_ms` has passed (between MIN_STEPS and MAX_STEPS);
/// returns the mean milliseconds of a timed step, the steps timed and the bytes one step reads.
/// A mean over the whole run, not a median of single steps: browsers coarsen `performance.now()`
/// (100 µs without cross-origin isolation), which small steps would round to 0.
async fn time_steps<B: Backend>(backend: B, shape: ProbeShape, budget_ms: f64) -> Result<(f64, usize, usize), BackendError> {
    let mut probe = Probe::new(backend, shape)?;
    probe.step().await?;
    let start = now();
    let mut steps = 0;
    while steps < MAX_STEPS && (steps < MIN_STEPS || now() - start < budget_ms) {
        probe.step().await?;
        steps += 1;
    }
    Ok(((now() - start) / steps as f64, steps, probe.bytes_per_step))
}

/// Times the probe on `backend` (`"cpu"`: this build's CPU backend, its thread pool included;
/// `"webgpu"`): each step is `products` matrix–vector products of `rows × cols` random `ty`
/// weights and one readback. Resolves to JSON `{backend, ms_per_step (mean), steps,
/// bytes_per_step}`; `BAD_REQUEST` for an unknown type or a shape out of range, `DEVICE_LOST`
/// when WebGPU is unavailable.
#[wasm_bindgen]
pub async fn probe_backend(backend: String, ty: String, rows: usize, cols: usize, products: usize, budget_ms: f64) -> Result<String, JsValue> {
    install_panic_hook();
    let ty = GgmlType::ALL.iter().copied().find(|t| t.name() == ty).ok_or_else(|| js_error("BAD_REQUEST", &format!("unknown block type {ty}")))?;
    if !(budget_ms.is_finite() && (0.0..=10_000.0).contains(&budget_ms)) {
        return Err(js_error("BAD_REQUEST", &format!("budget_ms {budget_ms}: expected 0..10000")));
    }
    let shape = ProbeShape { ty, rows, cols, products };
    let bad = |e: BackendError| match e {
        BackendError::Shape { .. } | BackendError::UnsupportedType { .. } | BackendError::Quant(_) => js_error("BAD_REQUEST", &e.to_string()),
        BackendError::NoAdapter(_) | BackendError::DeviceLost(_) => js_error("DEVICE_LOST", &e.to_string()),
        _ => js_error("INTERNAL", &e.to_string()),
    };
    let (ms, steps, bytes) = match backend.as_str() {
        "cpu" => time_steps(crate::backend::cpu::CpuBackend::new(), shape, budget_ms).await.map_err(bad)?,
        #[cfg(feature = "gpu")]
        "webgpu" => {
            let gpu = crate::backend::gpu::GpuBackend::new().await.map_err(|e| js_error("DEVICE_LOST", &format!("WebGPU unavailable: {e}")))?;
            time_steps(gpu, shape, budget_ms).await.map_err(bad)?
        }
        other => return Err(js_error("BAD_REQUEST", &format!("unknown or unavailable backend {other:?}"))),
    };
    Ok(serde_json::json!({ "backend": backend, "ms_per_step": ms, "steps": steps, "bytes_per_step": bytes }).to_string())
}
