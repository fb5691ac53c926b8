//! The wasm-bindgen surface, and nothing else: each export parses its request
//! ([`protocol`]), calls the engine ([`state`] over [`crate::engine`]) and serializes the
//! answer. Errors cross as JS objects `{code, message}` ([`errors`]; the codes are the JS
//! `HearthError` codes). No logic lives here that native code lacks. Development exports
//! (kernel checks, benches, test hooks) are in [`dev`].

mod alloc;
mod dev;
mod errors;
mod probe;
pub mod protocol;
mod state;

use crate::backend::cpu::CpuBackend;
use crate::engine::Loader;
use crate::model::ModelOptions;
use crate::template::ChatMessage;
use dev::test_hooks;
use errors::{answer, install_panic_hook, js_error, to_js};
pub use errors::last_panic_message;
use protocol::{parse, parse_request, ChatRequest, CompletionRequest};
use state::{Engine, Prompt, State};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use wasm_bindgen::prelude::*;

/// Large zeroed allocations (the tensors, the KV cache) on fresh pages, resident only once
/// written ([`alloc`]).
#[global_allocator]
static ALLOCATOR: alloc::Allocator = alloc::Allocator::new();

/// Starts the CPU backend's thread pool (the threaded build only): `initThreadPool(n)` in JS
/// spawns `n` Web Workers sharing this module's memory and resolves once they are ready. Call it
/// once, before the first engine is created and from a Worker (the calling thread blocks while
/// the pool works, which a page's main thread may not do); a second call rejects.
#[cfg(feature = "threads")]
pub use wasm_bindgen_rayon::init_thread_pool;

/// What each pool thread throws to leave rayon's loop for good ([`stop_thread_pool`]); the
/// pool's Worker helper (`scripts/rayon_worker_helpers.js`) recognises it and closes its Worker.
#[cfg(feature = "threads")]
const POOL_EXIT: &str = "hearth: thread pool stopped";

/// Ends the threaded build's pool threads: each throws [`POOL_EXIT`] out of rayon's loop, so
/// its Worker's script returns and the Worker closes itself. The last call into an instance,
/// made by the engine Worker at `unload()` before the page terminates it: a pool Worker blocked
/// in rayon's wait is still running script, and Chromium gives a Worker that runs script 2 s
/// before it ends it by force, keeping the whole shared memory resident that long. Nothing may
/// use rayon in this instance afterwards (it would wait forever for the threads).
#[cfg(feature = "threads")]
#[wasm_bindgen(js_name = stopThreadPool)]
pub fn stop_thread_pool() {
    rayon::spawn_broadcast(|_| wasm_bindgen::throw_str(POOL_EXIT));
}

/// Threads the CPU backend computes on: the pool's size in the threaded build once
/// `initThreadPool` resolved, 1 in the baseline build.
#[wasm_bindgen]
pub fn cpu_threads() -> usize {
    crate::backend::cpu::threads()
}

/// A seed for a request without one (JS's `Math.random`: wasm has no other entropy here).
fn random_seed() -> u64 {
    (js_sys::Math::random() * 9.0e15) as u64
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

    fn with<T>(&self, f: impl FnOnce(&mut dyn Engine) -> Result<T, crate::engine::EngineError>) -> Result<T, JsValue> {
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
            test_hooks::pool_panic_point("feed");
            e.feed(chunk)
        })
    }

    /// Ends the current part of a split model (`gguf-split`) and starts the next: the part must
    /// be complete and the first part must declare more parts (`Loader::next_part`). Call
    /// `set_total_size` again for the new part before feeding it.
    pub fn next_part(&self) -> Result<(), JsValue> {
        self.with(|e| e.next_part())
    }

    /// Whether the GGUF header (architecture, tokenizer, template) has been accepted.
    pub fn header_done(&self) -> bool {
        self.inner.try_borrow().map(|e| e.header_done()).unwrap_or(false)
    }

    /// Completes the load; returns model info as JSON ([`protocol::ModelInfo`]).
    pub fn finish_load(&self) -> Result<String, JsValue> {
        answer(&self.with(|e| e.finish_load())?)
    }

    /// Starts a chat completion (JSON [`protocol::ChatRequest`]: `{messages, max_tokens,
    /// temperature, …}`); returns the prompt's token count.
    pub fn start_chat(&self, request_json: &str) -> Result<usize, JsValue> {
        self.cancel.set(false);
        self.with(|e| {
            let r: ChatRequest = parse_request(request_json)?;
            let p = r.sampling.params(random_seed)?;
            e.start(Prompt::Chat(r.messages, r.assistant_prefix, p))
        })
    }

    /// Starts a raw completion (JSON [`protocol::CompletionRequest`]: `{prompt, …}`); returns
    /// the prompt's token count.
    pub fn start_completion(&self, request_json: &str) -> Result<usize, JsValue> {
        self.cancel.set(false);
        self.with(|e| {
            let r: CompletionRequest = parse_request(request_json)?;
            let p = r.sampling.params(random_seed)?;
            e.start(Prompt::Text(r.prompt, p))
        })
    }

    /// Generates one token; resolves to JSON [`protocol::Step`]
    /// (`{delta, done, finish_reason?, usage?}`).
    pub async fn step(&self) -> Result<String, JsValue> {
        let inner = self.inner.clone();
        let mut e = inner.try_borrow_mut().map_err(|_| js_error("BAD_REQUEST", "the engine is busy with another call"))?;
        if self.cancel.replace(false) {
            e.cancel();
        }
        test_hooks::panic_point("step");
        test_hooks::pool_panic_point("step");
        answer(&e.step().await.map_err(to_js)?)
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

    /// The chat template applied to `messages_json` (a JSON array of `{role, content}`, with
    /// the generation prompt).
    pub fn render_chat(&self, messages_json: &str) -> Result<String, JsValue> {
        self.with(|e| {
            let m: Vec<ChatMessage> = parse(messages_json)?;
            e.render_chat(&m)
        })
    }

    /// Builds the vocabulary's tables for constrained decoding now (once per model; see
    /// `Session::prepare_constraints`); returns the milliseconds spent (0 when already built).
    pub fn prepare_constraints(&self) -> Result<f64, JsValue> {
        self.with(|e| e.prepare_constraints())
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

    /// Tunes the WebGPU decode matvec's launch shape for the loaded model on this adapter
    /// (`backend::gpu::tune`): `cached_json` holds earlier choices by key (`{}` or empty: none),
    /// `force` tunes a software adapter too, `budget_ms` bounds the timing (0: the default,
    /// 250 ms). Resolves to the report JSON (`{adapter, skipped, entries: [[key, entry]], ms}`);
    /// `BAD_REQUEST` on a CPU engine, before the load finished or during a generation.
    pub async fn tune_gpu(&self, cached_json: String, force: bool, budget_ms: f64) -> Result<String, JsValue> {
        if !(budget_ms.is_finite() && (0.0..=10_000.0).contains(&budget_ms)) {
            return Err(js_error("BAD_REQUEST", &format!("budget_ms {budget_ms}: expected 0..10000")));
        }
        let inner = self.inner.clone();
        let mut e = inner.try_borrow_mut().map_err(|_| js_error("BAD_REQUEST", "the engine is busy with another call"))?;
        e.tune_gpu(state::TuneArgs { cached_json, force, budget_ms, now: probe::now }).await.map_err(to_js)
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
