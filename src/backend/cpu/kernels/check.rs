//! The integer kernels this build selected (AVX2, SIMD128 or scalar), checked at run time
//! against their scalar references on random rows: the checks `cargo test` makes natively
//! (`tests.rs`), runnable where the test build never runs — in the browser, whose
//! SIMD128 kernels are exported as `cpu_kernel_check` (`wasm/dev.rs`,
//! `tests/browser/wasm_api.test.mjs`).
//!
//! Error measure: `|got − want| / Σ|w_i·x_i|` (the sum of the products' magnitudes, so a
//! dot product that cancels to near zero is not judged by its tiny result). The integer
//! sums are exact; only the f32 scale products and their order may differ.

use super::attention::attention_reference;
use super::q8::{quantize_block, Q8_BLOCK};
use crate::backend::AttnParams;
use super::{attention_tiled, machines, Machine};
use super::{dot_q8_fn, dot_q8_rows_fn, dot_q8_scalar_fn, dot_q8_tile_fn, dot_q8_tile_rows_fn, dot_q8x4_fn, quantize_block_fast, Q8Acts, Q8Tiles, TILE_ROWS};
use crate::quant::synth::{random_weight, Rng};
use crate::quant::{dequantize, FORMATS};

/// Allowed error (as in `tests.rs`).
const TOLERANCE: f64 = 2e-6;

/// One kernel on one row length.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct KernelCheck {
    /// The weight format, e.g. `Q4_K`.
    pub ty: String,
    /// `"dot"` (one token against the scalar reference), `"dot4"` (the four-token kernel
    /// against four one-token calls), `"tile"` (the interleaved four-token kernel, likewise),
    /// `"tile_rows"` (the several-row tile, likewise), `"rows_bits"` / `"tile_rows_bits"` (the
    /// one-token four-row kernel / the several-row tile against the one-row tile on four
    /// different rows: `error` is the number of results whose bits differ, which must be 0),
    /// `"quantize"` ([`check_quantize`]), or `"attention"` / `"attention_tile"`
    /// ([`check_attention`]; then `ty` is the machine and `cols` the head size).
    pub kernel: &'static str,
    /// Row length in elements.
    pub cols: usize,
    /// Largest error over the four tokens (see the module docs).
    pub error: f64,
    pub tolerance: f64,
    pub ok: bool,
}

/// Checks every selected integer kernel on rows of 1, 3 and 7 blocks; four tokens each.
pub fn check_q8_kernels(seed: u64) -> Vec<KernelCheck> {
    let mut rng = Rng(seed | 1);
    let mut out = Vec::new();
    // Every format this machine runs an integer kernel for (and that has a reference).
    for ty in FORMATS.iter().map(|f| f.ty) {
        let (Some(fast), Some(reference)) = (dot_q8_fn(ty), dot_q8_scalar_fn(ty)) else { continue };
        for blocks in [1, 3, 7] {
            let cols = blocks * ty.block_size();
            let Some(row) = random_weight(&mut rng, ty, 1, cols) else { continue };
            let mut w = vec![0.0f32; cols];
            if dequantize(ty, &row, &mut w).is_err() {
                continue;
            }
            // Activations at several magnitudes, one block all zero.
            let mut x: Vec<f32> = (0..4 * cols).map(|i| rng.f() * [0.01, 0.3, 1.0, 20.0][(i / 32) % 4]).collect();
            x[..32].iter_mut().for_each(|v| *v = 0.0);
            let mut acts = Q8Acts::new();
            if acts.quantize(&x).is_err() {
                continue;
            }
            let Some(xs) = (0..4).map(|k| acts.slice(k * cols, cols)).collect::<Option<Vec<_>>>() else { continue };
            let mag = |k: usize| -> f64 {
                let s = xs[k];
                (0..cols).map(|i| (w[i] as f64 * s.d[i / 32] as f64 * s.qs[i] as f64).abs()).sum::<f64>().max(1e-30)
            };
            let one: Vec<f32> = xs.iter().map(|&s| fast(&row, s)).collect();
            // A four-token kernel's largest error against the one-token kernel.
            let vs_one = |four: [f32; 4]| (0..4).map(|k| (four[k] as f64 - one[k] as f64).abs() / mag(k)).fold(0.0, f64::max);
            let err = (0..4).map(|k| (one[k] as f64 - reference(&row, xs[k]) as f64).abs() / mag(k)).fold(0.0, f64::max);
            out.push(KernelCheck { ty: format!("{ty:?}"), kernel: "dot", cols, error: err, tolerance: TOLERANCE, ok: err <= TOLERANCE });
            if let Some(f4) = dot_q8x4_fn(ty) {
                let err = vs_one(f4(&row, [xs[0], xs[1], xs[2], xs[3]]));
                out.push(KernelCheck { ty: format!("{ty:?}"), kernel: "dot4", cols, error: err, tolerance: TOLERANCE, ok: err <= TOLERANCE });
            }
            let mut tiles = Q8Tiles::default();
            if let (Some(f), true) = (dot_q8_tile_fn(ty), tiles.fill(&acts, 4, cols)) {
                let Some(tile) = tiles.tile(0) else { continue };
                let err = vs_one(f(&row, tile));
                out.push(KernelCheck { ty: format!("{ty:?}"), kernel: "tile", cols, error: err, tolerance: TOLERANCE, ok: err <= TOLERANCE });
                if let Some(f) = dot_q8_rows_fn(ty) {
                    // One token against the same row in every slot, token by token.
                    let err = (0..4).map(|k| f([&row[..]; TILE_ROWS], xs[k]).map(|v| (v as f64 - one[k] as f64).abs() / mag(k)).into_iter().fold(0.0, f64::max)).fold(0.0, f64::max);
                    out.push(KernelCheck { ty: format!("{ty:?}"), kernel: "rows", cols, error: err, tolerance: TOLERANCE, ok: err <= TOLERANCE });
                }
                if let Some(f) = dot_q8_tile_rows_fn(ty) {
                    // The same row in every slot: each row's result against the one-token kernel.
                    let err = f([&row[..]; TILE_ROWS], tile).into_iter().map(vs_one).fold(0.0, f64::max);
                    out.push(KernelCheck { ty: format!("{ty:?}"), kernel: "tile_rows", cols, error: err, tolerance: TOLERANCE, ok: err <= TOLERANCE });
                }
                // Four different rows: the one-token rows kernel and the several-row tile must
                // give the one-row tile's results bit for bit (what the prompt cache needs).
                let Some(four) = random_weight(&mut rng, ty, TILE_ROWS, cols) else { continue };
                let rb = four.len() / TILE_ROWS;
                let rs: [&[u8]; TILE_ROWS] = std::array::from_fn(|r| &four[r * rb..(r + 1) * rb]);
                let want: Vec<[f32; 4]> = rs.iter().map(|r| f(r, tile)).collect();
                let differ = |got: &dyn Fn(usize, usize) -> f32| (0..TILE_ROWS).flat_map(|r| (0..4).map(move |k| (r, k))).filter(|&(r, k)| got(r, k).to_bits() != want[r][k].to_bits()).count() as f64;
                if let Some(rows_fn) = dot_q8_rows_fn(ty) {
                    let got: Vec<[f32; TILE_ROWS]> = xs.iter().map(|&x| rows_fn(rs, x)).collect();
                    let n = differ(&|r, k| got[k][r]);
                    out.push(KernelCheck { ty: format!("{ty:?}"), kernel: "rows_bits", cols, error: n, tolerance: 0.0, ok: n == 0.0 });
                }
                if let Some(tile_rows) = dot_q8_tile_rows_fn(ty) {
                    let got = tile_rows(rs, tile);
                    let n = differ(&|r, k| got[r][k]);
                    out.push(KernelCheck { ty: format!("{ty:?}"), kernel: "tile_rows_bits", cols, error: n, tolerance: 0.0, ok: n == 0.0 });
                }
            }
        }
    }
    out
}

/// Checks the activation quantizer this build uses against the scalar reference on blocks of
/// random values at six magnitudes and on edge blocks (exact halves, ±0, NaN, ±∞, saturating
/// values): scale, sum and bytes must be equal bit for bit. One entry, `ty` "Q8", kernel
/// "quantize"; `error` is the number of blocks that differ.
pub fn check_quantize(seed: u64) -> KernelCheck {
    let mut rng = Rng(seed | 1);
    let mut blocks: Vec<Vec<f32>> = (0..64)
        .map(|b| {
            (0..Q8_BLOCK)
                .map(|_| rng.f() * [1e-6, 0.01, 0.3, 1.0, 20.0, 3e4][b % 6])
                .collect()
        })
        .collect();
    // max |x| = 127 makes the scale 1, so x·(1/d) = x: exact ties both ways.
    blocks.push(
        (0..Q8_BLOCK)
            .map(|i| {
                if i == 0 {
                    127.0
                } else {
                    (i as f32 - 16.0) + 0.5
                }
            })
            .collect(),
    );
    blocks.push(
        (0..Q8_BLOCK)
            .map(|i| if i == 0 { -127.0 } else { -0.5 * i as f32 })
            .collect(),
    );
    blocks.push(vec![0.0; Q8_BLOCK]);
    blocks.push(
        (0..Q8_BLOCK)
            .map(|i| if i % 2 == 0 { -0.0 } else { 0.0 })
            .collect(),
    );
    for special in [
        f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::MAX,
        f32::MIN_POSITIVE,
    ] {
        blocks.push(
            (0..Q8_BLOCK)
                .map(|i| if i == 5 { special } else { rng.f() })
                .collect(),
        );
    }
    let differ = blocks
        .iter()
        .filter(|xs| {
            let (mut a, mut b) = ([0i8; Q8_BLOCK], [0i8; Q8_BLOCK]);
            let (da, sa) = quantize_block_fast(xs, &mut a);
            let (db, sb) = quantize_block(xs, &mut b);
            a != b || da.to_bits() != db.to_bits() || sa.to_bits() != sb.to_bits()
        })
        .count();
    KernelCheck {
        ty: "Q8".into(),
        kernel: "quantize",
        cols: Q8_BLOCK,
        error: differ as f64,
        tolerance: 0.0,
        ok: differ == 0,
    }
}

/// Attention shapes of [`check_attention`]: (head_dim, heads, KV heads, tokens, pos0, window,
/// softcap). Head sizes with and without a SIMD tail, GQA ratios 1, 3 and 7, sliding windows
/// shorter and longer than a key block, Gemma's soft-capping, batches after a cached prefix.
pub(in crate::backend::cpu) const ATTN_SHAPES: &[(usize, usize, usize, usize, usize, Option<usize>, Option<f32>)] = &[
    (64, 9, 3, 13, 0, None, None),
    (64, 14, 2, 37, 29, None, None),
    (128, 3, 3, 9, 40, Some(5), None),
    (72, 7, 1, 1, 70, None, Some(20.0)),
    (100, 6, 2, 21, 3, Some(40), Some(30.0)),
    (3, 2, 1, 5, 0, None, None),
];

/// Random `q`, K cache and V cache for `p` (values in [−2, 2); K scaled so that scores spread).
pub(in crate::backend::cpu) fn attention_inputs(rng: &mut Rng, p: &AttnParams) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let kv = (p.pos0 + p.n_tokens) * p.n_head_kv * p.head_dim;
    let mut v = |n: usize, s: f32| (0..n).map(|_| rng.f() * s).collect::<Vec<f32>>();
    (v(p.n_tokens * p.n_head * p.head_dim, 2.0), v(kv, 2.0), v(kv, 2.0))
}

/// The parameters of one [`ATTN_SHAPES`] row.
pub(in crate::backend::cpu) fn attention_params(shape: (usize, usize, usize, usize, usize, Option<usize>, Option<f32>)) -> AttnParams {
    let (head_dim, n_head, n_head_kv, n_tokens, pos0, window, softcap) = shape;
    AttnParams { n_tokens, pos0, n_head, n_head_kv, head_dim, scale: 1.0 / (head_dim as f32).sqrt(), window, softcap }
}

/// Checks this build's attention kernels: every machine against [`attention_reference`]
/// (kernel `"attention"`; error `max |got − want| / max |v|`, tolerance 1e-5), and the fastest
/// machine's result for each query computed alone against the same query in a tile of eight
/// tokens × a whole GQA group (kernel `"attention_tile"`: the number of differing floats, which
/// must be 0, as `tests/prefill_split.rs` needs). `ty` is the machine, `cols` the head size.
pub fn check_attention(seed: u64) -> Vec<KernelCheck> {
    let mut rng = Rng(seed | 1);
    let mut out = Vec::new();
    let all = machines();
    let fastest = *all.last().unwrap_or(&Machine::Portable);
    for &shape in ATTN_SHAPES {
        let p = attention_params(shape);
        let (q, k, v) = attention_inputs(&mut rng, &p);
        let mut want = vec![0.0f32; q.len()];
        attention_reference(&q, &k, &v, &mut want, &p);
        let vmax = v.iter().fold(0f32, |m, x| m.max(x.abs())) as f64;
        let group = p.n_head / p.n_head_kv;
        for &m in &all {
            let got = attention_tiled(m, &q, &k, &v, &p, 8, group);
            let err = got.iter().zip(&want).map(|(g, w)| (*g as f64 - *w as f64).abs()).fold(0.0, f64::max) / vmax;
            out.push(KernelCheck { ty: format!("{m:?}"), kernel: "attention", cols: p.head_dim, error: err, tolerance: 1e-5, ok: err <= 1e-5 });
            if m == fastest {
                let alone = attention_tiled(m, &q, &k, &v, &p, 1, 1);
                let differ = got.iter().zip(&alone).filter(|(a, b)| a.to_bits() != b.to_bits()).count();
                out.push(KernelCheck { ty: format!("{m:?}"), kernel: "attention_tile", cols: p.head_dim, error: differ as f64, tolerance: 0.0, ok: differ == 0 });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_selected_kernel_passes_its_run_time_check() {
        let checks = super::check_q8_kernels(7);
        assert!(checks.len() >= 24, "{checks:?}");
        for c in &checks {
            assert!(c.ok, "{c:?}");
        }
        let q = super::check_quantize(7);
        assert!(q.ok, "{q:?}");
        let a = super::check_attention(7);
        assert!(a.len() >= 2 * super::ATTN_SHAPES.len(), "{a:?}");
        for c in &a {
            assert!(c.ok, "{c:?}");
        }
    }
}
