//! WebAssembly SIMD128 integer dot products of quantized rows with 8-bit activations
//! (compiled in with `-C target-feature=+simd128`; rows of `mod.rs`'s `SIMD128` table); each
//! mirrors its scalar reference in `reference.rs`.
//!
//! Base SIMD128 has no u8×i8 multiply-add, so bytes are widened to i16 and multiplied with
//! `i32x4_dot_i16x8` (pairs summed into i32, exact), then one float multiply-add per 32
//! elements with the block's combined scale. In the threaded build (`+relaxed-simd`)
//! unsigned weights (Q4/Q5 families, all < 64) go through `i32x4.relaxed_dot_i8x16_i7x16_add`
//! instead — one instruction for 16 products where x86 lowers it to `pmaddubsw`; with the
//! 7-bit operand non-negative and |pair sum| ≤ 2·127·63 its result is exact on every engine.
//! Rows and activations are walked over the blocks both cover; every load is bounds-checked.

use super::q8::{blocks4, Q8Slice, Q8_BLOCK};
use crate::quant::{scale_min_k4, BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K, BlockQ5_0, BlockQ5_1, BlockQ6K, BlockQ8_0, QuantFormat, QK_K};
use core::arch::wasm32::*;

#[inline(always)]
fn hsum(v: v128) -> f32 {
    f32x4_extract_lane::<0>(v) + f32x4_extract_lane::<1>(v) + f32x4_extract_lane::<2>(v) + f32x4_extract_lane::<3>(v)
}

#[inline(always)]
pub(super) fn f16_at(b: &[u8], off: usize) -> f32 {
    half::f16::from_bits(u16::from_le_bytes([b[off], b[off + 1]])).to_f32()
}

/// 16 bytes at `s[off..off + 16]` (checked: panics rather than read out of bounds).
#[inline(always)]
pub(super) fn load16<T: Copy>(s: &[T], off: usize) -> v128 {
    let s = &s[off..off + 16 / size_of::<T>()];
    // SAFETY: `s` has 16 readable bytes; wasm loads need no alignment.
    unsafe { v128_load(s.as_ptr() as *const v128) }
}

/// 16 weight bytes widened to two i16x8 (signed or unsigned bytes).
#[inline(always)]
fn widen<const SIGNED: bool>(w: v128) -> [v128; 2] {
    if SIGNED {
        [i16x8_extend_low_i8x16(w), i16x8_extend_high_i8x16(w)]
    } else {
        [u16x8_extend_low_u8x16(w), u16x8_extend_high_u8x16(w)]
    }
}

/// 16 activations as the products read them: two i16x8 from the copy widened once per
/// product ([`Q8Slice`]`::qw`) in the baseline build, 16 signed bytes with relaxed SIMD.
#[cfg(not(target_feature = "relaxed-simd"))]
type Acts16 = [v128; 2];
#[cfg(target_feature = "relaxed-simd")]
type Acts16 = v128;

/// Activations `off..off + 16` of `x` (checked: panics rather than read out of bounds).
#[inline(always)]
fn xload(x: &Q8Slice<'_>, off: usize) -> Acts16 {
    #[cfg(not(target_feature = "relaxed-simd"))]
    return [load16(x.qw, off), load16(x.qw, off + 8)];
    #[cfg(target_feature = "relaxed-simd")]
    load16(x.qs, off)
}

/// `Σ w·x` (4 × i32) of 16 signed weights, already widened, by 16 activations.
#[inline(always)]
fn sdot(w: [v128; 2], x: Acts16) -> v128 {
    #[cfg(not(target_feature = "relaxed-simd"))]
    let x = x;
    #[cfg(target_feature = "relaxed-simd")]
    let x = [i16x8_extend_low_i8x16(x), i16x8_extend_high_i8x16(x)];
    i32x4_add(i32x4_dot_i16x8(w[0], x[0]), i32x4_dot_i16x8(w[1], x[1]))
}

/// Unsigned weight bytes (< 64) made ready for [`udot`]: widened to i16 in the baseline build,
/// as they are with relaxed SIMD.
#[cfg(not(target_feature = "relaxed-simd"))]
type UPrep = [v128; 2];
#[cfg(target_feature = "relaxed-simd")]
type UPrep = v128;

#[inline(always)]
fn uprep(w: v128) -> UPrep {
    #[cfg(not(target_feature = "relaxed-simd"))]
    return widen::<false>(w);
    #[cfg(target_feature = "relaxed-simd")]
    w
}

/// `acc + Σ w·x` (4 × i32) of 16 prepared unsigned weights (< 64) by 16 activations.
#[inline(always)]
fn udot(w: UPrep, x: Acts16, acc: v128) -> v128 {
    #[cfg(not(target_feature = "relaxed-simd"))]
    return i32x4_add(acc, i32x4_add(i32x4_dot_i16x8(w[0], x[0]), i32x4_dot_i16x8(w[1], x[1])));
    #[cfg(target_feature = "relaxed-simd")]
    i32x4_relaxed_dot_i8x16_i7x16_add(x, w, acc)
}

/// `acc + f·Σ` of an i32x4 partial sum.
#[inline(always)]
fn fma(acc: v128, f: f32, p: v128) -> v128 {
    f32x4_add(acc, f32x4_mul(f32x4_splat(f), f32x4_convert_i32x4(p)))
}

/// 0x10 in byte j (of 32, as two vectors) where bit j of the little-endian `u32` at
/// `b[off..off + 4]` is set.
#[inline(always)]
fn bit4_from_bits32(b: &[u8], off: usize) -> [v128; 2] {
    let v = u32x4_splat(u32::from_le_bytes([b[off], b[off + 1], b[off + 2], b[off + 3]]));
    let sel = u8x16(1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128);
    let bytes_lo = i8x16_swizzle(v, u8x16(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1));
    let bytes_hi = i8x16_swizzle(v, u8x16(2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3));
    let bit = |x: v128| v128_and(i8x16_eq(v128_and(x, sel), sel), u8x16_splat(0x10));
    [bit(bytes_lo), bit(bytes_hi)]
}

/// Shared legacy loop: `Σ d_w·d_x·Σ q·q_x + c_w·s_x`, unsigned weight bytes from `quants`.
#[inline(always)]
fn legacy(row: &[u8], x: Q8Slice<'_>, bytes: usize, quants: impl Fn(&[u8]) -> [v128; 2], coef: impl Fn(&[u8], f32) -> f32) -> f32 {
    let mut acc = f32x4_splat(0.0);
    let mut extra = 0.0f32;
    let nb = blocks(&x);
    for (i, b) in row.chunks_exact(bytes).take(nb).enumerate() {
        let dw = f16_at(b, 0);
        let [q0, q1] = quants(b);
        let o = Q8_BLOCK * i;
        let p = udot(uprep(q1), xload(&x, o + 16), udot(uprep(q0), xload(&x, o), i32x4_splat(0)));
        acc = fma(acc, dw * x.d[i], p);
        extra += coef(b, dw) * x.s[i];
    }
    hsum(acc) + extra
}

/// Whole activation blocks `x` covers (its parts agree unless misused).
#[inline(always)]
fn blocks(x: &Q8Slice<'_>) -> usize {
    blocks4(&[*x; 4])
}

/// The 32 nibbles at `b[off..off + 16]`: low nibbles (elements 0..16), high (16..32).
#[inline(always)]
pub(super) fn nibbles32(b: &[u8], off: usize) -> [v128; 2] {
    let v = load16(b, off);
    [v128_and(v, u8x16_splat(0x0F)), u8x16_shr(v, 4)]
}

#[inline(always)]
pub(super) fn fives32(b: &[u8], qh_off: usize, qs_off: usize) -> [v128; 2] {
    let [lo, hi] = nibbles32(b, qs_off);
    let [h0, h1] = bit4_from_bits32(b, qh_off);
    [v128_or(lo, h0), v128_or(hi, h1)]
}

pub(super) fn dot_q4_0(row: &[u8], x: Q8Slice<'_>) -> f32 {
    legacy(row, x, BlockQ4_0::BYTES, |b| nibbles32(b, 2), |_, d| -8.0 * d)
}

pub(super) fn dot_q4_1(row: &[u8], x: Q8Slice<'_>) -> f32 {
    legacy(row, x, BlockQ4_1::BYTES, |b| nibbles32(b, 4), |b, _| f16_at(b, 2))
}

pub(super) fn dot_q5_0(row: &[u8], x: Q8Slice<'_>) -> f32 {
    legacy(row, x, BlockQ5_0::BYTES, |b| fives32(b, 2, 6), |_, d| -16.0 * d)
}

pub(super) fn dot_q5_1(row: &[u8], x: Q8Slice<'_>) -> f32 {
    legacy(row, x, BlockQ5_1::BYTES, |b| fives32(b, 4, 8), |b, _| f16_at(b, 2))
}

pub(super) fn dot_q8_0(row: &[u8], x: Q8Slice<'_>) -> f32 {
    let mut acc = f32x4_splat(0.0);
    for (i, b) in row.chunks_exact(BlockQ8_0::BYTES).take(blocks(&x)).enumerate() {
        let o = Q8_BLOCK * i;
        let p = i32x4_add(sdot(widen::<true>(load16(b, 2)), xload(&x, o)), sdot(widen::<true>(load16(b, 18)), xload(&x, o + 16)));
        acc = fma(acc, f16_at(b, 0) * x.d[i], p);
    }
    hsum(acc)
}

/// Elements 64i + 16h.. (low nibbles: sub-block 2i) and 64i + 32 + 16h.. (high nibbles:
/// sub-block 2i + 1) of a Q4_K/Q5_K block, 16 each, as unsigned values (< 32).
#[inline(always)]
pub(super) fn k4_quants<const Q5: bool>(b: &[u8], qs_off: usize, i: usize, h: usize) -> (v128, v128) {
    let v = load16(b, qs_off + 32 * i + 16 * h);
    let mut lo = v128_and(v, u8x16_splat(0x0F));
    let mut hi = u8x16_shr(v, 4);
    if Q5 {
        // bit 2i (2i + 1) of qh[l] is bit 4 of element 64i + l (64i + 32 + l).
        let qh = load16(b, 16 + 16 * h);
        let one = u8x16_splat(1);
        lo = v128_or(lo, u8x16_shl(v128_and(u8x16_shr(qh, 2 * i as u32), one), 4));
        hi = v128_or(hi, u8x16_shl(v128_and(u8x16_shr(qh, 2 * i as u32 + 1), one), 4));
    }
    (lo, hi)
}

/// Shared Q4_K/Q5_K loop: `qs` at byte 48 (Q5_K, with `qh` at 16) or 16 (Q4_K).
#[inline(always)]
pub(super) fn dot_k4<const Q5: bool>(row: &[u8], x: Q8Slice<'_>) -> f32 {
    let (bytes, qs_off) = if Q5 { (BlockQ5K::BYTES, 48) } else { (BlockQ4K::BYTES, 16) };
    let mut acc = f32x4_splat(0.0);
    let mut mins = 0.0f32;
    for (sb, b) in row.chunks_exact(bytes).take(blocks(&x) / 8).enumerate() {
        let (dx, sx) = (&x.d[8 * sb..], &x.s[8 * sb..]);
        let o = QK_K * sb;
        let d = f16_at(b, 0);
        let dmin = f16_at(b, 2);
        let scales: [u8; 12] = b[4..16].try_into().unwrap_or([0; 12]);
        let mut m = 0.0f32;
        for i in 0..4 {
            let (s0, m0) = scale_min_k4(2 * i, &scales);
            let (s1, m1) = scale_min_k4(2 * i + 1, &scales);
            let (mut p0, mut p1) = (i32x4_splat(0), i32x4_splat(0));
            for h in 0..2 {
                let (lo, hi) = k4_quants::<Q5>(b, qs_off, i, h);
                p0 = udot(uprep(lo), xload(&x, o + 64 * i + 16 * h), p0);
                p1 = udot(uprep(hi), xload(&x, o + 64 * i + 32 + 16 * h), p1);
            }
            acc = fma(acc, d * s0 as f32 * dx[2 * i], p0);
            acc = fma(acc, d * s1 as f32 * dx[2 * i + 1], p1);
            m += m0 as f32 * sx[2 * i] + m1 as f32 * sx[2 * i + 1];
        }
        mins += dmin * m;
    }
    hsum(acc) - mins
}

pub(super) fn dot_q4_k(row: &[u8], x: Q8Slice<'_>) -> f32 {
    dot_k4::<false>(row, x)
}

pub(super) fn dot_q5_k(row: &[u8], x: Q8Slice<'_>) -> f32 {
    dot_k4::<true>(row, x)
}

pub(super) fn dot_q6_k(row: &[u8], x: Q8Slice<'_>) -> f32 {
    let m4 = u8x16_splat(0x0F);
    let m3 = u8x16_splat(0x03);
    let k32 = i8x16_splat(32);
    let mut acc = f32x4_splat(0.0);
    for (sb, b) in row.chunks_exact(BlockQ6K::BYTES).take(blocks(&x) / 8).enumerate() {
        let (dx, o) = (&x.d[8 * sb..], QK_K * sb);
        let d = f16_at(b, 208);
        for n in 0..2 {
            for k in 0..4 {
                // Element 128n + 32k + l: nibble k / 2 of ql[64n + 32(k % 2) + l], bits
                // 2k..2k + 2 of qh[32n + l] (kquants.rs `unpack_q6k`); 16 elements at a time,
                // each with its own scale.
                let c = 4 * n + k;
                let mut p = i32x4_splat(0);
                for h in 0..2 {
                    let ql = load16(b, 64 * n + 32 * (k % 2) + 16 * h);
                    let low = if k < 2 { v128_and(ql, m4) } else { u8x16_shr(ql, 4) };
                    let high = v128_and(u8x16_shr(load16(b, 128 + 32 * n + 16 * h), 2 * k as u32), m3);
                    let q = i8x16_sub(v128_or(low, u8x16_shl(high, 4)), k32);
                    let sc = b[192 + 2 * c + h] as i8 as i32;
                    p = i32x4_add(p, i32x4_mul(sdot(widen::<true>(q), xload(&x, o + 32 * c + 16 * h)), i32x4_splat(sc)));
                }
                acc = fma(acc, d * dx[c], p);
            }
        }
    }
    hsum(acc)
}

/// [`super::q8::quantize_block`] on exactly 32 elements (`mod.rs` hands other lengths to the
/// scalar reference): the same scale, bytes and sum, bit for bit. Rounding half away from zero without `roundf`:
/// `t = trunc(v)`, plus the sign of `v` where `|v − t| ≥ 0.5` (`v − t` is exact); `pmax` from
/// zero skips NaN like `f32::max`; conversion and narrowing saturate like `as i8`.
pub(super) fn quantize_block(xs: &[f32], qs: &mut [i8]) -> (f32, f32) {
    let v: [v128; 8] = std::array::from_fn(|j| load16(xs, 4 * j));
    let m = v
        .iter()
        .fold(f32x4_splat(0.0), |m, &x| f32x4_pmax(m, f32x4_abs(x)));
    let amax = [
        f32x4_extract_lane::<0>(m),
        f32x4_extract_lane::<1>(m),
        f32x4_extract_lane::<2>(m),
        f32x4_extract_lane::<3>(m),
    ]
    .into_iter()
    .fold(0.0f32, f32::max);
    let d = amax / 127.0;
    let id = f32x4_splat(if d != 0.0 { 1.0 / d } else { 0.0 });
    let round = |x: v128| {
        let s = f32x4_mul(x, id);
        let t = f32x4_trunc(s);
        let away = f32x4_ge(f32x4_abs(f32x4_sub(s, t)), f32x4_splat(0.5));
        let sign = v128_or(f32x4_splat(1.0), v128_and(s, f32x4_splat(-0.0)));
        i32x4_trunc_sat_f32x4(f32x4_add(t, v128_and(away, sign)))
    };
    let r: [v128; 8] = std::array::from_fn(|j| round(v[j]));
    let bytes = [
        i8x16_narrow_i16x8(
            i16x8_narrow_i32x4(r[0], r[1]),
            i16x8_narrow_i32x4(r[2], r[3]),
        ),
        i8x16_narrow_i16x8(
            i16x8_narrow_i32x4(r[4], r[5]),
            i16x8_narrow_i32x4(r[6], r[7]),
        ),
    ];
    let mut sum = i32x4_splat(0);
    for (h, &b) in bytes.iter().enumerate() {
        sum = i32x4_add(
            sum,
            i32x4_extadd_pairwise_i16x8(i16x8_extadd_pairwise_i8x16(b)),
        );
        let dst = &mut qs[16 * h..16 * h + 16];
        // SAFETY: `dst` has 16 writable bytes; wasm stores need no alignment.
        unsafe { v128_store(dst.as_mut_ptr() as *mut v128, b) };
    }
    let sum = i32x4_extract_lane::<0>(sum)
        + i32x4_extract_lane::<1>(sum)
        + i32x4_extract_lane::<2>(sum)
        + i32x4_extract_lane::<3>(sum);
    (d, d * sum as f32)
}

/// As [`legacy`], for four activation vectors at once: each weight block is unpacked and
/// widened once for four tokens (the prefill tile). Per token the operations and their order
/// are those of the one-token kernel, so the results are equal bit for bit.
#[inline(always)]
fn legacy_x4<const SIGNED: bool>(
    row: &[u8],
    x: [Q8Slice<'_>; 4],
    bytes: usize,
    quants: impl Fn(&[u8]) -> [v128; 2],
    coef: impl Fn(&[u8], f32) -> f32,
) -> [f32; 4] {
    let mut acc = [f32x4_splat(0.0); 4];
    let mut extra = [0.0f32; 4];
    let nb = blocks4(&x);
    for (i, b) in row.chunks_exact(bytes).take(nb).enumerate() {
        let dw = f16_at(b, 0);
        let [q0, q1] = quants(b);
        let c = coef(b, dw);
        let o = Q8_BLOCK * i;
        if SIGNED {
            let (w0, w1) = (widen::<true>(q0), widen::<true>(q1));
            for k in 0..4 {
                let p = i32x4_add(sdot(w0, xload(&x[k], o)), sdot(w1, xload(&x[k], o + 16)));
                acc[k] = fma(acc[k], dw * x[k].d[i], p);
            }
        } else {
            let (w0, w1) = (uprep(q0), uprep(q1));
            for k in 0..4 {
                let p = udot(w1, xload(&x[k], o + 16), udot(w0, xload(&x[k], o), i32x4_splat(0)));
                acc[k] = fma(acc[k], dw * x[k].d[i], p);
                extra[k] += c * x[k].s[i];
            }
        }
    }
    std::array::from_fn(|k| hsum(acc[k]) + extra[k])
}

pub(super) fn dot4_q4_0(row: &[u8], x: [Q8Slice<'_>; 4]) -> [f32; 4] {
    legacy_x4::<false>(row, x, BlockQ4_0::BYTES, |b| nibbles32(b, 2), |_, d| -8.0 * d)
}

pub(super) fn dot4_q4_1(row: &[u8], x: [Q8Slice<'_>; 4]) -> [f32; 4] {
    legacy_x4::<false>(row, x, BlockQ4_1::BYTES, |b| nibbles32(b, 4), |b, _| f16_at(b, 2))
}

pub(super) fn dot4_q5_0(row: &[u8], x: [Q8Slice<'_>; 4]) -> [f32; 4] {
    legacy_x4::<false>(row, x, BlockQ5_0::BYTES, |b| fives32(b, 2, 6), |_, d| -16.0 * d)
}

pub(super) fn dot4_q5_1(row: &[u8], x: [Q8Slice<'_>; 4]) -> [f32; 4] {
    legacy_x4::<false>(row, x, BlockQ5_1::BYTES, |b| fives32(b, 4, 8), |b, _| f16_at(b, 2))
}

pub(super) fn dot4_q8_0(row: &[u8], x: [Q8Slice<'_>; 4]) -> [f32; 4] {
    legacy_x4::<true>(row, x, BlockQ8_0::BYTES, |b| [load16(b, 2), load16(b, 18)], |_, _| 0.0)
}

/// As [`dot_k4`], for four activation vectors at once (same per-token order of operations).
#[inline(always)]
pub(super) fn dot_k4_x4<const Q5: bool>(row: &[u8], x: [Q8Slice<'_>; 4]) -> [f32; 4] {
    let (bytes, qs_off) = if Q5 { (BlockQ5K::BYTES, 48) } else { (BlockQ4K::BYTES, 16) };
    let mut acc = [f32x4_splat(0.0); 4];
    let mut mins = [0.0f32; 4];
    let nsb = blocks4(&x) / 8;
    for (sb, b) in row.chunks_exact(bytes).take(nsb).enumerate() {
        let d = f16_at(b, 0);
        let dmin = f16_at(b, 2);
        let scales: [u8; 12] = b[4..16].try_into().unwrap_or([0; 12]);
        let mut m = [0.0f32; 4];
        for i in 0..4 {
            let (s0, m0) = scale_min_k4(2 * i, &scales);
            let (s1, m1) = scale_min_k4(2 * i + 1, &scales);
            let mut w = [uprep(i16x8_splat(0)); 4]; // [lo h0, lo h1, hi h0, hi h1]
            for h in 0..2 {
                let (lo, hi) = k4_quants::<Q5>(b, qs_off, i, h);
                w[h] = uprep(lo);
                w[2 + h] = uprep(hi);
            }
            for k in 0..4 {
                let (o, dx, sx) = (QK_K * sb, &x[k].d[8 * sb..], &x[k].s[8 * sb..]);
                let (mut p0, mut p1) = (i32x4_splat(0), i32x4_splat(0));
                for h in 0..2 {
                    p0 = udot(w[h], xload(&x[k], o + 64 * i + 16 * h), p0);
                    p1 = udot(w[2 + h], xload(&x[k], o + 64 * i + 32 + 16 * h), p1);
                }
                acc[k] = fma(acc[k], d * s0 as f32 * dx[2 * i], p0);
                acc[k] = fma(acc[k], d * s1 as f32 * dx[2 * i + 1], p1);
                m[k] += m0 as f32 * sx[2 * i] + m1 as f32 * sx[2 * i + 1];
            }
        }
        for k in 0..4 {
            mins[k] += dmin * m[k];
        }
    }
    std::array::from_fn(|k| hsum(acc[k]) - mins[k])
}

pub(super) fn dot4_q4_k(row: &[u8], x: [Q8Slice<'_>; 4]) -> [f32; 4] {
    dot_k4_x4::<false>(row, x)
}

pub(super) fn dot4_q5_k(row: &[u8], x: [Q8Slice<'_>; 4]) -> [f32; 4] {
    dot_k4_x4::<true>(row, x)
}
