//! The configuration checked against the tensor directory, before any weight arrives.
//!
//! Rules (each failure names the metadata key that disagrees with the file):
//! - `{arch}.block_count` equals the number of `blk.N` blocks in the directory, numbered
//!   `0..N` without gaps (extra blocks would be silently ignored, missing ones fail late);
//! - `token_embd.weight` is `[embedding_length, n_vocab]`, and so is `output.weight` if present;
//! - in every block, the Q/K/V/output projections (or Phi-3's fused `attn_qkv`) match heads ×
//!   head size and the feed-forward tensors (or Phi-3's fused gate/up) match `feed_forward_length`.
//!
//! The model builders check every tensor again as they take it (norms included); this pass
//! exists so a malformed header fails before the download, and so no loop or allocation is
//! ever sized by a count the directory does not back.

use super::invalid;
use super::{Config, ModelError};
use crate::gguf::TensorInfo;
use std::collections::{HashMap, HashSet};

/// Checks `cfg` against `tensors`; see the module doc for the rules.
pub(crate) fn check_directory(cfg: &Config, tensors: &[TensorInfo]) -> Result<(), ModelError> {
    let by_name: HashMap<&str, &TensorInfo> = tensors.iter().map(|t| (t.name.as_str(), t)).collect();
    let k = |s: &str| format!("{}.{s}", cfg.arch);
    let blocks: HashSet<u64> = tensors.iter().filter_map(|t| block_index(&t.name)).collect();
    let key_blocks = k("block_count");
    if blocks.len() != cfg.n_layer {
        return Err(invalid(
            &key_blocks,
            cfg.n_layer,
            format!("must equal the number of blocks in the tensor directory ({})", blocks.len()),
        ));
    }
    if let Some(&beyond) = blocks.iter().find(|&&b| b >= cfg.n_layer as u64) {
        return Err(invalid(&key_blocks, cfg.n_layer, format!("the directory holds tensors of block {beyond}")));
    }
    let (d, qd, kvd, ff, v) = (cfg.n_embd, cfg.q_dim(), cfg.kv_dim(), cfg.n_ff, cfg.n_vocab);
    let check = |name: &str, want: [usize; 2], key: &str, value: usize| -> Result<(), ModelError> {
        let t = by_name.get(name).ok_or_else(|| ModelError::MissingTensor(name.to_string()))?;
        let want: Vec<u64> = want.iter().map(|&x| x as u64).collect();
        if t.dims != want {
            return Err(invalid(key, value, format!("tensor {name} has shape {:?}; the configuration needs {want:?}", t.dims)));
        }
        Ok(())
    };
    // The embedding and output: a wrong width blames embedding_length, a wrong row count
    // the vocabulary (`{arch}.vocab_size`, else the length of tokenizer.ggml.tokens).
    let vocab_key = if cfg.vocab_from_key { k("vocab_size") } else { "tokenizer.ggml.tokens".to_string() };
    for (name, required) in [("token_embd.weight", true), ("output.weight", false)] {
        match by_name.get(name) {
            None if required => return Err(ModelError::MissingTensor(name.to_string())),
            None => {}
            Some(t) if t.dims.first() != Some(&(d as u64)) => check(name, [d, v], &k("embedding_length"), d)?,
            Some(_) => check(name, [d, v], &vocab_key, v)?,
        }
    }
    let heads = k("attention.head_count");
    let heads_kv = k("attention.head_count_kv");
    let ff_key = k("feed_forward_length");
    for il in 0..cfg.n_layer {
        let n = |s: &str| format!("blk.{il}.{s}");
        // Q/K/V as three matrices, or one fused `attn_qkv` (Phi-3) of `[q | k | v]` rows.
        if by_name.contains_key(n("attn_qkv.weight").as_str()) {
            check(&n("attn_qkv.weight"), [d, qd + 2 * kvd], &heads, cfg.n_head)?;
        } else {
            check(&n("attn_q.weight"), [d, qd], &heads, cfg.n_head)?;
            check(&n("attn_k.weight"), [d, kvd], &heads_kv, cfg.n_head_kv)?;
            check(&n("attn_v.weight"), [d, kvd], &heads_kv, cfg.n_head_kv)?;
        }
        check(&n("attn_output.weight"), [qd, d], &heads, cfg.n_head)?;
        // Gate and up as two matrices, or one fused `ffn_up` of `[gate | up]` rows (Phi-3).
        if by_name.contains_key(n("ffn_gate.weight").as_str()) {
            check(&n("ffn_gate.weight"), [d, ff], &ff_key, ff)?;
            check(&n("ffn_up.weight"), [d, ff], &ff_key, ff)?;
        } else {
            check(&n("ffn_up.weight"), [d, 2 * ff], &ff_key, ff)?;
        }
        check(&n("ffn_down.weight"), [ff, d], &ff_key, ff)?;
    }
    Ok(())
}

/// `N` of a tensor named `blk.N.…`.
fn block_index(name: &str) -> Option<u64> {
    let rest = name.strip_prefix("blk.")?;
    let (n, _) = rest.split_once('.')?;
    n.parse().ok()
}

#[cfg(test)]
mod tests;
