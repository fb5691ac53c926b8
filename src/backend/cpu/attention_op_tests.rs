//! The CPU backend's attention op (`ops::attention`: its tasks, threads and the batch splits a
//! prompt cache makes) gives every query the bits of that query computed alone on this
//! machine's kernels (`kernels/attention.rs`), as `tests/prefill_split.rs` needs.

use super::kernels::check::{attention_inputs, attention_params, ATTN_SHAPES};
use super::kernels::{attention_tiled, machines};
use super::ops;
use crate::backend::AttnParams;
use crate::quant::synth::Rng;

fn same_bits(a: &[f32], b: &[f32]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits())
}

#[test]
fn the_op_gives_each_query_its_own_bits_in_any_split_and_on_two_threads() {
    let mut rng = Rng(0x0B17);
    let mut shapes: Vec<AttnParams> = ATTN_SHAPES.iter().map(|&s| attention_params(s)).collect();
    // Prefills longer than a task's eight tokens and than a key block, with and without a window.
    shapes.push(AttnParams { n_tokens: 45, pos0: 7, n_head: 9, n_head_kv: 3, head_dim: 64, scale: 0.125, window: None, softcap: None });
    shapes.push(AttnParams { n_tokens: 40, pos0: 30, n_head: 8, n_head_kv: 1, head_dim: 40, scale: 0.3, window: Some(33), softcap: Some(10.0) });
    let fastest = *machines().last().expect("the portable machine at least");
    let pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap();
    for p in shapes {
        let (q, k, v) = attention_inputs(&mut rng, &p);
        let want = attention_tiled(fastest, &q, &k, &v, &p, 1, 1);
        let mut got = vec![0.0f32; q.len()];
        ops::attention(&q, &k, &v, &mut got, &p);
        assert!(same_bits(&got, &want), "one batch: {p:?}");
        let mut two = vec![0.0f32; q.len()];
        pool.install(|| ops::attention(&q, &k, &v, &mut two, &p));
        assert!(same_bits(&two, &want), "two threads: {p:?}");
        let row = p.n_head * p.head_dim;
        for cut in [1, 5, p.n_tokens / 2, p.n_tokens.saturating_sub(1)] {
            if cut == 0 || cut >= p.n_tokens {
                continue;
            }
            let first = AttnParams { n_tokens: cut, ..p };
            let rest = AttnParams { n_tokens: p.n_tokens - cut, pos0: p.pos0 + cut, ..p };
            let mut split = vec![0.0f32; q.len()];
            ops::attention(&q[..cut * row], &k, &v, &mut split[..cut * row], &first);
            ops::attention(&q[cut * row..], &k, &v, &mut split[cut * row..], &rest);
            assert!(same_bits(&split, &want), "split at {cut}: {p:?}");
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
