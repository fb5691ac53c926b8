//! SIMD128 one-token kernels with the prefill tiles' arithmetic: four weight rows against one
//! token's 8-bit activations (the `rows` field of `mod.rs`'s `SIMD128` table), as
//! `simd_x86_rows.rs` is for x86_64 (why: its module docs; in short, a token's result must not
//! depend on whether it was in a group of four, so a prompt-cache hit equals a miss).
//!
//! The lanes are the four rows instead of the four tokens: per block, each row's integer sum
//! with the token (the same exact integer as the tile's), the four sums transposed into one
//! vector, then per lane exactly the float operations `simd_wasm_tile.rs` does for one
//! (row, token), in its order: the results equal the tiles' bit for bit (checked in the
//! browser by `check::check_q8_kernels`, kernels `rows_bits` and `tile_rows_bits`).
//! Decode uses these kernels too.

use super::q8::{Q8Slice, Q8_BLOCK};
use super::simd_wasm_q8::{f16_at, fives32, load16, nibbles32};
use super::simd_wasm_tile::{f16x4, isum, k4_scales, k4_sub, lanes, q6k_sub, reduce4, tok_i16, usum, widen_i8, Coef, TokActs, SUBS};
use super::tile::TILE_ROWS as R;
use crate::quant::{BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K, BlockQ5_0, BlockQ5_1, BlockQ6K, BlockQ8_0, QuantFormat};
use core::arch::wasm32::*;

/// Blocks of `bytes` every row covers, and `x` (`per` activation blocks each).
#[inline(always)]
fn blocks_of(rows: &[&[u8]; R], x: &Q8Slice<'_>, bytes: usize, per: usize) -> usize {
    #[cfg(not(target_feature = "relaxed-simd"))]
    let xb = x.d.len().min(x.s.len()).min(x.qs.len() / Q8_BLOCK).min(x.qw.len() / Q8_BLOCK);
    #[cfg(target_feature = "relaxed-simd")]
    let xb = x.d.len().min(x.s.len()).min(x.qs.len() / Q8_BLOCK);
    rows.iter().map(|r| r.len() / bytes).min().unwrap_or(0).min(xb / per)
}

/// Block `i`'s activations of `x`.
#[inline(always)]
fn acts(x: &Q8Slice<'_>, i: usize) -> TokActs {
    #[cfg(target_feature = "relaxed-simd")]
    return std::array::from_fn(|j| load16(x.qs, Q8_BLOCK * i + 16 * j));
    #[cfg(not(target_feature = "relaxed-simd"))]
    std::array::from_fn(|j| load16(x.qw, Q8_BLOCK * i + 8 * j))
}

/// Four floats, lane r = `f(r)`.
#[inline(always)]
fn per_row(f: impl Fn(usize) -> f32) -> v128 {
    f32x4(f(0), f(1), f(2), f(3))
}

/// As `simd_wasm_tile::legacy_tile`, lane r = row r.
#[inline(always)]
fn legacy_rows<const SIGNED: bool>(rows: [&[u8]; R], x: Q8Slice<'_>, bytes: usize, quants: impl Fn(&[u8]) -> [v128; 2], coef: Coef) -> [f32; R] {
    let mut acc = f32x4_splat(0.0);
    let mut extra = f32x4_splat(0.0);
    for i in 0..blocks_of(&rows, &x, bytes, 1) {
        let a = acts(&x, i);
        let a16 = if SIGNED { tok_i16(&a) } else { [i32x4_splat(0); 4] };
        let b: [&[u8]; R] = std::array::from_fn(|r| &rows[r][bytes * i..bytes * (i + 1)]);
        let dw = f16x4(b, 0);
        let p: [v128; R] = std::array::from_fn(|r| {
            let [q0, q1] = quants(b[r]);
            if SIGNED {
                isum(&a16, &widen_i8(q0, q1))
            } else {
                usum(&a, q0, q1)
            }
        });
        let sums = f32x4_convert_i32x4(reduce4(p));
        acc = f32x4_add(acc, f32x4_mul(f32x4_mul(f32x4_splat(x.d[i]), dw), sums));
        if !SIGNED {
            let c = match coef {
                Coef::Scaled(k) => f32x4_mul(f32x4_splat(k), dw),
                Coef::F16(off) => f16x4(b, off),
                Coef::Zero => f32x4_splat(0.0),
            };
            extra = f32x4_add(extra, f32x4_mul(f32x4_splat(x.s[i]), c));
        }
    }
    lanes(f32x4_add(acc, extra))
}

pub(super) fn rows_q4_0(rows: [&[u8]; R], x: Q8Slice<'_>) -> [f32; R] {
    legacy_rows::<false>(rows, x, BlockQ4_0::BYTES, |b| nibbles32(b, 2), Coef::Scaled(-8.0))
}

pub(super) fn rows_q4_1(rows: [&[u8]; R], x: Q8Slice<'_>) -> [f32; R] {
    legacy_rows::<false>(rows, x, BlockQ4_1::BYTES, |b| nibbles32(b, 4), Coef::F16(2))
}

pub(super) fn rows_q5_0(rows: [&[u8]; R], x: Q8Slice<'_>) -> [f32; R] {
    legacy_rows::<false>(rows, x, BlockQ5_0::BYTES, |b| fives32(b, 2, 6), Coef::Scaled(-16.0))
}

pub(super) fn rows_q5_1(rows: [&[u8]; R], x: Q8Slice<'_>) -> [f32; R] {
    legacy_rows::<false>(rows, x, BlockQ5_1::BYTES, |b| fives32(b, 4, 8), Coef::F16(2))
}

pub(super) fn rows_q8_0(rows: [&[u8]; R], x: Q8Slice<'_>) -> [f32; R] {
    legacy_rows::<true>(rows, x, BlockQ8_0::BYTES, |b| [load16(b, 2), load16(b, 18)], Coef::Zero)
}

/// As `simd_wasm_tile::k4_tile`, lane r = row r.
#[inline(always)]
fn k4_rows<const Q5: bool>(rows: [&[u8]; R], x: Q8Slice<'_>) -> [f32; R] {
    let bytes = if Q5 { BlockQ5K::BYTES } else { BlockQ4K::BYTES };
    let mut acc = f32x4_splat(0.0);
    for sb in 0..blocks_of(&rows, &x, bytes, SUBS) {
        let blocks: [&[u8]; R] = std::array::from_fn(|r| &rows[r][bytes * sb..bytes * (sb + 1)]);
        let scales: [[(f32, f32); SUBS]; R] = std::array::from_fn(|r| k4_scales(blocks[r]));
        for c in 0..SUBS {
            let i = SUBS * sb + c;
            let a = acts(&x, i);
            let p: [v128; R] = std::array::from_fn(|r| {
                let [q0, q1] = k4_sub::<Q5>(blocks[r], c);
                usum(&a, q0, q1)
            });
            let sums = f32x4_convert_i32x4(reduce4(p));
            acc = f32x4_add(acc, f32x4_mul(f32x4_mul(f32x4_splat(x.d[i]), per_row(|r| scales[r][c].0)), sums));
            acc = f32x4_sub(acc, f32x4_mul(f32x4_splat(x.s[i]), per_row(|r| scales[r][c].1)));
        }
    }
    lanes(acc)
}

pub(super) fn rows_q4_k(rows: [&[u8]; R], x: Q8Slice<'_>) -> [f32; R] {
    k4_rows::<false>(rows, x)
}

pub(super) fn rows_q5_k(rows: [&[u8]; R], x: Q8Slice<'_>) -> [f32; R] {
    k4_rows::<true>(rows, x)
}

/// As `simd_wasm_tile::q6k_tile`, lane r = row r.
pub(super) fn rows_q6_k(rows: [&[u8]; R], x: Q8Slice<'_>) -> [f32; R] {
    let mut acc = f32x4_splat(0.0);
    for sb in 0..blocks_of(&rows, &x, BlockQ6K::BYTES, SUBS) {
        let blocks: [&[u8]; R] = std::array::from_fn(|r| &rows[r][BlockQ6K::BYTES * sb..BlockQ6K::BYTES * (sb + 1)]);
        let d = per_row(|r| f16_at(blocks[r], 208));
        for c in 0..SUBS {
            let i = SUBS * sb + c;
            let a16 = tok_i16(&acts(&x, i));
            let p: [v128; R] = std::array::from_fn(|r| isum(&a16, &q6k_sub(blocks[r], c)));
            let sums = f32x4_convert_i32x4(reduce4(p));
            acc = f32x4_add(acc, f32x4_mul(f32x4_mul(f32x4_splat(x.d[i]), d), sums));
        }
    }
    lanes(acc)
}
