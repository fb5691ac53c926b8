//! The loader on the tiny synthetic model (`model::synthetic`): a valid file loads and runs, the
//! context is clamped to the training length, and tensors past the declared file size fail as
//! soon as the header arrives (the configuration rules themselves: `model/validate/tests.rs`).

use crate::backend::cpu::CpuBackend;
use crate::backend::Backend;
use crate::engine::{EngineError, Loader};
use crate::gguf::parse_header;
use crate::model::synthetic::tiny_llama;
use crate::model::ModelOptions;

#[test]
fn the_tiny_model_is_valid_and_loads_and_runs() {
    let mut l = Loader::new(CpuBackend::new(), ModelOptions { n_ctx: 16, n_batch: 4 });
    let bytes = tiny_llama(&[]);
    l.set_total_size(bytes.len() as u64).unwrap();
    l.feed(&bytes).unwrap();
    let mut s = l.finish().unwrap();
    assert_eq!(s.n_ctx(), 16);
    let logits = s.prefill(&[0, 1, 2]).unwrap();
    assert_eq!(s.backend_mut().read(&logits, 0, 4).unwrap().len(), 4);
}

#[test]
fn a_context_beyond_training_is_clamped() {
    let mut l = Loader::new(CpuBackend::new(), ModelOptions { n_ctx: 1 << 40, n_batch: 4 });
    l.feed(&tiny_llama(&[])).unwrap();
    assert_eq!(l.finish().unwrap().n_ctx(), 64);
}

#[test]
fn tensors_past_the_end_fail_when_the_header_arrives() {
    let bytes = tiny_llama(&[]);
    let mut l = Loader::new(CpuBackend::new(), ModelOptions::default());
    // Claim a shorter file: the first tensor that does not fit is named at once.
    let header_end = parse_header(&bytes).unwrap().data_offset;
    l.set_total_size(header_end + 64).unwrap();
    let err = l.feed(&bytes[..header_end as usize]).unwrap_err();
    assert!(matches!(err, EngineError::Gguf(crate::gguf::Error::TensorOutOfBounds { .. })), "{err:?}");
    let mut l = Loader::new(CpuBackend::new(), ModelOptions::default());
    l.feed(&bytes[..10]).unwrap();
    assert!(l.set_total_size(bytes.len() as u64).is_err(), "too late once bytes were fed");
}
