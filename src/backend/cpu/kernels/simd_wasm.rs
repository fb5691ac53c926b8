//! WebAssembly SIMD128 fused dot products (compiled in with `-C target-feature=+simd128`).
//!
//! Same structure as `simd_x86.rs` with 4-lane f32 vectors: nibbles are widened
//! u8 → u16 → u32 → f32 and multiplied into f32 accumulators. Base SIMD128 has no FMA; the
//! threaded build adds `+relaxed-simd` and [`madd`] becomes `f32x4.relaxed_madd` (one fused or
//! unfused multiply-add, the engine's choice: on x86 with FMA, V8 emits `vfmadd`).
//! Rows are walked with `chunks_exact`; every load is inside its chunk.

use crate::quant::{BlockQ4_0, BlockQ4_1, BlockQ8_0, QuantFormat, QK};
use core::arch::wasm32::*;

#[inline(always)]
fn hsum(v: v128) -> f32 {
    f32x4_extract_lane::<0>(v) + f32x4_extract_lane::<1>(v) + f32x4_extract_lane::<2>(v) + f32x4_extract_lane::<3>(v)
}

/// `a·b + c` per lane: one relaxed multiply-add where the build has relaxed SIMD.
#[cfg(target_feature = "relaxed-simd")]
#[inline(always)]
pub(super) fn madd(a: v128, b: v128, c: v128) -> v128 {
    f32x4_relaxed_madd(a, b, c)
}

/// `a·b + c` per lane (SIMD128 has no fused multiply-add).
#[cfg(not(target_feature = "relaxed-simd"))]
#[inline(always)]
pub(super) fn madd(a: v128, b: v128, c: v128) -> v128 {
    f32x4_add(f32x4_mul(a, b), c)
}

#[inline(always)]
fn f16_at(b: &[u8], off: usize) -> f32 {
    half::f16::from_bits(u16::from_le_bytes([b[off], b[off + 1]])).to_f32()
}

/// 16 bytes at `b[off..off + 16]`.
#[inline(always)]
fn load16(b: &[u8], off: usize) -> v128 {
    let s = &b[off..off + 16];
    // SAFETY: `s` has 16 readable bytes; wasm loads need no alignment.
    unsafe { v128_load(s.as_ptr() as *const v128) }
}

/// 4 floats at `x[off..off + 4]`.
#[inline(always)]
fn xload(x: &[f32], off: usize) -> v128 {
    let s = &x[off..off + 4];
    // SAFETY: `s` has 16 readable bytes; wasm loads need no alignment.
    unsafe { v128_load(s.as_ptr() as *const v128) }
}

/// 16 u8 lanes → four f32x4 in lane order.
#[inline(always)]
fn u8_to_f32(v: v128) -> [v128; 4] {
    let lo = u16x8_extend_low_u8x16(v);
    let hi = u16x8_extend_high_u8x16(v);
    [
        f32x4_convert_i32x4(u32x4_extend_low_u16x8(lo)),
        f32x4_convert_i32x4(u32x4_extend_high_u16x8(lo)),
        f32x4_convert_i32x4(u32x4_extend_low_u16x8(hi)),
        f32x4_convert_i32x4(u32x4_extend_high_u16x8(hi)),
    ]
}

/// 16 i8 lanes → four f32x4 in lane order.
#[inline(always)]
fn i8_to_f32(v: v128) -> [v128; 4] {
    let lo = i16x8_extend_low_i8x16(v);
    let hi = i16x8_extend_high_i8x16(v);
    [
        f32x4_convert_i32x4(i32x4_extend_low_i16x8(lo)),
        f32x4_convert_i32x4(i32x4_extend_high_i16x8(lo)),
        f32x4_convert_i32x4(i32x4_extend_low_i16x8(hi)),
        f32x4_convert_i32x4(i32x4_extend_high_i16x8(hi)),
    ]
}

/// `Σ q·x` (4 lanes) of 16 values against `xs[off..off + 16]`.
#[inline(always)]
fn qx16(q: [v128; 4], xs: &[f32], off: usize) -> v128 {
    let a = madd(q[1], xload(xs, off + 4), f32x4_mul(q[0], xload(xs, off)));
    let b = madd(q[3], xload(xs, off + 12), f32x4_mul(q[2], xload(xs, off + 8)));
    f32x4_add(a, b)
}

/// `Σ x` (4 lanes) of `xs[0..32]`.
#[inline(always)]
fn sx32(xs: &[f32]) -> v128 {
    let mut s = xload(xs, 0);
    for k in 1..8 {
        s = f32x4_add(s, xload(xs, 4 * k));
    }
    s
}

/// `d·Σ q·x` for a nibble-packed block whose 16 `qs` bytes start at `off`.
#[inline(always)]
fn nibble_dot(b: &[u8], off: usize, xs: &[f32]) -> v128 {
    let v = load16(b, off);
    let lo = v128_and(v, u8x16_splat(0x0F));
    let hi = u8x16_shr(v, 4);
    f32x4_add(qx16(u8_to_f32(lo), xs, 0), qx16(u8_to_f32(hi), xs, 16))
}

pub(super) fn dot_f32(row: &[u8], x: &[f32]) -> f32 {
    let mut acc = f32x4_splat(0.0);
    let mut chunks = 0;
    for (w, xs) in row.chunks_exact(16).zip(x.chunks_exact(4)) {
        acc = madd(load16(w, 0), xload(xs, 0), acc);
        chunks += 1;
    }
    let mut s = hsum(acc);
    for (w, &x) in row[16 * chunks..].chunks_exact(4).zip(&x[4 * chunks..]) {
        s += f32::from_le_bytes([w[0], w[1], w[2], w[3]]) * x;
    }
    s
}

pub(super) fn dot_q4_0(row: &[u8], x: &[f32]) -> f32 {
    // Σ d·(q − 8)·x = d·(Σ q·x − 8·Σ x)
    let mut acc = f32x4_splat(0.0);
    for (b, xs) in row.chunks_exact(BlockQ4_0::BYTES).zip(x.chunks_exact(QK)) {
        let qx = madd(f32x4_splat(-8.0), sx32(xs), nibble_dot(b, 2, xs));
        acc = madd(f32x4_splat(f16_at(b, 0)), qx, acc);
    }
    hsum(acc)
}

pub(super) fn dot_q4_1(row: &[u8], x: &[f32]) -> f32 {
    let mut acc = f32x4_splat(0.0);
    for (b, xs) in row.chunks_exact(BlockQ4_1::BYTES).zip(x.chunks_exact(QK)) {
        let d = f32x4_splat(f16_at(b, 0));
        let m = f32x4_splat(f16_at(b, 2));
        // Same association as before relaxed SIMD, so the baseline build's sums are unchanged.
        acc = f32x4_add(acc, madd(d, nibble_dot(b, 4, xs), f32x4_mul(m, sx32(xs))));
    }
    hsum(acc)
}

pub(super) fn dot_q8_0(row: &[u8], x: &[f32]) -> f32 {
    let mut acc = f32x4_splat(0.0);
    for (b, xs) in row.chunks_exact(BlockQ8_0::BYTES).zip(x.chunks_exact(QK)) {
        let qx = f32x4_add(qx16(i8_to_f32(load16(b, 2)), xs, 0), qx16(i8_to_f32(load16(b, 18)), xs, 16));
        acc = madd(f32x4_splat(f16_at(b, 0)), qx, acc);
    }
    hsum(acc)
}
