//! The block attention (`attention.rs`) against the scalar reference at odd shapes on every
//! machine this CPU runs, and the property `tests/prefill_split.rs` rests on: a query's
//! result is the same bits in any tile, in any batch split, on any number of threads.

use super::attention::{attention_reference, attention_tiled, machines, Machine};
use super::check::{attention_inputs, attention_params, ATTN_SHAPES};
use crate::backend::cpu::ops;
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
fn a_query_gives_the_same_bits_in_any_tile_split_or_thread_count() {
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
        // The backend's op (threads, its own tiles) gives the fastest machine's bits, and a
        // batch split after any token gives the same rows as one batch.
        let fastest = *machines().last().unwrap();
        let want = attention_tiled(fastest, &q, &k, &v, &p, 1, 1);
        let mut got = vec![0.0f32; q.len()];
        ops::attention(&q, &k, &v, &mut got, &p);
        assert!(got.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()), "op {p:?}");
        let row = p.n_head * p.head_dim;
        for cut in [1, p.n_tokens / 2, p.n_tokens.saturating_sub(1)] {
            if cut == 0 || cut >= p.n_tokens {
                continue;
            }
            let first = AttnParams { n_tokens: cut, ..p };
            let rest = AttnParams { n_tokens: p.n_tokens - cut, pos0: p.pos0 + cut, ..p };
            let mut split = vec![0.0f32; q.len()];
            ops::attention(&q[..cut * row], &k, &v, &mut split[..cut * row], &first);
            ops::attention(&q[cut * row..], &k, &v, &mut split[cut * row..], &rest);
            assert!(split.iter().zip(&want).all(|(a, b)| a.to_bits() == b.to_bits()), "split at {cut}: {p:?}");
        }
    }
}

#[test]
fn the_op_handles_empty_and_single_position_inputs() {
    let p = AttnParams { n_tokens: 0, pos0: 0, n_head: 2, n_head_kv: 1, head_dim: 4, scale: 1.0, window: None, softcap: None };
    ops::attention(&[], &[], &[], &mut [], &p);
    // One position: the output is V whatever the scores.
    let p = AttnParams { n_tokens: 1, pos0: 0, n_head: 3, n_head_kv: 1, head_dim: 9, scale: 1.0, window: Some(4), softcap: Some(2.0) };
    let v: Vec<f32> = (0..9).map(|i| i as f32 - 3.5).collect();
    let mut out = vec![0.0f32; 27];
    ops::attention(&[1.0; 27], &[0.25; 9], &v, &mut out, &p);
    for o in out.chunks_exact(9) {
        assert_eq!(o, &v[..]);
    }
}
