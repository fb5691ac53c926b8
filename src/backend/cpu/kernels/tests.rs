//! The CPU kernels against the references: fast f32 dots vs dequantize-then-dot, integer
//! dots vs their scalar references and the f32 dot, the four-token kernels, the activation
//! quantizer, and length errors. Formats come from `quant::FORMATS`; which kernels exist from
//! the tables in `mod.rs`.

use super::*;
use crate::quant::synth::Rng;
use crate::quant::tests::{block_counts, check_dot_against_dequantize, random_row};
use crate::quant::{dequantize, dot_scalar_fn, FORMATS};

/// Every supported type (the ones with a `quant::FORMATS` row).
fn supported() -> impl Iterator<Item = GgmlType> {
    FORMATS.iter().map(|f| f.ty)
}

#[test]
fn every_supported_type_has_a_dot_and_no_other_does() {
    for &ty in GgmlType::ALL {
        assert_eq!(dot_fn(ty).is_ok(), ty.is_supported(), "{ty:?}");
    }
    let bytes = [0u8; 64];
    assert_eq!(dot(GgmlType::Q4_1, &[], &[]), Ok(0.0));
    assert_eq!(dot(GgmlType::IQ2_XS, &bytes, &[0.0; 256]), Err(QuantError::Unsupported(GgmlType::IQ2_XS)));
    assert_eq!(
        dot(GgmlType::Q8_0, &bytes[..35], &[0.0; 32]),
        Err(QuantError::BadLength { ty: GgmlType::Q8_0, elems: 32, expected: 34, got: 35 })
    );
}

#[test]
fn fast_dot_agrees_with_dequantize_then_dot() {
    check_dot_against_dequantize(0x1234_5678_9ABC_DEF1, |ty, row, x| {
        let fast = dot_fn(ty).unwrap()(row, x);
        assert_eq!(dot(ty, row, x).unwrap().to_bits(), fast.to_bits(), "{ty:?}: dot and dot_fn differ");
        fast
    });
}

#[test]
fn mismatched_lengths_do_not_read_out_of_bounds() {
    // The unchecked kernels (fast, and the formats' scalar references) stop at the shorter
    // operand (or panic), never read past it.
    let mut rng = Rng(7);
    for ty in supported() {
        let row = random_row(&mut rng, ty, 3);
        let x: Vec<f32> = (0..3 * ty.block_size()).map(|_| rng.f()).collect();
        for f in [dot_fn(ty).unwrap(), dot_scalar_fn(ty).unwrap()] {
            assert!(f(&row[..row.len() - 1], &x).is_finite() && f(&row, &x[..x.len() - 1]).is_finite(), "{ty:?}");
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
    let mut x: Vec<f32> = (0..n).map(|i| rng.f() * [0.01, 0.3, 1.0, 20.0][(i / 32) % 4]).collect();
    if n >= 64 {
        x[32..64].iter_mut().for_each(|v| *v = 0.0);
    }
    x
}

#[test]
fn q8_dots_match_scalar_reference_and_f32_dot() {
    let mut rng = Rng(0x51DE_CAFE_0000_0008);
    for ty in supported() {
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

/// The kernel tables to test: on x86_64 every table this CPU can run (AVX2, and AVX2 with
/// AVX-VNNI where present), elsewhere this build's.
fn tables() -> Vec<&'static [Kernels]> {
    #[cfg(target_arch = "x86_64")]
    return x86_tables();
    #[cfg(not(target_arch = "x86_64"))]
    vec![machine()]
}

#[test]
fn tile_kernels_one_row_and_several_rows_match_the_scalar_reference() {
    let mut rng = Rng(0x7173_0000_0000_0017);
    let mut checked = 0;
    for &ty in Q8_TYPES {
        let scalar = dot_q8_scalar_fn(ty).unwrap();
        for &blocks in block_counts(ty) {
            let n = blocks * ty.block_size();
            let rows: Vec<Vec<u8>> = (0..TILE_ROWS).map(|_| random_row(&mut rng, ty, blocks)).collect();
            let mut acts = Q8Acts::new();
            acts.quantize(&random_acts(&mut rng, 4 * n)).unwrap();
            let mut tiles = Q8Tiles::default();
            assert!(tiles.fill(&acts, 4, n));
            let x = tiles.tile(0).unwrap();
            let xs: Vec<Q8Slice> = (0..4).map(|k| acts.slice(k * n, n).unwrap()).collect();
            let check = |name: &str, r: usize, got: [f32; 4]| {
                let mut w = vec![0.0f32; n];
                dequantize(ty, &rows[r], &mut w).unwrap();
                for (k, x) in xs.iter().enumerate() {
                    let want = scalar(&rows[r], *x);
                    // Exact integer sums; f32 scale products and order differ.
                    let mag: f64 = (0..n).map(|i| (w[i] as f64 * x.d[i / 32] as f64 * x.qs[i] as f64).abs()).sum();
                    let err = (got[k] as f64 - want as f64).abs();
                    assert!(err <= 2e-6 * mag + 1e-30, "{ty:?} {name} n={n} row {r} token {k}: {} vs {want}", got[k]);
                }
            };
            for table in tables() {
                let Some(k) = table.iter().find(|k| k.ty == ty) else { continue };
                if let Some(tile) = k.tile {
                    (0..TILE_ROWS).for_each(|r| check("tile", r, tile(&rows[r], x)));
                    checked += 1;
                }
                if let Some(tile_rows) = k.tile_rows {
                    let got = tile_rows(std::array::from_fn(|r| rows[r].as_slice()), x);
                    got.into_iter().enumerate().for_each(|(r, v)| check("tile_rows", r, v));
                    checked += 1;
                }
            }
        }
    }
    #[cfg(target_arch = "x86_64")]
    assert!(checked >= 2 * 8 * 3, "x86_64: every format's two tiles on every table ({checked} checked)");
    let _ = checked;
}

#[test]
fn tile_kernels_do_not_read_out_of_bounds() {
    // A row shorter than the tile's tokens, or tokens shorter than the rows: the kernels stop
    // at the shorter operand (or panic), never read past it.
    let mut rng = Rng(0x7173_0000_0000_0018);
    for &ty in Q8_TYPES {
        let n = 3 * ty.block_size();
        let row = random_row(&mut rng, ty, 3);
        let mut acts = Q8Acts::new();
        acts.quantize(&random_acts(&mut rng, 4 * n)).unwrap();
        let mut tiles = Q8Tiles::default();
        assert!(tiles.fill(&acts, 4, n));
        let x = tiles.tile(0).unwrap();
        let short = &row[..row.len() - 1];
        for table in tables() {
            let Some(k) = table.iter().find(|k| k.ty == ty) else { continue };
            if let Some(tile) = k.tile {
                assert!(tile(short, x).iter().all(|v| v.is_finite()), "{ty:?}");
            }
            if let Some(tile_rows) = k.tile_rows {
                let rows: [&[u8]; TILE_ROWS] = std::array::from_fn(|r| if r == 1 { short } else { &row[..] });
                assert!(tile_rows(rows, x).iter().flatten().all(|v| v.is_finite()), "{ty:?}");
            }
        }
    }
}

#[test]
fn one_token_rows_kernels_equal_the_tiles_bit_for_bit() {
    // Decode and a prefill's leftover tokens use `rows`; the groups of four use the tiles. A
    // token's result must not depend on which (see simd_x86_rows.rs), so: equal bits, for every
    // format, table, row and token, at several block counts; and a short row or short token is
    // cut off, never read past.
    let mut rng = Rng(0x7173_0000_0000_0019);
    let mut checked = 0;
    for &ty in Q8_TYPES {
        for &blocks in block_counts(ty) {
            let n = blocks * ty.block_size();
            let rows: Vec<Vec<u8>> = (0..TILE_ROWS).map(|_| random_row(&mut rng, ty, blocks)).collect();
            let rs: [&[u8]; TILE_ROWS] = std::array::from_fn(|r| rows[r].as_slice());
            let mut acts = Q8Acts::new();
            acts.quantize(&random_acts(&mut rng, 4 * n)).unwrap();
            let mut tiles = Q8Tiles::default();
            assert!(tiles.fill(&acts, 4, n));
            let x = tiles.tile(0).unwrap();
            for table in tables() {
                let Some(k) = table.iter().find(|k| k.ty == ty) else { continue };
                let (Some(rows_fn), Some(tile), Some(tile_rows)) = (k.rows, k.tile, k.tile_rows) else { continue };
                let several = tile_rows(rs, x);
                for t in 0..4 {
                    let got = rows_fn(rs, acts.slice(t * n, n).unwrap());
                    for r in 0..TILE_ROWS {
                        let want = tile(rs[r], x)[t];
                        assert_eq!(got[r].to_bits(), want.to_bits(), "{ty:?} n={n} row {r} token {t}: {} vs tile {want}", got[r]);
                        assert_eq!(got[r].to_bits(), several[r][t].to_bits(), "{ty:?} n={n} row {r} token {t}: vs tile_rows");
                    }
                }
                let short: [&[u8]; TILE_ROWS] = std::array::from_fn(|r| if r == 2 { &rows[r][..rows[r].len() - 1] } else { rs[r] });
                assert!(rows_fn(short, acts.slice(0, n).unwrap()).iter().all(|v| v.is_finite()), "{ty:?}");
                if n > ty.block_size() {
                    assert!(rows_fn(rs, acts.slice(0, n - ty.block_size()).unwrap()).iter().all(|v| v.is_finite()), "{ty:?}");
                }
                checked += 1;
            }
        }
    }
    #[cfg(target_arch = "x86_64")]
    if simd_x86::has_avx2_fma_f16c() {
        assert!(checked >= 8 * 3, "x86_64: every format's rows kernel ({checked} checked)");
    }
    let _ = checked;
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
/// `cargo test --release --lib backend::cpu::kernels::tests::bench -- --ignored --nocapture`).
#[test]
#[ignore]
fn bench_matvec_576x1536() {
    let (rows, cols) = (576, 1536);
    let mut rng = Rng(42);
    let x: Vec<f32> = (0..cols).map(|_| rng.f()).collect();
    for ty in supported() {
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
