//! Development exports, compiled into both wasm builds but not part of the API (the package's
//! TypeScript never calls them): kernel checks and a matrix-product timer for the browser
//! tests and benches, and a panic trigger for the trap-recovery tests. They are here, apart
//! from the surface, rather than behind a cargo feature: the tests that call them must run
//! against the very builds that ship (docs/decisions.md, "wasm development exports").

use super::errors::{install_panic_hook, js_error};
use crate::backend::cpu::CpuBackend;
use crate::backend::Backend;
use wasm_bindgen::prelude::*;

/// Test hooks (browser tests only; the package never calls them): a real Rust panic inside an
/// engine call, with the engine's state borrowed, as a bug would panic. Proves that a trap is
/// survivable (`tests/browser/failures.test.mjs`).
pub(super) mod test_hooks {
    use std::cell::RefCell;
    use wasm_bindgen::prelude::*;

    thread_local! {
        static ARMED: RefCell<Option<String>> = const { RefCell::new(None) };
    }

    /// Test-only: the next engine call `method` (`"feed"`, `"step"` or `"count_tokens"`) of this
    /// wasm instance panics; `"pool:feed"` or `"pool:step"`: that call first runs a parallel job
    /// whose task panics on a thread of the threaded build's pool (a Web Worker) while the
    /// engine's thread waits for it, as a panic inside a parallel kernel would (the baseline
    /// build has no pool: there it panics on the engine's thread). Not part of the API.
    #[wasm_bindgen]
    pub fn __test_arm_panic(method: String) {
        ARMED.with(|a| *a.borrow_mut() = Some(method));
    }

    /// Whether `prefix` + `method` is armed; disarms it.
    fn take(prefix: &str, method: &str) -> bool {
        ARMED.with(|a| {
            let mut a = a.borrow_mut();
            let hit = a.as_deref().and_then(|a| a.strip_prefix(prefix)) == Some(method);
            if hit {
                *a = None;
            }
            hit
        })
    }

    /// Panics when the armed method is `method` (once).
    pub(in crate::wasm) fn panic_point(method: &str) {
        if take("", method) {
            panic!("hearth test panic in {method} (armed by __test_arm_panic)");
        }
    }

    /// With `"pool:{method}"` armed (once): a rayon job over the pool whose tasks panic where
    /// they run on a pool thread. Called from outside the pool, rayon runs every task on the
    /// pool's threads while this thread blocks, so the panic is always a pool thread's.
    pub(in crate::wasm) fn pool_panic_point(method: &str) {
        if !take("pool:", method) {
            return;
        }
        #[cfg(feature = "threads")]
        {
            use rayon::prelude::*;
            (0..rayon::current_num_threads().max(2)).into_par_iter().for_each(|i| {
                if rayon::current_thread_index().is_some() {
                    panic!("hearth test panic in a pool thread during {method} (task {i}; armed by __test_arm_panic)");
                }
            });
        }
        #[cfg(not(feature = "threads"))]
        panic!("hearth test panic in pool:{method} (armed by __test_arm_panic; this build has no thread pool)");
    }
}

/// Checks the CPU integer kernels this wasm build selected (SIMD128) against their scalar
/// references on random rows (`kernels::check_q8_kernels`), the activation quantizer
/// (`kernels::check_quantize`) and the attention kernels (`kernels::check_attention`: against
/// the scalar reference, and a query alone against the same query in a tile); returns JSON
/// `[{ty, kernel, cols, error, tolerance, ok}]`.
#[wasm_bindgen]
pub fn cpu_kernel_check(seed: u32) -> Result<String, JsValue> {
    install_panic_hook();
    let mut checks = crate::backend::cpu::kernels::check_q8_kernels(u64::from(seed));
    checks.push(crate::backend::cpu::kernels::check_quantize(u64::from(seed)));
    checks.extend(crate::backend::cpu::kernels::check_attention(u64::from(seed)));
    serde_json::to_string(&checks).map_err(|e| js_error("INTERNAL", &e.to_string()))
}

/// Runs every WebGPU kernel against the CPU backend on random inputs at odd sizes (the
/// checks `cargo test` runs natively, `backend::gpu::selfcheck`); resolves to JSON
/// `[{name, error, tolerance, ok}]`. Rejects with `DEVICE_LOST` when there is no WebGPU.
#[cfg(feature = "gpu")]
#[wasm_bindgen]
pub async fn gpu_selfcheck(seed: u32) -> Result<String, JsValue> {
    install_panic_hook();
    let mut gpu = crate::backend::gpu::GpuBackend::new()
        .await
        .map_err(|e| js_error("DEVICE_LOST", &format!("WebGPU unavailable: {e}")))?;
    let mut cpu = CpuBackend::with_f32_activations(); // the oracle: f32 activations
    let act8 = gpu.int8_types(); // these formats' products are checked at the 8-bit tolerance
    let mut checks = crate::backend::gpu::selfcheck::compare(&mut gpu, &mut cpu, u64::from(seed), &act8)
        .await
        .map_err(|e| js_error("INTERNAL", &e.to_string()))?;
    // The integer products (8-bit activations, dot4I8Packed), opt-in: checked as well, on the
    // same device, named "int8 …".
    let opts = crate::backend::gpu::GpuOptions { int8: Some(true), ..Default::default() };
    let mut int8 = crate::backend::gpu::GpuBackend::with_options(gpu.context().clone(), opts)
        .map_err(|e| js_error("DEVICE_LOST", &format!("WebGPU unavailable: {e}")))?;
    let act8 = int8.int8_types();
    let more = crate::backend::gpu::selfcheck::compare(&mut int8, &mut cpu, u64::from(seed), &act8)
        .await
        .map_err(|e| js_error("INTERNAL", &e.to_string()))?;
    checks.extend(more.into_iter().filter(|c| c.name.starts_with("matmul")).map(|mut c| {
        c.name = format!("int8 {}", c.name);
        c
    }));
    serde_json::to_string(&checks).map_err(|e| js_error("INTERNAL", &e.to_string()))
}

/// One CPU matrix product on random weights, for timing kernels in the browser
/// (`tests/browser/bench_wasm_kernels.mjs`): `new CpuMatmulBench("Q4_1", rows, cols, n)`, then
/// `run(reps)` does the product `reps` times (the caller times it) and returns the sum of the
/// output. Bad arguments throw `BAD_REQUEST`.
#[wasm_bindgen]
pub struct CpuMatmulBench {
    backend: CpuBackend,
    w: <CpuBackend as Backend>::Weight,
    x: <CpuBackend as Backend>::Tensor,
    out: <CpuBackend as Backend>::Tensor,
    out_len: usize,
    cols: usize,
    n: usize,
}

#[wasm_bindgen]
impl CpuMatmulBench {
    #[wasm_bindgen(constructor)]
    pub fn new(ty: &str, rows: usize, cols: usize, n: usize) -> Result<CpuMatmulBench, JsValue> {
        install_panic_hook();
        use crate::quant::synth::{random_weight, Rng};
        let bad = |m: String| js_error("BAD_REQUEST", &m);
        let ty = crate::quant::GgmlType::ALL.iter().copied().find(|t| t.name() == ty).ok_or_else(|| bad(format!("unknown type {ty}")))?;
        // At most 16M weights and 4M activations or outputs (64 MB of f32 in wasm memory).
        let within = |a: usize, b: usize, max: usize| a.checked_mul(b).is_some_and(|p| p <= max);
        if rows == 0 || n == 0 || !within(rows, cols, 1 << 24) || !within(n, cols, 1 << 22) || !within(n, rows, 1 << 22) {
            return Err(bad(format!("rows {rows} × cols {cols} × n {n}: out of range")));
        }
        let mut rng = Rng(0x5eed);
        let bytes = random_weight(&mut rng, ty, rows, cols).ok_or_else(|| bad(format!("no random {ty:?} weight of {cols} columns")))?;
        let mut backend = CpuBackend::new();
        let desc = crate::backend::WeightDesc { name: "bench".into(), ty, dims: vec![cols, rows] };
        let err = |e: crate::backend::BackendError| bad(e.to_string());
        let w = backend.upload(&desc, &bytes).map_err(err)?;
        let x = backend.alloc(n * cols).map_err(err)?;
        let xs: Vec<f32> = (0..n * cols).map(|_| rng.f()).collect();
        backend.write(&x, 0, &xs).map_err(err)?;
        let out = backend.alloc(n * rows).map_err(err)?;
        Ok(CpuMatmulBench { backend, w, x, out, out_len: n * rows, cols, n })
    }

    /// The largest difference between the batched product (tile kernels, output written in place
    /// by the pool's tasks) and the same tokens one at a time (decode kernels), relative to the
    /// largest output.
    pub fn batch_vs_single(&mut self) -> Result<f64, JsValue> {
        let err = |e: crate::backend::BackendError| js_error("INTERNAL", &e.to_string());
        let b = &mut self.backend;
        b.matmul(&self.w, &self.x, &self.out, self.n).map_err(err)?;
        let batched = b.read(&self.out, 0, self.out_len).map_err(err)?;
        let (rows, cols) = (self.out_len / self.n, self.cols);
        let (x1, out1) = (b.alloc(cols).map_err(err)?, b.alloc(rows).map_err(err)?);
        let (mut diff, mut scale) = (0.0f64, 1e-30f64);
        for t in 0..self.n {
            let xt = b.read(&self.x, t * cols, cols).map_err(err)?;
            b.write(&x1, 0, &xt).map_err(err)?;
            b.matmul(&self.w, &x1, &out1, 1).map_err(err)?;
            for (one, many) in b.read(&out1, 0, rows).map_err(err)?.iter().zip(&batched[t * rows..(t + 1) * rows]) {
                diff = diff.max(f64::from((one - many).abs()));
                scale = scale.max(f64::from(one.abs()));
            }
        }
        Ok(diff / scale)
    }

    /// Runs the product `reps` times; returns the sum of the last output.
    pub fn run(&mut self, reps: usize) -> Result<f64, JsValue> {
        let err = |e: crate::backend::BackendError| js_error("INTERNAL", &e.to_string());
        for _ in 0..reps {
            self.backend
                .matmul(&self.w, &self.x, &self.out, self.n)
                .map_err(err)?;
        }
        Ok(self
            .backend
            .read(&self.out, 0, self.out_len)
            .map_err(err)?
            .iter()
            .map(|&v| f64::from(v))
            .sum())
    }
}
