//! `hearth`: the native command line over the same engine the browser runs.
//!
//! hearth run --model FILE_OR_ID --prompt TEXT [--chat] [-n N] [--temp T] [--seed S]
//!           [--json-schema FILE | --regex RE | --grammar FILE.lark]   (constrained output)
//! hearth chat --model FILE_OR_ID            (interactive, multi-turn)
//! hearth inspect FILE_OR_ID                 (metadata and tensor table; any part of a split model)
//! hearth bench --model FILE_OR_ID [--reps 5] [--pp 128,512] [--tg 128] [--backend gpu --profile]
//! hearth bench --model FILE_OR_ID --prompt TEXT --json-schema FILE [--reps 5] [--tg 256]
//!           (constrained vs unconstrained decode of the same tokens; bench.rs)

mod bench;

use clap::{Parser, Subcommand, ValueEnum};
use hearth::backend::cpu::CpuBackend;
use hearth::backend::Backend;
use hearth::engine::{self, Constraint, GenerateParams, SamplerParams, Session};
use hearth::model::ModelOptions;
use hearth::registry::Registry;
use hearth::template::ChatMessage;
use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

#[derive(Parser)]
#[command(name = "hearth", version, about = "Private small language models: GGUF on CPU or GPU")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, ValueEnum)]
enum BackendKind {
    Cpu,
    Gpu,
}

#[derive(clap::Args, Clone)]
struct ModelArgs {
    /// A .gguf file or a registry id (models/registry.toml).
    #[arg(long, short)]
    model: Option<String>,
    #[arg(long, value_enum, default_value = "cpu")]
    backend: BackendKind,
    /// Context length to allocate.
    #[arg(long, default_value_t = 2048)]
    ctx: usize,
}

#[derive(clap::Args, Clone)]
struct SampleArgs {
    /// Maximum tokens to generate.
    #[arg(short = 'n', long = "max-tokens", default_value_t = 256)]
    max_tokens: usize,
    /// Temperature (0 = greedy).
    #[arg(long = "temp", default_value_t = 0.0)]
    temperature: f32,
    #[arg(long, default_value_t = 40)]
    top_k: usize,
    #[arg(long, default_value_t = 0.95)]
    top_p: f32,
    #[arg(long, default_value_t = 0.05)]
    min_p: f32,
    #[arg(long, default_value_t = 1.0)]
    repeat_penalty: f32,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Stop before this string (repeatable).
    #[arg(long)]
    stop: Vec<String>,
}

/// Constrained output (at most one). The run ends when the output is complete ("stop"),
/// or with "length" if -n comes first.
#[derive(clap::Args, Clone)]
#[group(id = "constraint", multiple = false)]
struct ConstraintArgs {
    /// The output is JSON matching the JSON Schema in FILE.
    #[arg(long, value_name = "FILE")]
    json_schema: Option<PathBuf>,
    /// The output matches this regular expression (whole output).
    #[arg(long, value_name = "RE")]
    regex: Option<String>,
    /// The output matches the Lark grammar in FILE (llguidance's dialect, `start: ...`).
    #[arg(long, value_name = "FILE")]
    grammar: Option<PathBuf>,
}

impl ConstraintArgs {
    fn constraint(&self) -> Result<Option<Constraint>, String> {
        let read = |p: &Path| std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()));
        if let Some(p) = &self.json_schema {
            let schema = serde_json::from_str(&read(p)?).map_err(|e| format!("{}: not JSON: {e}", p.display()))?;
            return Ok(Some(Constraint::JsonSchema(schema)));
        }
        if let Some(p) = &self.grammar {
            return Ok(Some(Constraint::Lark(read(p)?)));
        }
        Ok(self.regex.clone().map(Constraint::Regex))
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Generate from a prompt, streaming text to stdout and speeds to stderr.
    Run {
        #[command(flatten)]
        model: ModelArgs,
        #[arg(long, short)]
        prompt: String,
        /// Wrap the prompt as a user message in the model's chat template.
        #[arg(long)]
        chat: bool,
        /// Optional system prompt (with --chat).
        #[arg(long)]
        system: Option<String>,
        #[command(flatten)]
        sample: SampleArgs,
        #[command(flatten)]
        constraint: ConstraintArgs,
    },
    /// Interactive multi-turn chat in the terminal.
    Chat {
        #[command(flatten)]
        model: ModelArgs,
        #[arg(long)]
        system: Option<String>,
        #[command(flatten)]
        sample: SampleArgs,
    },
    /// Print metadata and the tensor table of a GGUF file.
    Inspect {
        /// A .gguf file or a registry id.
        model: String,
    },
    /// Prompt-processing and decode speed (median of --reps runs).
    Bench {
        #[command(flatten)]
        model: ModelArgs,
        #[arg(long, default_value_t = 5)]
        reps: usize,
        /// Prompt sizes, comma-separated (each measured once per rep; one `ppN:` line each).
        #[arg(long, value_delimiter = ',', num_args = 1.., default_value = "128")]
        pp: Vec<usize>,
        /// Decode steps per rep (one `tgN:` line); with a constraint, its max_tokens.
        #[arg(long, default_value_t = 128)]
        tg: usize,
        /// With a constraint: the chat prompt (user message) the constrained output answers.
        #[arg(long, requires = "constraint")]
        prompt: Option<String>,
        /// Constrained decoding vs unconstrained on the same tokens (needs --prompt).
        #[command(flatten)]
        constraint: ConstraintArgs,
        /// After the timed runs, one profiled run (--backend gpu): per prefill and decoded
        /// token, dispatches, submits, bind groups created, weight bytes read, encode and
        /// GPU time per op (GPU time where the adapter has timestamp queries).
        #[arg(long)]
        profile: bool,
    },
}

fn root() -> PathBuf {
    // The repository root: where models/registry.toml lives (cwd first, then the crate dir).
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    if cwd.join("models/registry.toml").is_file() {
        cwd
    } else {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
    }
}

fn resolve(arg: Option<&str>) -> Result<PathBuf, String> {
    let root = root();
    let reg = Registry::load(&root)?;
    let id = arg.map(str::to_string).unwrap_or_else(|| reg.default.clone());
    reg.resolve(&root, &id)
}

/// The sampling options, checked by the engine's one validation (`GenerateParams::validate`)
/// before any model is loaded.
fn params(s: &SampleArgs) -> Result<GenerateParams, String> {
    let p = GenerateParams {
        max_tokens: s.max_tokens,
        stop: s.stop.clone(),
        sampler: SamplerParams {
            temperature: s.temperature,
            top_k: s.top_k,
            top_p: s.top_p,
            min_p: s.min_p,
            repeat_penalty: s.repeat_penalty,
            repeat_last_n: 64,
            seed: s.seed,
        },
        constraint: None,
    };
    p.validate().map_err(|e| e.to_string())?;
    Ok(p)
}

fn load<B: Backend + 'static>(path: &Path, backend: B, ctx: usize) -> Result<Session<B>, String> {
    let t = Instant::now();
    let s = engine::load_file(path, backend, ModelOptions { n_ctx: ctx, ..Default::default() }, |_| {})
        .map_err(|e| format!("{}: {e}", path.display()))?;
    eprintln!("loaded {} on {} in {:.2} s", path.display(), s.backend().describe(), t.elapsed().as_secs_f64());
    Ok(s)
}

fn stream_to_stdout() -> impl FnMut(&str) -> bool {
    |d: &str| {
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(d.as_bytes());
        let _ = out.flush();
        true
    }
}

/// A speed with one decimal, or three significant digits below 10 tok/s (a 7B model on a CPU
/// adapter decodes well under 1 tok/s).
fn tps(x: f64) -> String {
    if x >= 10.0 { format!("{x:.1}") } else { format!("{x:.3}") }
}

fn report(c: &engine::Completion) {
    let u = &c.usage;
    eprintln!(
        "\n[{} | prompt {} tok ({} cached) {} tok/s, {:.1} s | decode {} tok {} tok/s, {:.1} s]",
        c.finish_reason.as_str(),
        u.prompt_tokens,
        u.cached_tokens,
        tps(u.prefill_tps()),
        u.prefill_ms / 1000.0,
        u.completion_tokens,
        tps(u.decode_tps()),
        u.decode_ms / 1000.0
    );
    if let Some(k) = &u.constraint {
        eprintln!(
            "[constraint | vocab {:.2} ms | compile {:.2} ms | grammar {:.2} ms | {} masks {:.3} ms | {} forced tok]",
            k.vocab_ms, k.compile_ms, k.grammar_ms, k.masks, k.mask_ms, k.forced_tokens
        );
    }
}

fn cmd_run<B: Backend + 'static>(mut s: Session<B>, prompt: &str, chat: bool, system: Option<&str>, p: &GenerateParams) -> Result<(), String> {
    let mut msgs = Vec::new();
    if let Some(sys) = system {
        msgs.push(ChatMessage { role: "system".into(), content: sys.into() });
    }
    msgs.push(ChatMessage { role: "user".into(), content: prompt.into() });
    let c = if chat { s.chat(&msgs, p, &mut stream_to_stdout()) } else { s.complete(prompt, p, &mut stream_to_stdout()) }
        .map_err(|e| e.to_string())?;
    println!();
    report(&c);
    Ok(())
}

fn cmd_chat<B: Backend + 'static>(mut s: Session<B>, system: Option<&str>, p: &GenerateParams) -> Result<(), String> {
    let mut msgs = Vec::new();
    if let Some(sys) = system {
        msgs.push(ChatMessage { role: "system".into(), content: sys.into() });
    }
    eprintln!("Chat with the model. Empty line or Ctrl-D to quit; /reset to start over.");
    let stdin = std::io::stdin();
    loop {
        eprint!("> ");
        let mut line = String::new();
        if stdin.lock().read_line(&mut line).map_err(|e| e.to_string())? == 0 || line.trim().is_empty() {
            return Ok(());
        }
        if line.trim() == "/reset" {
            msgs.retain(|m| m.role == "system");
            continue;
        }
        msgs.push(ChatMessage { role: "user".into(), content: line.trim_end().into() });
        match s.chat(&msgs, p, &mut stream_to_stdout()) {
            Ok(c) => {
                println!();
                report(&c);
                msgs.push(ChatMessage { role: "assistant".into(), content: c.text });
            }
            Err(e) => {
                eprintln!("error: {e}");
                msgs.pop();
            }
        }
    }
}

/// The header of the GGUF file at `path`, checked against the file's length.
fn read_header(path: &Path) -> Result<std::sync::Arc<hearth::gguf::Header>, String> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let len = f.metadata().map_err(|e| e.to_string())?.len();
    let mut reader = hearth::gguf::Reader::with_limits(len.min(hearth::gguf::DEFAULT_MAX_HEADER_BYTES));
    let mut buf = vec![0u8; 1 << 20];
    let header = loop {
        let n = f.read(&mut buf).map_err(|e| e.to_string())?;
        if n == 0 {
            return Err(format!("{}: {}", path.display(), hearth::gguf::Error::Truncated { needed: reader.bytes_seen() + 1 }));
        }
        if let Some(h) = reader.feed(&buf[..n]).map_err(|e| format!("{}: {e}", path.display()))?.into_iter().find_map(|e| match e {
            hearth::gguf::Event::Header(h) => Some(h),
            _ => None,
        }) {
            break h;
        }
    };
    header.check_file_len(len).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(header)
}

/// Prints the metadata and tensor table of a GGUF file; given any part of a split model
/// (`<prefix>-0000K-of-0000N.gguf`), the first part's metadata and every part's tensors.
fn inspect(path: &Path) -> Result<(), String> {
    use hearth::gguf::split::{part_paths, Parts, SplitInfo};
    let paths = part_paths(path).unwrap_or_else(|| vec![path.to_path_buf()]);
    let mut parts = Parts::default();
    let mut first = None;
    let mut tensors = Vec::new();
    for p in &paths {
        let header = read_header(p)?;
        let split = SplitInfo::from_metadata(&header.metadata).map_err(|e| format!("{}: {e}", p.display()))?;
        parts.add(split, &header.tensors).map_err(|e| format!("{}: {e}", p.display()))?;
        println!("{}: GGUF v{}, {} metadata keys, {} tensors, data at {}", p.display(), header.version, header.metadata.len(), header.tensors.len(), header.data_offset);
        tensors.extend(header.tensors.iter().cloned());
        first.get_or_insert(header);
    }
    parts.finish().map_err(|e| format!("{}: {e}", path.display()))?;
    let Some(header) = first else { return Err(format!("{}: no file", path.display())) };
    for (k, v) in header.metadata.iter() {
        println!("  {k} = {}", v.summary());
    }
    println!("\n  {:<36} {:>6} {:>22} {:>12}", "tensor", "type", "dims", "bytes");
    for t in &tensors {
        println!("  {:<36} {:>6} {:>22} {:>12}", t.name, t.ty.name(), format!("{:?}", t.dims), t.n_bytes);
    }
    // A well-formed model Hearth does not run is reported; a malformed one is an error.
    match hearth::model::Config::from_metadata(&header.metadata).and_then(|c| c.check_directory(&tensors).map(|()| c)) {
        Ok(c) => println!("\nsupported: {c:?}"),
        Err(e @ hearth::model::ModelError::UnsupportedArchitecture { .. }) => println!("\nnot runnable: {e}"),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    }
    Ok(())
}

fn with_backend(m: &ModelArgs, f: &mut dyn FnMut(&Path, BackendChoice) -> Result<(), String>) -> Result<(), String> {
    let path = resolve(m.model.as_deref())?;
    match m.backend {
        BackendKind::Cpu => f(&path, BackendChoice::Cpu),
        BackendKind::Gpu => f(&path, BackendChoice::Gpu),
    }
}

enum BackendChoice {
    Cpu,
    Gpu,
}

macro_rules! on_backend {
    ($choice:expr, $path:expr, $ctx:expr, |$s:ident| $body:expr) => {
        match $choice {
            BackendChoice::Cpu => {
                let $s = load($path, CpuBackend::new(), $ctx)?;
                $body
            }
            BackendChoice::Gpu => gpu_session($path, $ctx).and_then(|$s| $body),
        }
    };
}

#[cfg(feature = "gpu")]
fn gpu_session(path: &Path, ctx: usize) -> Result<Session<hearth::backend::gpu::GpuBackend>, String> {
    use hearth::backend::gpu::{GpuBackend, GpuContext, GpuOptions};
    // HEARTH_GPU_INT8=0/1 forces the integer products (8-bit activations) off/on, for
    // before/after comparisons; unset: the measured default per format.
    let int8 = match std::env::var("HEARTH_GPU_INT8").as_deref() {
        Ok("0") => Some(false),
        Ok("1") => Some(true),
        Ok(other) => return Err(format!("HEARTH_GPU_INT8 must be 0 or 1, not {other:?}")),
        Err(_) => None,
    };
    let device = pollster::block_on(GpuContext::new()).map_err(|e| e.to_string())?;
    let b = GpuBackend::with_options(device, GpuOptions { int8, ..Default::default() }).map_err(|e| e.to_string())?;
    let mut s = load(path, b, ctx)?;
    // The decode matvec's launch shape per weight class, tuned once per adapter (cached on
    // disk; HEARTH_GPU_TUNE=off|force): one JSON line on stderr says what was used.
    let report = hearth::backend::gpu::tune::autotune_native(s.backend_mut()).map_err(|e| e.to_string())?;
    eprintln!("gpu tune: {}", serde_json::to_string(&report).unwrap_or_default());
    Ok(s)
}

#[cfg(not(feature = "gpu"))]
fn gpu_session(_: &Path, _: usize) -> Result<Session<CpuBackend>, String> {
    Err("this build has no GPU backend (built without the `gpu` feature)".into())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let r = match cli.cmd {
        Cmd::Inspect { model } => resolve(Some(&model)).and_then(|p| inspect(&p)),
        Cmd::Run { model, prompt, chat, system, sample, constraint } => params(&sample).and_then(|p| {
            let p = GenerateParams { constraint: constraint.constraint()?, ..p };
            with_backend(&model, &mut |path, b| on_backend!(b, path, model.ctx, |s| cmd_run(s, &prompt, chat, system.as_deref(), &p)))
        }),
        Cmd::Chat { model, system, sample } => params(&sample).and_then(|p| {
            with_backend(&model, &mut |path, b| on_backend!(b, path, model.ctx, |s| cmd_chat(s, system.as_deref(), &p)))
        }),
        Cmd::Bench { model, reps, pp, tg, profile, prompt, constraint } => constraint.constraint().and_then(|c| {
            with_backend(&model, &mut |path, b| match (&c, &prompt, profile, b) {
                (Some(_), _, true, _) => Err("--profile does not take a constraint".into()),
                (Some(_), None, ..) => Err("a constrained bench needs --prompt".into()),
                (Some(c), Some(prompt), false, b) => {
                    on_backend!(b, path, model.ctx, |s| bench::cmd_bench_constrained(s, reps.max(1), prompt, c.clone(), tg))
                }
                (None, _, false, b) => on_backend!(b, path, model.ctx, |s| bench::cmd_bench(s, reps.max(1), &pp, tg)),
                (None, _, true, BackendChoice::Gpu) => bench::gpu_profile(path, model.ctx, reps.max(1), &pp, tg),
                (None, _, true, BackendChoice::Cpu) => Err("--profile needs --backend gpu".into()),
            })
        }),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line, whatever the error carries (template errors may quote multi-line source).
            eprintln!("error: {}", e.trim_end().replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}
