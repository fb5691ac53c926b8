//! Each configuration rule, with a malformed file that breaks it.

use crate::gguf::{parse_header, Value};
use crate::model::synthetic::tiny_llama;
use crate::model::{Config, ModelError};

fn config(extra: &[(&str, Value)]) -> Result<Config, ModelError> {
    Config::from_header(&parse_header(&tiny_llama(extra)).expect("the header parses"))
}

/// The key an `Invalid` error names (panics on any other result).
fn invalid_key(extra: &[(&str, Value)]) -> String {
    match config(extra) {
        Err(ModelError::Invalid { key, value, rule }) => {
            assert!(!value.is_empty() && !rule.is_empty());
            key
        }
        other => panic!("{extra:?}: {other:?}"),
    }
}

#[test]
fn the_tiny_model_is_valid() {
    let c = config(&[]).unwrap();
    assert_eq!((c.n_layer, c.n_embd, c.n_head, c.n_head_kv, c.head_dim, c.n_ff, c.n_vocab), (2, 8, 2, 1, 4, 16, 4));
}

#[test]
fn block_counts_the_directory_does_not_back_are_refused_before_allocating() {
    // The cases: 2^40 aborted, u64::MAX panicked, 0xFFFFFFFF hung.
    for n in [1u64 << 40, u64::MAX, 0xFFFF_FFFF, 0, 1, 3, 1024] {
        let err = config(&[("llama.block_count", Value::U64(n))]).unwrap_err();
        let text = err.to_string();
        assert!(matches!(err, ModelError::Invalid { .. }), "{n}: {err:?}");
        assert!(text.contains("llama.block_count") && text.contains(&n.to_string()), "{text}");
    }
    // A negative or non-integer count names its type.
    assert_eq!(invalid_key(&[("llama.block_count", Value::I32(-1))]), "llama.block_count");
    assert_eq!(invalid_key(&[("llama.block_count", Value::String("2".into()))]), "llama.block_count");
}

#[test]
fn every_head_and_width_rule_names_its_key() {
    let cases: &[(&str, Value)] = &[
        ("llama.attention.head_count", Value::U32(0)),
        ("llama.attention.head_count", Value::U64(1 << 40)),
        ("llama.attention.head_count_kv", Value::U32(0)),
        ("llama.attention.head_count_kv", Value::U32(3)), // more KV heads than heads
        ("llama.attention.key_length", Value::U32(0)),
        ("llama.attention.value_length", Value::U32(5)),
        ("llama.embedding_length", Value::U32(16)),
        ("llama.embedding_length", Value::U64(u64::MAX)),
        ("llama.feed_forward_length", Value::U32(17)),
        ("llama.feed_forward_length", Value::U32(0)),
        ("llama.context_length", Value::U32(0)),
        ("llama.rope.dimension_count", Value::U32(3)),
        ("llama.rope.dimension_count", Value::U32(6)),
        ("llama.attention.layer_norm_rms_epsilon", Value::F32(f32::NAN)),
        ("llama.rope.freq_base", Value::F32(-1.0)),
        ("llama.vocab_size", Value::U32(5)),
    ];
    for (key, value) in cases {
        assert_eq!(&invalid_key(&[(key, value.clone())]), key, "{value:?}");
    }
    // Heads × head size must match the projections: 2 × 8 ≠ attn_q's 8 columns.
    let err = config(&[("llama.attention.key_length", Value::U32(8)), ("llama.attention.value_length", Value::U32(8))]).unwrap_err();
    assert!(err.to_string().contains("llama.attention.head_count = 2") && err.to_string().contains("blk.0.attn_q.weight"), "{err}");
    // KV heads must divide heads: 4 heads of 2 sharing 3 KV heads.
    let four_heads = [
        ("llama.attention.head_count", Value::U32(4)),
        ("llama.attention.key_length", Value::U32(2)),
        ("llama.attention.value_length", Value::U32(2)),
        ("llama.rope.dimension_count", Value::U32(2)),
        ("llama.attention.head_count_kv", Value::U32(3)),
    ];
    assert_eq!(invalid_key(&four_heads), "llama.attention.head_count_kv");
    // A per-layer array where one number is expected is refused, not ignored.
    let array = Value::Array(crate::gguf::ValueType::U32, vec![Value::U32(1), Value::U32(1)]);
    assert_eq!(invalid_key(&[("llama.attention.head_count_kv", array)]), "llama.attention.head_count_kv");
}
