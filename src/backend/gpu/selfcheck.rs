//! Every op of one backend against another (the CPU oracle) on the same random inputs,
//! through the [`Backend`] trait. Shared by the native GPU tests (lavapipe) and the
//! browser (`gpu_selfcheck` in `wasm/dev.rs`, run by `tests/browser/gpu_kernels.test.mjs` on
//! WebGPU/SwiftShader), so the same kernel checks run in both places.
//!
//! Sizes are deliberately not multiples of any workgroup size (67 rows, 96 columns — 256
//! for the k-quants, whose rows are whole super-blocks —, 1, 5 (matvec) and 9 (tiled
//! matmul) tokens). Error measure: normalised RMS error `sqrt(Σ(got - want)² / Σ want²)` (ggml's
//! test-backend-ops NMSE, square-rooted).

use super::pipelines::WEIGHT_KERNELS;
use crate::backend::{Activation, AttnParams, Backend, BackendError, RopeParams, WeightDesc};
use crate::quant::synth::{random_weight, Rng};
use crate::quant::GgmlType;

/// Block types the GPU kernels cover and the checks exercise: every
/// [`WEIGHT_KERNELS`] row.
pub fn types() -> impl Iterator<Item = GgmlType> {
    WEIGHT_KERNELS.iter().map(|k| k.ty)
}

/// Normalised RMS error of `got` against `want` (infinite when the lengths differ).
pub fn nrmse(got: &[f32], want: &[f32]) -> f64 {
    if got.len() != want.len() {
        return f64::INFINITY;
    }
    let (mut num, mut den) = (0f64, 0f64);
    for (&g, &w) in got.iter().zip(want) {
        num += (f64::from(g) - f64::from(w)).powi(2);
        den += f64::from(w).powi(2);
    }
    (num / den.max(1e-30)).sqrt()
}

/// The integer products (8-bit activations) against an f32 product: the activations' rounding
/// (≤ d/2 per element, d = max|x|/127 per block of 32) gives ~0.5 % RMS on uniform data.
pub const INT8_TOLERANCE: f64 = 2e-2;

/// The tolerance for an op's output (argmax must match exactly). RoPE gets 5e-4: it is
/// applied twice in a row here, and SwiftShader's sin/cos are less precise than lavapipe's
/// (measured: 1.2e-5 on lavapipe, 1.6e-4 in Chromium on SwiftShader).
pub fn tolerance(name: &str) -> f64 {
    if name.starts_with("rope") {
        5e-4
    } else if name == "argmax" {
        0.0
    } else {
        1e-5
    }
}

/// One op's outcome.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct OpCheck {
    pub name: String,
    pub error: f64,
    pub tolerance: f64,
    pub ok: bool,
}

/// Runs one forward-like sequence of every op on `b` and returns each op's output.
/// Reads go through [`Backend::read_async`], so this runs where reads cannot block.
pub async fn op_sequence<B: Backend>(b: &mut B, seed: u64) -> Result<Vec<(String, Vec<f32>)>, BackendError> {
    let mut rng = Rng(seed);
    let mut outs = Vec::new();
    let (n, cols, rows) = (5, 96, 67);
    // 9 tokens: enough for the tiled prefill matmul (MATMUL_MIN_TOKENS = 8 on the GPU).
    let n_tiled = 9;
    let xs = rng.vec(n_tiled * cols);
    let x = b.alloc(n_tiled * cols)?;
    b.write(&x, 0, &xs)?;
    // k-quant rows are whole 256-element super-blocks: they get their own activations.
    let kcols = 256;
    let xk = b.alloc(n_tiled * kcols)?;
    b.write(&xk, 0, &rng.vec(n_tiled * kcols))?;
    let bias_bytes: Vec<u8> = rng.vec(rows).iter().flat_map(|v| v.to_le_bytes()).collect();
    let bias = b.upload(&WeightDesc { name: "bias".into(), ty: GgmlType::F32, dims: vec![rows] }, &bias_bytes)?;
    for ty in types() {
        let (cols, x) = if ty.block_size() == kcols { (kcols, &xk) } else { (cols, &x) };
        let bytes = random_weight(&mut rng, ty, rows, cols).ok_or(BackendError::UnsupportedType { op: "selfcheck", ty })?;
        let w = b.upload(&WeightDesc { name: "test".into(), ty, dims: vec![cols, rows] }, &bytes)?;
        for nt in [1, n, n_tiled] {
            let out = b.alloc(nt * rows)?;
            b.matmul(&w, x, &out, nt)?;
            outs.push((format!("matmul {ty:?} n={nt}"), b.read_async(&out, 0, nt * rows).await?));
        }
        for nt in [1, n] {
            let out = b.alloc(nt * rows)?;
            b.matmul_bias(&w, x, &out, nt, &bias, rows)?;
            outs.push((format!("matmul_bias {ty:?} n={nt}"), b.read_async(&out, 0, nt * rows).await?));
        }
        let e = b.alloc(3 * cols)?;
        b.embed(&w, &[66, 0, 31], &e)?;
        outs.push((format!("embed {ty:?}"), b.read_async(&e, 0, 3 * cols).await?));
    }
    let g: Vec<u8> = rng.vec(cols).iter().flat_map(|v| v.to_le_bytes()).collect();
    let gw = b.upload(&WeightDesc { name: "norm".into(), ty: GgmlType::F32, dims: vec![cols] }, &g)?;
    let h = b.alloc(n * cols)?;
    b.rms_norm(&x, &gw, &h, n, cols, 1e-6)?;
    outs.push(("rms_norm".into(), b.read_async(&h, 0, n * cols).await?));
    b.add_bias(&h, &gw, n, cols)?;
    outs.push(("add_bias".into(), b.read_async(&h, 0, n * cols).await?));
    for neox in [false, true] {
        b.rope(&h, n, 3, 32, 7, RopeParams { theta: 10000.0, n_rot: 32, neox, freq_scale: 1.0 })?;
        outs.push((format!("rope neox={neox}"), b.read_async(&h, 0, n * cols).await?));
    }
    // Fresh queries: each op is checked on identical inputs, so one kernel's rounding (RoPE's
    // sin/cos) does not count against the next.
    b.write(&h, 0, &rng.vec(n * cols))?;
    let (k, v, att) = (b.alloc(20 * 32)?, b.alloc(20 * 32)?, b.alloc(n * cols)?);
    b.write(&k, 0, &rng.vec(20 * 32))?;
    b.write(&v, 0, &rng.vec(20 * 32))?;
    for (window, softcap) in [(None, None), (Some(4), Some(3.0))] {
        let p = AttnParams { n_tokens: n, pos0: 12, n_head: 3, n_head_kv: 1, head_dim: 32, scale: 0.3, window, softcap };
        b.attention(&h, &k, &v, &att, p)?;
        outs.push((format!("attention {window:?} {softcap:?}"), b.read_async(&att, 0, n * cols).await?));
    }
    for act in [Activation::Silu, Activation::Gelu] {
        b.glu(&att, &x, n * cols, act)?;
        outs.push((format!("glu {act:?}"), b.read_async(&att, 0, n * cols).await?));
    }
    b.add_assign(&att, &x, n * cols)?;
    b.scale(&att, n * cols, 0.7)?;
    b.softcap(&att, n * cols, 2.0)?;
    b.copy(&att, 3, &h, 5, 100)?;
    outs.push(("add_assign+scale+softcap+copy".into(), b.read_async(&h, 0, n * cols).await?));
    outs.push(("argmax".into(), vec![b.argmax_async(&h, 7, 300).await? as f32]));
    Ok(outs)
}

/// Runs [`op_sequence`] on `b` and on the `oracle` and compares every output. The tolerances
/// assume both take f32 activations (an oracle CPU backend: `CpuBackend::with_f32_activations`).
///
/// `act8`: the formats whose products `b` runs with 8-bit activations
/// ([`super::GpuBackend::int8_types`]); their products get [`INT8_TOLERANCE`].
pub async fn compare<B: Backend, O: Backend>(b: &mut B, oracle: &mut O, seed: u64, act8: &[GgmlType]) -> Result<Vec<OpCheck>, BackendError> {
    let want = op_sequence(oracle, seed).await?;
    let got = op_sequence(b, seed).await?;
    Ok(want
        .iter()
        .zip(&got)
        .map(|((name, w), (_, g))| {
            let error = nrmse(g, w);
            let int8 = act8.iter().any(|ty| name.starts_with(&format!("matmul {ty:?} ")) || name.starts_with(&format!("matmul_bias {ty:?} ")));
            let tolerance = if int8 { INT8_TOLERANCE } else { tolerance(name) };
            OpCheck { name: name.clone(), error, tolerance, ok: error <= tolerance }
        })
        .collect())
}
