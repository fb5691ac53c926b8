//! A short speed probe of one backend, for `backend: "auto"` in the browser: a few "steps",
//! each shaped like a decoded token's work (several matrix–vector products through distinct
//! weights, then one read of the result, which on WebGPU is one submit and one readback).
//! The caller times the steps (the clock is the platform's) and compares backends by the
//! bytes of weights they get through per millisecond.

use crate::backend::{Backend, BackendError, WeightDesc};
use crate::quant::synth::{random_weight, Rng};
use crate::quant::GgmlType;

/// Largest probe the callers may ask for: 64 Mi weights in all (the probe must stay cheap).
const MAX_WEIGHTS: usize = 1 << 26;

/// What a probe step computes.
#[derive(Clone, Copy, Debug)]
pub struct ProbeShape {
    pub ty: GgmlType,
    pub rows: usize,
    pub cols: usize,
    /// Products per step (each through its own weight, as a layer's projections are).
    pub products: usize,
}

/// The weights and buffers of a probe on one backend.
pub struct Probe<B: Backend> {
    backend: B,
    weights: Vec<B::Weight>,
    x: B::Tensor,
    out: B::Tensor,
    /// Bytes of weights one step reads.
    pub bytes_per_step: usize,
}

impl<B: Backend> Probe<B> {
    /// Uploads `shape.products` random weights; refuses shapes out of range (`BadInput`).
    pub fn new(mut backend: B, shape: ProbeShape) -> Result<Probe<B>, BackendError> {
        let ProbeShape { ty, rows, cols, products } = shape;
        let total = rows.checked_mul(cols).and_then(|n| n.checked_mul(products));
        if rows == 0 || cols == 0 || products == 0 || !total.is_some_and(|n| n <= MAX_WEIGHTS) {
            return Err(BackendError::Shape { op: "probe", detail: format!("{products} x {rows} x {cols}: out of range (at most {MAX_WEIGHTS} weights)") });
        }
        let mut rng = Rng(0x9e3779b9);
        let bytes = random_weight(&mut rng, ty, rows, cols)
            .ok_or_else(|| BackendError::Shape { op: "probe", detail: format!("no {ty:?} weight of {cols} columns") })?;
        let mut weights = Vec::with_capacity(products);
        for i in 0..products {
            let desc = WeightDesc { name: format!("probe.{i}"), ty, dims: vec![cols, rows] };
            weights.push(backend.upload(&desc, &bytes)?);
        }
        let x = backend.alloc(cols)?;
        let xs: Vec<f32> = (0..cols).map(|_| rng.f()).collect();
        backend.write(&x, 0, &xs)?;
        let out = backend.alloc(rows)?;
        Ok(Probe { backend, weights, x, out, bytes_per_step: bytes.len() * products })
    }

    /// One step: every product, then one value read back (so the work has finished).
    pub async fn step(&mut self) -> Result<f32, BackendError> {
        for w in &self.weights {
            self.backend.matmul(w, &self.x, &self.out, 1)?;
        }
        Ok(self.backend.read_async(&self.out, 0, 1).await?.first().copied().unwrap_or(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::CpuBackend;

    fn block_on<F: std::future::Future>(f: F) -> F::Output {
        let waker = std::task::Waker::noop();
        let mut cx = std::task::Context::from_waker(waker);
        let mut f = std::pin::pin!(f);
        loop {
            if let std::task::Poll::Ready(v) = f.as_mut().poll(&mut cx) {
                return v;
            }
        }
    }

    #[test]
    fn a_step_computes_the_product_and_counts_its_bytes() {
        let shape = ProbeShape { ty: GgmlType::Q4_0, rows: 40, cols: 64, products: 3 };
        let mut p = Probe::new(CpuBackend::new(), shape).unwrap();
        assert_eq!(p.bytes_per_step, 3 * 40 * (64 / 32) * 18);
        let a = block_on(p.step()).unwrap();
        let b = block_on(p.step()).unwrap();
        assert!(a.is_finite() && a != 0.0);
        assert_eq!(a.to_bits(), b.to_bits(), "same weights, same input, same result");
    }

    #[test]
    fn shapes_out_of_range_are_refused() {
        for (rows, cols, products) in [(0, 64, 1), (64, 0, 1), (64, 64, 0), (1 << 14, 1 << 13, 1), (usize::MAX, 64, 2)] {
            let shape = ProbeShape { ty: GgmlType::Q4_0, rows, cols, products };
            assert!(Probe::new(CpuBackend::new(), shape).is_err(), "{rows} x {cols} x {products}");
        }
    }
}
