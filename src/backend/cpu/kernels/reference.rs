//! Scalar references of the integer dot products (llama.cpp's `vec_dot_*_q8_*` generic
//! versions): plain Rust over the format's own decoding (`quant`), exact integer sums, the
//! oracle every SIMD kernel in this directory is tested against (`tests.rs`, and at run time
//! `check.rs`). They also run where the machine has no SIMD kernel (`mod.rs`, `portable`).

use super::q8::{Q8Slice, Q8_BLOCK};
use super::{row, DotQ8Fn, Kernels};
use crate::quant::{self, BlockQ3K, BlockQ4K, BlockQ4_0, BlockQ4_1, BlockQ5K, BlockQ5_0, BlockQ5_1, BlockQ6K, BlockQ8_0, GgmlType, QuantFormat, QK_K};

/// The reference row of each format with an integer dot product (only `dot_q8` is set: the
/// f32 reference is the format's own, `quant::dot_scalar_fn`).
pub(super) const REFERENCE: &[Kernels] = &[
    Kernels { dot_q8: Some(dot_q4_0 as DotQ8Fn), ..row(GgmlType::Q4_0) },
    Kernels { dot_q8: Some(dot_q4_1), ..row(GgmlType::Q4_1) },
    Kernels { dot_q8: Some(dot_q5_0), ..row(GgmlType::Q5_0) },
    Kernels { dot_q8: Some(dot_q5_1), ..row(GgmlType::Q5_1) },
    Kernels { dot_q8: Some(dot_q8_0), ..row(GgmlType::Q8_0) },
    Kernels { dot_q8: Some(dot_q3_k), ..row(GgmlType::Q3_K) },
    Kernels { dot_q8: Some(dot_q4_k), ..row(GgmlType::Q4_K) },
    Kernels { dot_q8: Some(dot_q5_k), ..row(GgmlType::Q5_K) },
    Kernels { dot_q8: Some(dot_q6_k), ..row(GgmlType::Q6_K) },
];

/// `Σ a·b` of two integer sequences.
#[inline(always)]
fn isum(a: impl IntoIterator<Item = i32>, b: &[i8]) -> i32 {
    a.into_iter().zip(b).map(|(a, &b)| a * b as i32).sum()
}

/// Walks the 32-element blocks of a legacy row: `f(block_bytes, q_x, d_x, s_x)` summed.
#[inline(always)]
fn legacy_blocks(row: &[u8], x: Q8Slice<'_>, bytes: usize, f: impl Fn(&[u8], &[i8], f32, f32) -> f32) -> f32 {
    row.chunks_exact(bytes)
        .zip(x.qs.chunks_exact(Q8_BLOCK))
        .zip(x.d.iter().zip(x.s))
        .map(|((b, qx), (&d, &s))| f(b, qx, d, s))
        .sum()
}

fn dot_q4_0(row: &[u8], x: Q8Slice<'_>) -> f32 {
    legacy_blocks(row, x, BlockQ4_0::BYTES, |b, qx, dx, _| {
        let w = BlockQ4_0::from_bytes(b);
        w.d.to_f32() * dx * isum(quant::nibbles(&w.qs).map(|q| q as i32 - 8), qx) as f32
    })
}

fn dot_q4_1(row: &[u8], x: Q8Slice<'_>) -> f32 {
    // Σ (d·q + m)·x = d·d_x·Σ q·q_x + m·s_x
    legacy_blocks(row, x, BlockQ4_1::BYTES, |b, qx, dx, sx| {
        let w = BlockQ4_1::from_bytes(b);
        w.d.to_f32() * dx * isum(quant::nibbles(&w.qs).map(i32::from), qx) as f32 + w.m.to_f32() * sx
    })
}

fn dot_q5_0(row: &[u8], x: Q8Slice<'_>) -> f32 {
    legacy_blocks(row, x, BlockQ5_0::BYTES, |b, qx, dx, _| {
        let w = BlockQ5_0::from_bytes(b);
        w.d.to_f32() * dx * isum(quant::fives(w.qh, &w.qs).map(|q| q as i32 - 16), qx) as f32
    })
}

fn dot_q5_1(row: &[u8], x: Q8Slice<'_>) -> f32 {
    legacy_blocks(row, x, BlockQ5_1::BYTES, |b, qx, dx, sx| {
        let w = BlockQ5_1::from_bytes(b);
        w.d.to_f32() * dx * isum(quant::fives(w.qh, &w.qs).map(i32::from), qx) as f32 + w.m.to_f32() * sx
    })
}

fn dot_q8_0(row: &[u8], x: Q8Slice<'_>) -> f32 {
    legacy_blocks(row, x, BlockQ8_0::BYTES, |b, qx, dx, _| {
        let w = BlockQ8_0::from_bytes(b);
        w.d.to_f32() * dx * isum(w.qs.map(i32::from), qx) as f32
    })
}

/// Walks the 256-element super-blocks of a k-quant row; per sub-block `k` of `256 / NSUB`
/// elements: `scale_k·d_x·Σ q·q_x − min_k·s_x`. `s_x` covers 32 elements, so formats with
/// 16-element sub-blocks must have no mins (Q3_K, Q6_K).
#[inline(always)]
fn kquant_blocks<const NSUB: usize>(row: &[u8], x: Q8Slice<'_>, bytes: usize, unpack: fn(&[u8]) -> quant::Unpacked<NSUB>) -> f32 {
    let sub = QK_K / NSUB;
    let per = QK_K / Q8_BLOCK;
    let mut acc = 0.0;
    let it = row.chunks_exact(bytes).zip(x.qs.chunks_exact(QK_K));
    for ((b, qx), (dx, sx)) in it.zip(x.d.chunks_exact(per).zip(x.s.chunks_exact(per))) {
        let u = unpack(b);
        for (k, (q, qx)) in u.q.chunks_exact(sub).zip(qx.chunks_exact(sub)).enumerate() {
            let c = k * sub / Q8_BLOCK;
            let dot = isum(q.iter().map(|&q| q as i32), qx) as f32;
            acc += u.scale[k] * (dx[c] * dot) - u.min[k] * sx[c];
        }
    }
    acc
}

fn dot_q3_k(row: &[u8], x: Q8Slice<'_>) -> f32 {
    kquant_blocks(row, x, BlockQ3K::BYTES, quant::unpack_q3k)
}

fn dot_q4_k(row: &[u8], x: Q8Slice<'_>) -> f32 {
    kquant_blocks(row, x, BlockQ4K::BYTES, quant::unpack_q4k)
}

fn dot_q5_k(row: &[u8], x: Q8Slice<'_>) -> f32 {
    kquant_blocks(row, x, BlockQ5K::BYTES, quant::unpack_q5k)
}

fn dot_q6_k(row: &[u8], x: Q8Slice<'_>) -> f32 {
    kquant_blocks(row, x, BlockQ6K::BYTES, quant::unpack_q6k)
}
