//! The 32-element "legacy" block formats Q4_0, Q4_1, Q5_0, Q5_1 and Q8_0.
//!
//! Layouts are ggml's (`ggml-common.h`, `block_q4_0` …); formulas are ggml's
//! `dequantize_row_q*` (`ggml-quants.c`). Each block holds 32 weights: nibble-packed types
//! store weight `j` in the low nibble of `qs[j]` and weight `j + 16` in its high nibble; the
//! 5-bit types keep bit 4 of weight `j` in bit `j` of the little-endian `u32` `qh`.

use super::{bytes_at, half_at, Field, GgmlType, QuantFormat};
use half::f16;

/// Elements per legacy block (ggml `QK4_0` = `QK4_1` = `QK5_0` = `QK5_1` = `QK8_0`).
pub const QK: usize = 32;

/// ggml `block_q4_0`: `w = d · (q - 8)`, q a 4-bit unsigned nibble.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockQ4_0 {
    pub d: f16,
    pub qs: [u8; QK / 2],
}
const _: () = assert!(size_of::<BlockQ4_0>() == 18);

/// ggml `block_q4_1`: `w = d · q + m`, q a 4-bit unsigned nibble.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockQ4_1 {
    pub d: f16,
    pub m: f16,
    pub qs: [u8; QK / 2],
}
const _: () = assert!(size_of::<BlockQ4_1>() == 20);

/// ggml `block_q5_0`: `w = d · (q - 16)`, q 5-bit (low nibble in `qs`, bit 4 in `qh`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockQ5_0 {
    pub d: f16,
    pub qh: [u8; 4],
    pub qs: [u8; QK / 2],
}
const _: () = assert!(size_of::<BlockQ5_0>() == 22);

/// ggml `block_q5_1`: `w = d · q + m`, q 5-bit unsigned.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockQ5_1 {
    pub d: f16,
    pub m: f16,
    pub qh: [u8; 4],
    pub qs: [u8; QK / 2],
}
const _: () = assert!(size_of::<BlockQ5_1>() == 24);

/// ggml `block_q8_0`: `w = d · q`, q a signed byte.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockQ8_0 {
    pub d: f16,
    pub qs: [i8; QK],
}
const _: () = assert!(size_of::<BlockQ8_0>() == 34);

impl BlockQ4_0 {
    /// Decodes the block from its first 18 bytes (panics if `b` is shorter).
    pub fn from_bytes(b: &[u8]) -> Self {
        Self { d: half_at(b, 0), qs: bytes_at(b, 2) }
    }
}
impl BlockQ4_1 {
    /// Decodes the block from its first 20 bytes (panics if `b` is shorter).
    pub fn from_bytes(b: &[u8]) -> Self {
        Self { d: half_at(b, 0), m: half_at(b, 2), qs: bytes_at(b, 4) }
    }
}
impl BlockQ5_0 {
    /// Decodes the block from its first 22 bytes (panics if `b` is shorter).
    pub fn from_bytes(b: &[u8]) -> Self {
        Self { d: half_at(b, 0), qh: bytes_at(b, 2), qs: bytes_at(b, 6) }
    }
}
impl BlockQ5_1 {
    /// Decodes the block from its first 24 bytes (panics if `b` is shorter).
    pub fn from_bytes(b: &[u8]) -> Self {
        Self { d: half_at(b, 0), m: half_at(b, 2), qh: bytes_at(b, 4), qs: bytes_at(b, 8) }
    }
}
impl BlockQ8_0 {
    /// Decodes the block from its first 34 bytes (panics if `b` is shorter).
    pub fn from_bytes(b: &[u8]) -> Self {
        Self { d: half_at(b, 0), qs: bytes_at::<QK>(b, 2).map(|q| q as i8) }
    }
}

/// The 32 unsigned 4-bit values of a nibble-packed block, in element order.
#[inline(always)]
pub fn nibbles(qs: &[u8; 16]) -> [u8; QK] {
    let mut q = [0u8; QK];
    for j in 0..16 {
        q[j] = qs[j] & 0x0F;
        q[j + 16] = qs[j] >> 4;
    }
    q
}

/// The 32 unsigned 5-bit values of a Q5 block (ggml `dequantize_row_q5_0`).
#[inline(always)]
pub fn fives(qh: [u8; 4], qs: &[u8; 16]) -> [u8; QK] {
    let qh = u32::from_le_bytes(qh);
    let mut q = nibbles(qs);
    for (j, v) in q.iter_mut().enumerate() {
        *v |= (((qh >> j) & 1) << 4) as u8;
    }
    q
}

/// Plain `Σ q·x` with integer weights converted to f32.
#[inline(always)]
fn int_dot(q: impl Iterator<Item = i32>, x: &[f32]) -> f32 {
    q.zip(x).map(|(q, x)| q as f32 * x).sum()
}

impl QuantFormat for BlockQ4_0 {
    const TY: GgmlType = GgmlType::Q4_0;
    const BLOCK: usize = QK;
    const BYTES: usize = size_of::<Self>();
    const FIELDS: &'static [Field] = &[Field::Scale(0)];
    fn dequantize_block(b: &[u8], out: &mut [f32]) {
        let blk = Self::from_bytes(b);
        let d = blk.d.to_f32();
        for (o, q) in out.iter_mut().zip(nibbles(&blk.qs)) {
            *o = d * (q as i32 - 8) as f32;
        }
    }
    fn dot_block(b: &[u8], x: &[f32]) -> f32 {
        let blk = Self::from_bytes(b);
        blk.d.to_f32() * int_dot(nibbles(&blk.qs).into_iter().map(|q| q as i32 - 8), x)
    }
}

impl QuantFormat for BlockQ4_1 {
    const TY: GgmlType = GgmlType::Q4_1;
    const BLOCK: usize = QK;
    const BYTES: usize = size_of::<Self>();
    const FIELDS: &'static [Field] = &[Field::Scale(0), Field::Min(2)];
    fn dequantize_block(b: &[u8], out: &mut [f32]) {
        let blk = Self::from_bytes(b);
        let (d, m) = (blk.d.to_f32(), blk.m.to_f32());
        for (o, q) in out.iter_mut().zip(nibbles(&blk.qs)) {
            *o = d * q as f32 + m;
        }
    }
    fn dot_block(b: &[u8], x: &[f32]) -> f32 {
        // Σ (d·q + m)·x = d·Σ q·x + m·Σ x
        let blk = Self::from_bytes(b);
        let qx = int_dot(nibbles(&blk.qs).into_iter().map(i32::from), x);
        blk.d.to_f32() * qx + blk.m.to_f32() * x.iter().sum::<f32>()
    }
}

impl QuantFormat for BlockQ5_0 {
    const TY: GgmlType = GgmlType::Q5_0;
    const BLOCK: usize = QK;
    const BYTES: usize = size_of::<Self>();
    const FIELDS: &'static [Field] = &[Field::Scale(0)];
    fn dequantize_block(b: &[u8], out: &mut [f32]) {
        let blk = Self::from_bytes(b);
        let d = blk.d.to_f32();
        for (o, q) in out.iter_mut().zip(fives(blk.qh, &blk.qs)) {
            *o = d * (q as i32 - 16) as f32;
        }
    }
    fn dot_block(b: &[u8], x: &[f32]) -> f32 {
        let blk = Self::from_bytes(b);
        blk.d.to_f32() * int_dot(fives(blk.qh, &blk.qs).into_iter().map(|q| q as i32 - 16), x)
    }
}

impl QuantFormat for BlockQ5_1 {
    const TY: GgmlType = GgmlType::Q5_1;
    const BLOCK: usize = QK;
    const BYTES: usize = size_of::<Self>();
    const FIELDS: &'static [Field] = &[Field::Scale(0), Field::Min(2)];
    fn dequantize_block(b: &[u8], out: &mut [f32]) {
        let blk = Self::from_bytes(b);
        let (d, m) = (blk.d.to_f32(), blk.m.to_f32());
        for (o, q) in out.iter_mut().zip(fives(blk.qh, &blk.qs)) {
            *o = d * q as f32 + m;
        }
    }
    fn dot_block(b: &[u8], x: &[f32]) -> f32 {
        let blk = Self::from_bytes(b);
        let qx = int_dot(fives(blk.qh, &blk.qs).into_iter().map(i32::from), x);
        blk.d.to_f32() * qx + blk.m.to_f32() * x.iter().sum::<f32>()
    }
}

impl QuantFormat for BlockQ8_0 {
    const TY: GgmlType = GgmlType::Q8_0;
    const BLOCK: usize = QK;
    const BYTES: usize = size_of::<Self>();
    const FIELDS: &'static [Field] = &[Field::Scale(0)];
    fn dequantize_block(b: &[u8], out: &mut [f32]) {
        let blk = Self::from_bytes(b);
        let d = blk.d.to_f32();
        for (o, q) in out.iter_mut().zip(blk.qs) {
            *o = q as f32 * d;
        }
    }
    fn dot_block(b: &[u8], x: &[f32]) -> f32 {
        let blk = Self::from_bytes(b);
        blk.d.to_f32() * int_dot(blk.qs.into_iter().map(i32::from), x)
    }
}
