//! SIMD128 prefill tile kernels: `R` weight rows dotted with the four interleaved tokens of a
//! [`Q8Tile`] (the `tile` (R = 1) and `tile_rows` (R = [`TILE_ROWS`]) fields of `mod.rs`'s
//! `SIMD128` table), for the legacy 32-element formats and the k-quants (each 32-element
//! sub-block of a super-block taken as a legacy block with its own scale and min; Q6_K's two
//! scales per sub-block multiply its widened weights, `|(q − 32)·sc| ≤ 4096` fits i16).
//!
//! Per block the four tokens' activations are loaded once for the `R` rows (and widened once,
//! for the signed formats), each row's weights are unpacked once for the four tokens, and each
//! (row, token) product is an integer sum: with relaxed SIMD `i32x4.relaxed_dot_i8x16_i7x16_add`
//! for the unsigned 4/5-bit formats (exact, as in `simd_wasm_q8.rs`); otherwise, and for the
//! signed formats, `i32x4.dot_i16x8_s` of i16 weights by i16 activations. A row's four
//! partial sums are transposed into one vector (lane k = token k), converted once and scaled
//! by the four tokens' scales loaded as one vector.
//!
//! Float operations per (row, token) and block, in this order (what `simd_wasm_rows.rs`
//! repeats with the rows in the lanes, so its one-token results equal these bit for bit, and
//! `R` does not change a result either): `acc = acc + (d_x·d_w)·Σ`, then for the unsigned
//! legacy formats `extra = extra + s_x·c_w` (result `acc + extra`), for Q4_K/Q5_K
//! `acc = acc − s_x·(dmin·m)`. No fused multiply-add: `f32x4.relaxed_madd` may or may not
//! round once, engine by engine.

use super::q8::Q8_BLOCK;
use super::simd_wasm_q8::{f16_at, fives32, load16, nibbles32};
use super::tile::Q8Tile;
use crate::quant::{scale_min_k4, BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K, BlockQ5_0, BlockQ5_1, BlockQ6K, BlockQ8_0, QuantFormat, QK_K};
use core::arch::wasm32::*;

#[cfg(doc)]
use super::tile::TILE_ROWS;

/// One token's 32 activations of a block as the products read them: two vectors of bytes with
/// relaxed SIMD, four of i16 (the copy widened once per product) in the baseline build.
#[cfg(target_feature = "relaxed-simd")]
pub(super) type TokActs = [v128; 2];
#[cfg(not(target_feature = "relaxed-simd"))]
pub(super) type TokActs = [v128; 4];

/// A token's block activations as i16 (elements 8j..8j + 8 in vector j).
#[inline(always)]
pub(super) fn tok_i16(a: &TokActs) -> [v128; 4] {
    #[cfg(target_feature = "relaxed-simd")]
    return [i16x8_extend_low_i8x16(a[0]), i16x8_extend_high_i8x16(a[0]), i16x8_extend_low_i8x16(a[1]), i16x8_extend_high_i8x16(a[1])];
    #[cfg(not(target_feature = "relaxed-simd"))]
    *a
}

/// `Σ q·q_x` (i32x4 partial sums) of a block's 32 unsigned weights (< 64, two byte vectors).
#[inline(always)]
pub(super) fn usum(a: &TokActs, q0: v128, q1: v128) -> v128 {
    // Two i16 dots (`pmaddubsw` on x86), added as i16 (|Σ| ≤ 2·2·127·63 = 32004 fits) and
    // widened once: four instructions where two i32 dots (`pmaddubsw` + `pmaddwd` + `paddd`
    // each) took six.
    #[cfg(target_feature = "relaxed-simd")]
    return i32x4_extadd_pairwise_i16x8(i16x8_add(i16x8_relaxed_dot_i8x16_i7x16(a[0], q0), i16x8_relaxed_dot_i8x16_i7x16(a[1], q1)));
    #[cfg(not(target_feature = "relaxed-simd"))]
    isum(a, &[u16x8_extend_low_u8x16(q0), u16x8_extend_high_u8x16(q0), u16x8_extend_low_u8x16(q1), u16x8_extend_high_u8x16(q1)])
}

/// `Σ q·q_x` (i32x4 partial sums) of a block's 32 weights as i16 by its activations as i16.
#[inline(always)]
pub(super) fn isum(a: &[v128; 4], w: &[v128; 4]) -> v128 {
    let lo = i32x4_add(i32x4_dot_i16x8(w[0], a[0]), i32x4_dot_i16x8(w[1], a[1]));
    let hi = i32x4_add(i32x4_dot_i16x8(w[2], a[2]), i32x4_dot_i16x8(w[3], a[3]));
    i32x4_add(lo, hi)
}

/// 32 signed weight bytes (two vectors) widened to i16.
#[inline(always)]
pub(super) fn widen_i8(q0: v128, q1: v128) -> [v128; 4] {
    [i16x8_extend_low_i8x16(q0), i16x8_extend_high_i8x16(q0), i16x8_extend_low_i8x16(q1), i16x8_extend_high_i8x16(q1)]
}

/// Lane k: the sum of the four lanes of `p[k]`.
#[inline(always)]
pub(super) fn reduce4(p: [v128; 4]) -> v128 {
    let t0 = i32x4_add(i32x4_shuffle::<0, 4, 1, 5>(p[0], p[1]), i32x4_shuffle::<2, 6, 3, 7>(p[0], p[1]));
    let t1 = i32x4_add(i32x4_shuffle::<0, 4, 1, 5>(p[2], p[3]), i32x4_shuffle::<2, 6, 3, 7>(p[2], p[3]));
    i32x4_add(i32x4_shuffle::<0, 1, 4, 5>(t0, t1), i32x4_shuffle::<2, 3, 6, 7>(t0, t1))
}

#[inline(always)]
pub(super) fn lanes(v: v128) -> [f32; 4] {
    [f32x4_extract_lane::<0>(v), f32x4_extract_lane::<1>(v), f32x4_extract_lane::<2>(v), f32x4_extract_lane::<3>(v)]
}

/// Block `i`'s activations of the four tokens of `x` (token k's values start at element 32k).
#[inline(always)]
fn acts(x: &Q8Tile<'_>, i: usize) -> [TokActs; 4] {
    #[cfg(target_feature = "relaxed-simd")]
    {
        let xq = &x.qs[4 * Q8_BLOCK * i..4 * Q8_BLOCK * (i + 1)];
        std::array::from_fn(|k| std::array::from_fn(|j| load16(xq, 32 * k + 16 * j)))
    }
    #[cfg(not(target_feature = "relaxed-simd"))]
    {
        let xq = &x.qw[4 * Q8_BLOCK * i..4 * Q8_BLOCK * (i + 1)];
        std::array::from_fn(|k| std::array::from_fn(|j| load16(xq, 32 * k + 8 * j)))
    }
}

/// The four tokens' scales (or block sums) of block `i`.
#[inline(always)]
fn four(v: &[f32], i: usize) -> v128 {
    load16(&v[4 * i..4 * i + 4], 0)
}

/// Blocks of `bytes` every row covers, and `x` (`per` activation blocks each).
#[inline(always)]
fn blocks_of<const R: usize>(rows: &[&[u8]; R], x: &Q8Tile<'_>, bytes: usize, per: usize) -> usize {
    rows.iter().map(|r| r.len() / bytes).min().unwrap_or(0).min(x.blocks() / per)
}

/// The f16 at `b[r][off..off + 2]` of four blocks, as f32: [`f16_at`]'s value for every finite
/// half and ±∞ (NaN stays NaN), in a dozen vector instructions instead of four branchy scalar
/// conversions. The half's exponent and mantissa moved to f32's places are its value times
/// 2^-112 (normal and subnormal halves alike); multiplying by 2^112 is exact.
#[inline(always)]
pub(super) fn f16x4(b: [&[u8]; 4], off: usize) -> v128 {
    let h = |r: usize| u32::from(u16::from_le_bytes([b[r][off], b[r][off + 1]]));
    let v = u32x4(h(0), h(1), h(2), h(3));
    let em = v128_and(v, u32x4_splat(0x7FFF));
    let sign = u32x4_shl(v128_and(v, u32x4_splat(0x8000)), 16);
    let moved = u32x4_shl(em, 13);
    let finite = f32x4_mul(moved, f32x4_splat(f32::from_bits(0x7780_0000)));
    let special = v128_or(moved, u32x4_splat(0x7F80_0000));
    v128_or(v128_bitselect(special, finite, u32x4_ge(em, u32x4_splat(0x7C00))), sign)
}

/// The f16 at byte `off` of each of `R` blocks (one vector conversion when R = 4).
#[inline(always)]
pub(super) fn f16s<const R: usize>(b: &[&[u8]; R], off: usize) -> [f32; R] {
    if R == 4 {
        let l = lanes(f16x4(std::array::from_fn(|r| b[r.min(R - 1)]), off));
        std::array::from_fn(|r| l[r])
    } else {
        std::array::from_fn(|r| f16_at(b[r], off))
    }
}

/// A legacy format's `c_w` (the factor of the activations' block sum `s_x`).
#[derive(Clone, Copy)]
pub(super) enum Coef {
    /// `k·d_w` (Q4_0, Q5_0: the offset of the unsigned quants).
    Scaled(f32),
    /// The f16 at this byte offset (Q4_1, Q5_1: the block's min).
    F16(usize),
    /// None (Q8_0: signed quants).
    Zero,
}

impl Coef {
    /// `c_w` of `R` blocks whose scales are `dw`.
    #[inline(always)]
    pub(super) fn of<const R: usize>(self, b: &[&[u8]; R], dw: &[f32; R]) -> [f32; R] {
        match self {
            Coef::Scaled(k) => std::array::from_fn(|r| k * dw[r]),
            Coef::F16(off) => f16s(b, off),
            Coef::Zero => [0.0; R],
        }
    }
}

/// `Σ_blocks d_w·d_x·Σ q·q_x + c_w·s_x` for `R` rows × four tokens; `quants` gives a block's 32
/// weights (unsigned < 64, or signed bytes when `SIGNED`, then with `Coef::Zero`).
#[inline(always)]
fn legacy_tile<const SIGNED: bool, const R: usize>(rows: [&[u8]; R], x: Q8Tile<'_>, bytes: usize, quants: impl Fn(&[u8]) -> [v128; 2], coef: Coef) -> [[f32; 4]; R] {
    let mut acc = [f32x4_splat(0.0); R];
    let mut extra = [f32x4_splat(0.0); R];
    for i in 0..blocks_of(&rows, &x, bytes, 1) {
        let a = acts(&x, i);
        let a16: [[v128; 4]; 4] = if SIGNED { std::array::from_fn(|k| tok_i16(&a[k])) } else { [[i32x4_splat(0); 4]; 4] };
        let (dx, sx) = (four(x.d, i), four(x.s, i));
        let b: [&[u8]; R] = std::array::from_fn(|r| &rows[r][bytes * i..bytes * (i + 1)]);
        let dw = f16s(&b, 0);
        let c = if SIGNED { [0.0; R] } else { coef.of(&b, &dw) };
        for r in 0..R {
            let [q0, q1] = quants(b[r]);
            let p = if SIGNED {
                let w = widen_i8(q0, q1);
                std::array::from_fn(|k| isum(&a16[k], &w))
            } else {
                std::array::from_fn(|k| usum(&a[k], q0, q1))
            };
            let sums = f32x4_convert_i32x4(reduce4(p));
            acc[r] = f32x4_add(acc[r], f32x4_mul(f32x4_mul(dx, f32x4_splat(dw[r])), sums));
            if !SIGNED {
                extra[r] = f32x4_add(extra[r], f32x4_mul(sx, f32x4_splat(c[r])));
            }
        }
    }
    std::array::from_fn(|r| lanes(f32x4_add(acc[r], extra[r])))
}

/// The tile kernels of one format: `$name::<R>` (R rows), from `$body(rows, x)`.
macro_rules! tiles {
    ($($name:ident: $rows:ident, $x:ident => $body:expr;)*) => {$(
        pub(super) fn $name<const R: usize>($rows: [&[u8]; R], $x: Q8Tile<'_>) -> [[f32; 4]; R] {
            $body
        }
    )*};
}

tiles! {
    tile_q4_0: rows, x => legacy_tile::<false, R>(rows, x, BlockQ4_0::BYTES, |b| nibbles32(b, 2), Coef::Scaled(-8.0));
    tile_q4_1: rows, x => legacy_tile::<false, R>(rows, x, BlockQ4_1::BYTES, |b| nibbles32(b, 4), Coef::F16(2));
    // Q5_0 / Q5_1 row by row: four rows' fifth-bit unpacking (`fives32`) in one loop ran at
    // 0.7-0.95x the one-row tile in Chromium (interleaved A/B, one thread).
    tile_q5_0: rows, x => std::array::from_fn(|r| legacy_tile::<false, 1>([rows[r]], x, BlockQ5_0::BYTES, |b| fives32(b, 2, 6), Coef::Scaled(-16.0))[0]);
    tile_q5_1: rows, x => std::array::from_fn(|r| legacy_tile::<false, 1>([rows[r]], x, BlockQ5_1::BYTES, |b| fives32(b, 4, 8), Coef::F16(2))[0]);
    tile_q8_0: rows, x => legacy_tile::<true, R>(rows, x, BlockQ8_0::BYTES, |b| [load16(b, 2), load16(b, 18)], Coef::Zero);
    tile_q4_k: rows, x => k4_tile::<false, R>(rows, x);
    tile_q5_k: rows, x => k4_tile::<true, R>(rows, x);
    // Row by row: the four tokens' widened activations (16 vectors) held across four rows
    // spilled, and the four-row Q6_K tile ran at 0.85-0.9x the one-row tile in Chromium.
    tile_q6_k: rows, x => std::array::from_fn(|r| q6k_tile::<1>([rows[r]], x)[0]);
}

/// Sub-blocks of 32 elements in a k-quant super-block.
pub(super) const SUBS: usize = QK_K / Q8_BLOCK;

/// Q4_K / Q5_K sub-block `c`'s 32 weights (two vectors): the low (c even) or high (c odd)
/// nibbles of `qs[32⌊c/2⌋..]`, with Q5_K's fifth bit, bit c of `qh[l]`.
#[inline(always)]
pub(super) fn k4_sub<const Q5: bool>(b: &[u8], c: usize) -> [v128; 2] {
    let qs_off = if Q5 { 48 } else { 16 };
    std::array::from_fn(|h| {
        let v = load16(b, qs_off + 32 * (c / 2) + 16 * h);
        let q = if c % 2 == 0 { v128_and(v, u8x16_splat(0x0F)) } else { u8x16_shr(v, 4) };
        if Q5 {
            let qh = load16(b, 16 + 16 * h);
            v128_or(q, u8x16_shl(v128_and(u8x16_shr(qh, c as u32), u8x16_splat(1)), 4))
        } else {
            q
        }
    })
}

/// A Q4_K / Q5_K super-block's sub-block scales as floats: `(d·s_c, dmin·m_c)` for each c.
#[inline(always)]
pub(super) fn k4_scales(b: &[u8]) -> [(f32, f32); SUBS] {
    let (d, dmin) = (f16_at(b, 0), f16_at(b, 2));
    let scales: [u8; 12] = b[4..16].try_into().unwrap_or([0; 12]);
    std::array::from_fn(|c| {
        let (s, m) = scale_min_k4(c, &scales);
        (d * s as f32, dmin * m as f32)
    })
}

/// Q4_K / Q5_K: sub-block c is a legacy block with scale `d·s_c` and offset `−dmin·m_c`.
#[inline(always)]
fn k4_tile<const Q5: bool, const R: usize>(rows: [&[u8]; R], x: Q8Tile<'_>) -> [[f32; 4]; R] {
    let bytes = if Q5 { BlockQ5K::BYTES } else { BlockQ4K::BYTES };
    let mut acc = [f32x4_splat(0.0); R];
    for sb in 0..blocks_of(&rows, &x, bytes, SUBS) {
        let blocks: [&[u8]; R] = std::array::from_fn(|r| &rows[r][bytes * sb..bytes * (sb + 1)]);
        let scales: [[(f32, f32); SUBS]; R] = std::array::from_fn(|r| k4_scales(blocks[r]));
        for c in 0..SUBS {
            let i = SUBS * sb + c;
            let a = acts(&x, i);
            let (dx, sx) = (four(x.d, i), four(x.s, i));
            for r in 0..R {
                let [q0, q1] = k4_sub::<Q5>(blocks[r], c);
                let sums = f32x4_convert_i32x4(reduce4(std::array::from_fn(|k| usum(&a[k], q0, q1))));
                let (ds, dm) = scales[r][c];
                acc[r] = f32x4_add(acc[r], f32x4_mul(f32x4_mul(dx, f32x4_splat(ds)), sums));
                acc[r] = f32x4_sub(acc[r], f32x4_mul(sx, f32x4_splat(dm)));
            }
        }
    }
    std::array::from_fn(|r| lanes(acc[r]))
}

/// Q6_K sub-block `c`'s 32 weights `(q − 32)·sc` as i16 (elements 8j..8j + 8 in vector j).
/// Element 32c + l (n = c / 4, k = c % 4): nibble k / 2 of ql[64n + 32(k % 2) + l], bits
/// 2k..2k + 2 of qh[32n + l] (as `simd_wasm_q8::dot_q6_k`).
#[inline(always)]
pub(super) fn q6k_sub(b: &[u8], c: usize) -> [v128; 4] {
    let (m4, m3, k32) = (u8x16_splat(0x0F), u8x16_splat(0x03), i8x16_splat(32));
    let (n, k) = (c / 4, c % 4);
    let w: [[v128; 2]; 2] = std::array::from_fn(|h| {
        let ql = load16(b, 64 * n + 32 * (k % 2) + 16 * h);
        let low = if k < 2 { v128_and(ql, m4) } else { u8x16_shr(ql, 4) };
        let high = v128_and(u8x16_shr(load16(b, 128 + 32 * n + 16 * h), 2 * k as u32), m3);
        let q = i8x16_sub(v128_or(low, u8x16_shl(high, 4)), k32);
        let sc = i16x8_splat(b[192 + 2 * c + h] as i8 as i16);
        [i16x8_mul(i16x8_extend_low_i8x16(q), sc), i16x8_mul(i16x8_extend_high_i8x16(q), sc)]
    });
    [w[0][0], w[0][1], w[1][0], w[1][1]]
}

/// Q6_K: `d·Σ_c d_x·Σ_halves sc·Σ (q − 32)·q_x`, the scales applied to the widened weights.
#[inline(always)]
fn q6k_tile<const R: usize>(rows: [&[u8]; R], x: Q8Tile<'_>) -> [[f32; 4]; R] {
    let mut acc = [f32x4_splat(0.0); R];
    for sb in 0..blocks_of(&rows, &x, BlockQ6K::BYTES, SUBS) {
        let blocks: [&[u8]; R] = std::array::from_fn(|r| &rows[r][BlockQ6K::BYTES * sb..BlockQ6K::BYTES * (sb + 1)]);
        let d: [f32; R] = std::array::from_fn(|r| f16_at(blocks[r], 208));
        for c in 0..SUBS {
            let i = SUBS * sb + c;
            let a = acts(&x, i);
            let a16: [[v128; 4]; 4] = std::array::from_fn(|k| tok_i16(&a[k]));
            let dx = four(x.d, i);
            for r in 0..R {
                let w = q6k_sub(blocks[r], c);
                let sums = f32x4_convert_i32x4(reduce4(std::array::from_fn(|k| isum(&a16[k], &w))));
                acc[r] = f32x4_add(acc[r], f32x4_mul(f32x4_mul(dx, f32x4_splat(d[r])), sums));
            }
        }
    }
    std::array::from_fn(|r| lanes(acc[r]))
}
