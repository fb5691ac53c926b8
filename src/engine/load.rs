//! Building a [`Session`] from GGUF bytes as they stream in.
//!
//! The header arrives first: the architecture, configuration, tokenizer and template are
//! checked then, so an unsupported model fails before its weights download (the tokenizer is
//! built on another thread where there is one; a failed build fails the next chunk). Each
//! tensor is uploaded to the backend as soon as its bytes are complete, as the pieces they
//! arrived in (never copied into one growing buffer); the loader holds at most one tensor plus
//! one chunk, whatever the model size.
//!
//! A model split into several files (`gguf-split`, see [`gguf::split`]) is fed part after
//! part, [`Loader::next_part`] between them: the configuration comes from the first part, each
//! later part is checked against it (index, part count, tensor total, no tensor twice), and the
//! tensor directory of all parts together is checked against the configuration at
//! [`Loader::finish`], before the model is built.

use super::{EngineError, Session};
use crate::backend::{Backend, WeightDesc};
use crate::gguf::split::{Parts, SplitInfo};
use crate::gguf::{self, Event, Header, TensorBytes, TensorInfo};
use crate::model::{self, Config, ModelError, ModelOptions, Weights};
use crate::template::{ChatTemplate, TemplateError};
use crate::tokenizer::{Tokenizer, TokenizerError};
use std::sync::Arc;

/// How far a load has come, in bytes of the GGUF file (of every part fed so far, when split).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoadProgress {
    pub bytes_seen: u64,
    /// Tensors uploaded so far, of `tensors_total` (0 until the header is parsed; over all
    /// parts of a split model).
    pub tensors_done: usize,
    pub tensors_total: usize,
}

struct Ready {
    header: Arc<Header>,
    config: Config,
    tokenizer: TokenizerBuild,
    template: Result<ChatTemplate, TemplateError>,
}

/// The tokenizer, built on another thread while the weights stream in where there is one:
/// building SmolLM2's (49k tokens, 48k merges) takes ~45 ms natively and ~100 ms in the browser,
/// which was a fifth of a warm load there.
enum TokenizerBuild {
    Done(Tokenizer),
    Pending(std::sync::mpsc::Receiver<Result<Tokenizer, TokenizerError>>),
}

impl TokenizerBuild {
    /// Starts building from `header`'s metadata: on a rayon thread natively and in the threaded
    /// wasm build (whose pool JS starts before loading), here otherwise. Errors of a build done
    /// here are returned now.
    fn start(header: &Arc<Header>) -> Result<TokenizerBuild, TokenizerError> {
        #[cfg(any(not(target_arch = "wasm32"), feature = "threads"))]
        if crate::backend::cpu::threads() > 1 {
            let (tx, rx) = std::sync::mpsc::sync_channel(1);
            let header = Arc::clone(header);
            rayon::spawn(move || {
                // A panic must not reach rayon (which aborts the process): it becomes an error.
                let built = std::panic::catch_unwind(|| Tokenizer::from_metadata(&header.metadata))
                    .unwrap_or_else(|_| {
                        Err(TokenizerError::Build("the tokenizer build panicked".into()))
                    });
                let _ = tx.send(built);
            });
            return Ok(TokenizerBuild::Pending(rx));
        }
        Tokenizer::from_metadata(&header.metadata).map(TokenizerBuild::Done)
    }

    /// Takes a finished build's result, if there is one yet (does not wait).
    fn poll(&mut self) -> Result<(), TokenizerError> {
        let TokenizerBuild::Pending(rx) = self else { return Ok(()) };
        let tok = match rx.try_recv() {
            Err(std::sync::mpsc::TryRecvError::Empty) => return Ok(()),
            r => r.unwrap_or_else(|_| Err(stopped()))?,
        };
        *self = TokenizerBuild::Done(tok);
        Ok(())
    }

    /// The tokenizer, waiting for the build if it is still running.
    fn wait(self) -> Result<Tokenizer, TokenizerError> {
        match self {
            TokenizerBuild::Done(tok) => Ok(tok),
            TokenizerBuild::Pending(rx) => rx.recv().unwrap_or_else(|_| Err(stopped())),
        }
    }
}

/// The error of a build whose thread went away without an answer.
fn stopped() -> TokenizerError {
    TokenizerError::Build("the tokenizer build stopped".into())
}

/// Incremental model loader: `feed` chunks of the file, then `finish`.
pub struct Loader<B: Backend> {
    backend: B,
    opts: ModelOptions,
    reader: gguf::Reader,
    ready: Option<Ready>,
    weights: Weights<B>,
    tensors_done: usize,
    /// The current part's total size, when the caller knows it (see [`Loader::set_total_size`]).
    total_size: Option<u64>,
    /// The parts taken so far (one for an unsplit model).
    parts: Parts,
    /// The current part's header (the first part's is `ready.header`).
    part_header: Option<Arc<Header>>,
    /// A split model's tensor directory over every part so far (empty when unsplit: the first
    /// header's directory is the whole one and is checked when it arrives).
    directory: Vec<TensorInfo>,
    /// Bytes of the parts finished before the current one.
    bytes_before: u64,
    /// Bytes of weights in every tensor directory seen so far (all parts).
    weight_bytes: u64,
    /// The memory cap checked at each header ([`Backend::memory_cap`] unless overridden).
    memory_cap: Option<u64>,
}

/// What a model needs beyond its weights and KV cache where memory is capped: activations,
/// the tokenizer, the loader's pieces, the allocator's slack.
pub const MEMORY_HEADROOM: u64 = 256 << 20;

impl<B: Backend + 'static> Loader<B> {
    pub fn new(backend: B, opts: ModelOptions) -> Self {
        Loader {
            backend,
            opts,
            reader: gguf::Reader::new(),
            ready: None,
            weights: Weights::default(),
            tensors_done: 0,
            total_size: None,
            parts: Parts::default(),
            part_header: None,
            directory: Vec::new(),
            bytes_before: 0,
            weight_bytes: 0,
            memory_cap: None,
        }
        .with_backend_cap()
    }

    fn with_backend_cap(mut self) -> Self {
        self.memory_cap = self.backend.memory_cap();
        self
    }

    /// Overrides the backend's memory cap (tests; `None`: unchecked).
    pub fn set_memory_cap(&mut self, cap: Option<u64>) {
        self.memory_cap = cap;
    }

    /// Refuses, from the headers seen so far, a model whose weights (all parts so far) plus KV
    /// cache plus [`MEMORY_HEADROOM`] exceed the backend's memory cap: before the weights
    /// download, never an out-of-memory failure half-way.
    fn check_memory(&self) -> Result<(), EngineError> {
        let (Some(cap), Some(r)) = (self.memory_cap, &self.ready) else { return Ok(()) };
        let c = &r.config;
        let kv = (self.opts.n_ctx as u64).saturating_mul(c.kv_dim() as u64).saturating_mul(2 * 4).saturating_mul(c.n_layer as u64);
        let need = self.weight_bytes.saturating_add(kv).saturating_add(MEMORY_HEADROOM);
        if need <= cap {
            return Ok(());
        }
        let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
        Err(ModelError::Unsupported {
            key: "memory".into(),
            detail: format!(
                "the model needs {:.2} GiB ({:.2} GiB of weights{} + {:.2} GiB of KV cache for {} tokens + {:.2} GiB working memory), more than this backend's {:.2} GiB (the CPU backend in the browser holds everything in 4 GiB of wasm32 memory): use the WebGPU backend, a smaller quantization or a shorter context",
                gib(need),
                gib(self.weight_bytes),
                if self.parts.split().is_some() { " in the parts so far" } else { "" },
                gib(kv),
                self.opts.n_ctx,
                gib(MEMORY_HEADROOM),
                gib(cap)
            ),
        }
        .into())
    }

    /// Declares the file's total size in bytes (a file's length, an HTTP `Content-Length`,
    /// the size a store recorded), before the first [`feed`](Self::feed). The header may then
    /// be no longer than the file, and every tensor is checked against it as soon as the
    /// directory is parsed, so a file whose tensors point past its end fails before the rest
    /// downloads. Fails with `BadRequest` once bytes were fed. For a split model this is the
    /// size of the current part (call it again after each [`next_part`](Self::next_part)).
    pub fn set_total_size(&mut self, total: u64) -> Result<(), EngineError> {
        if self.reader.bytes_seen() > 0 {
            return Err(EngineError::BadRequest("the total size must be set before the first bytes".into()));
        }
        self.reader = gguf::Reader::with_limits(total.min(gguf::DEFAULT_MAX_HEADER_BYTES));
        if self.backend.contiguous_weights() {
            // One allocation per tensor, kept by the backend as is: no copy of a large tensor
            // (Gemma 3's 170 MiB embedding left its pieces resident in wasm memory).
            self.reader = std::mem::take(&mut self.reader).whole_tensors_within(total);
        }
        self.total_size = Some(total);
        Ok(())
    }

    /// The parsed header, once complete.
    pub fn header(&self) -> Option<&Arc<Header>> {
        self.ready.as_ref().map(|r| &r.header)
    }

    /// Progress so far.
    pub fn progress(&self) -> LoadProgress {
        let total = match self.parts.split() {
            Some(s) => usize::try_from(s.tensors).unwrap_or(usize::MAX),
            None => self.ready.as_ref().map_or(0, |r| r.header.tensors.len()),
        };
        LoadProgress { bytes_seen: self.bytes_before + self.reader.bytes_seen(), tensors_done: self.tensors_done, tensors_total: total }
    }

    /// The split keys of the model's first part: `None` until its header is parsed, and for a
    /// model in one file.
    pub fn split(&self) -> Option<SplitInfo> {
        self.parts.split()
    }

    /// Ends the current part of a split model and starts the next: the part must be complete
    /// (header and every tensor), and the first part must declare more parts than were fed
    /// (`BadRequest` otherwise: a model in one file, or all its parts fed already).
    pub fn next_part(&mut self) -> Result<(), EngineError> {
        if self.part_header.is_none() {
            return Err(EngineError::BadRequest("next_part before the current part's header".into()));
        }
        if !self.parts.wants_more() {
            let n = self.parts.split().map_or(1, |s| s.count);
            return Err(EngineError::BadRequest(format!("the model is in {n} file(s), all of them fed already")));
        }
        let reader = std::mem::take(&mut self.reader);
        self.bytes_before += reader.bytes_seen();
        reader.finish()?;
        self.part_header = None;
        self.total_size = None;
        Ok(())
    }

    /// Consumes the next chunk of the file. Errors are final for this load.
    pub fn feed(&mut self, chunk: &[u8]) -> Result<(), EngineError> {
        for event in self.reader.feed(chunk)? {
            match event {
                Event::Header(h) => self.on_header(h)?,
                Event::Tensor { index, bytes } => self.on_tensor(index, bytes)?,
            }
        }
        // A tokenizer that failed to build fails the load at the next chunk, not at the end.
        if let Some(r) = &mut self.ready {
            r.tokenizer.poll()?;
        }
        Ok(())
    }

    fn on_header(&mut self, header: Arc<Header>) -> Result<(), EngineError> {
        if let Some(total) = self.total_size {
            // Every tensor must lie inside the file: known now, not after the download.
            header.check_file_len(total)?;
        }
        let split = SplitInfo::from_metadata(&header.metadata)?;
        self.parts.add(split, &header.tensors)?;
        self.part_header = Some(Arc::clone(&header));
        if split.is_some() {
            self.directory.extend(header.tensors.iter().cloned());
        }
        self.weight_bytes = header.tensors.iter().fold(self.weight_bytes, |a, t| a.saturating_add(t.n_bytes));
        if self.ready.is_some() {
            // A later part: its keys and names were checked by `parts`; the directory of all
            // parts is checked against the configuration at `finish`.
            return self.check_memory();
        }
        // A split model's first part holds only some tensors: its directory is checked whole
        // at `finish`.
        let config = if split.is_some() { Config::from_metadata(&header.metadata)? } else { Config::from_header(&header)? };
        let tokenizer = TokenizerBuild::start(&header)?;
        let template = ChatTemplate::from_metadata(&header.metadata);
        // A template that exists but does not parse is an error; a missing one only
        // disables chat.
        if let Err(e) = &template {
            if !matches!(e, TemplateError::NoTemplate) {
                return Err(e.clone().into());
            }
        }
        self.ready = Some(Ready { header, config, tokenizer, template });
        self.check_memory()
    }

    fn on_tensor(&mut self, index: usize, bytes: TensorBytes) -> Result<(), EngineError> {
        let header = self.part_header.as_ref().ok_or_else(|| EngineError::BadRequest("tensor before header".into()))?;
        let info = header.tensors.get(index).ok_or_else(|| EngineError::BadRequest(format!("tensor index {index}")))?;
        let dims = info
            .dims
            .iter()
            .map(|&d| usize::try_from(d))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|_| ModelError::Invalid { key: info.name.clone(), value: format!("{:?}", info.dims), rule: "a dimension does not fit in memory addresses".into() })?;
        let desc = WeightDesc { name: info.name.clone(), ty: info.ty, dims };
        let w = self.backend.upload_pieces(&desc, bytes)?;
        self.weights.insert(desc, w);
        self.tensors_done += 1;
        Ok(())
    }

    /// Checks the file was complete and builds the session.
    pub fn finish(self) -> Result<Session<B>, EngineError> {
        let Loader { mut backend, opts, reader, ready, weights, parts, directory, .. } = self;
        reader.finish()?;
        let ready = ready.ok_or(gguf::Error::Truncated { needed: 0 })?;
        parts.finish()?;
        if parts.split().is_some() {
            ready.config.check_directory(&directory)?;
        }
        let model = model::build(&mut backend, ready.config, weights, opts)?;
        Ok(Session::new(backend, model, ready.tokenizer.wait()?, ready.template))
    }
}

/// Loads a GGUF file from disk in 4 MiB chunks. A file named like a part of a split model
/// (`<prefix>-00002-of-00003.gguf`, any of the parts) loads every part, first to last.
#[cfg(not(target_arch = "wasm32"))]
pub fn load_file<B: Backend + 'static>(
    path: &std::path::Path,
    backend: B,
    opts: ModelOptions,
    mut on_progress: impl FnMut(LoadProgress),
) -> Result<Session<B>, EngineError> {
    use std::io::Read;
    let paths = gguf::split::part_paths(path).unwrap_or_else(|| vec![path.to_path_buf()]);
    let mut loader = Loader::new(backend, opts);
    let mut buf = vec![0u8; 4 << 20];
    for (i, path) in paths.iter().enumerate() {
        let io = |e: std::io::Error| EngineError::BadRequest(format!("reading {}: {e}", path.display()));
        let mut f = std::fs::File::open(path).map_err(|e| EngineError::BadRequest(format!("cannot open {}: {e}", path.display())))?;
        let len = f.metadata().map_err(io)?.len();
        if i > 0 {
            loader.next_part()?;
        }
        loader.set_total_size(len)?;
        loop {
            let n = f.read(&mut buf).map_err(io)?;
            if n == 0 {
                break;
            }
            loader.feed(&buf[..n])?;
            on_progress(loader.progress());
        }
    }
    loader.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gguf::{Value, ValueType, Writer};

    /// A header with only a GPT-2-style tokenizer (pre-tokenizer `pre`) in its metadata.
    fn header(pre: &str) -> Arc<Header> {
        let strings = |v: &[&str]| Value::Array(ValueType::String, v.iter().map(|s| Value::String((*s).into())).collect());
        let mut w = Writer::new();
        w.kv("general.architecture", Value::String("llama".into()))
            .kv("tokenizer.ggml.model", Value::String("gpt2".into()))
            .kv("tokenizer.ggml.pre", Value::String(pre.into()))
            .kv("tokenizer.ggml.tokens", strings(&["a", "b", "ab"]))
            .kv("tokenizer.ggml.merges", strings(&["a b"]));
        let mut r = gguf::Reader::new();
        let events = r.feed(&w.to_bytes()).unwrap();
        match events.into_iter().next() {
            Some(Event::Header(h)) => h,
            _ => panic!("no header"),
        }
    }

    #[test]
    fn the_tokenizer_builds_in_the_background_and_its_errors_arrive() {
        let tok = TokenizerBuild::start(&header("default")).and_then(TokenizerBuild::wait).unwrap();
        assert_eq!(tok.encode("ab", false, false).unwrap(), vec![2]);
        // An unsupported pre-tokenizer: the error comes from `start` (one thread) or from `wait`.
        let err = TokenizerBuild::start(&header("no-such-pre")).and_then(TokenizerBuild::wait);
        assert!(matches!(err, Err(TokenizerError::UnsupportedPre { .. })), "{err:?}");
    }
}
