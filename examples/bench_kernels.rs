//! Kernel benchmark (not a test): GB/s achieved on the weight bytes by the matvec (decode)
//! and matmul (prefill) kernels per block type, and that as a fraction of the device's copy
//! bandwidth, measured in the same run by the copy kernel (bytes read + written).
//!
//! `cargo run --release --example bench_kernels [-- rows cols iters]`
//! On a software adapter (lavapipe) only the ratios mean anything.

use hearth::backend::gpu::{GpuBackend, GpuContext, GpuTensor};
use hearth::backend::{Backend, BackendError, WeightDesc};
use hearth::quant::GgmlType;
use std::time::Instant;

fn arg(i: usize, default: usize) -> usize {
    std::env::args().nth(i).and_then(|s| s.parse().ok()).unwrap_or(default)
}

/// Seconds for `iters` repetitions of `op`, recorded into one submission, after a warm-up.
fn time(b: &mut GpuBackend, probe: &GpuTensor, iters: usize, mut op: impl FnMut(&mut GpuBackend) -> Result<(), BackendError>) -> Result<f64, BackendError> {
    op(b)?;
    b.read(probe, 0, 1)?;
    let t = Instant::now();
    for _ in 0..iters {
        op(b)?;
    }
    b.read(probe, 0, 1)?; // waits for the GPU
    Ok(t.elapsed().as_secs_f64() / iters as f64)
}

fn main() -> Result<(), BackendError> {
    let (rows, cols, iters) = (arg(1, 2048), arg(2, 2048), arg(3, 20));
    let ctx = GpuContext::new_blocking()?;
    println!("{} | features {:?}", ctx.describe(), ctx.features);
    let mut b = GpuBackend::from_context(ctx)?;

    // Copy bandwidth: 16 MiB f32 read + 16 MiB written per iteration.
    let len = 4 << 20;
    let (src, dst) = (b.alloc(len)?, b.alloc(len)?);
    b.write(&src, 0, &vec![1.0; len])?;
    let s = time(&mut b, &dst, iters, |b| b.copy(&src, 0, &dst, 0, len))?;
    let copy_gbs = (2 * len * 4) as f64 / s / 1e9;
    println!("copy kernel: {:.2} GB/s (read + write)", copy_gbs);
    println!("{:<6} {:>10} {:>10} {:>9} {:>8} {:>9}", "type", "kernel", "weight MB", "GB/s", "of copy", "GFLOP/s");

    let x = b.alloc(64 * cols)?;
    b.write(&x, 0, &vec![0.5; 64 * cols])?;
    let out = b.alloc(64 * rows)?;
    for ty in [GgmlType::F32, GgmlType::F16, GgmlType::Q8_0, GgmlType::Q4_1, GgmlType::Q4_0] {
        let bytes_len = ty.bytes_for((rows * cols) as u64).unwrap_or(0) as usize;
        // arbitrary bytes are valid blocks except for f16 NaNs/infs, which do not affect timing
        let bytes: Vec<u8> = (0..bytes_len).map(|i| (i * 7 % 61) as u8).collect();
        let w = b.upload(&WeightDesc { name: "bench".into(), ty, dims: vec![cols, rows] }, &bytes)?;
        for (name, n) in [("matvec", 1usize), ("matmul", 64)] {
            let reps = if n > 1 { iters.div_ceil(5) } else { iters };
            let s = time(&mut b, &out, reps, |b| b.matmul(&w, &x, &out, n))?;
            let gbs = bytes_len as f64 / s / 1e9;
            let gflops = (2 * rows * cols * n) as f64 / s / 1e9;
            let label = if n > 1 { format!("{name}/{n}") } else { name.to_string() };
            println!("{:<6} {:>10} {:>10.2} {:>9.2} {:>7.0}% {:>9.2}", ty.name(), label, bytes_len as f64 / 1e6, gbs, 100.0 * gbs / copy_gbs, gflops);
        }
    }
    Ok(())
}
