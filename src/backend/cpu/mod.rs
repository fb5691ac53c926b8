//! The CPU backend: the reference every other backend is checked against.
//!
//! Plain Rust with f32 accumulation. Matrix products run directly on the quantized
//! blocks (never a dequantized copy of the model): by default the activations are quantized
//! to 8-bit blocks once per product and each row is an integer dot product
//! ([`kernels::dot_q8_fn`]), else rows are dotted with f32 activations
//! ([`kernels::dot_fn`]); rows are spread over threads natively and in the threaded wasm
//! build (feature `threads`) by a spinning pool on rayon's threads (`pool.rs`), and run on one
//! thread in the baseline wasm build.

#[cfg(test)]
mod attention_op_tests;
pub mod kernels;
mod ops;
#[cfg(any(not(target_arch = "wasm32"), feature = "threads"))]
mod pool;

mod vmath;

pub use ops::threads;

use super::{Activation, AttnParams, Backend, BackendError, RopeExt, RopeParams, WeightDesc};
use crate::gguf::TensorBytes;
use crate::quant::{self, GgmlType};
use std::cell::RefCell;
use std::rc::Rc;

/// An f32 activation buffer.
#[derive(Debug, Clone)]
pub struct CpuTensor(Rc<RefCell<Vec<f32>>>);

/// A weight kept in its GGUF block format.
#[derive(Debug)]
pub struct CpuWeight {
    desc: WeightDesc,
    bytes: Vec<u8>,
    row_bytes: usize,
}

impl CpuWeight {
    /// The weight's shape and format.
    pub fn desc(&self) -> &WeightDesc {
        &self.desc
    }
    fn row(&self, r: usize) -> &[u8] {
        &self.bytes[r * self.row_bytes..(r + 1) * self.row_bytes]
    }
    /// The weight as f32 (only for small vectors: norms and biases).
    fn to_f32(&self) -> Result<Vec<f32>, BackendError> {
        let mut out = vec![0.0; self.desc.cols() * self.desc.rows()];
        quant::dequantize(self.desc.ty, &self.bytes, &mut out)?;
        Ok(out)
    }
}

/// The CPU backend. `threads` is informational (rayon's global pool decides natively).
#[derive(Debug)]
pub struct CpuBackend {
    /// Norm/bias vectors are dequantized once and cached by weight address.
    small_cache: std::collections::HashMap<usize, Rc<Vec<f32>>>,
    /// Whether matrix products quantize activations to 8 bits (integer dot products).
    q8_activations: bool,
    scratch: ops::MatmulScratch,
}

impl Default for CpuBackend {
    fn default() -> CpuBackend {
        CpuBackend { small_cache: Default::default(), q8_activations: true, scratch: Default::default() }
    }
}

impl CpuBackend {
    /// Creates the backend: matrix products quantize the activations to 8-bit blocks and use
    /// integer dot products where the weight format has one (as llama.cpp does).
    pub fn new() -> CpuBackend {
        CpuBackend::default()
    }

    /// Creates a backend whose matrix products dot the weights with f32 activations (slower;
    /// no activation rounding), for comparisons with the 8-bit path.
    pub fn with_f32_activations() -> CpuBackend {
        CpuBackend { q8_activations: false, ..CpuBackend::default() }
    }

    fn vector(&mut self, w: &CpuWeight, len: usize, op: &'static str) -> Result<Rc<Vec<f32>>, BackendError> {
        let key = w as *const CpuWeight as usize;
        if let Some(v) = self.small_cache.get(&key) {
            if v.len() == len {
                return Ok(v.clone());
            }
        }
        let v = w.to_f32()?;
        if v.len() != len {
            return Err(shape(op, format!("{} has {} elements, expected {len}", w.desc.name, v.len())));
        }
        let v = Rc::new(v);
        self.small_cache.insert(key, v.clone());
        Ok(v)
    }
}

fn shape(op: &'static str, detail: String) -> BackendError {
    BackendError::Shape { op, detail }
}

fn check_len(op: &'static str, what: &str, have: usize, need: usize) -> Result<(), BackendError> {
    if have < need {
        return Err(shape(op, format!("{what} has {have} elements, needs {need}")));
    }
    Ok(())
}

fn check_distinct(op: &'static str, a: &CpuTensor, b: &CpuTensor) -> Result<(), BackendError> {
    if Rc::ptr_eq(&a.0, &b.0) {
        return Err(shape(op, "input and output are the same tensor".into()));
    }
    Ok(())
}

impl Backend for CpuBackend {
    type Tensor = CpuTensor;
    type Weight = CpuWeight;

    /// wasm32: the weights (in their block format), the KV cache and every buffer live in the
    /// instance's linear memory, at most 4 GiB.
    fn memory_cap(&self) -> Option<u64> {
        cfg!(target_arch = "wasm32").then_some(1 << 32)
    }

    fn describe(&self) -> String {
        format!("cpu ({} threads)", ops::threads())
    }

    fn contiguous_weights(&self) -> bool {
        true
    }

    fn upload(&mut self, desc: &WeightDesc, bytes: &[u8]) -> Result<CpuWeight, BackendError> {
        store_weight(desc, bytes.len(), |owned| owned.extend_from_slice(bytes))
    }

    /// A one-piece tensor (up to [`crate::gguf::PIECE`] bytes, or any size when the reader
    /// assembled it whole: [`Backend::contiguous_weights`]) is kept as it arrived; pieces are
    /// copied into the weight's own buffer.
    fn upload_pieces(&mut self, desc: &WeightDesc, bytes: TensorBytes) -> Result<CpuWeight, BackendError> {
        match bytes.into_single() {
            Ok(owned) => {
                let row_bytes = weight_layout(desc, owned.len())?;
                Ok(CpuWeight { desc: desc.clone(), bytes: owned, row_bytes })
            }
            Err(bytes) => store_weight(desc, bytes.len(), |owned| bytes.pieces().for_each(|p| owned.extend_from_slice(p))),
        }
    }

    fn alloc(&mut self, len: usize) -> Result<CpuTensor, BackendError> {
        let v = zeroed(len).ok_or(BackendError::OutOfMemory { what: "tensor".into(), bytes: len as u64 * 4 })?;
        Ok(CpuTensor(Rc::new(RefCell::new(v))))
    }

    fn write(&mut self, t: &CpuTensor, offset: usize, data: &[f32]) -> Result<(), BackendError> {
        let mut t = t.0.borrow_mut();
        check_len("write", "tensor", t.len(), offset.saturating_add(data.len()))?;
        t[offset..offset + data.len()].copy_from_slice(data);
        Ok(())
    }

    fn read(&mut self, t: &CpuTensor, offset: usize, len: usize) -> Result<Vec<f32>, BackendError> {
        let t = t.0.borrow();
        check_len("read", "tensor", t.len(), offset.saturating_add(len))?;
        Ok(t[offset..offset + len].to_vec())
    }

    fn embed(&mut self, table: &CpuWeight, tokens: &[u32], out: &CpuTensor) -> Result<(), BackendError> {
        let cols = table.desc.cols();
        let rows = table.desc.rows();
        let mut out = out.0.borrow_mut();
        check_len("embed", "out", out.len(), tokens.len() * cols)?;
        for (i, &tok) in tokens.iter().enumerate() {
            let r = tok as usize;
            if r >= rows {
                return Err(shape("embed", format!("token id {tok} ≥ vocabulary {rows}")));
            }
            quant::dequantize(table.desc.ty, table.row(r), &mut out[i * cols..(i + 1) * cols])?;
        }
        Ok(())
    }

    fn matmul(&mut self, w: &CpuWeight, x: &CpuTensor, out: &CpuTensor, n: usize) -> Result<(), BackendError> {
        check_distinct("matmul", x, out)?;
        let (cols, rows) = (w.desc.cols(), w.desc.rows());
        let x = x.0.borrow();
        let mut out = out.0.borrow_mut();
        check_len("matmul", "x", x.len(), n * cols)?;
        check_len("matmul", "out", out.len(), n * rows)?;
        let (q8, scratch) = (self.q8_activations, &mut self.scratch);
        ops::matmul(w.desc.ty, &w.bytes, w.row_bytes, rows, cols, &x[..n * cols], &mut out[..n * rows], n, q8, scratch)
    }

    fn rms_norm(&mut self, x: &CpuTensor, w: &CpuWeight, out: &CpuTensor, rows: usize, dim: usize, eps: f32) -> Result<(), BackendError> {
        check_distinct("rms_norm", x, out)?;
        let wv = self.vector(w, dim, "rms_norm")?;
        let x = x.0.borrow();
        let mut out = out.0.borrow_mut();
        check_len("rms_norm", "x", x.len(), rows * dim)?;
        check_len("rms_norm", "out", out.len(), rows * dim)?;
        for r in 0..rows {
            ops::rms_norm(&x[r * dim..(r + 1) * dim], &wv, eps, &mut out[r * dim..(r + 1) * dim]);
        }
        Ok(())
    }

    fn add_bias(&mut self, x: &CpuTensor, bias: &CpuWeight, rows: usize, dim: usize) -> Result<(), BackendError> {
        let b = self.vector(bias, dim, "add_bias")?;
        let mut x = x.0.borrow_mut();
        check_len("add_bias", "x", x.len(), rows * dim)?;
        for row in x[..rows * dim].chunks_exact_mut(dim) {
            row.iter_mut().zip(b.iter()).for_each(|(a, b)| *a += b);
        }
        Ok(())
    }

    fn rope(&mut self, x: &CpuTensor, n_tokens: usize, n_heads: usize, head_dim: usize, pos0: usize, p: RopeParams) -> Result<(), BackendError> {
        if p.n_rot > head_dim || p.n_rot % 2 != 0 {
            return Err(shape("rope", format!("n_rot {} vs head_dim {head_dim}", p.n_rot)));
        }
        let mut x = x.0.borrow_mut();
        check_len("rope", "x", x.len(), n_tokens * n_heads * head_dim)?;
        ops::rope(&mut x, n_tokens, n_heads, head_dim, pos0, p, None, 1.0);
        Ok(())
    }

    fn rope_ext(&mut self, x: &CpuTensor, n_tokens: usize, n_heads: usize, head_dim: usize, pos0: usize, p: RopeParams, ext: RopeExt<'_, CpuWeight>) -> Result<(), BackendError> {
        if p.n_rot > head_dim || p.n_rot % 2 != 0 {
            return Err(shape("rope", format!("n_rot {} vs head_dim {head_dim}", p.n_rot)));
        }
        let factors = match ext.factors {
            Some(w) => Some(self.vector(w, p.n_rot / 2, "rope")?),
            None => None,
        };
        let mut x = x.0.borrow_mut();
        check_len("rope", "x", x.len(), n_tokens * n_heads * head_dim)?;
        ops::rope(&mut x, n_tokens, n_heads, head_dim, pos0, p, factors.as_deref().map(Vec::as_slice), ext.mscale);
        Ok(())
    }

    fn copy(&mut self, src: &CpuTensor, src_off: usize, dst: &CpuTensor, dst_off: usize, len: usize) -> Result<(), BackendError> {
        check_distinct("copy", src, dst)?;
        let s = src.0.borrow();
        let mut d = dst.0.borrow_mut();
        check_len("copy", "src", s.len(), src_off.saturating_add(len))?;
        check_len("copy", "dst", d.len(), dst_off.saturating_add(len))?;
        d[dst_off..dst_off + len].copy_from_slice(&s[src_off..src_off + len]);
        Ok(())
    }

    fn attention(&mut self, q: &CpuTensor, k_cache: &CpuTensor, v_cache: &CpuTensor, out: &CpuTensor, p: AttnParams) -> Result<(), BackendError> {
        check_distinct("attention", q, out)?;
        if p.n_head_kv == 0 || p.n_head % p.n_head_kv != 0 {
            return Err(shape("attention", format!("{} heads over {} kv heads", p.n_head, p.n_head_kv)));
        }
        let q = q.0.borrow();
        let k = k_cache.0.borrow();
        let v = v_cache.0.borrow();
        let mut out = out.0.borrow_mut();
        let q_len = p.n_tokens * p.n_head * p.head_dim;
        let kv_len = (p.pos0 + p.n_tokens) * p.n_head_kv * p.head_dim;
        check_len("attention", "q", q.len(), q_len)?;
        check_len("attention", "out", out.len(), q_len)?;
        check_len("attention", "k_cache", k.len(), kv_len)?;
        check_len("attention", "v_cache", v.len(), kv_len)?;
        ops::attention(&q[..q_len], &k[..kv_len], &v[..kv_len], &mut out[..q_len], &p);
        Ok(())
    }

    fn add_assign(&mut self, x: &CpuTensor, y: &CpuTensor, len: usize) -> Result<(), BackendError> {
        check_distinct("add_assign", x, y)?;
        let y = y.0.borrow();
        let mut x = x.0.borrow_mut();
        check_len("add_assign", "x", x.len(), len)?;
        check_len("add_assign", "y", y.len(), len)?;
        x[..len].iter_mut().zip(&y[..len]).for_each(|(a, b)| *a += b);
        Ok(())
    }

    fn glu(&mut self, gate: &CpuTensor, up: &CpuTensor, len: usize, act: Activation) -> Result<(), BackendError> {
        check_distinct("glu", gate, up)?;
        let up = up.0.borrow();
        let mut g = gate.0.borrow_mut();
        check_len("glu", "gate", g.len(), len)?;
        check_len("glu", "up", up.len(), len)?;
        match act {
            Activation::Silu => vmath::silu_glu(&mut g[..len], &up[..len]),
            Activation::Gelu => {
                for (g, u) in g[..len].iter_mut().zip(&up[..len]) {
                    *g = ops::activate(*g, act) * u;
                }
            }
        }
        Ok(())
    }

    fn scale(&mut self, x: &CpuTensor, len: usize, s: f32) -> Result<(), BackendError> {
        let mut x = x.0.borrow_mut();
        check_len("scale", "x", x.len(), len)?;
        x[..len].iter_mut().for_each(|a| *a *= s);
        Ok(())
    }

    fn softcap(&mut self, x: &CpuTensor, len: usize, cap: f32) -> Result<(), BackendError> {
        let mut x = x.0.borrow_mut();
        check_len("softcap", "x", x.len(), len)?;
        x[..len].iter_mut().for_each(|a| *a = cap * (*a / cap).tanh());
        Ok(())
    }

    fn argmax(&mut self, x: &CpuTensor, offset: usize, len: usize) -> Result<u32, BackendError> {
        let x = x.0.borrow();
        check_len("argmax", "x", x.len(), offset.saturating_add(len))?;
        Ok(ops::argmax(&x[offset..offset + len]) as u32)
    }
}

/// `len` zeros, or `None` when the allocation fails. Allocated zeroed (`calloc`), not written:
/// memory fresh from the system is already zero, so a KV cache for 2048 positions (94 MB on
/// SmolLM2) costs no page until a position is used (writing the zeros touched every page:
/// most of `finish_load` in the browser, and resident memory natively).
fn zeroed(len: usize) -> Option<Vec<f32>> {
    if len == 0 {
        return Some(Vec::new());
    }
    let layout = std::alloc::Layout::array::<f32>(len).ok()?;
    // SAFETY: `layout` has a non-zero size.
    let p = unsafe { std::alloc::alloc_zeroed(layout) } as *mut f32;
    if p.is_null() {
        return None;
    }
    // SAFETY: `p` is a live allocation of the global allocator with the layout of `len` f32
    // (so capacity `len`), and all-zero bytes are valid f32 values (0.0).
    Some(unsafe { Vec::from_raw_parts(p, len, len) })
}

/// Whether a block type can be used as a matrix on the CPU backend.
pub fn supports(ty: GgmlType) -> bool {
    kernels::dot_fn(ty).is_ok()
}

/// Checks `len` bytes fit `desc`, then copies them (`fill`) into an exactly-sized buffer.
fn store_weight(desc: &WeightDesc, len: usize, fill: impl FnOnce(&mut Vec<u8>)) -> Result<CpuWeight, BackendError> {
    let row_bytes = weight_layout(desc, len)?;
    let mut owned = Vec::new();
    owned
        .try_reserve_exact(len)
        .map_err(|_| BackendError::OutOfMemory { what: desc.name.clone(), bytes: len as u64 })?;
    fill(&mut owned);
    Ok(CpuWeight { desc: desc.clone(), bytes: owned, row_bytes })
}

/// Checks a weight of `len` bytes against its shape and format; returns its row size.
fn weight_layout(desc: &WeightDesc, len: usize) -> Result<usize, BackendError> {
    let cols = desc.cols();
    let rows = desc.rows();
    let row_bytes = desc.ty.bytes_for(cols as u64).ok_or(quant::QuantError::NotBlockAligned {
        ty: desc.ty,
        elems: cols,
        block: desc.ty.block_size(),
    })? as usize;
    let need = row_bytes.checked_mul(rows).ok_or_else(|| shape("upload", "size overflow".into()))?;
    if len != need {
        return Err(quant::QuantError::BadLength { ty: desc.ty, elems: cols.saturating_mul(rows), expected: need, got: len }.into());
    }
    // Refuse formats we cannot compute with now, not at the first token.
    if desc.dims.len() > 1 {
        kernels::dot_fn(desc.ty)?;
    }
    Ok(row_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zeroed_allocations_are_zero_and_fail_as_values() {
        assert_eq!(zeroed(0), Some(Vec::new()));
        let v = zeroed(1 << 20).unwrap();
        assert_eq!(v.len(), 1 << 20);
        assert!(v.iter().all(|&x| x == 0.0));
        assert_eq!(zeroed(usize::MAX / 2), None, "an impossible size is None, not a panic");
        let mut b = CpuBackend::new();
        assert!(matches!(b.alloc(usize::MAX / 8), Err(BackendError::OutOfMemory { .. })));
    }
}
