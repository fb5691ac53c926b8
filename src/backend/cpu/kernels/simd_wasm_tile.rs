//! SIMD128 prefill tile kernels: one row dotted with the four interleaved tokens of a
//! [`Q8Tile`] (rows of `mod.rs`'s `SIMD128` table), for the legacy 32-element formats and the
//! k-quants (each 32-element sub-block of a super-block taken as a legacy block with its own
//! scale and min; Q6_K's two scales per sub-block multiply its widened weights, `|(q − 32)·sc|
//! ≤ 4096` fits i16).
//!
//! Per block the weights are unpacked once and each token's products are integer sums: with
//! relaxed SIMD `i32x4.relaxed_dot_i8x16_i7x16_add` for the unsigned 4/5-bit formats (exact, as
//! in `simd_wasm_q8.rs`); otherwise, and for Q8_0, `i32x4.dot_i16x8_s` of weights widened once
//! per block by activations widened once per product. The four tokens' partial sums are then
//! transposed into one vector (lane k = token k), converted once and scaled by the four tokens'
//! scales loaded as one vector. Against the `[Q8Slice; 4]` kernels this halves the float work
//! and the bounds checks per block (SmolLM2's products in Chromium, relaxed SIMD: 5 → 10
//! GMAC/s on one thread). The integer sums are exact; the float order differs from the
//! one-token kernel (the four lanes are summed before scaling), so results agree to rounding.

use super::q8::Q8_BLOCK;
use super::simd_wasm_q8::{f16_at, fives32, k4_quants, load16, nibbles32};
use super::tile::Q8Tile;
use crate::quant::{scale_min_k4, BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K, BlockQ5_0, BlockQ5_1, BlockQ6K, BlockQ8_0, QuantFormat, QK_K};
use core::arch::wasm32::*;

/// Lane k: the sum of the four lanes of `p[k]`.
#[inline(always)]
fn reduce4(p: [v128; 4]) -> v128 {
    let t0 = i32x4_add(i32x4_shuffle::<0, 4, 1, 5>(p[0], p[1]), i32x4_shuffle::<2, 6, 3, 7>(p[0], p[1]));
    let t1 = i32x4_add(i32x4_shuffle::<0, 4, 1, 5>(p[2], p[3]), i32x4_shuffle::<2, 6, 3, 7>(p[2], p[3]));
    i32x4_add(i32x4_shuffle::<0, 1, 4, 5>(t0, t1), i32x4_shuffle::<2, 3, 6, 7>(t0, t1))
}

/// Block `i`'s integer sums `Σ q·q_x` for the four tokens of `x` (i32x4 partial sums each), from
/// the block's 32 weights as two vectors (unsigned < 64, or signed bytes when `SIGNED`).
#[inline(always)]
fn token_sums<const SIGNED: bool>(x: &Q8Tile<'_>, i: usize, q0: v128, q1: v128) -> [v128; 4] {
    #[cfg(target_feature = "relaxed-simd")]
    if !SIGNED {
        let xq = &x.qs[4 * Q8_BLOCK * i..4 * Q8_BLOCK * (i + 1)];
        return std::array::from_fn(|k| {
            let lo = i32x4_relaxed_dot_i8x16_i7x16_add(load16(xq, 32 * k), q0, i32x4_splat(0));
            i32x4_relaxed_dot_i8x16_i7x16_add(load16(xq, 32 * k + 16), q1, lo)
        });
    }
    let w = if SIGNED {
        [i16x8_extend_low_i8x16(q0), i16x8_extend_high_i8x16(q0), i16x8_extend_low_i8x16(q1), i16x8_extend_high_i8x16(q1)]
    } else {
        [u16x8_extend_low_u8x16(q0), u16x8_extend_high_u8x16(q0), u16x8_extend_low_u8x16(q1), u16x8_extend_high_u8x16(q1)]
    };
    token_sums_i16(x, i, w)
}

/// As [`token_sums`], from the block's 32 weights as i16 (elements 8j..8j + 8 in `w[j]`).
#[inline(always)]
fn token_sums_i16(x: &Q8Tile<'_>, i: usize, w: [v128; 4]) -> [v128; 4] {
    // The activations as i16: widened here with relaxed SIMD, stored widened otherwise.
    #[cfg(target_feature = "relaxed-simd")]
    let xs: [[v128; 4]; 4] = {
        let xq = &x.qs[4 * Q8_BLOCK * i..4 * Q8_BLOCK * (i + 1)];
        std::array::from_fn(|k| {
            let (a, c) = (load16(xq, 32 * k), load16(xq, 32 * k + 16));
            [i16x8_extend_low_i8x16(a), i16x8_extend_high_i8x16(a), i16x8_extend_low_i8x16(c), i16x8_extend_high_i8x16(c)]
        })
    };
    #[cfg(not(target_feature = "relaxed-simd"))]
    let xs: [[v128; 4]; 4] = {
        let xq = &x.qw[4 * Q8_BLOCK * i..4 * Q8_BLOCK * (i + 1)];
        std::array::from_fn(|k| std::array::from_fn(|h| load16(xq, 32 * k + 8 * h)))
    };
    std::array::from_fn(|k| {
        let lo = i32x4_add(i32x4_dot_i16x8(w[0], xs[k][0]), i32x4_dot_i16x8(w[1], xs[k][1]));
        let hi = i32x4_add(i32x4_dot_i16x8(w[2], xs[k][2]), i32x4_dot_i16x8(w[3], xs[k][3]));
        i32x4_add(lo, hi)
    })
}

/// `Σ_blocks d_w·d_x·Σ q·q_x + c_w·s_x` for four tokens; `quants` gives a block's 32 weights
/// (unsigned < 64, or signed bytes when `SIGNED`, then without the `c_w·s_x` term).
#[inline(always)]
fn legacy_tile<const SIGNED: bool>(
    row: &[u8],
    x: Q8Tile<'_>,
    bytes: usize,
    quants: impl Fn(&[u8]) -> [v128; 2],
    coef: impl Fn(&[u8], f32) -> f32,
) -> [f32; 4] {
    let mut acc = f32x4_splat(0.0);
    let mut extra = f32x4_splat(0.0);
    for (i, b) in row.chunks_exact(bytes).take(x.blocks()).enumerate() {
        let dw = f16_at(b, 0);
        let [q0, q1] = quants(b);
        let sums = f32x4_convert_i32x4(reduce4(token_sums::<SIGNED>(&x, i, q0, q1)));
        let dx = load16(&x.d[4 * i..4 * i + 4], 0);
        acc = f32x4_add(acc, f32x4_mul(f32x4_mul(dx, f32x4_splat(dw)), sums));
        if !SIGNED {
            extra = f32x4_add(extra, f32x4_mul(load16(&x.s[4 * i..4 * i + 4], 0), f32x4_splat(coef(b, dw))));
        }
    }
    let r = f32x4_add(acc, extra);
    [f32x4_extract_lane::<0>(r), f32x4_extract_lane::<1>(r), f32x4_extract_lane::<2>(r), f32x4_extract_lane::<3>(r)]
}

pub(super) fn tile_q4_0(row: &[u8], x: Q8Tile<'_>) -> [f32; 4] {
    legacy_tile::<false>(row, x, BlockQ4_0::BYTES, |b| nibbles32(b, 2), |_, d| -8.0 * d)
}

pub(super) fn tile_q4_1(row: &[u8], x: Q8Tile<'_>) -> [f32; 4] {
    legacy_tile::<false>(row, x, BlockQ4_1::BYTES, |b| nibbles32(b, 4), |b, _| f16_at(b, 2))
}

pub(super) fn tile_q5_0(row: &[u8], x: Q8Tile<'_>) -> [f32; 4] {
    legacy_tile::<false>(row, x, BlockQ5_0::BYTES, |b| fives32(b, 2, 6), |_, d| -16.0 * d)
}

pub(super) fn tile_q5_1(row: &[u8], x: Q8Tile<'_>) -> [f32; 4] {
    legacy_tile::<false>(row, x, BlockQ5_1::BYTES, |b| fives32(b, 4, 8), |b, _| f16_at(b, 2))
}

pub(super) fn tile_q8_0(row: &[u8], x: Q8Tile<'_>) -> [f32; 4] {
    legacy_tile::<true>(row, x, BlockQ8_0::BYTES, |b| [load16(b, 2), load16(b, 18)], |_, _| 0.0)
}

/// Sub-blocks of 32 elements in a k-quant super-block.
const SUBS: usize = QK_K / Q8_BLOCK;

/// Q4_K / Q5_K: sub-block c is a legacy block with scale `d·s_c` and offset `−dmin·m_c`.
#[inline(always)]
fn k4_tile<const Q5: bool>(row: &[u8], x: Q8Tile<'_>) -> [f32; 4] {
    let (bytes, qs_off) = if Q5 { (BlockQ5K::BYTES, 48) } else { (BlockQ4K::BYTES, 16) };
    let mut acc = f32x4_splat(0.0);
    for (sb, b) in row.chunks_exact(bytes).take(x.blocks() / SUBS).enumerate() {
        let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
        let scales: [u8; 12] = b[4..16].try_into().unwrap_or([0; 12]);
        for c in 0..SUBS {
            let i = SUBS * sb + c;
            let (s, m) = scale_min_k4(c, &scales);
            // Sub-block c: the low (c even) or high (c odd) nibbles of qs[32⌊c/2⌋..].
            let (l0, h0) = k4_quants::<Q5>(b, qs_off, c / 2, 0);
            let (l1, h1) = k4_quants::<Q5>(b, qs_off, c / 2, 1);
            let (q0, q1) = if c % 2 == 0 { (l0, l1) } else { (h0, h1) };
            let sums = f32x4_convert_i32x4(reduce4(token_sums::<false>(&x, i, q0, q1)));
            let dx = load16(&x.d[4 * i..4 * i + 4], 0);
            let sx = load16(&x.s[4 * i..4 * i + 4], 0);
            acc = f32x4_add(acc, f32x4_mul(f32x4_mul(dx, f32x4_splat(d * s as f32)), sums));
            acc = f32x4_sub(acc, f32x4_mul(sx, f32x4_splat(dmin * m as f32)));
        }
    }
    [f32x4_extract_lane::<0>(acc), f32x4_extract_lane::<1>(acc), f32x4_extract_lane::<2>(acc), f32x4_extract_lane::<3>(acc)]
}

pub(super) fn tile_q4_k(row: &[u8], x: Q8Tile<'_>) -> [f32; 4] {
    k4_tile::<false>(row, x)
}

pub(super) fn tile_q5_k(row: &[u8], x: Q8Tile<'_>) -> [f32; 4] {
    k4_tile::<true>(row, x)
}

/// Q6_K: `d·Σ_c d_x·Σ_halves sc·Σ (q − 32)·q_x`, the scales applied to the widened weights.
pub(super) fn tile_q6_k(row: &[u8], x: Q8Tile<'_>) -> [f32; 4] {
    let (m4, m3, k32) = (u8x16_splat(0x0F), u8x16_splat(0x03), i8x16_splat(32));
    let mut acc = f32x4_splat(0.0);
    for (sb, b) in row.chunks_exact(BlockQ6K::BYTES).take(x.blocks() / SUBS).enumerate() {
        let d = f16_at(b, 208);
        for c in 0..SUBS {
            // Element 32c + l (n = c / 4, k = c % 4): nibble k / 2 of ql[64n + 32(k % 2) + l],
            // bits 2k..2k + 2 of qh[32n + l] (as `simd_wasm_q8::dot_q6_k`).
            let (n, k, i) = (c / 4, c % 4, SUBS * sb + c);
            let w: [[v128; 2]; 2] = std::array::from_fn(|h| {
                let ql = load16(b, 64 * n + 32 * (k % 2) + 16 * h);
                let low = if k < 2 { v128_and(ql, m4) } else { u8x16_shr(ql, 4) };
                let high = v128_and(u8x16_shr(load16(b, 128 + 32 * n + 16 * h), 2 * k as u32), m3);
                let q = i8x16_sub(v128_or(low, u8x16_shl(high, 4)), k32);
                let sc = i16x8_splat(b[192 + 2 * c + h] as i8 as i16);
                [i16x8_mul(i16x8_extend_low_i8x16(q), sc), i16x8_mul(i16x8_extend_high_i8x16(q), sc)]
            });
            let sums = f32x4_convert_i32x4(reduce4(token_sums_i16(&x, i, [w[0][0], w[0][1], w[1][0], w[1][1]])));
            let dx = load16(&x.d[4 * i..4 * i + 4], 0);
            acc = f32x4_add(acc, f32x4_mul(f32x4_mul(dx, f32x4_splat(d)), sums));
        }
    }
    [f32x4_extract_lane::<0>(acc), f32x4_extract_lane::<1>(acc), f32x4_extract_lane::<2>(acc), f32x4_extract_lane::<3>(acc)]
}
