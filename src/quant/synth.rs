//! Random valid blocks of every supported format, for tests, run-time kernel checks and
//! benchmarks (native and in the browser): every byte random, so every bit of the packed
//! quants, scales and mins is exercised, except the float fields a format's layout names
//! ([`Field`]), which get finite values of a sensible size.

use super::{format_of, Field, GgmlType, QK_K};
use half::{bf16, f16};

/// xorshift64*: deterministic test data without a dependency.
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    /// Uniform in [-1, 1).
    pub fn f(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
    /// `n` values uniform in [-1, 1).
    pub fn vec(&mut self, n: usize) -> Vec<f32> {
        (0..n).map(|_| self.f()).collect()
    }
    /// A random byte.
    pub fn byte(&mut self) -> u8 {
        (self.next() >> 56) as u8
    }
}

/// Fills `block` (one block of a format whose float fields are `fields` and whose blocks hold
/// `elems` elements) with random bytes, then gives each float field a finite value: scales in
/// [0.05, 0.15) (divided by 64 in 256-element super-blocks, whose `d·sc·q` reaches up to 128·32
/// times `d`: values stay near 1), mins and float elements in [-0.5, 0.5) and [-1, 1).
fn random_block(rng: &mut Rng, fields: &[Field], elems: usize, block: &mut [u8]) {
    block.iter_mut().for_each(|b| *b = rng.byte());
    let shrink = if elems == QK_K { 64.0 } else { 1.0 };
    for &field in fields {
        let (at, bytes): (usize, Vec<u8>) = match field {
            Field::Scale(at) => (at, f16::from_f32((0.05 + 0.1 * rng.f().abs()) / shrink).to_le_bytes().to_vec()),
            Field::Min(at) => (at, f16::from_f32(rng.f() * 0.5).to_le_bytes().to_vec()),
            Field::F32(at) => (at, rng.f().to_le_bytes().to_vec()),
            Field::F16(at) => (at, f16::from_f32(rng.f()).to_le_bytes().to_vec()),
            Field::BF16(at) => (at, bf16::from_f32(rng.f()).to_le_bytes().to_vec()),
        };
        block[at..at + bytes.len()].copy_from_slice(&bytes);
    }
}

/// `rows` random rows of `cols` elements of `ty` (GGUF layout, rows one after another);
/// `None` for types without a [`super::FORMATS`] row, or when `cols` is not a whole number
/// of blocks.
pub fn random_weight(rng: &mut Rng, ty: GgmlType, rows: usize, cols: usize) -> Option<Vec<u8>> {
    let f = format_of(ty).ok()?;
    if cols % f.block != 0 {
        return None;
    }
    let blocks = rows.checked_mul(cols / f.block)?;
    let mut out = vec![0u8; blocks.checked_mul(f.bytes)?];
    for block in out.chunks_exact_mut(f.bytes) {
        random_block(rng, f.fields, f.block, block);
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::quant::{dequantize, FORMATS};

    #[test]
    fn every_format_gets_finite_blocks_of_the_right_size() {
        let mut rng = Rng(5);
        for f in FORMATS {
            let cols = 2 * f.block.max(32);
            let row = random_weight(&mut rng, f.ty, 3, cols).expect("a supported format");
            assert_eq!(row.len() as u64, f.ty.bytes_for(3 * cols as u64).unwrap(), "{:?}", f.ty);
            let mut w = vec![0.0f32; 3 * cols];
            dequantize(f.ty, &row, &mut w).unwrap();
            assert!(w.iter().all(|v| v.is_finite() && v.abs() < 1e4), "{:?}", f.ty);
            assert!(w.iter().any(|&v| v != 0.0), "{:?}", f.ty);
        }
        assert_eq!(random_weight(&mut rng, GgmlType::Q4_K, 1, 32), None, "not whole blocks");
        assert_eq!(random_weight(&mut rng, GgmlType::IQ2_XS, 1, 256), None, "unsupported");
    }
}
