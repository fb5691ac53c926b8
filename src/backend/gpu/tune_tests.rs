//! The autotune's candidates against the scalar reference, and the tune itself on whatever
//! adapter wgpu finds (lavapipe in CI: forced, with a small budget).

use super::tune::{candidates, disk, is_software, TuneEntry, TuneOptions, TuneReport, TUNE_VERSION};
use super::{GpuBackend, GpuContext, MatvecShape};
use crate::backend::gpu::selfcheck::{nrmse, types};
use crate::backend::{Backend, WeightDesc};
use crate::quant::synth::{random_weight, Rng};
use crate::quant::GgmlType;
use std::collections::HashMap;
use std::sync::OnceLock;

fn backend() -> GpuBackend {
    static CTX: OnceLock<GpuContext> = OnceLock::new();
    let ctx = CTX.get_or_init(|| GpuContext::new_blocking().unwrap_or_else(|e| panic!("no GPU adapter for the GPU tests: {e}")));
    GpuBackend::from_context(ctx.clone()).expect("backend")
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    pollster::block_on(f)
}

/// Every workgroup size at the default threads per row, and the extreme threads per row at
/// the largest workgroup: each gives the scalar reference's products (rows and tokens that do
/// not fill a workgroup), and shapes differing only in workgroup size give the same bits.
#[test]
fn every_candidate_shape_matches_the_reference() {
    let mut b = backend();
    let mut rng = Rng(0x5eed_7a11);
    for ty in types() {
        let shapes: &[(usize, usize)] = if ty.block_size() == 256 { &[(67, 768), (5, 512)] } else { &[(67, 608), (5, 96)] };
        for &(rows, cols) in shapes {
            let bytes = random_weight(&mut rng, ty, rows, cols).expect("test weight");
            let w = b.upload(&WeightDesc { name: "t".into(), ty, dims: vec![cols, rows] }, &bytes).expect("upload");
            let mut wf = vec![0f32; rows * cols];
            crate::quant::dequantize(ty, &bytes, &mut wf).expect("reference");
            let n = 3;
            let xs = rng.vec(n * cols);
            let x = b.alloc(n * cols).expect("alloc");
            b.write(&x, 0, &xs).expect("write");
            let out = b.alloc(n * rows).expect("alloc");
            let want: Vec<f32> = (0..n * rows)
                .map(|i| {
                    let (t, r) = (i / rows, i % rows);
                    (0..cols).map(|c| f64::from(wf[r * cols + c]) * f64::from(xs[t * cols + c])).sum::<f64>() as f32
                })
                .collect();
            let d = MatvecShape::default_for(ty, cols);
            let mut cands = candidates(d);
            cands.extend([4, 64].map(|tpr| MatvecShape { wg: 256, tpr }));
            let mut by_tpr: HashMap<u32, Vec<u32>> = HashMap::new();
            for s in cands {
                b.set_matvec_shape(ty, cols, s).expect("valid shape");
                b.matmul(&w, &x, &out, n).expect("matvec");
                let got = b.read(&out, 0, n * rows).expect("read");
                let e = nrmse(&got, &want);
                assert!(e <= 1e-5, "{ty:?} {rows}x{cols} {s:?}: normalised error {e:.3e}");
                let bits: Vec<u32> = got.iter().map(|v| v.to_bits()).collect();
                if let Some(prev) = by_tpr.get(&s.tpr) {
                    assert_eq!(prev, &bits, "{ty:?} {rows}x{cols} {s:?}: the workgroup size changed the bits");
                }
                by_tpr.insert(s.tpr, bits);
            }
        }
    }
}

#[test]
fn invalid_shapes_are_refused() {
    let mut b = backend();
    for s in [MatvecShape { wg: 512, tpr: 16 }, MatvecShape { wg: 64, tpr: 2 }, MatvecShape { wg: 32, tpr: 64 }, MatvecShape { wg: 96, tpr: 16 }] {
        assert!(b.set_matvec_shape(GgmlType::Q4_0, 256, s).is_err(), "{s:?}");
    }
}

/// Forced on the test adapter with a small budget: a choice per uploaded class, valid, agreeing
/// candidates only; a second backend given the first's entries times nothing and uses them.
#[test]
fn the_tune_chooses_per_class_and_reuses_cached_choices() {
    let mut b = backend();
    let mut rng = Rng(3);
    for (ty, rows, cols) in [(GgmlType::Q4_0, 300, 512), (GgmlType::Q6_K, 100, 768), (GgmlType::F32, 1, 512)] {
        let bytes = random_weight(&mut rng, ty, rows, cols).expect("weight");
        b.upload(&WeightDesc { name: "w".into(), ty, dims: vec![cols, rows] }, &bytes).expect("upload");
    }
    assert_eq!(b.tune_classes(), vec![(GgmlType::Q4_0, 512), (GgmlType::Q6_K, 768)], "the 1-row F32 vector is not a class");
    let t0 = std::time::Instant::now();
    let now = move || t0.elapsed().as_secs_f64() * 1e3;
    let skipped = block_on(b.autotune(&TuneOptions::default(), &now)).expect("tune");
    if is_software(&b.context().info) {
        assert!(skipped.skipped.is_some() && skipped.entries.is_empty(), "software adapters are not tuned unless forced");
    }
    let opts = TuneOptions { force: true, budget_ms: 20.0, ..Default::default() };
    let r = block_on(b.autotune(&opts, &now)).expect("tune");
    assert_eq!(r.entries.len(), 2);
    for (key, e) in &r.entries {
        assert!(!e.cached && e.shape.valid() && key.contains(&format!("|{}|{}", e.format, e.cols)), "{key}: {e:?}");
        assert!(e.candidates.len() >= 3 && e.candidates.iter().all(|(_, ms)| ms.is_some()), "{key}: every candidate agrees: {e:?}");
        assert!(e.best_ms <= e.default_ms, "{key}");
        let ty = GgmlType::ALL.iter().copied().find(|t| t.name() == e.format).expect("format");
        assert_eq!(b.matvec_shape(ty, e.cols), e.shape);
    }
    let mut b2 = backend();
    let bytes = random_weight(&mut rng, GgmlType::Q4_0, 300, 512).expect("weight");
    b2.upload(&WeightDesc { name: "w".into(), ty: GgmlType::Q4_0, dims: vec![512, 300] }, &bytes).expect("upload");
    let mut cached: HashMap<String, TuneEntry> = r.entries.iter().cloned().collect();
    let chosen = cached.values().find(|e| e.format == "Q4_0").expect("Q4_0 entry").shape;
    // A cached entry for another class does not apply.
    cached.values_mut().filter(|e| e.format == "Q6_K").for_each(|e| e.cols = 1024);
    let r2 = block_on(b2.autotune(&TuneOptions { cached, ..Default::default() }, &now)).expect("tune");
    assert_eq!(r2.entries.len(), 1);
    assert!(r2.entries[0].1.cached);
    assert_eq!(b2.matvec_shape(GgmlType::Q4_0, 512), chosen);
}

#[test]
fn the_disk_cache_round_trips_and_ignores_bad_files() {
    let dir = std::env::temp_dir().join(format!("hearth-tune-{}", std::process::id()));
    let path = dir.join("sub/gpu-tune.json");
    let shape = MatvecShape { wg: 128, tpr: 8 };
    let e = TuneEntry { format: "Q4_0".into(), cols: 512, shape, default: MatvecShape { wg: 64, tpr: 8 }, default_ms: 2.0, best_ms: 1.5, candidates: vec![(shape, Some(1.5)), (MatvecShape { wg: 256, tpr: 8 }, None)], rounds: 3, cached: false };
    let report = TuneReport { adapter: "a".into(), entries: vec![("k1".into(), e.clone())], ..Default::default() };
    disk::write(&path, &report).expect("write");
    let back = disk::read(&path);
    assert_eq!(back.get("k1"), Some(&e));
    // Entries accumulate; a cached entry is not rewritten.
    let report2 = TuneReport { entries: vec![("k2".into(), e.clone()), ("k3".into(), TuneEntry { cached: true, ..e.clone() })], ..Default::default() };
    disk::write(&path, &report2).expect("write");
    let back = disk::read(&path);
    assert!(back.contains_key("k1") && back.contains_key("k2") && !back.contains_key("k3"));
    // Garbage, another version, an invalid shape: ignored.
    for bad in [&b"not json"[..], br#"{"version":999,"entries":{}}"#] {
        std::fs::write(&path, bad).expect("write");
        assert!(disk::read(&path).is_empty());
    }
    let invalid = format!(r#"{{"version":{TUNE_VERSION},"entries":{{"k":{{"format":"Q4_0","cols":512,"shape":{{"wg":100,"tpr":3}},"default":{{"wg":64,"tpr":8}},"default_ms":1,"best_ms":1,"candidates":[]}}}}}}"#);
    std::fs::write(&path, invalid).expect("write");
    assert!(disk::read(&path).is_empty());
    assert!(disk::read(&dir.join("absent.json")).is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}
