//! One engine behind the exports: loading, then ready (a session and at most one generation in
//! progress), generic over the backend and type-erased as [`Engine`] so that
//! [`super::WasmEngine`] holds either backend.

use super::protocol::{ModelInfo, Step};
use crate::backend::Backend;
use crate::engine::{EngineError, GenerateParams, Generation, Loader, Session};
use crate::template::ChatMessage;
use std::future::Future;
use std::pin::Pin;

/// The engine's state over backend `B`.
pub(super) enum State<B: Backend + 'static> {
    Loading(Loader<B>),
    Ready { session: Session<B>, generation: Option<Generation<B>> },
    Failed,
}

/// What a generation starts from.
pub(super) enum Prompt {
    /// Messages, the start of the reply (`assistant_prefix`, often empty), parameters.
    Chat(Vec<ChatMessage>, String, GenerateParams),
    Text(String, GenerateParams),
}

/// [`State`] with the backend erased; each method fails with `BAD_REQUEST` when called in
/// the wrong state.
pub(super) trait Engine {
    fn set_total_size(&mut self, total: u64) -> Result<(), EngineError>;
    fn feed(&mut self, chunk: &[u8]) -> Result<(), EngineError>;
    fn next_part(&mut self) -> Result<(), EngineError>;
    fn header_done(&self) -> bool;
    fn finish_load(&mut self) -> Result<ModelInfo, EngineError>;
    fn start(&mut self, prompt: Prompt) -> Result<usize, EngineError>;
    fn step(&mut self) -> Pin<Box<dyn Future<Output = Result<Step, EngineError>> + '_>>;
    fn cancel(&mut self);
    fn count_tokens(&self, text: &str) -> Result<usize, EngineError>;
    fn render_chat(&self, messages: &[ChatMessage]) -> Result<String, EngineError>;
    fn reset(&mut self);
    fn prepare_constraints(&mut self) -> Result<f64, EngineError>;
    fn chat_prefix(&self, messages: &[ChatMessage], n_messages: usize) -> Result<Vec<u32>, EngineError>;
    fn holds_prefix(&self, tokens: &[u32]) -> bool;
    fn export_prefix(&mut self, tokens: Vec<u32>, model_id: String) -> Pin<Box<dyn Future<Output = Result<Vec<u8>, EngineError>> + '_>>;
    fn restore_prefix(&mut self, bytes: &[u8], model_id: &str) -> Result<usize, EngineError>;
    fn prefill_prefix(&mut self, tokens: &[u32]) -> Result<usize, EngineError>;
    /// The WebGPU matvec autotune (`backend::gpu::tune`) on the loaded model's weight classes;
    /// the report as JSON. `BAD_REQUEST` on a CPU engine or before the load finished.
    fn tune_gpu(&mut self, opts: TuneArgs) -> Pin<Box<dyn Future<Output = Result<String, EngineError>> + '_>>;
}

/// What `tune_gpu` is given: earlier choices (by cache key), whether to tune a software
/// adapter, the timing budget, and the clock.
pub(super) struct TuneArgs {
    pub cached_json: String,
    pub force: bool,
    pub budget_ms: f64,
    pub now: fn() -> f64,
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

    fn next_part(&mut self) -> Result<(), EngineError> {
        match self {
            State::Loading(l) => l.next_part().inspect_err(|_| *self = State::Failed),
            _ => Err(EngineError::BadRequest("next_part after the load finished".into())),
        }
    }

    fn header_done(&self) -> bool {
        matches!(self, State::Loading(l) if l.header().is_some()) || matches!(self, State::Ready { .. })
    }

    fn finish_load(&mut self) -> Result<ModelInfo, EngineError> {
        let State::Loading(loader) = std::mem::replace(self, State::Failed) else {
            return Err(EngineError::BadRequest("finish_load called twice".into()));
        };
        let session = loader.finish()?;
        let c = session.config();
        let info = ModelInfo {
            arch: c.arch.clone(),
            name: c.name.clone().unwrap_or_default(),
            n_ctx: session.n_ctx(),
            n_vocab: c.n_vocab,
            has_chat_template: session.template().is_ok(),
            backend: session.backend().describe(),
        };
        *self = State::Ready { session, generation: None };
        Ok(info)
    }

    fn start(&mut self, prompt: Prompt) -> Result<usize, EngineError> {
        let State::Ready { session, generation } = self else { return Err(not_ready()) };
        let (tokens, params) = match prompt {
            Prompt::Chat(m, prefix, p) => (session.chat_tokens_with_prefix(&m, &prefix)?, p),
            Prompt::Text(t, p) => (session.text_tokens(&t)?, p),
        };
        *generation = None;
        *generation = Some(session.start(&tokens, &params)?);
        Ok(tokens.len())
    }

    fn step(&mut self) -> Pin<Box<dyn Future<Output = Result<Step, EngineError>> + '_>> {
        Box::pin(async move {
            let State::Ready { session, generation } = self else { return Err(not_ready()) };
            let g = generation.as_mut().ok_or_else(|| EngineError::BadRequest("no generation in progress".into()))?;
            let delta = session.step(g).await?.unwrap_or_default();
            let finished = g.finish_reason().map(|r| (r, g.usage()));
            if finished.is_some() {
                *generation = None;
            }
            Ok(Step::new(delta, finished))
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

    fn prepare_constraints(&mut self) -> Result<f64, EngineError> {
        let State::Ready { session, .. } = self else { return Err(not_ready()) };
        session.prepare_constraints()
    }

    fn chat_prefix(&self, messages: &[ChatMessage], n_messages: usize) -> Result<Vec<u32>, EngineError> {
        let State::Ready { session, .. } = self else { return Err(not_ready()) };
        session.chat_prefix_tokens(messages, n_messages)
    }

    fn holds_prefix(&self, tokens: &[u32]) -> bool {
        matches!(self, State::Ready { session, .. } if session.holds_prefix(tokens))
    }

    fn tune_gpu(&mut self, args: TuneArgs) -> Pin<Box<dyn Future<Output = Result<String, EngineError>> + '_>> {
        Box::pin(async move {
            let State::Ready { session, generation } = self else { return Err(not_ready()) };
            if generation.is_some() {
                return Err(EngineError::BadRequest("tune_gpu during a generation".into()));
            }
            tune_backend(session.backend_mut(), args).await
        })
    }

    fn export_prefix(&mut self, tokens: Vec<u32>, model_id: String) -> Pin<Box<dyn Future<Output = Result<Vec<u8>, EngineError>> + '_>> {
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

/// [`Engine::tune_gpu`] on any backend: tunes a [`crate::backend::gpu::GpuBackend`], refuses others.
async fn tune_backend<B: Backend + 'static>(backend: &mut B, args: TuneArgs) -> Result<String, EngineError> {
    #[cfg(feature = "gpu")]
    if let Some(gpu) = (backend as &mut dyn std::any::Any).downcast_mut::<crate::backend::gpu::GpuBackend>() {
        use crate::backend::gpu::tune::{TuneEntry, TuneOptions};
        let cached: std::collections::HashMap<String, TuneEntry> = if args.cached_json.trim().is_empty() {
            Default::default()
        } else {
            // A cache the page kept from an older build may not parse: tune again.
            serde_json::from_str(&args.cached_json).unwrap_or_default()
        };
        let opts = TuneOptions { force: args.force, budget_ms: args.budget_ms, cached };
        let report = gpu.autotune(&opts, &args.now).await.map_err(EngineError::from)?;
        return serde_json::to_string(&report).map_err(|e| EngineError::BadRequest(e.to_string()));
    }
    let _ = (backend, args);
    Err(EngineError::BadRequest("tune_gpu needs the WebGPU backend".into()))
}
