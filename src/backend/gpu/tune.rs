//! A short per-adapter autotune of the decode matvec's launch shape ([`MatvecShape`]: threads
//! per workgroup, threads per row), per block format and row length of the weights uploaded.
//!
//! The decode matvec is most of a decoded token's GPU time (89–97 % on lavapipe), and the best
//! shape depends on the adapter (SIMD width, occupancy, how it schedules barriers). For each
//! class of weight the model has, up to 12 candidates are timed on random weights of that
//! format and row length: workgroups of 32, 64, 128 and 256 threads, each with the default
//! threads per row, half and twice as many. A candidate is kept only if it beats the default
//! by [`MARGIN`] (noise must not flip the choice) and its products agree with the default's (a
//! candidate a driver miscompiles is rejected, never used). A step (two products, one
//! readback) is timed by wall clock over submit + readback (the caller's clock: `Instant`
//! natively, `performance.now()` in the browser); candidates take turns, one step each per
//! round, so a busy machine slows them alike, and the fastest step of each counts.
//!
//! The choice is cached by the caller keyed by [`cache_key`] (adapter, kernel version, format,
//! row length): natively a JSON file ([`disk`]), in the browser the store (`www/src/backend-tune.ts`).
//! Software adapters (lavapipe, SwiftShader) are not tuned unless forced: there the tune costs
//! seconds and the shape matters little.

use super::pipelines::MatvecShape;
use super::{GpuBackend, GpuTensor, GpuWeight};
use crate::backend::{Backend, BackendError, WeightDesc};
use crate::quant::synth::{random_weight, Rng};
use crate::quant::GgmlType;
use std::collections::HashMap;

/// Bump when the matvec kernel or the candidates change: cached choices are then ignored.
pub const TUNE_VERSION: u32 = 1;
/// A candidate must be this much faster than the default to replace it.
pub const MARGIN: f64 = 0.05;
/// Weights with fewer rows than this (norms, biases) are not tuned.
const MIN_ROWS: usize = 64;
/// Bytes of each of the two random weights a step reads (about a layer's projection).
const WEIGHT_BYTES: usize = 4 << 20;
/// Timing rounds (one step of each candidate): at least / at most.
const MIN_ROUNDS: usize = 3;
const MAX_ROUNDS: usize = 20;

/// What the tune did for one class of weight.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TuneEntry {
    pub format: String,
    pub cols: usize,
    /// The shape used from now on.
    pub shape: MatvecShape,
    pub default: MatvecShape,
    /// Fastest step (ms) of the default and of the chosen shape.
    pub default_ms: f64,
    pub best_ms: f64,
    /// Every candidate timed: shape and fastest step (ms); `None` for one rejected because
    /// its products disagreed with the default's.
    pub candidates: Vec<(MatvecShape, Option<f64>)>,
    /// Timing rounds run (one step of every candidate each).
    #[serde(default)]
    pub rounds: usize,
    /// Whether this came from the cache (nothing was timed now).
    #[serde(default)]
    pub cached: bool,
}

/// The tune's options.
#[derive(Debug, Clone, Default)]
pub struct TuneOptions {
    /// Milliseconds of timing in all (compiles and uploads come on top); 0 means [`DEFAULT_BUDGET_MS`].
    pub budget_ms: f64,
    /// Tune a software adapter too (tests, measurements).
    pub force: bool,
    /// Earlier choices, by [`cache_key`]; classes found here are not timed again.
    pub cached: HashMap<String, TuneEntry>,
}

/// Default timing budget.
pub const DEFAULT_BUDGET_MS: f64 = 250.0;

/// What [`GpuBackend::autotune`] reports.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct TuneReport {
    /// The adapter part of the cache keys.
    pub adapter: String,
    /// Why nothing was tuned (a software adapter not forced), else `None`.
    pub skipped: Option<String>,
    /// Per class, keyed by [`cache_key`].
    pub entries: Vec<(String, TuneEntry)>,
    /// Wall time of the tune (ms), uploads and compiles included.
    pub ms: f64,
}

/// The adapter as a cache key: backend, vendor, device, name and driver.
pub fn adapter_key(info: &wgpu::AdapterInfo) -> String {
    format!("{:?}/{:#x}/{:#x}/{}/{} {}", info.backend, info.vendor, info.device, info.name, info.driver, info.driver_info)
}

/// The cache key of one class on one adapter.
pub fn cache_key(adapter: &str, ty: GgmlType, cols: usize) -> String {
    format!("v{TUNE_VERSION}|{adapter}|matvec|{}|{cols}", ty.name())
}

/// Whether the adapter is a software one (lavapipe natively; the browser reports no type,
/// there the page decides with its own adapter check and passes `force`).
pub fn is_software(info: &wgpu::AdapterInfo) -> bool {
    info.device_type == wgpu::DeviceType::Cpu
}

/// The matvec shapes chosen so far and the weight classes seen (kept by the backend).
#[derive(Debug, Default)]
pub struct Tuning {
    chosen: HashMap<(GgmlType, usize), MatvecShape>,
    /// In upload order, once each.
    seen: Vec<(GgmlType, usize)>,
}

impl Tuning {
    /// Records an uploaded weight's class (a candidate for the tune).
    pub fn note(&mut self, ty: GgmlType, rows: usize, cols: usize) {
        if rows >= MIN_ROWS && super::weights::supported(ty) && cols % 32 == 0 && !self.seen.contains(&(ty, cols)) {
            self.seen.push((ty, cols));
        }
    }

    /// The shape for `ty` rows of `cols`: the tuned one, else the default.
    pub fn shape(&self, ty: GgmlType, cols: usize) -> MatvecShape {
        self.chosen.get(&(ty, cols)).copied().unwrap_or_else(|| MatvecShape::default_for(ty, cols))
    }
}

/// The shapes timed for a class whose default is `d` (first): workgroups of 32 to 256
/// threads, each with the default threads per row, half and twice as many (at most 64).
pub(super) fn candidates(d: MatvecShape) -> Vec<MatvecShape> {
    let mut v = vec![d];
    for wg in [32, 64, 128, 256] {
        for tpr in [d.tpr, d.tpr / 2, d.tpr * 2] {
            let s = MatvecShape { wg, tpr };
            if s.valid() && s.tpr <= 64 && !v.contains(&s) {
                v.push(s);
            }
        }
    }
    v
}

/// Whether two products agree to rounding (different threads per row sum in another order).
fn agrees(a: &[f32], b: &[f32]) -> bool {
    let scale = a.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| (x - y).abs() <= 1e-4 * scale)
}

struct Bench {
    weights: Vec<GpuWeight>,
    x: GpuTensor,
    out: GpuTensor,
    rows: usize,
}

impl GpuBackend {
    /// The decode matvec's shape for `ty` rows of `cols` columns (tuned, else the default).
    pub fn matvec_shape(&self, ty: GgmlType, cols: usize) -> MatvecShape {
        self.tuning.shape(ty, cols)
    }

    /// Uses `shape` for `ty` rows of `cols` columns from now on (tests, cached choices).
    /// Errors: `Shape` for a shape the kernel does not take.
    pub fn set_matvec_shape(&mut self, ty: GgmlType, cols: usize, shape: MatvecShape) -> Result<(), BackendError> {
        if !shape.valid() {
            return Err(BackendError::Shape { op: "matvec", detail: format!("{shape:?} is not a valid matvec shape") });
        }
        self.tuning.chosen.insert((ty, cols), shape);
        Ok(())
    }

    /// The classes (format, row length) of the weights uploaded so far that the tune would time.
    pub fn tune_classes(&self) -> Vec<(GgmlType, usize)> {
        self.tuning.seen.clone()
    }

    /// Tunes the matvec shape of every class of weight uploaded so far (see the module
    /// comment), using `opts.cached` where it has the class. `now` is the clock in ms.
    pub async fn autotune(&mut self, opts: &TuneOptions, now: &dyn Fn() -> f64) -> Result<TuneReport, BackendError> {
        let t0 = now();
        let adapter = adapter_key(&self.ctx.info);
        let mut report = TuneReport { adapter: adapter.clone(), ..Default::default() };
        let classes = self.tune_classes();
        let mut todo = Vec::new();
        for &(ty, cols) in &classes {
            let key = cache_key(&adapter, ty, cols);
            match opts.cached.get(&key) {
                Some(e) if e.shape.valid() && e.format == ty.name() && e.cols == cols => {
                    self.tuning.chosen.insert((ty, cols), e.shape);
                    report.entries.push((key, TuneEntry { cached: true, ..e.clone() }));
                }
                _ => todo.push((key, ty, cols)),
            }
        }
        if !todo.is_empty() && is_software(&self.ctx.info) && !opts.force {
            report.skipped = Some(format!("software adapter ({}): not tuned", self.ctx.info.name));
            todo.clear();
        }
        let budget = if opts.budget_ms > 0.0 { opts.budget_ms } else { DEFAULT_BUDGET_MS };
        let per_class = budget / todo.len().max(1) as f64;
        for (key, ty, cols) in todo {
            let entry = self.tune_class(ty, cols, per_class, now).await?;
            self.tuning.chosen.insert((ty, cols), entry.shape);
            report.entries.push((key, entry));
        }
        report.ms = now() - t0;
        Ok(report)
    }

    async fn tune_class(&mut self, ty: GgmlType, cols: usize, budget_ms: f64, now: &dyn Fn() -> f64) -> Result<TuneEntry, BackendError> {
        let bench = self.tune_bench(ty, cols)?;
        let d = MatvecShape::default_for(ty, cols);
        let shapes = candidates(d);
        // Each candidate once (compiling it), its products checked against the default's.
        let mut ok = Vec::with_capacity(shapes.len());
        let mut reference = Vec::new();
        for &s in &shapes {
            self.tuning.chosen.insert((ty, cols), s);
            for w in &bench.weights {
                self.matmul_weight(w, &bench.x, &bench.out, 1)?;
            }
            let out = self.read_nonblocking(&bench.out, 0, bench.rows).await?;
            if s == d {
                reference = out;
                ok.push(true);
            } else {
                ok.push(agrees(&reference, &out));
            }
        }
        // Rounds of one step per agreeing candidate, in turn, so that load on a shared machine
        // falls on all of them alike; the fastest step of each counts.
        let mut best = vec![f64::INFINITY; shapes.len()];
        let (start, mut rounds) = (now(), 0);
        while rounds < MAX_ROUNDS && (rounds < MIN_ROUNDS || now() - start < budget_ms) {
            for k in 0..shapes.len() {
                let i = (k + rounds) % shapes.len();
                if !ok[i] {
                    continue;
                }
                self.tuning.chosen.insert((ty, cols), shapes[i]);
                let t = now();
                for w in &bench.weights {
                    self.matmul_weight(w, &bench.x, &bench.out, 1)?;
                }
                self.read_nonblocking(&bench.out, 0, 1).await?;
                best[i] = best[i].min(now() - t);
            }
            rounds += 1;
        }
        self.tuning.chosen.remove(&(ty, cols));
        let default_ms = best[0];
        let (mut shape, mut best_ms) = (d, default_ms);
        for (i, &s) in shapes.iter().enumerate() {
            if ok[i] && best[i] < best_ms {
                (shape, best_ms) = (s, best[i]);
            }
        }
        if best_ms >= default_ms * (1.0 - MARGIN) {
            (shape, best_ms) = (d, default_ms);
        }
        let candidates = shapes.iter().zip(&ok).zip(&best).map(|((&s, &ok), &ms)| (s, ok.then_some(ms))).collect();
        Ok(TuneEntry { format: ty.name().to_string(), cols, shape, default: d, default_ms, best_ms, candidates, rounds, cached: false })
    }

    /// Two random weights of about [`WEIGHT_BYTES`] each, an input and an output.
    fn tune_bench(&mut self, ty: GgmlType, cols: usize) -> Result<Bench, BackendError> {
        let row_bytes = ty.bytes_for(cols as u64).unwrap_or(1).max(1) as usize;
        let rows = (WEIGHT_BYTES / row_bytes).clamp(MIN_ROWS, 8192) | 1; // odd: a partial last workgroup
        let mut rng = Rng(0x7475_6e65);
        let bytes = random_weight(&mut rng, ty, rows, cols)
            .ok_or_else(|| BackendError::Shape { op: "tune", detail: format!("no {ty:?} weight of {cols} columns") })?;
        let mut weights = Vec::new();
        for i in 0..2 {
            let desc = WeightDesc { name: format!("tune.{i}"), ty, dims: vec![cols, rows] };
            weights.push(self.upload_weight(&desc, super::weights::Src::Whole(&bytes))?);
        }
        let x = self.alloc(cols)?;
        let xs: Vec<f32> = (0..cols).map(|_| rng.f()).collect();
        self.write(&x, 0, &xs)?;
        let out = self.alloc(rows)?;
        Ok(Bench { weights, x, out, rows })
    }
}

/// The native cache of tune choices: one JSON file (`{"version", "entries": {key: TuneEntry}}`).
#[cfg(not(target_arch = "wasm32"))]
pub mod disk {
    use super::{TuneEntry, TuneReport, TUNE_VERSION};
    use std::collections::HashMap;
    use std::path::{Path, PathBuf};

    /// `$HEARTH_GPU_TUNE_CACHE`, else `$XDG_CACHE_HOME/hearth/gpu-tune.json`, else
    /// `$HOME/.cache/hearth/gpu-tune.json`; `None` when none of them is set.
    pub fn default_path() -> Option<PathBuf> {
        let var = |k| std::env::var_os(k).filter(|v| !v.is_empty()).map(PathBuf::from);
        var("HEARTH_GPU_TUNE_CACHE")
            .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("hearth/gpu-tune.json")))
            .or_else(|| var("HOME").map(|d| d.join(".cache/hearth/gpu-tune.json")))
    }

    #[derive(serde::Serialize, serde::Deserialize)]
    struct File {
        version: u32,
        entries: HashMap<String, TuneEntry>,
    }

    /// The cached entries; an absent, unreadable or other-version file gives none (the tune
    /// then runs and rewrites it). Entries with an invalid shape are dropped.
    pub fn read(path: &Path) -> HashMap<String, TuneEntry> {
        let Ok(bytes) = std::fs::read(path) else { return HashMap::new() };
        match serde_json::from_slice::<File>(&bytes) {
            Ok(f) if f.version == TUNE_VERSION => f.entries.into_iter().filter(|(_, e)| e.shape.valid()).collect(),
            _ => HashMap::new(),
        }
    }

    /// Adds the report's newly timed entries to the file (best effort: a read-only cache
    /// directory only means the next run tunes again).
    pub fn write(path: &Path, report: &TuneReport) -> std::io::Result<()> {
        let fresh: Vec<_> = report.entries.iter().filter(|(_, e)| !e.cached).collect();
        if fresh.is_empty() {
            return Ok(());
        }
        let mut entries = read(path);
        for (k, e) in fresh {
            entries.insert(k.clone(), e.clone());
        }
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec_pretty(&File { version: TUNE_VERSION, entries }).map_err(std::io::Error::other)?)?;
        std::fs::rename(tmp, path)
    }
}

/// Native tune with the on-disk cache, as `hearth` runs it: `HEARTH_GPU_TUNE` = `off` (no
/// tune, defaults), `force` (tune a software adapter too), anything else or unset (tune
/// hardware adapters). Returns the report (also when skipped).
#[cfg(not(target_arch = "wasm32"))]
pub fn autotune_native(b: &mut GpuBackend) -> Result<TuneReport, BackendError> {
    let mode = std::env::var("HEARTH_GPU_TUNE").unwrap_or_default();
    if mode == "off" {
        return Ok(TuneReport { adapter: adapter_key(&b.ctx.info), skipped: Some("HEARTH_GPU_TUNE=off".into()), ..Default::default() });
    }
    let path = disk::default_path();
    let cached = path.as_deref().map(disk::read).unwrap_or_default();
    let opts = TuneOptions { force: mode == "force", cached, ..Default::default() };
    let t0 = std::time::Instant::now();
    let now = move || t0.elapsed().as_secs_f64() * 1e3;
    let report = pollster::block_on(b.autotune(&opts, &now))?;
    if let Some(p) = path {
        let _ = disk::write(&p, &report);
    }
    Ok(report)
}
