//! The CPU backend's compute on quantized rows: one table row per block format per machine,
//! as ggml keeps `type_traits_cpu` apart from the layout table (`type_traits`).
//!
//! Layouts, dequantization and the f32 scalar reference of each format are `crate::quant`'s
//! (its `FORMATS` row); this module owns what is machine-specific: the SIMD kernels, the
//! 8-bit activations they multiply (`q8.rs`, `tile.rs`), the scalar references of the integer
//! kernels (`reference.rs`) and their run-time check (`check.rs`).
//!
//! Machines: `AVX2` (x86_64 with AVX2, FMA and F16C, detected at run time; `simd_x86*.rs`),
//! `SIMD128` (wasm32 built with `+simd128`, and `+relaxed-simd` in the threaded build;
//! `simd_wasm*.rs`), and the portable machine (no SIMD: the scalar references). A format's
//! [`Kernels`] on this machine ([`kernels`]) is its row in the machine's table, each field it
//! leaves empty filled as that field's documentation says.
//!
//! Attention (f32 KV cache): `attention.rs` holds the block algorithm and its scalar reference,
//! `simd_x86_attn.rs` / `simd_wasm_attn.rs` its micro-kernels; [`attend`] below picks the machine.
//!
//! Adding a kernel: write it next to its siblings (`simd_<machine>*.rs`, `pub(super)`), then
//! set its field in the format's row of that machine's table below; `tests.rs` and `check.rs`
//! test every row against the references without further listing.

mod attention;
pub(super) mod check;
mod q8;
mod reference;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd_wasm;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd_wasm_attn;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd_wasm_q8;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd_wasm_rows;
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
mod simd_wasm_tile;
#[cfg(target_arch = "x86_64")]
mod simd_x86;
#[cfg(target_arch = "x86_64")]
mod simd_x86_512;
#[cfg(target_arch = "x86_64")]
mod simd_x86_attn;
#[cfg(target_arch = "x86_64")]
mod simd_x86_q8;
#[cfg(target_arch = "x86_64")]
mod simd_x86_rows;
#[cfg(target_arch = "x86_64")]
mod simd_x86_tile;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_attention;
mod tile;

pub use attention::{attention_reference, AttnScratch, KEY_BLOCK};
pub use check::{check_attention, check_q8_kernels, check_quantize, KernelCheck};
pub use q8::{DotQ8Fn, DotQ8x4Fn, Q8Acts, Q8Slice, Q8_BLOCK};
pub use tile::{DotQ8RowsFn, DotQ8TileFn, DotQ8TileRowsFn, Q8Tile, Q8Tiles, TILE_ROWS};

use crate::backend::AttnParams;
use crate::quant::{self, DotFn, GgmlType, QuantError};
use std::cell::RefCell;
use std::ops::Range;

/// One format's kernels on one machine (ggml's `type_traits_cpu` row). A field left `None`
/// in a machine's table means:
/// - `dot` (f32 activations): the format's scalar reference (`quant::dot_scalar_fn`);
/// - `dot_q8` (8-bit activations): the portable machine's kernel, if any; with none, matrix
///   products keep f32 activations;
/// - `dot_q8x4` (four tokens, prefill): four `dot_q8` calls;
/// - `tile` (four interleaved tokens, prefill): `dot_q8x4`;
/// - `tile_rows` ([`TILE_ROWS`] rows × four interleaved tokens, prefill): `tile` once per row;
/// - `rows` ([`TILE_ROWS`] rows × one token, with `tile`'s float operations, so equal to it bit
///   for bit): `dot_q8` once per row, which differs from `tile` by rounding (then a token's
///   result depends on whether it was in a group of four: see `simd_x86_rows.rs`).
#[derive(Debug, Clone, Copy)]
pub struct Kernels {
    pub ty: GgmlType,
    pub dot: Option<DotFn>,
    pub dot_q8: Option<DotQ8Fn>,
    pub dot_q8x4: Option<DotQ8x4Fn>,
    pub tile: Option<DotQ8TileFn>,
    pub tile_rows: Option<DotQ8TileRowsFn>,
    pub rows: Option<DotQ8RowsFn>,
}

/// A row with no kernel: the base of every table row (`Kernels { dot: …, ..row(ty) }`).
const fn row(ty: GgmlType) -> Kernels {
    Kernels { ty, dot: None, dot_q8: None, dot_q8x4: None, tile: None, tile_rows: None, rows: None }
}

/// `Some` safe wrapper of the AVX2 kernel `$k`.
///
/// SAFETY (every wrapper): the kernels are compiled for AVX2, FMA and F16C; the wrappers are
/// reachable only through [`AVX2`] and [`AVX2_VNNI`], which [`machine`] hands out only after
/// detecting those features (and AVX-VNNI for the second).
#[cfg(target_arch = "x86_64")]
macro_rules! avx2 {
    (dot $k:path) => {{
        fn safe(row: &[u8], x: &[f32]) -> f32 {
            unsafe { $k(row, x) }
        }
        Some(safe as DotFn)
    }};
    (q8 $k:path) => {{
        fn safe(row: &[u8], x: Q8Slice<'_>) -> f32 {
            unsafe { $k(row, x) }
        }
        Some(safe as DotQ8Fn)
    }};
    (q8x4 $k:path) => {{
        fn safe(row: &[u8], x: [Q8Slice<'_>; 4]) -> [f32; 4] {
            unsafe { $k(row, x) }
        }
        Some(safe as DotQ8x4Fn)
    }};
}

/// An x86_64 row with all six kernels: the AVX2 f32 dot, integer dot and four-token one, the
/// one-row and several-row prefill tiles `$tile` from module `[$($tm)::+]` and the one-token
/// four-row kernel with the tiles' arithmetic, `$rows` from module `[$($rm)::+]`.
#[cfg(target_arch = "x86_64")]
macro_rules! x86_row {
    ([$($tm:ident)::+], [$($rm:ident)::+], $ty:ident: $dot:ident, $dot4:ident, $tile:ident, $rows:ident) => {
        Kernels {
            dot: avx2!(dot simd_x86::$dot),
            dot_q8: avx2!(q8 simd_x86_q8::$dot),
            dot_q8x4: avx2!(q8x4 simd_x86_q8::$dot4),
            tile: {
                fn safe(row: &[u8], x: Q8Tile<'_>) -> [f32; 4] {
                    let [r] = unsafe { $($tm)::+::$tile::<1>([row], x) };
                    r
                }
                Some(safe as DotQ8TileFn)
            },
            tile_rows: {
                fn safe(rows: [&[u8]; TILE_ROWS], x: Q8Tile<'_>) -> [[f32; 4]; TILE_ROWS] {
                    unsafe { $($tm)::+::$tile::<TILE_ROWS>(rows, x) }
                }
                Some(safe as DotQ8TileRowsFn)
            },
            rows: {
                fn safe(rows: [&[u8]; TILE_ROWS], x: Q8Slice<'_>) -> [f32; TILE_ROWS] {
                    unsafe { $($rm)::+::$rows(rows, x) }
                }
                Some(safe as DotQ8RowsFn)
            },
            ..row(GgmlType::$ty)
        }
    };
}

/// An `AVX2` row: its tiles from module `$tiles` of `simd_x86_tile`, their one-token twin from
/// module `$tiles` of `simd_x86_rows`.
#[cfg(target_arch = "x86_64")]
macro_rules! avx2_row {
    ($tiles:ident, $($row:tt)*) => {
        x86_row!([simd_x86_tile::$tiles], [simd_x86_rows::$tiles], $($row)*)
    };
}

/// One x86_64 table, its prefill tiles from module `$tiles` of `simd_x86_tile`.
#[cfg(target_arch = "x86_64")]
macro_rules! x86_table {
    ($tiles:ident) => {
        &[
            Kernels { dot: avx2!(dot simd_x86::dot_f32), ..row(GgmlType::F32) },
            Kernels { dot: avx2!(dot simd_x86::dot_f16), ..row(GgmlType::F16) },
            Kernels { dot: avx2!(dot simd_x86::dot_bf16), ..row(GgmlType::BF16) },
            avx2_row!($tiles, Q4_0: dot_q4_0, dot4_q4_0, tile_q4_0, rows_q4_0),
            avx2_row!($tiles, Q4_1: dot_q4_1, dot4_q4_1, tile_q4_1, rows_q4_1),
            avx2_row!($tiles, Q5_0: dot_q5_0, dot4_q5_0, tile_q5_0, rows_q5_0),
            avx2_row!($tiles, Q5_1: dot_q5_1, dot4_q5_1, tile_q5_1, rows_q5_1),
            avx2_row!($tiles, Q8_0: dot_q8_0, dot4_q8_0, tile_q8_0, rows_q8_0),
            avx2_row!($tiles, Q4_K: dot_q4_k, dot4_q4_k, tile_q4_k, rows_q4_k),
            avx2_row!($tiles, Q5_K: dot_q5_k, dot4_q5_k, tile_q5_k, rows_q5_k),
            avx2_row!($tiles, Q6_K: dot_q6_k, dot4_q6_k, tile_q6_k, rows_q6_k),
        ]
    };
}

/// x86_64 with AVX2 + FMA + F16C.
#[cfg(target_arch = "x86_64")]
const AVX2: &[Kernels] = x86_table!(avx2);

/// [`AVX2`] where the CPU also has AVX-VNNI: the prefill tiles multiply bytes with `vpdpbusd`.
#[cfg(target_arch = "x86_64")]
const AVX2_VNNI: &[Kernels] = x86_table!(vnni);

/// [`AVX2`]'s row for `$ty` with the prefill tiles and their one-token twin from
/// `simd_x86_512` (AVX-512 F/BW/VL/VNNI).
#[cfg(target_arch = "x86_64")]
macro_rules! avx512_row {
    ($($row:tt)*) => {
        x86_row!([simd_x86_512], [simd_x86_512], $($row)*)
    };
}

/// [`AVX2_VNNI`] where the CPU also has AVX-512 F/BW/VL/VNNI: the unsigned legacy formats'
/// tiles keep eight float lanes per (row, token) over 512-bit vectors (`simd_x86_512.rs`).
/// SAFETY: handed out by [`machine`] only after `simd_x86_512::has_avx512` (and the AVX2 and
/// AVX-VNNI checks).
#[cfg(target_arch = "x86_64")]
const AVX512: &[Kernels] = &[
    Kernels { dot: avx2!(dot simd_x86::dot_f32), ..row(GgmlType::F32) },
    Kernels { dot: avx2!(dot simd_x86::dot_f16), ..row(GgmlType::F16) },
    Kernels { dot: avx2!(dot simd_x86::dot_bf16), ..row(GgmlType::BF16) },
    avx512_row!(Q4_0: dot_q4_0, dot4_q4_0, tile_q4_0, rows_q4_0),
    avx512_row!(Q4_1: dot_q4_1, dot4_q4_1, tile_q4_1, rows_q4_1),
    avx512_row!(Q5_0: dot_q5_0, dot4_q5_0, tile_q5_0, rows_q5_0),
    avx512_row!(Q5_1: dot_q5_1, dot4_q5_1, tile_q5_1, rows_q5_1),
    avx2_row!(vnni, Q8_0: dot_q8_0, dot4_q8_0, tile_q8_0, rows_q8_0),
    avx2_row!(vnni, Q4_K: dot_q4_k, dot4_q4_k, tile_q4_k, rows_q4_k),
    avx2_row!(vnni, Q5_K: dot_q5_k, dot4_q5_k, tile_q5_k, rows_q5_k),
    avx2_row!(vnni, Q6_K: dot_q6_k, dot4_q6_k, tile_q6_k, rows_q6_k),
];

/// A `SIMD128` row's three prefill kernels: the one-row and several-row tiles
/// (`simd_wasm_tile::$tile`) and the one-token four-row kernel with the tiles' arithmetic
/// (`simd_wasm_rows::$rows`).
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
macro_rules! wasm_tiles {
    ($tile:ident, $rows:ident) => {
        Kernels {
            tile: {
                fn one(row: &[u8], x: Q8Tile<'_>) -> [f32; 4] {
                    let [r] = simd_wasm_tile::$tile::<1>([row], x);
                    r
                }
                Some(one as DotQ8TileFn)
            },
            tile_rows: Some(simd_wasm_tile::$tile::<TILE_ROWS> as DotQ8TileRowsFn),
            rows: Some(simd_wasm_rows::$rows as DotQ8RowsFn),
            ..row(GgmlType::F32)
        }
    };
}

/// wasm32 with SIMD128 (and relaxed SIMD in the threaded build).
#[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
#[rustfmt::skip]
const SIMD128: &[Kernels] = &[
    Kernels { dot: Some(simd_wasm::dot_f32), ..row(GgmlType::F32) },
    Kernels { ty: GgmlType::Q4_0, dot: Some(simd_wasm::dot_q4_0), dot_q8: Some(simd_wasm_q8::dot_q4_0), dot_q8x4: Some(simd_wasm_q8::dot4_q4_0), ..wasm_tiles!(tile_q4_0, rows_q4_0) },
    Kernels { ty: GgmlType::Q4_1, dot: Some(simd_wasm::dot_q4_1), dot_q8: Some(simd_wasm_q8::dot_q4_1), dot_q8x4: Some(simd_wasm_q8::dot4_q4_1), ..wasm_tiles!(tile_q4_1, rows_q4_1) },
    Kernels { ty: GgmlType::Q5_0, dot_q8: Some(simd_wasm_q8::dot_q5_0), dot_q8x4: Some(simd_wasm_q8::dot4_q5_0), ..wasm_tiles!(tile_q5_0, rows_q5_0) },
    Kernels { ty: GgmlType::Q5_1, dot_q8: Some(simd_wasm_q8::dot_q5_1), dot_q8x4: Some(simd_wasm_q8::dot4_q5_1), ..wasm_tiles!(tile_q5_1, rows_q5_1) },
    Kernels { ty: GgmlType::Q8_0, dot: Some(simd_wasm::dot_q8_0), dot_q8: Some(simd_wasm_q8::dot_q8_0), dot_q8x4: Some(simd_wasm_q8::dot4_q8_0), ..wasm_tiles!(tile_q8_0, rows_q8_0) },
    Kernels { ty: GgmlType::Q4_K, dot_q8: Some(simd_wasm_q8::dot_q4_k), dot_q8x4: Some(simd_wasm_q8::dot4_q4_k), ..wasm_tiles!(tile_q4_k, rows_q4_k) },
    Kernels { ty: GgmlType::Q5_K, dot_q8: Some(simd_wasm_q8::dot_q5_k), dot_q8x4: Some(simd_wasm_q8::dot4_q5_k), ..wasm_tiles!(tile_q5_k, rows_q5_k) },
    Kernels { ty: GgmlType::Q6_K, dot_q8: Some(simd_wasm_q8::dot_q6_k), ..wasm_tiles!(tile_q6_k, rows_q6_k) },
];

/// This machine's SIMD table (empty on the portable machine).
fn machine() -> &'static [Kernels] {
    #[cfg(target_arch = "x86_64")]
    if simd_x86::has_avx2_fma_f16c() {
        return match (simd_x86::has_avxvnni(), simd_x86_512::has_avx512()) {
            (true, true) => AVX512,
            (true, false) => AVX2_VNNI,
            _ => AVX2,
        };
    }
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    return SIMD128;
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    &[]
}

/// The portable machine's integer kernel for `ty`: the scalar reference, except for Q3_K,
/// whose scalar integer dot measured slower than the f32 path (it keeps f32 activations).
fn portable_q8(ty: GgmlType) -> Option<DotQ8Fn> {
    if ty == GgmlType::Q3_K {
        return None;
    }
    dot_q8_scalar_fn(ty)
}

/// The kernels this machine runs for `ty`, every field filled as [`Kernels`] documents
/// (`dot` is `None` only for types without a `quant::FORMATS` row).
pub fn kernels(ty: GgmlType) -> Kernels {
    let simd = machine().iter().find(|k| k.ty == ty).copied().unwrap_or(row(ty));
    Kernels {
        dot: simd.dot.or_else(|| quant::dot_scalar_fn(ty).ok()),
        dot_q8: simd.dot_q8.or_else(|| portable_q8(ty)),
        ..simd
    }
}

/// The fastest fused dot product for `ty` on this machine (AVX2+FMA on x86_64 when the CPU
/// has it, SIMD128 on wasm32 when compiled with `+simd128`, the scalar reference otherwise).
///
/// Errors: [`QuantError::Unsupported`] for types without a `quant::FORMATS` row.
pub fn dot_fn(ty: GgmlType) -> Result<DotFn, QuantError> {
    kernels(ty).dot.ok_or(QuantError::Unsupported(ty))
}

/// `Σ w[i]·x[i]` for one quantized row `row` of type `ty` and activations `x`, using the
/// fastest kernel ([`dot_fn`]).
///
/// Errors: [`QuantError::Unsupported`], [`QuantError::NotBlockAligned`] (`x.len()` not a
/// multiple of the block size) or [`QuantError::BadLength`] (`row.len()` is not
/// `ty.bytes_for(x.len())`).
pub fn dot(ty: GgmlType, row: &[u8], x: &[f32]) -> Result<f32, QuantError> {
    let f = dot_fn(ty)?;
    quant::check_len(ty, x.len(), row.len())?;
    Ok(f(row, x))
}

/// The fastest integer dot product of a `ty` row with 8-bit activations ([`Q8Acts`]) on
/// this machine, or `None` when the format has none (F32, F16, BF16, Q2_K, Q3_K: use
/// [`dot_fn`]).
pub fn dot_q8_fn(ty: GgmlType) -> Option<DotQ8Fn> {
    kernels(ty).dot_q8
}

/// The four-token integer kernel for `ty` on this machine (prefill), or `None` when there is
/// none (then call the [`dot_q8_fn`] kernel once per token). Its reference is four calls of
/// [`dot_q8_scalar_fn`].
pub fn dot_q8x4_fn(ty: GgmlType) -> Option<DotQ8x4Fn> {
    kernels(ty).dot_q8x4
}

/// The interleaved four-token kernel for `ty` in this build, if there is one (x86_64 and the
/// wasm builds, for the formats with integer kernels); elsewhere prefill uses [`dot_q8x4_fn`].
pub fn dot_q8_tile_fn(ty: GgmlType) -> Option<DotQ8TileFn> {
    kernels(ty).tile
}

/// The several-row interleaved tile for `ty` in this build, if there is one (x86_64, wasm); prefill
/// runs [`dot_q8_tile_fn`] on the rows left over.
pub fn dot_q8_tile_rows_fn(ty: GgmlType) -> Option<DotQ8TileRowsFn> {
    kernels(ty).tile_rows
}

/// The one-token kernel over [`TILE_ROWS`] rows with the prefill tiles' arithmetic (its
/// results equal [`dot_q8_tile_fn`]'s for the same row and token, bit for bit), if this build
/// has one (x86_64, wasm); decode and a prefill's leftover tokens use it where it exists.
pub fn dot_q8_rows_fn(ty: GgmlType) -> Option<DotQ8RowsFn> {
    kernels(ty).rows
}

/// The x86_64 tables this CPU can run (for the tests: every row of each is checked).
#[cfg(all(test, target_arch = "x86_64"))]
fn x86_tables() -> Vec<&'static [Kernels]> {
    let mut t = Vec::new();
    if simd_x86::has_avx2_fma_f16c() {
        t.push(AVX2);
        if simd_x86::has_avxvnni() {
            t.push(AVX2_VNNI);
            if simd_x86_512::has_avx512() {
                t.push(AVX512);
            }
        }
    }
    t
}

/// The scalar reference integer dot product for `ty` (the oracle of [`dot_q8_fn`]), or
/// `None` when the format has none.
pub fn dot_q8_scalar_fn(ty: GgmlType) -> Option<DotQ8Fn> {
    reference::REFERENCE.iter().find(|k| k.ty == ty).and_then(|k| k.dot_q8)
}

/// `Σ w[i]·x[i]` for one `ty` row and 8-bit activations, with the fastest integer kernel.
///
/// Errors: [`QuantError::Unsupported`] when `ty` has no integer kernel,
/// [`QuantError::NotBlockAligned`] or [`QuantError::BadLength`] as [`dot`].
pub fn dot_q8(ty: GgmlType, row: &[u8], x: Q8Slice<'_>) -> Result<f32, QuantError> {
    let f = dot_q8_fn(ty).ok_or(QuantError::Unsupported(ty))?;
    quant::check_len(ty, x.len(), row.len())?;
    Ok(f(row, x))
}

/// [`q8::quantize_block`] with SIMD128 or AVX2 where the build or CPU has it (the same results,
/// bit for bit: checked by `check::check_quantize`): in the browser the scalar loop's `roundf`
/// calls were 10 % of a prefill, spent on the calling thread while the pool's workers waited
/// (natively ~3 %: perf on Qwen2.5-Coder 0.5B pp512).
#[inline]
fn quantize_block_fast(xs: &[f32], qs: &mut [i8]) -> (f32, f32) {
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    if xs.len() == Q8_BLOCK && qs.len() == Q8_BLOCK {
        return simd_wasm_q8::quantize_block(xs, qs);
    }
    #[cfg(target_arch = "x86_64")]
    if let (Ok(x), Ok(q)) = (<&[f32; Q8_BLOCK]>::try_from(xs), <&mut [i8; Q8_BLOCK]>::try_from(&mut *qs)) {
        if simd_x86::has_avx2_fma_f16c() {
            // SAFETY: the features the kernel is compiled for were detected.
            return unsafe { simd_x86_q8::quantize_block(x, q) };
        }
    }
    q8::quantize_block(xs, qs)
}

// ---- Attention: which machine runs `attention.rs`'s block algorithm ----

thread_local! {
    static SCRATCH: RefCell<AttnScratch> = RefCell::new(AttnScratch::default());
}

/// Attention of the queries of tokens `tokens` × heads `heads` (heads of one KV head) with
/// this thread's scratch; calls `write(t, out)` once per token with its heads' outputs (`heads.len()
/// · head_dim` floats, head-major). `q`, `k`, `v` as [`crate::backend::Backend::attention`]
/// (lengths checked by the caller: `q` holds `p.n_tokens` tokens, the caches `p.pos0 + p.n_tokens` rows).
///
/// Panics if `heads` spans two KV heads or the ranges are out of bounds.
pub fn attend(q: &[f32], k: &[f32], v: &[f32], p: &AttnParams, tokens: Range<usize>, heads: Range<usize>, write: impl FnMut(usize, &[f32])) {
    SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        attend_on_machine(q, k, v, p, tokens, heads, &mut s, write)
    })
}

/// The machines this build has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Machine {
    Portable,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    Simd128,
}

/// The machines this CPU can run, the fastest last.
pub(crate) fn machines() -> Vec<Machine> {
    #[allow(unused_mut)]
    let mut m = vec![Machine::Portable];
    #[cfg(target_arch = "x86_64")]
    if simd_x86::has_avx2_fma_f16c() {
        m.push(Machine::Avx2);
    }
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    m.push(Machine::Simd128);
    m
}

/// [`attend`] with the given scratch, on this machine's fastest kernels.
#[allow(clippy::too_many_arguments)]
fn attend_on_machine(q: &[f32], k: &[f32], v: &[f32], p: &AttnParams, tokens: Range<usize>, heads: Range<usize>, s: &mut AttnScratch, write: impl FnMut(usize, &[f32])) {
    #[cfg(target_arch = "x86_64")]
    if simd_x86::has_avx2_fma_f16c() {
        return attend_as(Machine::Avx2, q, k, v, p, tokens, heads, s, write);
    }
    #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
    return attend_as(Machine::Simd128, q, k, v, p, tokens, heads, s, write);
    #[cfg(not(all(target_arch = "wasm32", target_feature = "simd128")))]
    attend_as(Machine::Portable, q, k, v, p, tokens, heads, s, write)
}

/// [`attend`] on machine `m`, which must be one of [`machines`] (panics otherwise).
#[allow(clippy::too_many_arguments)]
pub(crate) fn attend_as(m: Machine, q: &[f32], k: &[f32], v: &[f32], p: &AttnParams, tokens: Range<usize>, heads: Range<usize>, s: &mut AttnScratch, write: impl FnMut(usize, &[f32])) {
    match m {
        // SAFETY: the portable machine needs no feature.
        Machine::Portable => unsafe { attention::attend_with::<attention::Portable>(q, k, v, p, tokens, heads, s, write) },
        #[cfg(target_arch = "x86_64")]
        Machine::Avx2 => {
            assert!(simd_x86::has_avx2_fma_f16c(), "this CPU has no AVX2 + FMA");
            // SAFETY: the CPU has AVX2 and FMA (asserted).
            unsafe { simd_x86_attn::attend_avx2(q, k, v, p, tokens, heads, s, write) }
        }
        // SAFETY: SIMD128 is compiled in (the variant's cfg).
        #[cfg(all(target_arch = "wasm32", target_feature = "simd128"))]
        Machine::Simd128 => unsafe { attention::attend_with::<simd_wasm_attn::Simd128>(q, k, v, p, tokens, heads, s, write) },
    }
}

/// Every query of `p` on machine `m`, single-threaded, in tiles of `tile_tokens` tokens ×
/// `tile_heads` heads (`tile_heads` divides the GQA group); `q`, `k`, `v` as [`attend`].
pub(crate) fn attention_tiled(m: Machine, q: &[f32], k: &[f32], v: &[f32], p: &AttnParams, tile_tokens: usize, tile_heads: usize) -> Vec<f32> {
    let hd = p.head_dim;
    let mut out = vec![0.0f32; p.n_tokens * p.n_head * hd];
    let mut s = AttnScratch::default();
    for t0 in (0..p.n_tokens).step_by(tile_tokens.max(1)) {
        for h0 in (0..p.n_head).step_by(tile_heads.max(1)) {
            let (t1, h1) = ((t0 + tile_tokens).min(p.n_tokens), (h0 + tile_heads).min(p.n_head));
            attend_as(m, q, k, v, p, t0..t1, h0..h1, &mut s, |t, o| {
                let start = (t * p.n_head + h0) * hd;
                out[start..start + o.len()].copy_from_slice(o);
            });
        }
    }
    out
}

