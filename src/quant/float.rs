//! Unquantized element types F32, F16 (IEEE binary16) and BF16 (bfloat16), little-endian.
//!
//! ggml stores them one element per "block"; BF16 → f32 is `bits << 16` (ggml
//! `ggml_compute_bf16_to_fp32`), F16 → f32 is the exact IEEE conversion.

use super::{Field, GgmlType, QuantFormat};

/// The F32 format: 4-byte little-endian IEEE binary32.
#[derive(Clone, Copy, Debug)]
pub struct F32Format;
/// The F16 format: 2-byte little-endian IEEE binary16 (`ggml_fp16_t`).
#[derive(Clone, Copy, Debug)]
pub struct F16Format;
/// The BF16 format: 2-byte little-endian bfloat16 (`ggml_bf16_t`), the top half of an f32.
#[derive(Clone, Copy, Debug)]
pub struct BF16Format;

#[inline(always)]
fn f32_of(b: &[u8]) -> f32 {
    f32::from_le_bytes([b[0], b[1], b[2], b[3]])
}
#[inline(always)]
fn f16_of(b: &[u8]) -> f32 {
    half::f16::from_bits(u16::from_le_bytes([b[0], b[1]])).to_f32()
}
#[inline(always)]
fn bf16_of(b: &[u8]) -> f32 {
    f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16)
}

impl QuantFormat for F32Format {
    const TY: GgmlType = GgmlType::F32;
    const BLOCK: usize = 1;
    const BYTES: usize = size_of::<f32>();
    const FIELDS: &'static [Field] = &[Field::F32(0)];
    fn dequantize_block(b: &[u8], out: &mut [f32]) {
        out[0] = f32_of(b);
    }
    fn dot_block(b: &[u8], x: &[f32]) -> f32 {
        f32_of(b) * x[0]
    }
}

impl QuantFormat for F16Format {
    const TY: GgmlType = GgmlType::F16;
    const BLOCK: usize = 1;
    const BYTES: usize = size_of::<half::f16>();
    const FIELDS: &'static [Field] = &[Field::F16(0)];
    fn dequantize_block(b: &[u8], out: &mut [f32]) {
        out[0] = f16_of(b);
    }
    fn dot_block(b: &[u8], x: &[f32]) -> f32 {
        f16_of(b) * x[0]
    }
}

impl QuantFormat for BF16Format {
    const TY: GgmlType = GgmlType::BF16;
    const BLOCK: usize = 1;
    const BYTES: usize = size_of::<half::bf16>();
    const FIELDS: &'static [Field] = &[Field::BF16(0)];
    fn dequantize_block(b: &[u8], out: &mut [f32]) {
        out[0] = bf16_of(b);
    }
    fn dot_block(b: &[u8], x: &[f32]) -> f32 {
        bf16_of(b) * x[0]
    }
}
