//! The 256-element "k-quant" super-block formats Q2_K, Q3_K, Q4_K, Q5_K and Q6_K.
//!
//! Layouts are ggml's (`ggml-common.h`, `block_q2_K` …, `QK_K = 256`); formulas are ggml's
//! `dequantize_row_q*_K` (`ggml-quants.c`). A super-block splits into sub-blocks (16 of 16
//! elements for Q2_K, Q3_K, Q6_K; 8 of 32 for Q4_K, Q5_K), each with its own integer scale
//! (and min) that multiply the super-block's f16 `d` (and `dmin`):
//! `w = (d·sc)·q − (dmin·m)`.

use super::{bytes_at, half_at, Field, GgmlType, QuantFormat};
use half::f16;

/// Elements per k-quant super-block (ggml `QK_K`).
pub const QK_K: usize = 256;
/// Bytes of packed 6-bit scales and mins in Q4_K/Q5_K (ggml `K_SCALE_SIZE`).
pub const K_SCALE_SIZE: usize = 12;

/// ggml `block_q2_K`: 2-bit quants, 16 sub-blocks with 4-bit scale and 4-bit min.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockQ2K {
    /// Low nibble: scale, high nibble: min, per 16-element sub-block.
    pub scales: [u8; QK_K / 16],
    pub qs: [u8; QK_K / 4],
    pub d: f16,
    pub dmin: f16,
}
const _: () = assert!(size_of::<BlockQ2K>() == 84);

/// ggml `block_q3_K`: 3-bit quants (2 low bits in `qs`, the high bit in `hmask`), 16
/// sub-blocks with signed 6-bit scales (offset 32) packed into 12 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockQ3K {
    pub hmask: [u8; QK_K / 8],
    pub qs: [u8; QK_K / 4],
    pub scales: [u8; 12],
    pub d: f16,
}
const _: () = assert!(size_of::<BlockQ3K>() == 110);

/// ggml `block_q4_K`: 4-bit quants, 8 sub-blocks with 6-bit scale and min packed in 12 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockQ4K {
    pub d: f16,
    pub dmin: f16,
    pub scales: [u8; K_SCALE_SIZE],
    pub qs: [u8; QK_K / 2],
}
const _: () = assert!(size_of::<BlockQ4K>() == 144);

/// ggml `block_q5_K`: Q4_K plus a fifth bit per weight in `qh`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockQ5K {
    pub d: f16,
    pub dmin: f16,
    pub scales: [u8; K_SCALE_SIZE],
    pub qh: [u8; QK_K / 8],
    pub qs: [u8; QK_K / 2],
}
const _: () = assert!(size_of::<BlockQ5K>() == 176);

/// ggml `block_q6_K`: 6-bit quants (low 4 bits in `ql`, high 2 in `qh`, offset 32), 16
/// sub-blocks with signed 8-bit scales.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BlockQ6K {
    pub ql: [u8; QK_K / 2],
    pub qh: [u8; QK_K / 4],
    pub scales: [i8; QK_K / 16],
    pub d: f16,
}
const _: () = assert!(size_of::<BlockQ6K>() == 210);

impl BlockQ2K {
    /// Decodes the block from its first 84 bytes (panics if `b` is shorter).
    pub fn from_bytes(b: &[u8]) -> Self {
        Self { scales: bytes_at(b, 0), qs: bytes_at(b, 16), d: half_at(b, 80), dmin: half_at(b, 82) }
    }
}
impl BlockQ3K {
    /// Decodes the block from its first 110 bytes (panics if `b` is shorter).
    pub fn from_bytes(b: &[u8]) -> Self {
        Self { hmask: bytes_at(b, 0), qs: bytes_at(b, 32), scales: bytes_at(b, 96), d: half_at(b, 108) }
    }
    /// The 16 sub-block scales, already offset by −32 (ggml's `kmask1/kmask2` unpacking).
    pub fn unpacked_scales(&self) -> [i8; 16] {
        let s = &self.scales;
        std::array::from_fn(|i| {
            let low = if i < 8 { s[i] & 0x0F } else { s[i - 8] >> 4 };
            let high = (s[8 + i % 4] >> (2 * (i / 4))) & 3;
            (low | (high << 4)) as i8 - 32
        })
    }
}
impl BlockQ4K {
    /// Decodes the block from its first 144 bytes (panics if `b` is shorter).
    pub fn from_bytes(b: &[u8]) -> Self {
        Self { d: half_at(b, 0), dmin: half_at(b, 2), scales: bytes_at(b, 4), qs: bytes_at(b, 16) }
    }
}
impl BlockQ5K {
    /// Decodes the block from its first 176 bytes (panics if `b` is shorter).
    pub fn from_bytes(b: &[u8]) -> Self {
        Self {
            d: half_at(b, 0),
            dmin: half_at(b, 2),
            scales: bytes_at(b, 4),
            qh: bytes_at(b, 16),
            qs: bytes_at(b, 48),
        }
    }
}
impl BlockQ6K {
    /// Decodes the block from its first 210 bytes (panics if `b` is shorter).
    pub fn from_bytes(b: &[u8]) -> Self {
        Self {
            ql: bytes_at(b, 0),
            qh: bytes_at(b, 128),
            scales: bytes_at::<16>(b, 192).map(|s| s as i8),
            d: half_at(b, 208),
        }
    }
}

/// Scale and min of sub-block `j` (0..8) of Q4_K/Q5_K (ggml `get_scale_min_k4`).
#[inline(always)]
pub fn scale_min_k4(j: usize, q: &[u8; K_SCALE_SIZE]) -> (u8, u8) {
    if j < 4 {
        (q[j] & 63, q[j + 4] & 63)
    } else {
        ((q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4), (q[j + 4] >> 4) | ((q[j] >> 6) << 4))
    }
}

/// A super-block in a uniform form: integer quants in element order and, per sub-block of
/// `SUB` elements, `w = scale·q − min`.
pub struct Unpacked<const NSUB: usize> {
    pub q: [i8; QK_K],
    pub scale: [f32; NSUB],
    pub min: [f32; NSUB],
}

impl<const NSUB: usize> Unpacked<NSUB> {
    const SUB: usize = QK_K / NSUB;

    fn dequantize(&self, out: &mut [f32]) {
        for (s, o) in out.chunks_exact_mut(Self::SUB).enumerate() {
            let q = &self.q[s * Self::SUB..(s + 1) * Self::SUB];
            for (o, &q) in o.iter_mut().zip(q) {
                *o = self.scale[s] * q as f32 - self.min[s];
            }
        }
    }

    /// `Σ_s scale_s·Σ q·x − min_s·Σ x` over the sub-blocks.
    fn dot(&self, x: &[f32]) -> f32 {
        let mut acc = 0.0;
        for (s, xs) in x.chunks_exact(Self::SUB).enumerate() {
            let q = &self.q[s * Self::SUB..(s + 1) * Self::SUB];
            let qx: f32 = q.iter().zip(xs).map(|(&q, &x)| q as f32 * x).sum();
            let sx: f32 = xs.iter().sum();
            acc += self.scale[s] * qx - self.min[s] * sx;
        }
        acc
    }
}

pub fn unpack_q2k(b: &[u8]) -> Unpacked<16> {
    let blk = BlockQ2K::from_bytes(b);
    let (d, dmin) = (blk.d.to_f32(), blk.dmin.to_f32());
    // Element e = 128n + 32j + 16h + l holds bits 2j..2j+2 of qs[32n + 16h + l].
    let q = std::array::from_fn(|e| {
        let (n, j, hl) = (e / 128, (e / 32) % 4, e % 32);
        ((blk.qs[32 * n + hl] >> (2 * j)) & 3) as i8
    });
    let scale = blk.scales.map(|s| d * (s & 0x0F) as f32);
    let min = blk.scales.map(|s| dmin * (s >> 4) as f32);
    Unpacked { q, scale, min }
}

pub fn unpack_q3k(b: &[u8]) -> Unpacked<16> {
    let blk = BlockQ3K::from_bytes(b);
    let d = blk.d.to_f32();
    // As Q2_K, minus 4 where the `hmask` bit (4n + j) of byte 16h + l is clear.
    let q = std::array::from_fn(|e| {
        let (n, j, hl) = (e / 128, (e / 32) % 4, e % 32);
        let low = ((blk.qs[32 * n + hl] >> (2 * j)) & 3) as i8;
        let high = blk.hmask[hl] & (1 << (4 * n + j)) != 0;
        if high { low } else { low - 4 }
    });
    let scale = blk.unpacked_scales().map(|s| d * s as f32);
    Unpacked { q, scale, min: [0.0; 16] }
}

fn k4_scales(d: f16, dmin: f16, scales: &[u8; K_SCALE_SIZE]) -> ([f32; 8], [f32; 8]) {
    let (d, dmin) = (d.to_f32(), dmin.to_f32());
    let sm: [(u8, u8); 8] = std::array::from_fn(|j| scale_min_k4(j, scales));
    (sm.map(|(s, _)| d * s as f32), sm.map(|(_, m)| dmin * m as f32))
}

pub fn unpack_q4k(b: &[u8]) -> Unpacked<8> {
    let blk = BlockQ4K::from_bytes(b);
    // Element e = 64i + 32h + l is nibble h of qs[32i + l].
    let q = std::array::from_fn(|e| ((blk.qs[32 * (e / 64) + e % 32] >> (4 * ((e / 32) % 2))) & 0x0F) as i8);
    let (scale, min) = k4_scales(blk.d, blk.dmin, &blk.scales);
    Unpacked { q, scale, min }
}

pub fn unpack_q5k(b: &[u8]) -> Unpacked<8> {
    let blk = BlockQ5K::from_bytes(b);
    // As Q4_K, plus 16 where bit (e / 32) of qh[e % 32] is set.
    let q = std::array::from_fn(|e| {
        let low = (blk.qs[32 * (e / 64) + e % 32] >> (4 * ((e / 32) % 2))) & 0x0F;
        let high = (blk.qh[e % 32] >> (e / 32)) & 1;
        (low | (high << 4)) as i8
    });
    let (scale, min) = k4_scales(blk.d, blk.dmin, &blk.scales);
    Unpacked { q, scale, min }
}

pub fn unpack_q6k(b: &[u8]) -> Unpacked<16> {
    let blk = BlockQ6K::from_bytes(b);
    let d = blk.d.to_f32();
    // Element e = 128n + 32k + l: nibble (k / 2) of ql[64n + 32(k % 2) + l], high bits
    // 2k..2k+2 of qh[32n + l].
    let q = std::array::from_fn(|e| {
        let (n, k, l) = (e / 128, (e / 32) % 4, e % 32);
        let low = (blk.ql[64 * n + 32 * (k % 2) + l] >> (4 * (k / 2))) & 0x0F;
        let high = (blk.qh[32 * n + l] >> (2 * k)) & 3;
        (low | (high << 4)) as i8 - 32
    });
    let scale = blk.scales.map(|s| d * s as f32);
    Unpacked { q, scale, min: [0.0; 16] }
}

macro_rules! kquant_format {
    ($block:ty, $ty:ident, $fields:expr, $unpack:ident) => {
        impl QuantFormat for $block {
            const TY: GgmlType = GgmlType::$ty;
            const BLOCK: usize = QK_K;
            const BYTES: usize = size_of::<Self>();
            const FIELDS: &'static [Field] = $fields;
            fn dequantize_block(b: &[u8], out: &mut [f32]) {
                $unpack(b).dequantize(out)
            }
            fn dot_block(b: &[u8], x: &[f32]) -> f32 {
                $unpack(b).dot(x)
            }
        }
    };
}

// The f16 fields: offsets of `d` and `dmin` in the structs above.
kquant_format!(BlockQ2K, Q2_K, &[Field::Scale(80), Field::Scale(82)], unpack_q2k);
kquant_format!(BlockQ3K, Q3_K, &[Field::Scale(108)], unpack_q3k);
kquant_format!(BlockQ4K, Q4_K, &[Field::Scale(0), Field::Scale(2)], unpack_q4k);
kquant_format!(BlockQ5K, Q5_K, &[Field::Scale(0), Field::Scale(2)], unpack_q5k);
kquant_format!(BlockQ6K, Q6_K, &[Field::Scale(208)], unpack_q6k);
