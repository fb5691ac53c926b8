//! The block attention (`attention.rs`) against the scalar reference at odd shapes on every
//! machine this CPU runs, and the property `tests/prefill_split.rs` rests on: a query's
//! result is the same bits in any tile (the backend's op, with its threads and batch splits:
//! `../attention_op_tests.rs`).

use super::attention::attention_reference;
use super::check::{attention_inputs, attention_params, ATTN_SHAPES};
use super::{attention_tiled, machines, Machine};
use crate::backend::AttnParams;
use crate::quant::synth::Rng;

/// Largest `|a − b|` over the outputs, relative to the largest `|v|`.
fn error(a: &[f32], b: &[f32], v: &[f32]) -> f32 {
    let vmax = v.iter().fold(0f32, |m, x| m.max(x.abs()));
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max) / vmax
}

/// Odd shapes beyond the shared ones: head sizes 64/128/odd, GQA 1/3/7, windows, softcap,
/// pos0 > 0, batches that are not multiples of the tile or the key block.
fn shapes() -> Vec<AttnParams> {
    let mut all: Vec<AttnParams> = ATTN_SHAPES.iter().map(|&s| attention_params(s)).collect();
    for (hd, n_head, n_head_kv) in [(64, 3, 3), (128, 21, 3), (40, 7, 1), (24, 9, 3), (5, 3, 1)] {
        for (n_tokens, pos0) in [(1, 0), (1, 100), (19, 0), (33, 31), (70, 1)] {
            for window in [None, Some(1), Some(31), Some(50)] {
                all.push(AttnParams { n_tokens, pos0, n_head, n_head_kv, head_dim: hd, scale: 0.3, window, softcap: None });
            }
            all.push(AttnParams { n_tokens, pos0, n_head, n_head_kv, head_dim: hd, scale: 0.3, window: Some(17), softcap: Some(5.0) });
        }
    }
    all
}

#[test]
fn every_machine_matches_the_scalar_reference_at_odd_shapes() {
    let mut rng = Rng(0xA77E_0017);
    let ms = machines();
    #[cfg(target_arch = "x86_64")]
    if super::simd_x86::has_avx2_fma_f16c() {
        assert!(ms.contains(&Machine::Avx2));
    }
    for p in shapes() {
        let (q, k, v) = attention_inputs(&mut rng, &p);
        let mut want = vec![0.0f32; q.len()];
        attention_reference(&q, &k, &v, &mut want, &p);
        for &m in &ms {
            let got = attention_tiled(m, &q, &k, &v, &p, 8, p.n_head / p.n_head_kv);
            let e = error(&got, &want, &v);
            assert!(e <= 1e-5, "{m:?} {p:?}: error {e}");
        }
    }
}

#[test]
fn large_scores_and_a_long_history_stay_exact_enough() {
    // Scores spanning far more than exp's range (masked keys, weights that underflow), and
    // a history of many key blocks with the maximum late (rescaling of the running output).
    let mut rng = Rng(3);
    let p = AttnParams { n_tokens: 5, pos0: 300, n_head: 4, n_head_kv: 2, head_dim: 64, scale: 1.0, window: None, softcap: None };
    let (q, mut k, v) = attention_inputs(&mut rng, &p);
    k.iter_mut().enumerate().for_each(|(i, x)| *x *= 1.0 + (i / 1000) as f32);
    let mut want = vec![0.0f32; q.len()];
    attention_reference(&q, &k, &v, &mut want, &p);
    for m in machines() {
        let got = attention_tiled(m, &q, &k, &v, &p, 8, 2);
        assert!(error(&got, &want, &v) <= 1e-5, "{m:?}");
    }
}

#[test]
fn a_query_gives_the_same_bits_in_any_tile() {
    let mut rng = Rng(17);
    for p in shapes() {
        let (q, k, v) = attention_inputs(&mut rng, &p);
        let group = p.n_head / p.n_head_kv;
        for m in machines() {
            let alone = attention_tiled(m, &q, &k, &v, &p, 1, 1);
            for (tokens, heads) in [(8, group), (3, 1), (5, group), (64, group)] {
                let got = attention_tiled(m, &q, &k, &v, &p, tokens, heads);
                assert!(got.iter().zip(&alone).all(|(a, b)| a.to_bits() == b.to_bits()), "{m:?} {p:?}: tile {tokens}×{heads}");
            }
        }
    }
}
