//! Cross-format tests of the layouts and their scalar references: scalar dot vs
//! dequantize-then-dot, error cases, goldens from the `gguf` Python package
//! (`tests/goldens/make_quant_fixtures.py`). The CPU's fast kernels are tested against these
//! references in `backend/cpu/kernels/tests.rs`.

use super::synth::{random_weight, Rng};
use super::*;

/// Every supported type (the ones with a [`FORMATS`] row).
fn supported() -> impl Iterator<Item = GgmlType> {
    FORMATS.iter().map(|f| f.ty)
}

/// Random bytes for `blocks` blocks of `ty` ([`synth`]).
pub(crate) fn random_row(rng: &mut Rng, ty: GgmlType, blocks: usize) -> Vec<u8> {
    random_weight(rng, ty, 1, blocks * ty.block_size()).expect("a supported type")
}

pub(crate) fn block_counts(ty: GgmlType) -> &'static [usize] {
    match ty.block_size() {
        1 => &[1, 7, 8, 15, 16, 33, 1536],
        32 => &[1, 2, 3, 7, 48],
        _ => &[1, 2, 6],
    }
}

/// Checks a row dot product against dequantize-then-dot (in f64) on random rows of every
/// supported format at several lengths; `dot(ty, row, x)` runs the kernel under test.
pub(crate) fn check_dot_against_dequantize(seed: u64, dot: impl Fn(GgmlType, &[u8], &[f32]) -> f32) {
    let mut rng = Rng(seed);
    for ty in supported() {
        for &blocks in block_counts(ty) {
            let n = blocks * ty.block_size();
            let row = random_row(&mut rng, ty, blocks);
            let x: Vec<f32> = (0..n).map(|_| rng.f()).collect();
            let mut w = vec![0.0f32; n];
            dequantize(ty, &row, &mut w).unwrap();
            let reference: f64 = w.iter().zip(&x).map(|(&w, &x)| w as f64 * x as f64).sum();
            let magnitude: f64 = w.iter().zip(&x).map(|(&w, &x)| (w as f64 * x as f64).abs()).sum();
            // f32 accumulation over n terms: a few units of f32 epsilon (1.2e-7) relative to
            // Σ|w·x|, whatever the summation order.
            let tol = 1e-6 * magnitude + 1e-30;
            let got = dot(ty, &row, &x);
            let err = (got as f64 - reference).abs();
            assert!(err <= tol, "{ty:?} n={n}: {got} vs {reference} (err {err:e}, tol {tol:e})");
        }
    }
}

#[test]
fn scalar_dot_agrees_with_dequantize_then_dot() {
    check_dot_against_dequantize(0x1234_5678_9ABC_DEF1, |ty, row, x| {
        let got = dot_scalar(ty, row, x).unwrap();
        assert_eq!(got.to_bits(), dot_scalar_fn(ty).unwrap()(row, x).to_bits(), "{ty:?}");
        got
    });
}

#[test]
fn the_table_agrees_with_the_type_ids() {
    for f in FORMATS {
        assert_eq!((f.block, f.bytes), (f.ty.block_size(), f.ty.type_size()), "{:?}", f.ty);
        assert!(f.fields.len() <= 2, "{:?}", f.ty);
        assert_eq!(GgmlType::from_id(f.ty.id()), Some(f.ty));
    }
}
#[test]
fn known_values() {
    // Q4_0, d = 1: nibble 8 is 0, nibble 9 is 1; low nibbles are elements 0..16.
    let mut b = vec![0x00, 0x3C];
    b.extend([0x98; 16]);
    let mut out = [0.0; 32];
    dequantize(GgmlType::Q4_0, &b, &mut out).unwrap();
    assert_eq!(out[..16], [0.0; 16]);
    assert_eq!(out[16..], [1.0; 16]);
    // Q8_0, d = 0.5
    let mut b = vec![0x00, 0x38];
    b.extend((0..32).map(|i| (i as i8 - 16) as u8));
    let mut out = [0.0; 32];
    dequantize(GgmlType::Q8_0, &b, &mut out).unwrap();
    assert!(out.iter().enumerate().all(|(i, &v)| v == (i as f32 - 16.0) * 0.5));
    let x = [1.0f32; 32];
    assert_eq!(dot_scalar(GgmlType::Q8_0, &b, &x).unwrap(), -8.0);
    // BF16 is the top half of an f32.
    let mut out = [0.0; 1];
    dequantize(GgmlType::BF16, &(1.5f32.to_bits() >> 16).to_le_bytes()[..2], &mut out).unwrap();
    assert_eq!(out[0], 1.5);
}

#[test]
fn errors_are_values() {
    let bytes = [0u8; 64];
    let mut out = [0.0f32; 32];
    assert_eq!(
        dequantize(GgmlType::Q4_0, &bytes[..17], &mut out),
        Err(QuantError::BadLength { ty: GgmlType::Q4_0, elems: 32, expected: 18, got: 17 })
    );
    assert_eq!(
        dequantize(GgmlType::Q4_0, &bytes[..18], &mut out[..31]),
        Err(QuantError::NotBlockAligned { ty: GgmlType::Q4_0, elems: 31, block: 32 })
    );
    assert_eq!(
        dot_scalar(GgmlType::Q8_0, &bytes[..35], &out),
        Err(QuantError::BadLength { ty: GgmlType::Q8_0, elems: 32, expected: 34, got: 35 })
    );
    assert_eq!(
        dot_scalar(GgmlType::Q4_K, &bytes[..0], &out),
        Err(QuantError::NotBlockAligned { ty: GgmlType::Q4_K, elems: 32, block: 256 })
    );
    assert!(dot_scalar(GgmlType::F32, &bytes[..4], &out[..2]).is_err());
    for &ty in GgmlType::ALL {
        if supported().any(|t| t == ty) {
            assert!(ty.is_supported());
            continue;
        }
        assert!(!ty.is_supported());
        assert_eq!(dot_scalar_fn(ty), Err(QuantError::Unsupported(ty)));
        assert_eq!(dequantize(ty, &bytes, &mut out), Err(QuantError::Unsupported(ty)));
        assert_eq!(dot_scalar(ty, &bytes, &out), Err(QuantError::Unsupported(ty)));
    }
    // Empty input is zero elements of any supported type.
    assert_eq!(dot_scalar(GgmlType::Q4_1, &[], &[]), Ok(0.0));
}

/// Goldens: `tests/goldens/quant/<TYPE>.bin` blocks and `<TYPE>.f32` the `gguf` package's
/// dequantization (little-endian f32). Our results must be bit-identical (±0 aside): both
/// compute the same f32 products in the same order as ggml's `dequantize_row_*`.
#[test]
fn dequantize_matches_gguf_package_goldens() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/goldens/quant");
    for ty in supported() {
        let bin = std::fs::read(dir.join(format!("{}.bin", ty.name()))).expect("fixture .bin");
        let f32s = std::fs::read(dir.join(format!("{}.f32", ty.name()))).expect("fixture .f32");
        let expected: Vec<f32> =
            f32s.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect();
        let mut out = vec![0.0f32; expected.len()];
        dequantize(ty, &bin, &mut out).unwrap();
        for (i, (&got, &want)) in out.iter().zip(&expected).enumerate() {
            assert!(got == want || (got.is_nan() && want.is_nan()), "{ty:?}[{i}]: {got} != {want}");
        }
    }
}

