//! The wasm-bindgen surface, and nothing else: a thin, async wrapper over
//! [`crate::engine`]. Errors cross as JS objects `{code, message}` (codes are the JS
//! `HearthError` codes). No logic lives here that native code lacks.

use crate::backend::cpu::CpuBackend;
use crate::backend::Backend;
use crate::engine::{Constraint, EngineError, FinishReason, GenerateParams, Generation, Loader, SamplerParams, Session};
use crate::model::ModelOptions;
use crate::template::ChatMessage;
use serde::Deserialize;
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use wasm_bindgen::prelude::*;

/// Builds the `{code, message}` object JS receives.
fn js_error(code: &str, message: &str) -> JsValue {
    let o = js_sys::Object::new();
    let _ = js_sys::Reflect::set(&o, &"code".into(), &code.into());
    let _ = js_sys::Reflect::set(&o, &"message".into(), &message.into());
    o.into()
}

/// The stable JS error code of an engine error ([`EngineError::code`]).
pub fn error_code(e: &EngineError) -> &'static str {
    e.code()
}

/// The last Rust panic's message (location included), kept by [`install_panic_hook`].
static LAST_PANIC: std::sync::Mutex<Option<String>> = std::sync::Mutex::new(None);

/// Installs the panic hook every export starts with: it logs the panic to the console
/// (`console_error_panic_hook`) and keeps its message for [`last_panic_message`], because
/// the trap that follows reaches JS as a bare `RuntimeError: unreachable`.
fn install_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        std::panic::set_hook(Box::new(|info| {
            // try_lock: a panic while the lock is held (it never is, outside this hook) must
            // not deadlock the hook.
            if let Ok(mut last) = LAST_PANIC.try_lock() {
                *last = Some(info.to_string());
            }
            console_error_panic_hook::hook(info);
        }));
    });
}

/// The message of the last Rust panic in this wasm instance (`"panicked at src/…: …"`), or
/// `undefined` if none happened. After a trap (`WebAssembly.RuntimeError`) JS reads it to
/// report `INTERNAL` with the panic's text; the instance itself must then be discarded
/// (a trap leaves Rust state, such as a held `RefCell` borrow, behind).
#[wasm_bindgen]
pub fn last_panic_message() -> Option<String> {
    LAST_PANIC.lock().unwrap_or_else(|e| e.into_inner()).clone()
}

fn to_js(e: EngineError) -> JsValue {
    js_error(error_code(&e), &e.to_string())
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Sampling {
    max_tokens: Option<usize>,
    temperature: Option<f32>,
    top_p: Option<f32>,
    top_k: Option<usize>,
    min_p: Option<f32>,
    repeat_penalty: Option<f32>,
    seed: Option<u64>,
    #[serde(default)]
    stop: Vec<String>,
    /// `{"json_schema": {…}} | {"regex": "…"} | {"lark": "…"}` (see `engine::Constraint`).
    constraint: Option<Constraint>,
}

#[derive(Deserialize)]
struct ChatRequest {
    messages: Vec<ChatMessage>,
    #[serde(flatten)]
    sampling: Sampling,
}

#[derive(Deserialize)]
struct CompletionRequest {
    prompt: String,
    #[serde(flatten)]
    sampling: Sampling,
}

impl Sampling {
    /// The request's parameters over the engine's defaults ([`GenerateParams::default`]),
    /// checked by the engine's one validation ([`GenerateParams::validate`]).
    fn params(&self) -> Result<GenerateParams, EngineError> {
        let g = GenerateParams::default();
        let d = g.sampler;
        let p = GenerateParams {
            max_tokens: self.max_tokens.unwrap_or(g.max_tokens),
            stop: self.stop.clone(),
            constraint: self.constraint.clone(),
            sampler: SamplerParams {
                temperature: self.temperature.unwrap_or(d.temperature),
                top_p: self.top_p.unwrap_or(d.top_p),
                top_k: self.top_k.unwrap_or(d.top_k),
                min_p: self.min_p.unwrap_or(d.min_p),
                repeat_penalty: self.repeat_penalty.unwrap_or(d.repeat_penalty),
                repeat_last_n: d.repeat_last_n,
                seed: self.seed.unwrap_or_else(|| (js_sys::Math::random() * 9.0e15) as u64),
            },
        };
        p.validate()?;
        Ok(p)
    }
}

fn parse<T: for<'de> Deserialize<'de>>(json: &str) -> Result<T, EngineError> {
    serde_json::from_str(json).map_err(|e| EngineError::BadRequest(format!("request: {e}")))
}

/// One engine, generic over the backend, behind the type-erased [`WasmEngine`].
enum State<B: Backend + 'static> {
    Loading(Loader<B>),
    Ready { session: Session<B>, generation: Option<Generation<B>> },
    Failed,
}

trait Engine {
    fn set_total_size(&mut self, total: u64) -> Result<(), EngineError>;
    fn feed(&mut self, chunk: &[u8]) -> Result<(), EngineError>;
    fn header_done(&self) -> bool;
    fn finish_load(&mut self) -> Result<String, EngineError>;
    fn start(&mut self, prompt: Prompt) -> Result<usize, EngineError>;
    fn step(&mut self) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<String, EngineError>> + '_>>;
    fn cancel(&mut self);
    fn count_tokens(&self, text: &str) -> Result<usize, EngineError>;
    fn render_chat(&self, messages: &[ChatMessage]) -> Result<String, EngineError>;
    fn reset(&mut self);
    fn chat_prefix(&self, messages: &[ChatMessage], n_messages: usize) -> Result<Vec<u32>, EngineError>;
    fn holds_prefix(&self, tokens: &[u32]) -> bool;
    fn export_prefix(&mut self, tokens: Vec<u32>, model_id: String) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Vec<u8>, EngineError>> + '_>>;
    fn restore_prefix(&mut self, bytes: &[u8], model_id: &str) -> Result<usize, EngineError>;
    fn prefill_prefix(&mut self, tokens: &[u32]) -> Result<usize, EngineError>;
}

enum Prompt {
    Chat(Vec<ChatMessage>, GenerateParams),
    Text(String, GenerateParams),
}

fn not_ready() -> EngineError {
    EngineError::BadRequest("the model is not loaded".into())
}

impl<B: Backend + 'static> Engine for State<B> {
    fn set_total_size(&mut self, total: u64) -> Result<(), EngineError> {
        match self {
            State::Loading(l) => l.set_total_size(total),
            _ => Err(EngineError::BadRequest("set_total_size after the load finished".into())),
        }
    }

    fn feed(&mut self, chunk: &[u8]) -> Result<(), EngineError> {
        match self {
            State::Loading(l) => l.feed(chunk).inspect_err(|_| *self = State::Failed),
            _ => Err(EngineError::BadRequest("feed after the load finished".into())),
        }
    }

    fn header_done(&self) -> bool {
        matches!(self, State::Loading(l) if l.header().is_some()) || matches!(self, State::Ready { .. })
    }

    fn finish_load(&mut self) -> Result<String, EngineError> {
        let State::Loading(loader) = std::mem::replace(self, State::Failed) else {
            return Err(EngineError::BadRequest("finish_load called twice".into()));
        };
        let session = loader.finish()?;
        let c = session.config();
        let info = serde_json::json!({
            "arch": c.arch, "name": c.name, "n_ctx": session.n_ctx(), "n_vocab": c.n_vocab,
            "has_chat_template": session.template().is_ok(), "backend": session.backend().describe(),
        });
        *self = State::Ready { session, generation: None };
        Ok(info.to_string())
    }

    fn start(&mut self, prompt: Prompt) -> Result<usize, EngineError> {
        let State::Ready { session, generation } = self else { return Err(not_ready()) };
        let (tokens, params) = match prompt {
            Prompt::Chat(m, p) => (session.chat_tokens(&m)?, p),
            Prompt::Text(t, p) => (session.text_tokens(&t)?, p),
        };
        *generation = None;
        *generation = Some(session.start(&tokens, &params)?);
        Ok(tokens.len())
    }

    fn step(&mut self) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<String, EngineError>> + '_>> {
        Box::pin(async move {
            let State::Ready { session, generation } = self else { return Err(not_ready()) };
            let g = generation.as_mut().ok_or_else(|| EngineError::BadRequest("no generation in progress".into()))?;
            let delta = session.step(g).await?;
            let done = g.finish_reason().is_some();
            let mut out = serde_json::json!({ "delta": delta.unwrap_or_default(), "done": done });
            if done {
                let u = g.usage();
                out["finish_reason"] = g.finish_reason().unwrap_or(FinishReason::Stop).as_str().into();
                out["usage"] = serde_json::json!({
                    "prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens,
                    "cached_tokens": u.cached_tokens, "total_tokens": u.prompt_tokens + u.completion_tokens,
                });
                *generation = None;
            }
            Ok(out.to_string())
        })
    }

    fn cancel(&mut self) {
        if let State::Ready { generation: Some(g), .. } = self {
            g.cancel();
        }
    }

    fn count_tokens(&self, text: &str) -> Result<usize, EngineError> {
        let State::Ready { session, .. } = self else { return Err(not_ready()) };
        Ok(session.tokenizer().encode(text, false, false)?.len())
    }

    fn render_chat(&self, messages: &[ChatMessage]) -> Result<String, EngineError> {
        let State::Ready { session, .. } = self else { return Err(not_ready()) };
        session.render_chat(messages)
    }

    fn reset(&mut self) {
        if let State::Ready { session, generation } = self {
            *generation = None;
            session.reset();
        }
    }

    fn chat_prefix(&self, messages: &[ChatMessage], n_messages: usize) -> Result<Vec<u32>, EngineError> {
        let State::Ready { session, .. } = self else { return Err(not_ready()) };
        session.chat_prefix_tokens(messages, n_messages)
    }

    fn holds_prefix(&self, tokens: &[u32]) -> bool {
        matches!(self, State::Ready { session, .. } if session.holds_prefix(tokens))
    }

    fn export_prefix(&mut self, tokens: Vec<u32>, model_id: String) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Vec<u8>, EngineError>> + '_>> {
        Box::pin(async move {
            let State::Ready { session, generation } = self else { return Err(not_ready()) };
            if generation.is_some() {
                return Err(EngineError::BadRequest("export_prefix during a generation".into()));
            }
            session.export_prefix(&tokens, &model_id).await
        })
    }

    fn restore_prefix(&mut self, bytes: &[u8], model_id: &str) -> Result<usize, EngineError> {
        let State::Ready { session, generation } = self else { return Err(not_ready()) };
        *generation = None;
        session.restore_prefix(bytes, model_id)
    }

    fn prefill_prefix(&mut self, tokens: &[u32]) -> Result<usize, EngineError> {
        let State::Ready { session, generation } = self else { return Err(not_ready()) };
        *generation = None;
        session.prefill_prefix(tokens)
    }
}

/// Starts the CPU backend's thread pool (the threaded build only): `initThreadPool(n)` in JS
/// spawns `n` Web Workers sharing this module's memory and resolves once they are ready. Call it
/// once, before the first engine is created and from a Worker (the calling thread blocks while
/// the pool works, which a page's main thread may not do); a second call rejects.
#[cfg(feature = "threads")]
pub use wasm_bindgen_rayon::init_thread_pool;

/// Threads the CPU backend computes on: the pool's size in the threaded build once
/// `initThreadPool` resolved, 1 in the baseline build.
#[wasm_bindgen]
pub fn cpu_threads() -> usize {
    crate::backend::cpu::threads()
}

/// A model loaded into this page or worker.
#[wasm_bindgen]
pub struct WasmEngine {
    inner: Rc<RefCell<Box<dyn Engine>>>,
    cancel: Rc<Cell<bool>>,
}

#[wasm_bindgen]
impl WasmEngine {
    /// Creates an engine on `"webgpu"` or `"cpu"` with a KV cache of `n_ctx` tokens.
    pub async fn create(backend: String, n_ctx: usize) -> Result<WasmEngine, JsValue> {
        install_panic_hook();
        let opts = ModelOptions { n_ctx: n_ctx.max(16), ..Default::default() };
        let engine: Box<dyn Engine> = match backend.as_str() {
            "cpu" => Box::new(State::Loading(Loader::new(CpuBackend::new(), opts))),
            #[cfg(feature = "gpu")]
            "webgpu" => {
                let b = crate::backend::gpu::GpuBackend::new()
                    .await
                    .map_err(|e| js_error("DEVICE_LOST", &format!("WebGPU unavailable: {e}")))?;
                Box::new(State::Loading(Loader::new(b, opts)))
            }
            other => return Err(js_error("BAD_REQUEST", &format!("unknown or unavailable backend {other:?}"))),
        };
        Ok(WasmEngine { inner: Rc::new(RefCell::new(engine)), cancel: Rc::new(Cell::new(false)) })
    }

    fn with<T>(&self, f: impl FnOnce(&mut dyn Engine) -> Result<T, EngineError>) -> Result<T, JsValue> {
        let mut e = self.inner.try_borrow_mut().map_err(|_| js_error("BAD_REQUEST", "the engine is busy with another call"))?;
        f(e.as_mut()).map_err(to_js)
    }

    /// Declares the GGUF file's total size in bytes (the HTTP `Content-Length`, or the size
    /// the store recorded) before the first `feed`: every tensor is then checked against it
    /// as soon as the header is parsed (`INVALID_MODEL` before the rest downloads), and the
    /// header may not claim more bytes than the file has. Optional; `BAD_REQUEST` for a size
    /// that is not a whole number of bytes below 2^53, or after bytes were fed.
    pub fn set_total_size(&self, bytes: f64) -> Result<(), JsValue> {
        if !(bytes.is_finite() && bytes >= 0.0 && bytes.fract() == 0.0 && bytes <= 9_007_199_254_740_992.0) {
            return Err(js_error("BAD_REQUEST", &format!("total size {bytes} is not a byte count")));
        }
        self.with(|e| e.set_total_size(bytes as u64))
    }

    /// Feeds the next bytes of the GGUF file.
    pub fn feed(&self, chunk: &[u8]) -> Result<(), JsValue> {
        self.with(|e| {
            test_hooks::panic_point("feed");
            e.feed(chunk)
        })
    }

    /// Whether the GGUF header (architecture, tokenizer, template) has been accepted.
    pub fn header_done(&self) -> bool {
        self.inner.try_borrow().map(|e| e.header_done()).unwrap_or(false)
    }

    /// Completes the load; returns model info as JSON.
    pub fn finish_load(&self) -> Result<String, JsValue> {
        self.with(|e| e.finish_load())
    }

    /// Starts a chat completion (`{messages, max_tokens, temperature, …}` as JSON).
    pub fn start_chat(&self, request_json: &str) -> Result<usize, JsValue> {
        self.cancel.set(false);
        self.with(|e| {
            let r: ChatRequest = parse(request_json)?;
            let p = r.sampling.params()?;
            e.start(Prompt::Chat(r.messages, p))
        })
    }

    /// Starts a raw completion (`{prompt, …}` as JSON).
    pub fn start_completion(&self, request_json: &str) -> Result<usize, JsValue> {
        self.cancel.set(false);
        self.with(|e| {
            let r: CompletionRequest = parse(request_json)?;
            let p = r.sampling.params()?;
            e.start(Prompt::Text(r.prompt, p))
        })
    }

    /// Generates one token; resolves to `{delta, done, finish_reason?, usage?}` as JSON.
    pub async fn step(&self) -> Result<String, JsValue> {
        let inner = self.inner.clone();
        let mut e = inner.try_borrow_mut().map_err(|_| js_error("BAD_REQUEST", "the engine is busy with another call"))?;
        if self.cancel.replace(false) {
            e.cancel();
        }
        test_hooks::panic_point("step");
        e.step().await.map_err(to_js)
    }

    /// Ends the current generation at the next step (`finish_reason: "cancelled"`).
    pub fn cancel(&self) {
        self.cancel.set(true);
    }

    /// Tokens in `text` (no special tokens added).
    pub fn count_tokens(&self, text: &str) -> Result<usize, JsValue> {
        self.with(|e| {
            test_hooks::panic_point("count_tokens");
            e.count_tokens(text)
        })
    }

    /// The chat template applied to `messages_json` (with the generation prompt).
    pub fn render_chat(&self, messages_json: &str) -> Result<String, JsValue> {
        self.with(|e| {
            let m: Vec<ChatMessage> = parse(messages_json)?;
            e.render_chat(&m)
        })
    }

    /// Forgets the KV cache.
    pub fn reset(&self) -> Result<(), JsValue> {
        self.with(|e| {
            e.reset();
            Ok(())
        })
    }

    /// The tokens of a chat's reusable prefix, its first `n_messages` messages
    /// (`Session::chat_prefix_tokens`): what the persisted prompt cache is keyed by.
    pub fn prompt_prefix(&self, messages_json: &str, n_messages: usize) -> Result<Vec<u32>, JsValue> {
        self.with(|e| {
            let m: Vec<ChatMessage> = parse(messages_json)?;
            e.chat_prefix(&m, n_messages)
        })
    }

    /// Whether the KV cache holds these first tokens now (a restore would change nothing).
    pub fn holds_prefix(&self, tokens: &[u32]) -> bool {
        self.inner.try_borrow().map(|e| e.holds_prefix(tokens)).unwrap_or(false)
    }

    /// A KV snapshot of `tokens` (which the cache must hold first) for the model file
    /// `model_id` (its sha256): `engine/kv_snapshot.rs` has the format.
    pub async fn export_prefix(&self, tokens: Vec<u32>, model_id: String) -> Result<Vec<u8>, JsValue> {
        let inner = self.inner.clone();
        let mut e = inner.try_borrow_mut().map_err(|_| js_error("BAD_REQUEST", "the engine is busy with another call"))?;
        e.export_prefix(tokens, model_id).await.map_err(to_js)
    }

    /// Restores a snapshot from `export_prefix`; returns its token count. A snapshot of another
    /// model, backend or context, or a corrupted one, is refused (`BAD_REQUEST`) before
    /// anything is written.
    pub fn restore_prefix(&self, bytes: &[u8], model_id: &str) -> Result<usize, JsValue> {
        self.with(|e| e.restore_prefix(bytes, model_id))
    }

    /// Prefills `tokens` alone (reusing what the KV cache shares with them): a prefix that will
    /// be exported is computed in the batches a restore of it gives, so a request's output is
    /// the same whether its prefix came from the store or not. Returns how many of the tokens
    /// the cache already held.
    pub fn prefill_prefix(&self, tokens: &[u32]) -> Result<usize, JsValue> {
        self.with(|e| e.prefill_prefix(tokens))
    }
}

/// Test hooks (browser tests only; the package never calls them): a real Rust panic inside an
/// engine call, with the engine's state borrowed, as a bug would panic. Proves that a trap is
/// survivable (`tests/browser/failures.test.mjs`).
mod test_hooks {
    use std::cell::RefCell;
    use wasm_bindgen::prelude::*;

    thread_local! {
        static ARMED: RefCell<Option<String>> = const { RefCell::new(None) };
    }

    /// Test-only: the next engine call `method` (`"feed"`, `"step"` or `"count_tokens"`) of this
    /// wasm instance panics. Not part of the API.
    #[wasm_bindgen]
    pub fn __test_arm_panic(method: String) {
        ARMED.with(|a| *a.borrow_mut() = Some(method));
    }

    /// Panics when the armed method is `method` (once).
    pub(super) fn panic_point(method: &str) {
        let hit = ARMED.with(|a| {
            let mut a = a.borrow_mut();
            let hit = a.as_deref() == Some(method);
            if hit {
                *a = None;
            }
            hit
        });
        if hit {
            panic!("hearth test panic in {method} (armed by __test_arm_panic)");
        }
    }
}

/// Checks the CPU integer kernels this wasm build selected (SIMD128) against their scalar
/// references on random rows (`kernels::check_q8_kernels`), and the activation quantizer
/// (`kernels::check_quantize`); returns JSON
/// `[{ty, kernel, cols, error, tolerance, ok}]`.
#[wasm_bindgen]
pub fn cpu_kernel_check(seed: u32) -> Result<String, JsValue> {
    install_panic_hook();
    let mut checks = crate::backend::cpu::kernels::check_q8_kernels(u64::from(seed));
    checks.push(crate::backend::cpu::kernels::check_quantize(u64::from(seed)));
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
    let mut cpu = CpuBackend::with_f32_activations(); // the kernels take f32 activations
    let checks = crate::backend::gpu::selfcheck::compare(&mut gpu, &mut cpu, u64::from(seed))
        .await
        .map_err(|e| js_error("INTERNAL", &e.to_string()))?;
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
