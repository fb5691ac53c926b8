//! Sessions over a loaded model: prefill, decode, sampling, stop conditions, streaming.
//!
//! A [`Session`] keeps the tokens whose keys/values sit in the KV cache, so the next
//! request of a multi-turn chat only prefills what is new. Requests report text deltas
//! through a callback that can cancel by returning `false`.

mod clock;
mod error_code;
mod constraint;
mod kv_persist;
pub mod kv_snapshot;
mod load;
#[cfg(test)]
mod load_checks;
pub mod sampler;
mod sampler_check;
mod stop;

#[cfg(not(target_arch = "wasm32"))]
pub use load::load_file;
pub use constraint::Constraint;
pub use load::{LoadProgress, Loader, MEMORY_HEADROOM};
pub use sampler::{Sampler, SamplerParams};
pub use sampler_check::{MAX_TEMPERATURE, MAX_TOKENS_LIMIT};

use crate::backend::{Backend, BackendError};
use crate::model::{Config, Forward, ModelError};
use crate::template::{ChatMessage, ChatTemplate, TemplateError};
use crate::tokenizer::{TokenDecoder, Tokenizer, TokenizerError};
use std::sync::Arc;
use stop::StopMatcher;
use thiserror::Error;

/// Errors from the engine. After any of them the session is still usable.
#[derive(Debug, Error)]
pub enum EngineError {
    #[error(transparent)]
    Gguf(#[from] crate::gguf::Error),
    #[error(transparent)]
    Model(#[from] ModelError),
    #[error(transparent)]
    Tokenizer(#[from] TokenizerError),
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error("the prompt has {prompt} tokens; the context holds {n_ctx}")]
    ContextOverflow { prompt: usize, n_ctx: usize },
    #[error("bad request: {0}")]
    BadRequest(String),
    /// A KV snapshot that does not belong to this model/backend/context or is corrupted
    /// ([`Session::restore_prefix`]); nothing was restored.
    #[error(transparent)]
    Snapshot(kv_snapshot::SnapshotError),
}

/// What to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerateParams {
    pub max_tokens: usize,
    pub sampler: SamplerParams,
    /// Generation stops before the first occurrence of any of these strings.
    pub stop: Vec<String>,
    /// The output must match this (JSON Schema, regex or Lark grammar). Generation ends with
    /// `Stop` once the grammar is complete, or `Length` if `max_tokens` comes first (the
    /// output is then an unfinished prefix of a match).
    pub constraint: Option<Constraint>,
}

impl Default for GenerateParams {
    fn default() -> Self {
        GenerateParams { max_tokens: 256, sampler: SamplerParams::default(), stop: Vec::new(), constraint: None }
    }
}

/// Why generation ended (OpenAI's `finish_reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FinishReason {
    /// End-of-generation token or stop string.
    Stop,
    /// `max_tokens` reached, or the context is full.
    Length,
    /// The callback asked to stop.
    Cancelled,
}

impl FinishReason {
    pub fn as_str(self) -> &'static str {
        match self {
            FinishReason::Stop => "stop",
            FinishReason::Length => "length",
            FinishReason::Cancelled => "cancelled",
        }
    }
}

/// Token counts and timings of one request.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Usage {
    pub prompt_tokens: usize,
    /// Prompt tokens whose KV came from the cache (not prefilled again).
    pub cached_tokens: usize,
    pub completion_tokens: usize,
    pub prefill_ms: f64,
    pub decode_ms: f64,
    /// Where a constrained request's grammar time went (`None` without a constraint).
    pub constraint: Option<ConstraintUsage>,
}

/// The grammar's share of a constrained request (for benchmarks: `hearth bench --json-schema`,
/// `usage.constraint` in the browser).
#[derive(Debug, Clone, Copy, Default, PartialEq, serde::Serialize)]
pub struct ConstraintUsage {
    /// Building the vocabulary's token trie: the first constrained request of a session only (else 0).
    pub vocab_ms: f64,
    /// Compiling this request's constraint (before the prefill; not in `prefill_ms`).
    pub compile_ms: f64,
    /// Grammar time while generating: checking the argmax, computing masks, advancing over
    /// sampled tokens, finding forced ones (part of `prefill_ms` + `decode_ms`).
    pub grammar_ms: f64,
    /// Full-vocabulary masks computed (greedy computes one only when the argmax is not allowed;
    /// sampling, one per sampled token).
    pub masks: usize,
    /// Time computing and applying those masks (part of `grammar_ms`).
    pub mask_ms: f64,
    /// Tokens the grammar forced (fed to the model without sampling; part of `completion_tokens`).
    pub forced_tokens: usize,
}

impl Usage {
    /// Prefill speed over the tokens actually processed.
    pub fn prefill_tps(&self) -> f64 {
        per_second(self.prompt_tokens - self.cached_tokens, self.prefill_ms)
    }
    /// Decode speed (first token excluded: it comes out of prefill).
    pub fn decode_tps(&self) -> f64 {
        per_second(self.completion_tokens.saturating_sub(1), self.decode_ms)
    }
}

fn per_second(n: usize, ms: f64) -> f64 {
    if ms > 0.0 {
        n as f64 * 1000.0 / ms
    } else {
        0.0
    }
}

/// The result of a request.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub text: String,
    pub tokens: Vec<u32>,
    pub finish_reason: FinishReason,
    pub usage: Usage,
}

/// A model with its tokenizer, template and KV cache.
pub struct Session<B: Backend> {
    backend: B,
    model: Box<dyn Forward<B>>,
    tokenizer: Arc<Tokenizer>,
    template: Result<ChatTemplate, TemplateError>,
    /// Tokens whose keys/values are in the KV cache, in order.
    cached: Vec<u32>,
    /// Built on the first constrained request.
    constraints: Option<Arc<constraint::Compiler>>,
}

impl<B: Backend> Session<B> {
    /// Assembles a session (see [`Loader`] for building one from GGUF bytes).
    pub fn new(backend: B, model: Box<dyn Forward<B>>, tokenizer: Tokenizer, template: Result<ChatTemplate, TemplateError>) -> Self {
        Session { backend, model, tokenizer: Arc::new(tokenizer), template, cached: Vec::new(), constraints: None }
    }

    pub fn config(&self) -> &Config {
        self.model.config()
    }
    pub fn n_ctx(&self) -> usize {
        self.model.n_ctx()
    }
    pub fn tokenizer(&self) -> &Tokenizer {
        &self.tokenizer
    }
    pub fn backend(&self) -> &B {
        &self.backend
    }
    pub fn backend_mut(&mut self) -> &mut B {
        &mut self.backend
    }
    /// The chat template, or why chat is unavailable.
    pub fn template(&self) -> Result<&ChatTemplate, &TemplateError> {
        self.template.as_ref()
    }

    /// Forgets the KV cache (the next request prefills everything).
    pub fn reset(&mut self) {
        self.cached.clear();
    }

    /// Renders messages with the model's chat template (with the generation prompt).
    /// Errors are [`EngineError::BadRequest`]: the template was accepted at load (it parsed
    /// and passed the probe renders), so what fails now is this conversation (a role order
    /// the template refuses, a limit the conversation makes it exceed) or chat itself on a
    /// model without a template.
    pub fn render_chat(&self, messages: &[ChatMessage]) -> Result<String, EngineError> {
        if messages.is_empty() {
            return Err(EngineError::BadRequest("messages is empty".into()));
        }
        let request_error = |e: &TemplateError| match e {
            TemplateError::NoTemplate => EngineError::BadRequest("the model has no chat template: use a raw completion".into()),
            e => EngineError::BadRequest(e.to_string()),
        };
        let tpl = self.template.as_ref().map_err(request_error)?;
        tpl.render(messages, true).map_err(|e| request_error(&e))
    }

    /// Renders messages with the model's chat template and tokenizes the result.
    pub fn chat_tokens(&self, messages: &[ChatMessage]) -> Result<Vec<u32>, EngineError> {
        self.chat_tokens_with_prefix(messages, "")
    }

    /// [`Session::chat_tokens`] with the start of the reply written after the generation
    /// prompt (a response prefix the model continues; the Prompt API's `prefix: true`).
    pub fn chat_tokens_with_prefix(&self, messages: &[ChatMessage], reply_prefix: &str) -> Result<Vec<u32>, EngineError> {
        let mut text = self.render_chat(messages)?;
        text.push_str(reply_prefix);
        // Templates that write the BOS token themselves must not get a second one.
        let bos_in_text = self
            .tokenizer
            .bos()
            .and_then(|b| self.tokenizer.token_piece(b))
            .is_some_and(|p| !p.is_empty() && text.starts_with(p));
        Ok(self.tokenizer.encode(&text, !bos_in_text, true)?)
    }

    /// Tokenizes raw text for completion (BOS per the model's metadata, special-token
    /// text taken literally).
    pub fn text_tokens(&self, text: &str) -> Result<Vec<u32>, EngineError> {
        Ok(self.tokenizer.encode(text, true, false)?)
    }

    /// Chat completion; see [`Session::generate`].
    pub fn chat(&mut self, messages: &[ChatMessage], p: &GenerateParams, on_delta: &mut dyn FnMut(&str) -> bool) -> Result<Completion, EngineError> {
        let tokens = self.chat_tokens(messages)?;
        self.generate(&tokens, p, on_delta)
    }

    /// Raw text completion; see [`Session::generate`].
    pub fn complete(&mut self, prompt: &str, p: &GenerateParams, on_delta: &mut dyn FnMut(&str) -> bool) -> Result<Completion, EngineError> {
        let tokens = self.text_tokens(prompt)?;
        self.generate(&tokens, p, on_delta)
    }

    /// Runs the prompt through the model, reusing the KV cache for the prefix it shares
    /// with the previous request, and returns the logits of its last token.
    pub fn prefill(&mut self, prompt: &[u32]) -> Result<B::Tensor, EngineError> {
        self.prefill_reusing(prompt).map(|(logits, _)| logits)
    }

    /// [`Session::prefill`], also returning how many prompt tokens came from the KV cache.
    fn prefill_reusing(&mut self, prompt: &[u32]) -> Result<(B::Tensor, usize), EngineError> {
        let n_ctx = self.model.n_ctx();
        if prompt.is_empty() {
            return Err(EngineError::BadRequest("the prompt is empty".into()));
        }
        if prompt.len() >= n_ctx {
            return Err(EngineError::ContextOverflow { prompt: prompt.len(), n_ctx });
        }
        if let Some(&bad) = prompt.iter().find(|&&t| t as usize >= self.model.config().n_vocab) {
            return Err(EngineError::BadRequest(format!("token id {bad} is outside the vocabulary")));
        }
        let mut shared = self.cached.iter().zip(prompt).take_while(|(a, b)| a == b).count();
        // At least one token must run to produce logits.
        shared = shared.min(prompt.len() - 1);
        self.cached.truncate(shared);
        let logits = self.model.forward(&mut self.backend, &prompt[shared..], shared);
        // On failure the cache may hold a partial batch: trust only the shared prefix.
        let logits = logits?;
        self.cached.extend_from_slice(&prompt[shared..]);
        Ok((logits, shared))
    }

    /// Generates from `prompt` tokens. `on_delta` receives each new piece of text (possibly
    /// empty, once per token) and returns `false` to cancel. Stops at an end-of-generation
    /// token, a stop string, `max_tokens`, or a full context. Natively this runs to the
    /// end; in the browser use [`Session::start`] + [`Session::step`].
    pub fn generate(&mut self, prompt: &[u32], p: &GenerateParams, on_delta: &mut dyn FnMut(&str) -> bool) -> Result<Completion, EngineError> {
        let mut g = self.start(prompt, p)?;
        while let Some(delta) = block_on_ready(self.step(&mut g))?? {
            if !on_delta(&delta) {
                g.cancel();
            }
        }
        Ok(g.into_completion())
    }

    /// Compiles a constraint against this model's vocabulary (see [`GenerateParams::constraint`]);
    /// an invalid or unsupported one fails with `BadRequest` naming the problem.
    fn compile(&mut self, c: &Constraint) -> Result<(constraint::Active, ConstraintUsage), EngineError> {
        let vocab_ms = self.prepare_constraints()?;
        let Some(compiler) = self.constraints.clone() else {
            return Err(EngineError::BadRequest("constrained decoding is unavailable for this model".into()));
        };
        let t = clock::now_ms();
        let active = compiler.compile(c)?;
        Ok((active, ConstraintUsage { vocab_ms, compile_ms: clock::now_ms() - t, ..Default::default() }))
    }

    /// Builds what constrained decoding needs for this model's vocabulary (llguidance's token
    /// trie and its slices of the vocabulary: ~0.3 s natively, ~1.5 s in wasm for a 49k
    /// vocabulary, more for 150k) now rather than on the first constrained request. Returns the
    /// milliseconds spent: 0 when it was already built (once per session). Fails for a
    /// vocabulary without end-of-generation token.
    pub fn prepare_constraints(&mut self) -> Result<f64, EngineError> {
        if self.constraints.is_some() {
            return Ok(0.0);
        }
        let t = clock::now_ms();
        self.constraints = Some(Arc::new(constraint::Compiler::new(self.tokenizer.clone())?));
        Ok(clock::now_ms() - t)
    }

    /// Checks a constraint without generating: `Ok` if it compiles for this model.
    pub fn check_constraint(&mut self, c: &Constraint) -> Result<(), EngineError> {
        self.compile(c).map(|_| ())
    }

    /// Prefills `prompt` (reusing the KV cache for the prefix shared with the previous
    /// request) and returns a generation to drive with [`Session::step`]. A constraint is
    /// compiled first, so a bad one fails before any work; the tokens it forces at the start
    /// are prefilled with the prompt.
    pub fn start(&mut self, prompt: &[u32], p: &GenerateParams) -> Result<Generation<B>, EngineError> {
        p.validate()?;
        // Compiling the constraint (and, on a session's first constrained request, building the
        // token trie) is not prefill: the clock starts after it.
        let (mut active, mut stats) = p.constraint.as_ref().map(|c| self.compile(c)).transpose()?.unzip();
        let t0 = clock::now_ms();
        let mut full = prompt.to_vec();
        let mut pending = Vec::new();
        if let (Some(a), Some(st)) = (active.as_mut(), stats.as_mut()) {
            let room = p.max_tokens.min(self.model.n_ctx().saturating_sub(prompt.len() + 1));
            pending = a.take_forced(room)?;
            st.forced_tokens += pending.len();
            st.grammar_ms += clock::now_ms() - t0;
            full.extend_from_slice(&pending);
        }
        let (logits, shared_before) = self.prefill_reusing(&full)?;
        Ok(Generation {
            constraint: active,
            pending,
            max_tokens: p.max_tokens,
            sampler: Sampler::new(p.sampler),
            decoder: TokenDecoder::skipping_control(&self.tokenizer),
            stop: StopMatcher::new(&p.stop),
            history: full,
            tokens: Vec::new(),
            text: String::new(),
            logits,
            finish: None,
            usage: Usage { prompt_tokens: prompt.len(), cached_tokens: shared_before.min(prompt.len()), constraint: stats, ..Default::default() },
            t0,
            t_first: None,
        })
    }

    /// Produces the next token: returns its text (possibly empty while a multi-byte
    /// character or a possible stop string is incomplete), or `None` once finished.
    /// Awaits only the backend's readback of the logits (or of the argmax).
    pub async fn step(&mut self, g: &mut Generation<B>) -> Result<Option<String>, EngineError> {
        if g.finish.is_some() {
            return Ok(None);
        }
        if !g.pending.is_empty() {
            // Tokens a constraint forced at the start: already prefilled, emitted now.
            if g.t_first.is_none() {
                g.t_first = Some(clock::now_ms());
            }
            let forced = std::mem::take(&mut g.pending);
            return self.emit(g, &forced);
        }
        if g.tokens.len() >= g.max_tokens {
            return Ok(Some(g.end(FinishReason::Length)?));
        }
        if g.constraint.as_ref().is_some_and(|c| c.is_stopped()) {
            return Ok(Some(g.end(FinishReason::Stop)?));
        }
        let n_vocab = self.model.config().n_vocab;
        let tok = match g.constraint.as_mut() {
            None if g.sampler.is_greedy() => self.backend.argmax_async(&g.logits, 0, n_vocab).await?,
            None => {
                let l = self.backend.read_async(&g.logits, 0, n_vocab).await?;
                g.sampler.sample(&l, &g.history)
            }
            Some(c) => {
                let st = g.usage.constraint.get_or_insert_default();
                // Greedy: the argmax (4 bytes from a GPU) is usually allowed; only when it is
                // not are all logits read back and masked.
                let mut pick = None;
                if g.sampler.is_greedy() {
                    let t = self.backend.argmax_async(&g.logits, 0, n_vocab).await?;
                    let t0 = clock::now_ms();
                    if c.allows(t)? {
                        pick = Some(t);
                    }
                    st.grammar_ms += clock::now_ms() - t0;
                }
                match pick {
                    Some(t) => t,
                    None => {
                        let mut l = self.backend.read_async(&g.logits, 0, n_vocab).await?;
                        let t0 = clock::now_ms();
                        c.mask_logits(&mut l)?;
                        let dt = clock::now_ms() - t0;
                        st.masks += 1;
                        st.mask_ms += dt;
                        st.grammar_ms += dt;
                        g.sampler.sample(&l, &g.history)
                    }
                }
            }
        };
        if g.t_first.is_none() {
            g.t_first = Some(clock::now_ms());
        }
        if self.tokenizer.eog_tokens().contains(&tok) {
            return Ok(Some(g.end(FinishReason::Stop)?));
        }
        let mut batch = vec![tok];
        if let Some(c) = g.constraint.as_mut() {
            let t0 = clock::now_ms();
            c.consume(tok)?;
            // Forced tokens go through the model in one batch with the sampled one, within
            // max_tokens and the context.
            let room = g.max_tokens.saturating_sub(g.tokens.len() + 1).min(self.model.n_ctx().saturating_sub(self.cached.len() + 2));
            batch.extend(c.take_forced(room)?);
            let st = g.usage.constraint.get_or_insert_default();
            st.forced_tokens += batch.len() - 1;
            st.grammar_ms += clock::now_ms() - t0;
        }
        let emit = self.emit(g, &batch)?.unwrap_or_default();
        if g.finish.is_some() {
            return Ok(Some(emit));
        }
        if g.tokens.len() < g.max_tokens {
            if self.cached.len() + batch.len() >= self.model.n_ctx() {
                let rest = g.end(FinishReason::Length)?;
                return Ok(Some(emit + &rest));
            }
            let pos = self.cached.len();
            g.logits = self.model.forward(&mut self.backend, &batch, pos)?;
            self.cached.extend_from_slice(&batch);
        }
        Ok(Some(emit))
    }

    /// Appends generated tokens to the output (decoding, stop strings), ending the
    /// generation on a stop string or a completed constraint.
    fn emit(&self, g: &mut Generation<B>, toks: &[u32]) -> Result<Option<String>, EngineError> {
        let mut emit = String::new();
        for &t in toks {
            g.tokens.push(t);
            g.history.push(t);
            let piece = g.decoder.push(&self.tokenizer, t)?;
            let (e, hit) = g.stop.push(&piece);
            g.text.push_str(&e);
            emit.push_str(&e);
            if hit {
                g.end(FinishReason::Stop)?;
                return Ok(Some(emit));
            }
        }
        if g.constraint.as_ref().is_some_and(|c| c.is_stopped()) {
            let rest = g.end(FinishReason::Stop)?;
            emit.push_str(&rest);
        }
        Ok(Some(emit))
    }
}

/// One request in progress: sampler state, streamed text, stop matching, timings.
pub struct Generation<B: Backend> {
    /// The grammar the output must match, if any.
    constraint: Option<constraint::Active>,
    /// Tokens a constraint forced before the first sampled one (prefilled, not yet emitted).
    pending: Vec<u32>,
    max_tokens: usize,
    sampler: Sampler,
    decoder: TokenDecoder,
    stop: StopMatcher,
    history: Vec<u32>,
    tokens: Vec<u32>,
    text: String,
    logits: B::Tensor,
    finish: Option<FinishReason>,
    usage: Usage,
    t0: f64,
    t_first: Option<f64>,
}

impl<B: Backend> Generation<B> {
    /// Ends the generation with `FinishReason::Cancelled` (the next step returns `None`).
    pub fn cancel(&mut self) {
        if self.finish.is_none() {
            self.finish = Some(FinishReason::Cancelled);
            self.stamp();
        }
    }

    /// Why it ended, once it has.
    pub fn finish_reason(&self) -> Option<FinishReason> {
        self.finish
    }

    /// Tokens generated so far.
    pub fn tokens(&self) -> &[u32] {
        &self.tokens
    }

    /// Usage so far (final once finished).
    pub fn usage(&self) -> Usage {
        let mut u = self.usage;
        u.completion_tokens = self.tokens.len();
        u
    }

    fn stamp(&mut self) {
        let now = clock::now_ms();
        let first = self.t_first.unwrap_or(now);
        self.usage.prefill_ms = first - self.t0;
        self.usage.decode_ms = now - first;
    }

    /// Finishes; text held back as a possible stop-string prefix (or an unfinished UTF-8
    /// sequence) is released unless a stop string matched.
    fn end(&mut self, reason: FinishReason) -> Result<String, EngineError> {
        self.finish = Some(reason);
        self.stamp();
        if self.stop.hit() {
            return Ok(String::new());
        }
        let rest = self.stop.finish(&self.decoder.flush());
        self.text.push_str(&rest);
        Ok(rest)
    }

    /// The finished request (a still-running one reports `Cancelled`).
    pub fn into_completion(mut self) -> Completion {
        let finish_reason = self.finish.unwrap_or(FinishReason::Cancelled);
        if self.finish.is_none() {
            self.stamp();
        }
        let usage = self.usage();
        Completion { text: self.text, tokens: self.tokens, finish_reason, usage }
    }
}

/// Runs a future that is already complete (the CPU backend and native GPU backends never
/// suspend); a future that would suspend is reported instead of blocking forever.
fn block_on_ready<F: std::future::Future>(f: F) -> Result<F::Output, EngineError> {
    let mut f = std::pin::pin!(f);
    let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
    match f.as_mut().poll(&mut cx) {
        std::task::Poll::Ready(v) => Ok(v),
        std::task::Poll::Pending => Err(EngineError::BadRequest("this backend is asynchronous: drive it with start()/step()".into())),
    }
}
