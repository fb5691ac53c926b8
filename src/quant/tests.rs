//! Cross-format tests: fast dot vs scalar dot vs dequantize-then-dot, error cases, goldens
//! from the `gguf` Python package (`tests/goldens/make_quant_fixtures.py`).

use super::*;

/// xorshift64*: deterministic test data without a dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    /// Uniform in [-1, 1).
    fn f32(&mut self) -> f32 {
        (self.next() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
}

const SUPPORTED: &[GgmlType] = &[
    GgmlType::F32,
    GgmlType::F16,
    GgmlType::BF16,
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q2_K,
    GgmlType::Q3_K,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
];

/// Byte offsets of the f16 scale fields in one block (ggml-common.h).
fn f16_fields(ty: GgmlType) -> &'static [usize] {
    match ty {
        GgmlType::Q4_0 | GgmlType::Q5_0 | GgmlType::Q8_0 => &[0],
        GgmlType::Q4_1 | GgmlType::Q5_1 | GgmlType::Q4_K | GgmlType::Q5_K => &[0, 2],
        GgmlType::Q2_K => &[80, 82],
        GgmlType::Q3_K => &[108],
        GgmlType::Q6_K => &[208],
        _ => &[],
    }
}

/// Random bytes for `blocks` blocks with finite, small scales (and finite floats).
fn random_row(rng: &mut Rng, ty: GgmlType, blocks: usize) -> Vec<u8> {
    let n = blocks * ty.block_size();
    match ty {
        GgmlType::F32 => (0..n).flat_map(|_| rng.f32().to_le_bytes()).collect(),
        GgmlType::F16 => (0..n).flat_map(|_| half::f16::from_f32(rng.f32()).to_le_bytes()).collect(),
        GgmlType::BF16 => (0..n).flat_map(|_| half::bf16::from_f32(rng.f32()).to_le_bytes()).collect(),
        _ => {
            let mut row: Vec<u8> = (0..blocks * ty.type_size()).map(|_| rng.next() as u8).collect();
            for blk in row.chunks_exact_mut(ty.type_size()) {
                for &off in f16_fields(ty) {
                    let v = half::f16::from_f32(rng.f32() * 0.05);
                    blk[off..off + 2].copy_from_slice(&v.to_le_bytes());
                }
            }
            row
        }
    }
}

fn block_counts(ty: GgmlType) -> &'static [usize] {
    match ty.block_size() {
        1 => &[1, 7, 8, 15, 16, 33, 1536],
        32 => &[1, 2, 3, 7, 48],
        _ => &[1, 2, 6],
    }
}

#[test]
fn fast_and_scalar_dot_agree_with_dequantize_then_dot() {
    let mut rng = Rng(0x1234_5678_9ABC_DEF1);
    for &ty in SUPPORTED {
        let fast = dot_fn(ty).unwrap();
        for &blocks in block_counts(ty) {
            let n = blocks * ty.block_size();
            let row = random_row(&mut rng, ty, blocks);
            let x: Vec<f32> = (0..n).map(|_| rng.f32()).collect();
            let mut w = vec![0.0f32; n];
            dequantize(ty, &row, &mut w).unwrap();
            let reference: f64 = w.iter().zip(&x).map(|(&w, &x)| w as f64 * x as f64).sum();
            let magnitude: f64 = w.iter().zip(&x).map(|(&w, &x)| (w as f64 * x as f64).abs()).sum();
            // f32 accumulation over n terms: a few units of f32 epsilon (1.2e-7) relative to
            // Σ|w·x|, whatever the summation order.
            let tol = 1e-6 * magnitude + 1e-30;
            let scalar = dot_scalar(ty, &row, &x).unwrap();
            let checked = dot(ty, &row, &x).unwrap();
            let f = fast(&row, &x);
            assert_eq!(checked.to_bits(), f.to_bits(), "{ty:?}: dot and dot_fn differ");
            for (name, got) in [("scalar", scalar), ("fast", f)] {
                let err = (got as f64 - reference).abs();
                assert!(err <= tol, "{ty:?} {name} n={n}: {got} vs {reference} (err {err:e}, tol {tol:e})");
            }
        }
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
    assert_eq!(dot(GgmlType::Q8_0, &b, &x).unwrap(), -8.0);
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
        dot(GgmlType::Q8_0, &bytes[..35], &out),
        Err(QuantError::BadLength { ty: GgmlType::Q8_0, elems: 32, expected: 34, got: 35 })
    );
    assert_eq!(
        dot_scalar(GgmlType::Q4_K, &bytes[..0], &out),
        Err(QuantError::NotBlockAligned { ty: GgmlType::Q4_K, elems: 32, block: 256 })
    );
    assert!(dot(GgmlType::F32, &bytes[..4], &out[..2]).is_err());
    for &ty in GgmlType::ALL {
        if SUPPORTED.contains(&ty) {
            assert!(ty.is_supported());
            continue;
        }
        assert!(!ty.is_supported());
        assert_eq!(dot_fn(ty), Err(QuantError::Unsupported(ty)));
        assert_eq!(dot_scalar_fn(ty), Err(QuantError::Unsupported(ty)));
        assert_eq!(dequantize(ty, &bytes, &mut out), Err(QuantError::Unsupported(ty)));
        assert_eq!(dot(ty, &bytes, &out), Err(QuantError::Unsupported(ty)));
    }
    // Empty input is zero elements of any supported type.
    assert_eq!(dot(GgmlType::Q4_1, &[], &[]), Ok(0.0));
}

#[test]
fn mismatched_lengths_do_not_read_out_of_bounds() {
    // The unchecked kernels stop at the shorter operand (or panic), never read past it.
    let mut rng = Rng(7);
    for &ty in SUPPORTED {
        let row = random_row(&mut rng, ty, 3);
        let x: Vec<f32> = (0..3 * ty.block_size()).map(|_| rng.f32()).collect();
        for f in [dot_fn(ty).unwrap(), dot_scalar_fn(ty).unwrap()] {
            let short_row = f(&row[..row.len() - 1], &x);
            let short_x = f(&row, &x[..x.len() - 1]);
            assert!(short_row.is_finite() && short_x.is_finite(), "{ty:?}");
        }
    }
}

/// Goldens: `tests/goldens/quant/<TYPE>.bin` blocks and `<TYPE>.f32` the `gguf` package's
/// dequantization (little-endian f32). Our results must be bit-identical (±0 aside): both
/// compute the same f32 products in the same order as ggml's `dequantize_row_*`.
#[test]
fn dequantize_matches_gguf_package_goldens() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/goldens/quant");
    for &ty in SUPPORTED {
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

/// Formats with an integer dot against 8-bit activations.
const Q8_TYPES: &[GgmlType] = &[
    GgmlType::Q4_0,
    GgmlType::Q4_1,
    GgmlType::Q5_0,
    GgmlType::Q5_1,
    GgmlType::Q8_0,
    GgmlType::Q3_K,
    GgmlType::Q4_K,
    GgmlType::Q5_K,
    GgmlType::Q6_K,
];

/// Random activations with block magnitudes spread over four decades (and an all-zero block).
fn random_acts(rng: &mut Rng, n: usize) -> Vec<f32> {
    let mut x: Vec<f32> = (0..n).map(|i| rng.f32() * [0.01, 0.3, 1.0, 20.0][(i / 32) % 4]).collect();
    if n >= 64 {
        x[32..64].iter_mut().for_each(|v| *v = 0.0);
    }
    x
}

#[test]
fn q8_dots_match_scalar_reference_and_f32_dot() {
    let mut rng = Rng(0x51DE_CAFE_0000_0008);
    for &ty in SUPPORTED {
        // Q3_K has a scalar reference only and stays on the f32 path.
        assert_eq!(dot_q8_fn(ty).is_some(), Q8_TYPES.contains(&ty) && ty != GgmlType::Q3_K, "{ty:?}");
        assert_eq!(dot_q8_scalar_fn(ty).is_some(), Q8_TYPES.contains(&ty), "{ty:?}");
    }
    let mut acts = Q8Acts::new();
    for &ty in Q8_TYPES {
        let scalar = dot_q8_scalar_fn(ty).unwrap();
        let fast = dot_q8_fn(ty).unwrap_or(scalar);
        for &blocks in block_counts(ty) {
            let n = blocks * ty.block_size();
            let row = random_row(&mut rng, ty, blocks);
            let x = random_acts(&mut rng, n);
            acts.quantize(&x).unwrap();
            let q = acts.as_slice();
            let mut w = vec![0.0f32; n];
            dequantize(ty, &row, &mut w).unwrap();
            // x̂ = d·q, the activations the integer path really multiplies.
            let xq: Vec<f64> = (0..n).map(|i| q.d[i / 32] as f64 * q.qs[i] as f64).collect();
            let exact_q: f64 = w.iter().zip(&xq).map(|(&w, &x)| w as f64 * x).sum();
            let mag_q: f64 = w.iter().zip(&xq).map(|(&w, &x)| (w as f64 * x).abs()).sum();
            let exact: f64 = w.iter().zip(&x).map(|(&w, &x)| w as f64 * x as f64).sum();
            let mag: f64 = w.iter().zip(&x).map(|(&w, &x)| (w as f64 * x as f64).abs()).sum();
            // Rounding x to d·q moves each element by at most d/2: the integer dot may differ
            // from the f32 dot by Σ_blocks (d/2)·Σ|w| (plus f32 rounding below).
            let q8_bound: f64 = w.chunks_exact(32).zip(q.d).map(|(w, &d)| d as f64 / 2.0 * w.iter().map(|w| w.abs() as f64).sum::<f64>()).sum();
            let (s, f) = (scalar(&row, q), fast(&row, q));
            if ty != GgmlType::Q3_K {
                assert_eq!(dot_q8(ty, &row, q).unwrap().to_bits(), f.to_bits(), "{ty:?}: dot_q8 and dot_q8_fn differ");
            }
            // Integer sums are exact in both; only the f32 scale products and their
            // summation order differ: a few f32 epsilons relative to Σ|w·x̂|.
            let tol = 2e-6 * mag_q + 1e-30;
            for (name, got) in [("scalar", s), ("fast", f)] {
                let err = (got as f64 - exact_q).abs();
                assert!(err <= tol, "{ty:?} {name} n={n}: {got} vs Σw·x̂ {exact_q} (err {err:e}, tol {tol:e})");
                let err = (got as f64 - exact).abs();
                let tol = q8_bound + 2e-6 * mag + 1e-30;
                assert!(err <= tol, "{ty:?} {name} n={n}: {got} vs Σw·x {exact} (err {err:e}, bound {tol:e})");
            }
        }
    }
}

#[test]
fn q8_four_token_kernels_match_the_scalar_reference() {
    let mut rng = Rng(0x4444_0000_0000_0004);
    for &ty in Q8_TYPES {
        let Some(f4) = dot_q8x4_fn(ty) else { continue };
        let scalar = dot_q8_scalar_fn(ty).unwrap();
        for &blocks in block_counts(ty) {
            let n = blocks * ty.block_size();
            let row = random_row(&mut rng, ty, blocks);
            let mut w = vec![0.0f32; n];
            dequantize(ty, &row, &mut w).unwrap();
            let mut acts = Q8Acts::new();
            acts.quantize(&random_acts(&mut rng, 4 * n)).unwrap();
            let xs: [Q8Slice; 4] = std::array::from_fn(|k| acts.slice(k * n, n).unwrap());
            let got = f4(&row, xs);
            for (k, x) in xs.iter().enumerate() {
                let want = scalar(&row, *x);
                // Exact integer sums; f32 scale products and order differ (as above).
                let mag: f64 = (0..n).map(|i| (w[i] as f64 * x.d[i / 32] as f64 * x.qs[i] as f64).abs()).sum();
                let err = (got[k] as f64 - want as f64).abs();
                assert!(err <= 2e-6 * mag + 1e-30, "{ty:?} n={n} token {k}: {} vs {want}", got[k]);
            }
        }
    }
}

#[test]
fn q8_quantize_values_errors_and_reuse() {
    let mut acts = Q8Acts::new();
    let x: Vec<f32> = (0..64).map(|i| (i as f32 - 32.0) / 8.0).collect();
    acts.quantize(&x).unwrap();
    let q = acts.as_slice();
    // Block 0 spans [-4, -0.125]: d = 4/127, q = round(x/d); block 1 spans [0, 3.875].
    assert_eq!(q.d[0], 4.0 / 127.0);
    assert_eq!(q.qs[0], -127);
    assert_eq!(q.qs[16], -64); // -2 / (4/127) = -63.5 → -64 (round half away from zero)
    assert_eq!(q.qs[32], 0);
    let sum0: i32 = q.qs[..32].iter().map(|&v| v as i32).sum();
    assert_eq!(q.s[0], q.d[0] * sum0 as f32);
    let ptr = q.qs.as_ptr();
    acts.quantize(&x[32..]).unwrap();
    acts.quantize(&x).unwrap();
    assert_eq!(acts.as_slice().qs.as_ptr(), ptr, "re-quantizing the same length reallocated");
    assert_eq!(acts.len(), 64);
    assert_eq!(
        acts.quantize(&x[..33]),
        Err(QuantError::NotBlockAligned { ty: GgmlType::Q8_0, elems: 33, block: 32 })
    );
    assert!(acts.slice(32, 32).is_some());
    assert!(acts.slice(16, 32).is_none() && acts.slice(32, 64).is_none() && acts.slice(usize::MAX - 31, 32).is_none());
    // Non-finite input: no panic, and the block's dot is not silently finite garbage.
    acts.quantize(&[f32::NAN; 32]).unwrap();
    acts.quantize(&[f32::INFINITY; 32]).unwrap();
    // Errors of the checked dot.
    acts.quantize(&x).unwrap();
    let row = random_row(&mut Rng(3), GgmlType::Q4_0, 2);
    assert_eq!(dot_q8(GgmlType::F32, &row, acts.as_slice()), Err(QuantError::Unsupported(GgmlType::F32)));
    assert_eq!(
        dot_q8(GgmlType::Q4_0, &row[..35], acts.as_slice()),
        Err(QuantError::BadLength { ty: GgmlType::Q4_0, elems: 64, expected: 36, got: 35 })
    );
    assert_eq!(
        dot_q8(GgmlType::Q4_K, &row, acts.as_slice()),
        Err(QuantError::NotBlockAligned { ty: GgmlType::Q4_K, elems: 64, block: 256 })
    );
}

#[test]
fn q8_mismatched_lengths_do_not_read_out_of_bounds() {
    let mut rng = Rng(11);
    let mut acts = Q8Acts::new();
    for &ty in Q8_TYPES {
        let n = 3 * ty.block_size();
        let row = random_row(&mut rng, ty, 3);
        acts.quantize(&random_acts(&mut rng, n)).unwrap();
        let short = acts.slice(0, n - 32).unwrap();
        for f in [dot_q8_fn(ty), dot_q8_scalar_fn(ty)].into_iter().flatten() {
            assert!(f(&row[..row.len() - 1], acts.as_slice()).is_finite(), "{ty:?}");
            assert!(f(&row, short).is_finite(), "{ty:?}");
        }
        if let Some(f4) = dot_q8x4_fn(ty) {
            let full = acts.as_slice();
            assert!(f4(&row[..row.len() - 1], [full; 4]).iter().all(|v| v.is_finite()), "{ty:?}");
            assert!(f4(&row, [full, short, full, full]).iter().all(|v| v.is_finite()), "{ty:?}");
        }
    }
}

/// Single-thread matvec throughput in GB/s of weight bytes (not a test; run with
/// `cargo test --release --lib quant::tests::bench -- --ignored --nocapture`).
#[test]
#[ignore]
fn bench_matvec_576x1536() {
    let (rows, cols) = (576, 1536);
    let mut rng = Rng(42);
    let x: Vec<f32> = (0..cols).map(|_| rng.f32()).collect();
    for &ty in SUPPORTED {
        let blocks = cols / ty.block_size();
        let w: Vec<u8> = (0..rows).flat_map(|_| random_row(&mut rng, ty, blocks)).collect();
        let row_bytes = w.len() / rows;
        for (name, f) in [("fast", dot_fn(ty).unwrap()), ("scalar", dot_scalar_fn(ty).unwrap())] {
            let mut y = vec![0.0f32; rows];
            let start = std::time::Instant::now();
            let cpu0 = thread_cpu_ns();
            let mut iters = 0;
            while start.elapsed().as_secs_f64() < 0.3 {
                for (r, y) in w.chunks_exact(row_bytes).zip(&mut y) {
                    *y = f(r, &x);
                }
                iters += 1;
            }
            // On a shared machine, on-CPU time (Linux schedstat) is the fairer clock.
            let secs = match (cpu0, thread_cpu_ns()) {
                (Some(a), Some(b)) => (b - a) as f64 / 1e9,
                _ => start.elapsed().as_secs_f64(),
            };
            std::hint::black_box(&y);
            let gbs = (w.len() * iters) as f64 / secs / 1e9;
            println!("{:5} {name:6} {gbs:6.2} GB/s  {:8.1} µs/matvec", ty.name(), secs / iters as f64 * 1e6);
        }
        let mut acts = Q8Acts::new();
        for (name, f) in [("q8", dot_q8_fn(ty)), ("q8-ref", dot_q8_scalar_fn(ty))] {
            let Some(f) = f else { continue };
            let mut y = vec![0.0f32; rows];
            let start = std::time::Instant::now();
            let cpu0 = thread_cpu_ns();
            let mut iters = 0;
            while start.elapsed().as_secs_f64() < 0.3 {
                // The activation quantization is part of every matvec.
                acts.quantize(&x).unwrap();
                for (r, y) in w.chunks_exact(row_bytes).zip(&mut y) {
                    *y = f(r, acts.as_slice());
                }
                iters += 1;
            }
            let secs = match (cpu0, thread_cpu_ns()) {
                (Some(a), Some(b)) => (b - a) as f64 / 1e9,
                _ => start.elapsed().as_secs_f64(),
            };
            std::hint::black_box(&y);
            let gbs = (w.len() * iters) as f64 / secs / 1e9;
            println!("{:5} {name:6} {gbs:6.2} GB/s  {:8.1} µs/matvec", ty.name(), secs / iters as f64 * 1e6);
        }
    }
}

/// Nanoseconds this thread has spent on a CPU (Linux `/proc/thread-self/schedstat`).
fn thread_cpu_ns() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    s.split_whitespace().next()?.parse().ok()
}
