//! Every GPU op against a plain scalar reference, on random data at sizes that are not
//! multiples of any workgroup size. Runs on whatever adapter wgpu finds (Mesa lavapipe in
//! CI); a machine without one FAILS these tests rather than skipping them.
//!
//! Error measure: normalised RMS error `sqrt(Σ(gpu - ref)² / Σ ref²)` (ggml's
//! test-backend-ops NMSE, square-rooted), with a tolerance per op stated at each check.

use super::*;
use crate::backend::{Activation, AttnParams, Backend, RopeExt, RopeParams, RopeStore, WeightDesc};
use std::sync::OnceLock;

fn context() -> GpuContext {
    static CTX: OnceLock<GpuContext> = OnceLock::new();
    CTX.get_or_init(|| match GpuContext::new_blocking() {
        Ok(c) => c,
        Err(e) => panic!("no GPU adapter for the GPU tests (install mesa-vulkan-drivers for lavapipe): {e}"),
    })
    .clone()
}

fn backend() -> GpuBackend {
    GpuBackend::from_context(context()).expect("backend")
}

use super::selfcheck::{self, nrmse, types};
use crate::quant::synth::{self, Rng};

#[track_caller]
fn assert_close(what: &str, got: &[f32], want: &[f32], tol: f64) {
    let e = nrmse(got, want);
    assert!(e <= tol, "{what}: normalised error {e:.3e} > {tol:.0e}");
}

// ---- reference data: random GGUF blocks ----

fn random_weight(rng: &mut Rng, ty: GgmlType, rows: usize, cols: usize) -> Vec<u8> {
    synth::random_weight(rng, ty, rows, cols).unwrap_or_else(|| panic!("no test data for {ty:?}"))
}

/// The reference dequantization: `crate::quant`, the single source of truth for layouts.
fn dequant(ty: GgmlType, bytes: &[u8], cols: usize) -> Vec<f32> {
    let elems = bytes.len() / ty.type_size() * ty.block_size();
    assert_eq!(elems % cols, 0);
    let mut out = vec![0f32; elems];
    crate::quant::dequantize(ty, bytes, &mut out).expect("reference dequantization");
    out
}

fn desc(ty: GgmlType, rows: usize, cols: usize) -> WeightDesc {
    WeightDesc { name: "test".into(), ty, dims: vec![cols, rows] }
}

fn tensor(b: &mut GpuBackend, data: &[f32]) -> GpuTensor {
    let t = b.alloc(data.len()).expect("alloc");
    b.write(&t, 0, data).expect("write");
    t
}


/// The 8-bit activations of the integer products, as the CPU backend makes them (ggml
/// `quantize_row_q8_1`, `cpu::kernels::q8::quantize_block`): each block of 32 becomes d·q,
/// d = max|x|/127, q rounded half away from zero. The scalar reference of `quantize_q8.wgsl`.
fn q8_reference(xs: &[f32]) -> Vec<f32> {
    let mut out = Vec::with_capacity(xs.len());
    for block in xs.chunks(32) {
        let amax = block.iter().fold(0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        out.extend(block.iter().map(|v| d * (v * id).round()));
    }
    out
}

fn matmul_reference(wf: &[f32], xs: &[f32], rows: usize, cols: usize, n: usize) -> Vec<f32> {
    let mut want = vec![0f32; n * rows];
    for t in 0..n {
        for r in 0..rows {
            want[t * rows + r] = (0..cols).map(|c| f64::from(wf[r * cols + c]) * f64::from(xs[t * cols + c])).sum::<f64>() as f32;
        }
    }
    want
}

fn check_matmul(b: &mut GpuBackend, rng: &mut Rng, ty: GgmlType, rows: usize, cols: usize, n: usize) {
    let bytes = random_weight(rng, ty, rows, cols);
    let w = b.upload(&desc(ty, rows, cols), &bytes).expect("upload");
    let wf = dequant(ty, &bytes, cols);
    let xs = rng.vec(n * cols);
    let x = tensor(b, &xs);
    let out = b.alloc(n * rows).expect("alloc");
    b.matmul(&w, &x, &out, n).expect("matmul");
    let got = b.read(&out, 0, n * rows).expect("read");
    let int8 = b.int8_for(ty, cols, n >= weights::MATMUL_MIN_TOKENS);
    let what = format!("matmul {ty:?} rows={rows} cols={cols} n={n} chunks={} int8={int8}", w.n_chunks());
    if int8 {
        // Against the same product of the 8-bit activations: integer sums are exact, the
        // scales are applied per half block in f32 (~1e-6); a quantized value may differ by
        // one step where x·(1/d) lands within an ulp of .5 (WGSL's division is not exactly
        // rounded), hence 1e-4.
        assert_close(&what, &got, &matmul_reference(&wf, &q8_reference(&xs), rows, cols, n), 1e-4);
        // The quantization error itself, against the f32 product: d/2 per element at most,
        // ~0.5 % RMS on uniform data; over a few outputs one sum near zero can dominate the
        // normalised error, so this is checked where there are at least 32.
        if rows * n >= 32 {
            assert_close(&what, &got, &matmul_reference(&wf, &xs, rows, cols, n), INT8_VS_F32);
        }
    } else {
        // f32 accumulation in a different order than the f64 reference: ~1e-6 typical.
        assert_close(&what, &got, &matmul_reference(&wf, &xs, rows, cols, n), 1e-5);
    }
}

/// The integer products against the f32 product (the selfcheck's tolerance for them).
const INT8_VS_F32: f64 = selfcheck::INT8_TOLERANCE;

fn backend_int8(on: bool) -> GpuBackend {
    GpuBackend::with_options(context(), GpuOptions { int8: Some(on), ..Default::default() }).expect("backend")
}

#[test]
fn matmul_every_type_odd_shapes() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for int8 in [Some(false), Some(true), None] {
        let mut b = GpuBackend::with_options(context(), GpuOptions { int8, ..Default::default() }).expect("backend");
        for ty in types() {
            // k-quant rows are whole super-blocks of 256: several multiples of 256 for them
            let shapes = if ty.block_size() == 256 { [(1, 256), (7, 768), (67, 1024), (33, 512)] } else { [(1, 32), (7, 96), (67, 608), (33, 256)] };
            for (rows, cols) in shapes {
                for n in [1, 3, 9, 33] {
                    check_matmul(&mut b, &mut rng, ty, rows, cols, n);
                }
            }
        }
    }
}

/// The quantized activations are reused by the next product with the same input (q, k, v)
/// and never after that input changed: rewritten by the host, or written by a product, or by
/// any other kernel.
#[test]
fn int8_activations_follow_their_input() {
    let mut b = backend_int8(true);
    let mut rng = Rng(77);
    let (ty, rows, cols) = (GgmlType::Q8_0, 40, 64);
    let bytes = random_weight(&mut rng, ty, rows, cols);
    let w = b.upload(&desc(ty, rows, cols), &bytes).unwrap();
    let sq = random_weight(&mut rng, ty, cols, cols);
    let wsq = b.upload(&desc(ty, cols, cols), &sq).unwrap();
    let wf = dequant(ty, &bytes, cols);
    let wsqf = dequant(ty, &sq, cols);
    let (h, a, out) = (b.alloc(cols).unwrap(), b.alloc(cols).unwrap(), b.alloc(rows).unwrap());
    let check = |b: &mut GpuBackend, xs: &[f32], what: &str| {
        b.matmul(&w, &h, &out, 1).unwrap();
        let got = b.read(&out, 0, rows).unwrap();
        assert_close(what, &got, &matmul_reference(&wf, &q8_reference(xs), rows, cols, 1), 1e-4);
    };
    let xs = rng.vec(cols);
    b.write(&h, 0, &xs).unwrap();
    check(&mut b, &xs, "first");
    check(&mut b, &xs, "reused");
    let xs = rng.vec(cols);
    b.write(&h, 0, &xs).unwrap();
    check(&mut b, &xs, "after a host write");
    // a product writes h: h = wsq · a
    let xa = rng.vec(cols);
    b.write(&a, 0, &xa).unwrap();
    b.matmul(&wsq, &a, &h, 1).unwrap();
    let hs = b.read(&h, 0, cols).unwrap();
    assert_close("h = wsq · a", &hs, &matmul_reference(&wsqf, &q8_reference(&xa), cols, cols, 1), 1e-4);
    check(&mut b, &hs, "after a product wrote the input");
    // another kernel writes h
    b.scale(&h, cols, 0.5).unwrap();
    let hs = b.read(&h, 0, cols).unwrap();
    check(&mut b, &hs, "after scale wrote the input");
}

#[test]
fn matmul_and_embed_split_weights() {
    let ctx = context();
    let mut rng = Rng(7);
    for ty in types() {
        let cols = if ty.block_size() == 256 { 256 } else { 96 };
        let row_bytes = ty.bytes_for(cols as u64).unwrap();
        // at most 5 rows per buffer: 67 rows become 14 buffers
        let mut b = GpuBackend::with_options(ctx.clone(), GpuOptions { max_weight_binding: Some(5 * row_bytes + 3), ..Default::default() }).unwrap();
        for n in [1, 12] {
            check_matmul(&mut b, &mut rng, ty, 67, cols, n);
        }
        let bytes = random_weight(&mut rng, ty, 67, cols);
        let w = b.upload(&desc(ty, 67, cols), &bytes).unwrap();
        assert_eq!(w.n_chunks(), 14);
        check_embed(&mut b, &w, &bytes, cols, &[66, 0, 5, 4, 33, 5]);
    }
}

fn check_embed(b: &mut GpuBackend, w: &GpuWeight, bytes: &[u8], cols: usize, tokens: &[u32]) {
    let wf = dequant(w.ty(), bytes, cols);
    let out = b.alloc(tokens.len() * cols).unwrap();
    b.embed(w, tokens, &out).expect("embed");
    let got = b.read(&out, 0, tokens.len() * cols).unwrap();
    let want: Vec<f32> = tokens.iter().flat_map(|&t| wf[t as usize * cols..][..cols].to_vec()).collect();
    // dequantization is exact in f32 (same products as the reference)
    assert_close(&format!("embed {:?}", w.ty()), &got, &want, 1e-6);
}

#[test]
fn embed_every_type() {
    let mut b = backend();
    let mut rng = Rng(11);
    for ty in types() {
        let (rows, cols) = (37, if ty.block_size() == 256 { 768 } else { 608 });
        let bytes = random_weight(&mut rng, ty, rows, cols);
        let w = b.upload(&desc(ty, rows, cols), &bytes).unwrap();
        check_embed(&mut b, &w, &bytes, cols, &[3, 36, 0, 3, 17]);
        check_embed(&mut b, &w, &bytes, cols, &[5]);
    }
}

fn f32_weight(b: &mut GpuBackend, data: &[f32]) -> GpuWeight {
    let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    b.upload(&WeightDesc { name: "v".into(), ty: GgmlType::F32, dims: vec![data.len()] }, &bytes).unwrap()
}

#[test]
fn rms_norm_and_add_bias() {
    let mut b = backend();
    let mut rng = Rng(3);
    for (rows, dim) in [(1, 576), (5, 67), (3, 1000)] {
        let xs = rng.vec(rows * dim);
        let ws = rng.vec(dim);
        let (x, w, out) = (tensor(&mut b, &xs), f32_weight(&mut b, &ws), b.alloc(rows * dim).unwrap());
        b.rms_norm(&x, &w, &out, rows, dim, 1e-5).unwrap();
        let mut want = Vec::new();
        for r in 0..rows {
            let row = &xs[r * dim..][..dim];
            let ms = row.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>() / dim as f64;
            let inv = 1.0 / (ms + 1e-5).sqrt();
            want.extend(row.iter().zip(&ws).map(|(v, g)| (f64::from(*v) * inv * f64::from(*g)) as f32));
        }
        assert_close("rms_norm", &b.read(&out, 0, rows * dim).unwrap(), &want, 1e-5);

        b.add_bias(&x, &w, rows, dim).unwrap();
        let want: Vec<f32> = xs.iter().enumerate().map(|(i, v)| v + ws[i % dim]).collect();
        assert_close("add_bias", &b.read(&x, 0, rows * dim).unwrap(), &want, 1e-6);
    }
}

fn rope_ref(x: &mut [f32], n_tokens: usize, n_heads: usize, hd: usize, pos0: usize, p: RopeParams) {
    for t in 0..n_tokens {
        for h in 0..n_heads {
            let base = (t * n_heads + h) * hd;
            for i in 0..p.n_rot / 2 {
                let theta = ((pos0 + t) as f64) * f64::from(p.freq_scale) * f64::from(p.theta).powf(-2.0 * i as f64 / p.n_rot as f64);
                let (a, bb) = if p.neox { (base + i, base + i + p.n_rot / 2) } else { (base + 2 * i, base + 2 * i + 1) };
                let (x0, x1) = (f64::from(x[a]), f64::from(x[bb]));
                x[a] = (x0 * theta.cos() - x1 * theta.sin()) as f32;
                x[bb] = (x0 * theta.sin() + x1 * theta.cos()) as f32;
            }
        }
    }
}

#[test]
fn rope_normal_and_neox() {
    let mut b = backend();
    let mut rng = Rng(5);
    for neox in [false, true] {
        for (n_tokens, n_heads, hd, n_rot, pos0) in [(1, 9, 64, 64, 37), (7, 3, 64, 32, 0), (5, 2, 96, 96, 500)] {
            let p = RopeParams { theta: 10000.0, n_rot, neox, freq_scale: 1.0 };
            let xs = rng.vec(n_tokens * n_heads * hd);
            let x = tensor(&mut b, &xs);
            b.rope(&x, n_tokens, n_heads, hd, pos0, p).unwrap();
            let mut want = xs.clone();
            rope_ref(&mut want, n_tokens, n_heads, hd, pos0, p);
            // GPU sin/cos/pow of angles up to ~500 rad: f32 argument error ~ 500·6e-8
            assert_close(&format!("rope neox={neox} pos0={pos0}"), &b.read(&x, 0, xs.len()).unwrap(), &want, 1e-4);
        }
    }
}

#[test]
fn rope_with_frequency_factors_and_mscale() {
    let mut b = backend();
    let mut rng = Rng(6);
    for neox in [false, true] {
        for (n_tokens, n_heads, hd, n_rot, pos0) in [(1, 4, 64, 64, 37), (6, 3, 128, 96, 3)] {
            let p = RopeParams { theta: 500000.0, n_rot, neox, freq_scale: 0.5 };
            let factors: Vec<f32> = (0..n_rot / 2).map(|i| 1.0 + (i % 7) as f32 * 4.5).collect();
            let fw = b.upload(&WeightDesc { name: "rope_freqs.weight".into(), ty: GgmlType::F32, dims: vec![n_rot / 2] }, bytemuck::cast_slice(&factors)).unwrap();
            let xs = rng.vec(n_tokens * n_heads * hd);
            let x = tensor(&mut b, &xs);
            b.rope_ext(&x, n_tokens, n_heads, hd, pos0, p, RopeExt { factors: Some(&fw), mscale: 1.19 }).unwrap();
            // Reference: each pair's angle divided by its factor, the rotated pairs scaled.
            let mut want = xs.clone();
            for t in 0..n_tokens {
                for h in 0..n_heads {
                    let base = (t * n_heads + h) * hd;
                    for i in 0..n_rot / 2 {
                        let theta = ((pos0 + t) as f64) * 0.5 * 500000f64.powf(-2.0 * i as f64 / n_rot as f64) / f64::from(factors[i]);
                        let (a, bb) = if neox { (base + i, base + i + n_rot / 2) } else { (base + 2 * i, base + 2 * i + 1) };
                        let (x0, x1) = (f64::from(xs[a]), f64::from(xs[bb]));
                        want[a] = ((x0 * theta.cos() - x1 * theta.sin()) * 1.19) as f32;
                        want[bb] = ((x0 * theta.sin() + x1 * theta.cos()) * 1.19) as f32;
                    }
                }
            }
            assert_close(&format!("rope factors neox={neox} n_rot={n_rot}"), &b.read(&x, 0, xs.len()).unwrap(), &want, 1e-4);
        }
    }
}

fn attention_ref(q: &[f32], k: &[f32], v: &[f32], p: AttnParams) -> Vec<f32> {
    let hd = p.head_dim;
    let mut out = vec![0f32; p.n_tokens * p.n_head * hd];
    for t in 0..p.n_tokens {
        let pos = p.pos0 + t;
        let lo = p.window.map_or(0, |w| (pos + 1).saturating_sub(w));
        for h in 0..p.n_head {
            let kvh = h / (p.n_head / p.n_head_kv);
            let qr = &q[(t * p.n_head + h) * hd..][..hd];
            let scores: Vec<f64> = (lo..=pos)
                .map(|j| {
                    let kr = &k[(j * p.n_head_kv + kvh) * hd..][..hd];
                    let s = qr.iter().zip(kr).map(|(a, b)| f64::from(*a) * f64::from(*b)).sum::<f64>() * f64::from(p.scale);
                    p.softcap.map_or(s, |c| f64::from(c) * (s / f64::from(c)).tanh())
                })
                .collect();
            let m = scores.iter().cloned().fold(f64::MIN, f64::max);
            let e: Vec<f64> = scores.iter().map(|s| (s - m).exp()).collect();
            let z: f64 = e.iter().sum();
            for d in 0..hd {
                let acc: f64 = (lo..=pos).zip(&e).map(|(j, w)| w * f64::from(v[(j * p.n_head_kv + kvh) * hd + d])).sum();
                out[(t * p.n_head + h) * hd + d] = (acc / z) as f32;
            }
        }
    }
    out
}

#[test]
fn attention_decode_prefill_gqa_window_softcap() {
    let mut b = backend();
    let mut rng = Rng(17);
    let cases = [
        // (n_tokens, pos0, n_head, n_head_kv, head_dim, window, softcap)
        (1, 0, 9, 3, 64, None, None),
        (1, 130, 9, 3, 64, None, None),
        (13, 5, 6, 2, 64, None, None),
        (9, 70, 4, 4, 96, Some(17), None),
        (3, 40, 8, 1, 256, None, Some(5.0)),
        (1, 200, 2, 1, 32, Some(100), Some(20.0)),
    ];
    for (n_tokens, pos0, n_head, n_head_kv, head_dim, window, softcap) in cases {
        let n_ctx = pos0 + n_tokens + 3;
        let p = AttnParams { n_tokens, pos0, n_head, n_head_kv, head_dim, scale: 1.0 / (head_dim as f32).sqrt(), window, softcap };
        let qs: Vec<f32> = rng.vec(n_tokens * n_head * head_dim).iter().map(|v| v * 3.0).collect();
        let ks = rng.vec(n_ctx * n_head_kv * head_dim);
        let vs = rng.vec(n_ctx * n_head_kv * head_dim);
        let (q, k, v) = (tensor(&mut b, &qs), tensor(&mut b, &ks), tensor(&mut b, &vs));
        let out = b.alloc(qs.len()).unwrap();
        b.attention(&q, &k, &v, &out, p).unwrap();
        let want = attention_ref(&qs, &ks, &vs, p);
        assert_close(&format!("attention {p:?}"), &b.read(&out, 0, qs.len()).unwrap(), &want, 1e-5);
    }
}

#[test]
fn elementwise_ops() {
    let mut b = backend();
    let mut rng = Rng(23);
    for len in [1, 255, 257, 5000] {
        let xs: Vec<f32> = rng.vec(len).iter().map(|v| v * 8.0).collect();
        let ys = rng.vec(len);

        let (x, y) = (tensor(&mut b, &xs), tensor(&mut b, &ys));
        b.add_assign(&x, &y, len).unwrap();
        let want: Vec<f32> = xs.iter().zip(&ys).map(|(a, c)| a + c).collect();
        assert_close("add_assign", &b.read(&x, 0, len).unwrap(), &want, 1e-7);

        for act in [Activation::Silu, Activation::Gelu] {
            let g = tensor(&mut b, &xs);
            b.glu(&g, &y, len, act).unwrap();
            let want: Vec<f32> = xs
                .iter()
                .zip(&ys)
                .map(|(&g, &u)| {
                    let g = f64::from(g);
                    let a = match act {
                        Activation::Silu => g / (1.0 + (-g).exp()),
                        Activation::Gelu => 0.5 * g * (1.0 + ((2.0 / std::f64::consts::PI).sqrt() * (g + 0.044715 * g * g * g)).tanh()),
                    };
                    (a * f64::from(u)) as f32
                })
                .collect();
            // GPU exp/tanh are approximations (~1e-6 relative on lavapipe, looser in browsers)
            assert_close(&format!("glu {act:?}"), &b.read(&g, 0, len).unwrap(), &want, 1e-5);
        }

        let s = tensor(&mut b, &xs);
        b.scale(&s, len, -0.37).unwrap();
        let want: Vec<f32> = xs.iter().map(|v| v * -0.37).collect();
        assert_close("scale", &b.read(&s, 0, len).unwrap(), &want, 1e-7);

        let c = tensor(&mut b, &xs);
        b.softcap(&c, len, 3.0).unwrap();
        let want: Vec<f32> = xs.iter().map(|v| (3.0 * (f64::from(*v) / 3.0).tanh()) as f32).collect();
        assert_close("softcap", &b.read(&c, 0, len).unwrap(), &want, 1e-5);

        let dst = tensor(&mut b, &ys);
        let n = len / 2 + 1;
        b.copy(&x, len - n, &dst, 0, n).unwrap();
        let mut want = ys.clone();
        let xs2 = b.read(&x, 0, len).unwrap();
        want[..n].copy_from_slice(&xs2[len - n..]);
        assert_eq!(b.read(&dst, 0, len).unwrap(), want, "copy");
    }
}

#[test]
fn argmax_two_stage() {
    let mut b = backend();
    let mut rng = Rng(29);
    for len in [1, 3, 256, 257, 49_152, 70_001] {
        let mut xs = rng.vec(len + 10);
        let x = tensor(&mut b, &xs);
        let want = (0..len).fold(0, |best, i| if xs[5 + i] > xs[5 + best] { i } else { best });
        assert_eq!(b.argmax(&x, 5, len).unwrap() as usize, want, "argmax len={len}");
        // a tie: the first index wins
        if len > 3 {
            xs[5 + len - 1] = 2.0;
            xs[5 + len / 2] = 2.0;
            b.write(&x, 0, &xs).unwrap();
            assert_eq!(b.argmax(&x, 5, len).unwrap() as usize, len / 2, "argmax tie len={len}");
        }
    }
}

/// A decode step's worth of ops: after the first step no buffer, bind group or pipeline is
/// created, and each step is one submission.
#[test]
fn decode_steady_state_one_submit_per_token() {
    let mut b = backend();
    let mut rng = Rng(31);
    let (dim, vocab) = (96, 300);
    let wb = random_weight(&mut rng, GgmlType::Q4_1, dim, dim);
    let w = b.upload(&desc(GgmlType::Q4_1, dim, dim), &wb).unwrap();
    let eb = random_weight(&mut rng, GgmlType::Q8_0, vocab, dim);
    let emb = b.upload(&desc(GgmlType::Q8_0, vocab, dim), &eb).unwrap();
    let norm = f32_weight(&mut b, &rng.vec(dim));
    let (x, h, k, v, att) = (b.alloc(dim).unwrap(), b.alloc(dim).unwrap(), b.alloc(8 * dim).unwrap(), b.alloc(8 * dim).unwrap(), b.alloc(dim).unwrap());
    let logits = b.alloc(vocab).unwrap();
    let mut token = 1u32;
    let step = |b: &mut GpuBackend, pos: usize, token: u32| -> u32 {
        b.embed(&emb, &[token], &x).unwrap();
        b.rms_norm(&x, &norm, &h, 1, dim, 1e-5).unwrap();
        b.matmul(&w, &h, &att, 1).unwrap();
        b.rope(&att, 1, 3, 32, pos, RopeParams { theta: 1e4, n_rot: 32, neox: false, freq_scale: 1.0 }).unwrap();
        b.copy(&att, 0, &k, pos * dim, dim).unwrap();
        b.copy(&h, 0, &v, pos * dim, dim).unwrap();
        let p = AttnParams { n_tokens: 1, pos0: pos, n_head: 3, n_head_kv: 3, head_dim: 32, scale: 0.2, window: None, softcap: None };
        b.attention(&att, &k, &v, &h, p).unwrap();
        b.add_assign(&x, &h, dim).unwrap();
        b.matmul(&emb, &x, &logits, 1).unwrap();
        b.argmax(&logits, 0, vocab).unwrap()
    };
    token = step(&mut b, 0, token);
    let after_first = b.stats();
    for pos in 1..6 {
        let before = b.stats();
        token = step(&mut b, pos, token);
        let now = b.stats();
        assert_eq!(now.submits, before.submits + 1, "one submit per token");
        assert_eq!((now.buffers, now.bind_groups, now.pipelines), (after_first.buffers, after_first.bind_groups, after_first.pipelines));
    }
    assert!((token as usize) < vocab);
}

#[test]
fn bad_input_is_an_error_not_a_panic() {
    let mut b = backend();
    let x = b.alloc(10).unwrap();
    let y = b.alloc(10).unwrap();
    assert!(matches!(b.add_assign(&x, &y, 11), Err(BackendError::Shape { .. })));
    assert!(matches!(b.add_assign(&x, &x, 5), Err(BackendError::Shape { .. })));
    assert!(matches!(b.read(&x, 5, 6), Err(BackendError::Shape { .. })));
    assert!(matches!(b.argmax(&x, 0, 0), Err(BackendError::Shape { .. })));
    // Q2_K has a CPU dequantizer but no GPU kernel
    let q2k = WeightDesc { name: "w".into(), ty: GgmlType::Q2_K, dims: vec![256, 2] };
    assert!(matches!(b.upload(&q2k, &[0; 168]), Err(BackendError::UnsupportedType { .. })));
    // a k-quant row must be whole super-blocks
    let q4k = desc(GgmlType::Q4_K, 2, 96);
    assert!(matches!(b.upload(&q4k, &[0; 144]), Err(BackendError::Quant(_))));
    let q4 = desc(GgmlType::Q4_0, 2, 64);
    assert!(matches!(b.upload(&q4, &[0; 71]), Err(BackendError::Quant(_))));
    let w = b.upload(&q4, &[0; 72]).unwrap();
    assert!(matches!(b.embed(&w, &[2], &x), Err(BackendError::Shape { .. })));
    assert!(matches!(b.matmul(&w, &x, &y, 1), Err(BackendError::Shape { .. })));
    // and the backend still works
    b.write(&x, 0, &[1.0; 10]).unwrap();
    b.add_assign(&y, &x, 10).unwrap();
    assert_eq!(b.read(&y, 0, 10).unwrap(), vec![1.0; 10]);
}

#[test]
fn lost_device_is_an_error_not_a_panic() {
    let ctx = GpuContext::new_blocking().expect("adapter");
    let mut b = GpuBackend::from_context(ctx.clone()).unwrap();
    let x = tensor(&mut b, &[1.0, 2.0, 3.0]);
    let y = b.alloc(3).unwrap();
    ctx.device.destroy();
    let r1 = b.add_assign(&y, &x, 3);
    let r2 = b.read(&y, 0, 3);
    let r3 = b.alloc(5);
    assert!(matches!(r2, Err(BackendError::DeviceLost(_))), "read after destroy: {r1:?} {r2:?}");
    assert!(r3.is_err() || b.flush().is_err(), "alloc after destroy: {r3:?}");
}

// ---- GPU vs the CPU backend (the oracle), through the Backend trait ----

#[test]
fn gpu_matches_cpu_backend() {
    // The same checks run in Chromium on WebGPU (tests/browser/gpu_kernels.test.mjs).
    for (seed, int8) in [(41, None), (7, None), (41, Some(true)), (7, Some(true))] {
        let mut g = GpuBackend::with_options(context(), GpuOptions { int8, ..Default::default() }).expect("backend");
        let act8 = g.int8_types();
        assert_eq!(act8.is_empty(), int8.is_none(), "{act8:?}");
        let checks = pollster::block_on(selfcheck::compare(&mut g, &mut crate::backend::cpu::CpuBackend::with_f32_activations(), seed, &act8)).expect("selfcheck");
        assert!(checks.len() >= 20, "{checks:?}");
        for c in &checks {
            eprintln!("seed {seed}: {}: normalised error {:.2e} (tolerance {:.0e})", c.name, c.error, c.tolerance);
            assert!(c.ok, "gpu vs cpu (int8 {int8:?}): {}: normalised error {:.3e} > {:.0e}", c.name, c.error, c.tolerance);
        }
    }
}

/// Pieces of any size, with boundaries that fall inside words and inside the buffers a
/// weight is split over, upload to the same bytes as one contiguous slice (exact embedding).
#[test]
fn upload_from_pieces_equals_whole_upload() {
    let ctx = context();
    let mut rng = Rng(23);
    for ty in [GgmlType::Q4_0, GgmlType::Q8_0, GgmlType::Q6_K] {
        let cols = if ty.block_size() == 256 { 256 } else { 96 };
        let row_bytes = ty.bytes_for(cols as u64).unwrap();
        let mut b = GpuBackend::with_options(ctx.clone(), GpuOptions { max_weight_binding: Some(5 * row_bytes + 3), ..Default::default() }).unwrap();
        let bytes = random_weight(&mut rng, ty, 23, cols);
        let mut pieces = Vec::new();
        let (mut at, mut len) = (0, 1);
        while at < bytes.len() {
            let n = len.min(bytes.len() - at);
            pieces.push(bytes[at..at + n].to_vec());
            at += n;
            len = len * 3 + 2; // 1, 5, 17, 53, ...: every offset mod 4
        }
        let tb = crate::gguf::TensorBytes::from_pieces(pieces);
        let w = b.upload_pieces(&desc(ty, 23, cols), tb).unwrap();
        assert_eq!(w.n_chunks(), 5);
        check_embed(&mut b, &w, &bytes, cols, &[22, 0, 5, 4, 9, 13, 17]);
    }
}
// ---- fused ops: each against the scalar reference of the ops it replaces ----

#[test]
fn add_rms_norm_fused_equals_add_then_norm() {
    let mut b = backend();
    let mut rng = Rng(21);
    for (rows, dim) in [(1, 576), (5, 67), (3, 1000), (2, 300)] {
        let (xs, ys, ws) = (rng.vec(rows * dim), rng.vec(rows * dim), rng.vec(dim));
        let (x, y, w, out) = (tensor(&mut b, &xs), tensor(&mut b, &ys), f32_weight(&mut b, &ws), b.alloc(rows * dim).unwrap());
        b.add_rms_norm(&x, &y, &w, &out, rows, dim, 1e-5).unwrap();
        let sum: Vec<f32> = xs.iter().zip(&ys).map(|(a, c)| a + c).collect();
        let mut want = Vec::new();
        for row in sum.chunks(dim) {
            let ms = row.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>() / dim as f64;
            let inv = 1.0 / (ms + 1e-5).sqrt();
            want.extend(row.iter().zip(&ws).map(|(v, g)| (f64::from(*v) * inv * f64::from(*g)) as f32));
        }
        assert_close(&format!("add_rms_norm x rows={rows} dim={dim}"), &b.read(&x, 0, rows * dim).unwrap(), &sum, 1e-7);
        assert_close(&format!("add_rms_norm out rows={rows} dim={dim}"), &b.read(&out, 0, rows * dim).unwrap(), &want, 1e-5);
    }
    let (x, w) = (tensor(&mut b, &[1.0; 8]), f32_weight(&mut b, &[1.0; 8]));
    assert!(b.add_rms_norm(&x, &x, &w, &x, 1, 8, 1e-5).is_err(), "aliased tensors are refused");
}

#[test]
fn matmul_bias_fused_equals_matmul_then_add_bias() {
    let ctx = context();
    let mut rng = Rng(31);
    for ty in types() {
        let cols = if ty.block_size() == 256 { 256 } else { 96 };
        let row_bytes = ty.bytes_for(cols as u64).unwrap();
        // one buffer, and at most 5 rows per buffer (67 rows in 14): the bias indexed by row0 + r
        for limit in [None, Some(5 * row_bytes + 3)] {
            let mut b = GpuBackend::with_options(ctx.clone(), GpuOptions { max_weight_binding: limit, ..Default::default() }).unwrap();
            for (rows, n) in [(67, 1), (37, 1), (67, 3)] {
                let w = b.upload(&desc(ty, rows, cols), &random_weight(&mut rng, ty, rows, cols)).unwrap();
                let (x, bias) = (tensor(&mut b, &rng.vec(n * cols)), f32_weight(&mut b, &rng.vec(rows)));
                let (fused, plain) = (b.alloc(n * rows).unwrap(), b.alloc(n * rows).unwrap());
                b.matmul_bias(&w, &x, &fused, n, &bias, rows).unwrap();
                b.matmul(&w, &x, &plain, n).unwrap();
                b.add_bias(&plain, &bias, n, rows).unwrap();
                let (got, want) = (b.read(&fused, 0, n * rows).unwrap(), b.read(&plain, 0, n * rows).unwrap());
                let same = got.iter().zip(&want).all(|(g, w)| g.to_bits() == w.to_bits());
                assert!(same, "{ty:?} rows={rows} n={n} limit={limit:?}: fused {got:?} vs {want:?}");
            }
        }
    }
}

#[test]
fn rope_store_kv_fused_equals_rope_then_copies() {
    let mut b = backend();
    let mut rng = Rng(22);
    // (tokens, heads, kv heads, head_dim, n_rot, pos0): odd counts, partial rotation.
    for (n, nh, nkv, hd, n_rot, pos0) in [(1, 9, 3, 64, 64, 37), (7, 6, 2, 40, 32, 5), (5, 2, 1, 96, 96, 500), (3, 5, 5, 18, 10, 0)] {
        for (neox, mscale) in [(false, 1.0f32), (true, 1.0), (true, 1.19)] {
            let p = RopeParams { theta: 10000.0, n_rot, neox, freq_scale: 0.75 };
            let kvd = nkv * hd;
            let cache_len = (pos0 + n + 2) * kvd;
            let (qs, ks, vs) = (rng.vec(n * nh * hd), rng.vec(n * kvd), rng.vec(n * kvd));
            let (q, k, v) = (tensor(&mut b, &qs), tensor(&mut b, &ks), tensor(&mut b, &vs));
            let (kc, vc) = (tensor(&mut b, &vec![7.0; cache_len]), tensor(&mut b, &vec![7.0; cache_len]));
            let ext = (mscale != 1.0).then_some(RopeExt { factors: None, mscale });
            let r = RopeStore { q: &q, k: &k, v: &v, k_cache: &kc, v_cache: &vc, n_tokens: n, n_head: nh, n_head_kv: nkv, head_dim: hd, pos0, rope: p, ext };
            let before = b.stats().dispatches;
            b.rope_store_kv(r).unwrap();
            assert_eq!(b.stats().dispatches - before, 1, "one pass");
            let (mut wq, mut wk) = (qs.clone(), ks.clone());
            rope_ref(&mut wq, n, nh, hd, pos0, p);
            rope_ref(&mut wk, n, nkv, hd, pos0, p);
            // mscale multiplies the rotated dimensions only.
            for v in wq.iter_mut().chain(wk.iter_mut()).enumerate().filter(|(i, _)| i % hd < n_rot).map(|(_, v)| v) {
                *v *= mscale;
            }
            let mut want_k = vec![7.0; cache_len];
            let mut want_v = vec![7.0; cache_len];
            want_k[pos0 * kvd..][..n * kvd].copy_from_slice(&wk);
            want_v[pos0 * kvd..][..n * kvd].copy_from_slice(&vs);
            let what = format!("rope_store_kv n={n} hd={hd} n_rot={n_rot} pos0={pos0} neox={neox} mscale={mscale}");
            assert_close(&format!("{what} q"), &b.read(&q, 0, qs.len()).unwrap(), &wq, 1e-4);
            assert_close(&format!("{what} k_cache"), &b.read(&kc, 0, cache_len).unwrap(), &want_k, 1e-4);
            assert_eq!(b.read(&vc, 0, cache_len).unwrap(), want_v, "{what} v_cache");
        }
    }
}

#[test]
fn rope_store_kv_with_factors_falls_back_to_separate_ops() {
    let mut b = backend();
    let mut rng = Rng(23);
    let (n, nh, nkv, hd, pos0) = (3, 4, 2, 32, 9);
    let p = RopeParams { theta: 500000.0, n_rot: hd, neox: true, freq_scale: 1.0 };
    let factors: Vec<f32> = (0..hd / 2).map(|i| 1.0 + i as f32).collect();
    let fw = f32_weight(&mut b, &factors);
    let (qs, ks, vs) = (rng.vec(n * nh * hd), rng.vec(n * nkv * hd), rng.vec(n * nkv * hd));
    let run = |b: &mut GpuBackend, fused: bool| {
        let (q, k, v) = (tensor(b, &qs), tensor(b, &ks), tensor(b, &vs));
        let (kc, vc) = (b.alloc((pos0 + n) * nkv * hd).unwrap(), b.alloc((pos0 + n) * nkv * hd).unwrap());
        let r = RopeStore { q: &q, k: &k, v: &v, k_cache: &kc, v_cache: &vc, n_tokens: n, n_head: nh, n_head_kv: nkv, head_dim: hd, pos0, rope: p, ext: Some(RopeExt { factors: Some(&fw), mscale: 1.0 }) };
        if fused { b.rope_store_kv(r).unwrap() } else { crate::backend::rope_store_kv_unfused(b, r).unwrap() }
        [b.read(&q, 0, qs.len()).unwrap(), b.read(&kc, 0, (pos0 + n) * nkv * hd).unwrap(), b.read(&vc, 0, (pos0 + n) * nkv * hd).unwrap()]
    };
    assert_eq!(run(&mut b, true), run(&mut b, false));
}
