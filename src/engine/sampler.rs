//! Token sampling: repetition penalty → top-k → top-p → min-p → temperature → draw,
//! the order llama.cpp's default sampler chain uses. Seeded, so the same seed and
//! logits give the same tokens on every platform.

/// Sampling parameters. `temperature <= 0` means greedy (argmax).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SamplerParams {
    pub temperature: f32,
    /// Keep the `top_k` most likely tokens (0 = all).
    pub top_k: usize,
    /// Keep the smallest set whose probability reaches `top_p` (1 = all).
    pub top_p: f32,
    /// Drop tokens whose probability is below `min_p` × the top probability (0 = off).
    pub min_p: f32,
    /// Divide positive (multiply negative) logits of recently seen tokens (1 = off).
    pub repeat_penalty: f32,
    /// How many recent tokens the penalty looks at.
    pub repeat_last_n: usize,
    pub seed: u64,
}

impl Default for SamplerParams {
    fn default() -> Self {
        // The API default (JS and wasm requests without a temperature); the CLI passes its own.
        SamplerParams { temperature: 0.7, top_k: 40, top_p: 0.95, min_p: 0.05, repeat_penalty: 1.0, repeat_last_n: 64, seed: 0 }
    }
}

impl SamplerParams {
    /// Greedy decoding.
    pub fn greedy() -> Self {
        SamplerParams { temperature: 0.0, ..Default::default() }
    }
}

/// SplitMix64 (Steele et al. 2014): tiny, fast, and identical on every platform.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    /// Uniform in [0, 1).
    fn next_f32(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// A seeded sampler.
#[derive(Debug, Clone)]
pub struct Sampler {
    params: SamplerParams,
    rng: Rng,
}

impl Sampler {
    pub fn new(params: SamplerParams) -> Sampler {
        Sampler { params, rng: Rng(params.seed) }
    }

    /// True when this sampler only needs the argmax (the GPU can then read back 4 bytes).
    pub fn is_greedy(&self) -> bool {
        self.params.temperature <= 0.0 && self.params.repeat_penalty == 1.0
    }

    /// Picks the next token from `logits` given the tokens so far (for the penalty).
    pub fn sample(&mut self, logits: &[f32], history: &[u32]) -> u32 {
        let p = self.params;
        let mut cand: Vec<(u32, f32)> = logits.iter().enumerate().map(|(i, &l)| (i as u32, l)).collect();
        if p.repeat_penalty != 1.0 && p.repeat_penalty > 0.0 {
            let recent = &history[history.len().saturating_sub(p.repeat_last_n)..];
            let mut seen: Vec<u32> = recent.to_vec();
            seen.sort_unstable();
            seen.dedup();
            for id in seen {
                if let Some(c) = cand.get_mut(id as usize) {
                    c.1 = if c.1 > 0.0 { c.1 / p.repeat_penalty } else { c.1 * p.repeat_penalty };
                }
            }
        }
        // Tokens masked out by a constraint (-inf) can never be drawn, not even by the
        // rounding fallback at the end.
        if cand.iter().any(|c| c.1 > f32::NEG_INFINITY) {
            cand.retain(|c| c.1 > f32::NEG_INFINITY);
        }
        if p.temperature <= 0.0 {
            return argmax(&cand);
        }
        let by_logit_desc = |a: &(u32, f32), b: &(u32, f32)| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0));
        if p.top_k > 0 && p.top_k < cand.len() {
            cand.select_nth_unstable_by(p.top_k - 1, by_logit_desc);
            cand.truncate(p.top_k);
        }
        cand.sort_unstable_by(by_logit_desc);
        let probs = softmax(&cand, 1.0);
        let mut keep = cand.len();
        if p.top_p < 1.0 {
            let mut acc = 0.0;
            for (i, pr) in probs.iter().enumerate() {
                acc += pr;
                if acc >= p.top_p {
                    keep = i + 1;
                    break;
                }
            }
        }
        if p.min_p > 0.0 {
            let floor = probs[0] * p.min_p;
            keep = keep.min(probs.iter().take_while(|&&pr| pr >= floor).count().max(1));
        }
        cand.truncate(keep.max(1));
        let probs = softmax(&cand, p.temperature);
        let r = self.rng.next_f32();
        let mut acc = 0.0;
        for (c, pr) in cand.iter().zip(&probs) {
            acc += pr;
            if r < acc {
                return c.0;
            }
        }
        cand[cand.len() - 1].0
    }
}

fn argmax(cand: &[(u32, f32)]) -> u32 {
    let mut best = (0u32, f32::NEG_INFINITY);
    for &c in cand {
        if c.1 > best.1 {
            best = c;
        }
    }
    best.0
}

fn softmax(cand: &[(u32, f32)], temperature: f32) -> Vec<f32> {
    let max = cand.iter().map(|c| c.1).fold(f32::NEG_INFINITY, f32::max);
    let e: Vec<f32> = cand.iter().map(|c| ((c.1 - max) / temperature).exp()).collect();
    let sum: f32 = e.iter().sum();
    e.into_iter().map(|v| v / sum).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn logits() -> Vec<f32> {
        (0..100).map(|i| ((i * 37) % 100) as f32 / 10.0).collect()
    }

    #[test]
    fn greedy_is_argmax() {
        let l = logits();
        let best = l.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0 as u32;
        assert_eq!(Sampler::new(SamplerParams::greedy()).sample(&l, &[]), best);
    }

    #[test]
    fn same_seed_same_tokens_and_different_seed_differs() {
        let l: Vec<f32> = (0..50).map(|i| (i % 7) as f32 * 0.1).collect();
        let p = SamplerParams { temperature: 1.0, top_k: 0, top_p: 1.0, min_p: 0.0, seed: 42, ..Default::default() };
        let run = |p| {
            let mut s = Sampler::new(p);
            (0..32).map(|_| s.sample(&l, &[])).collect::<Vec<_>>()
        };
        assert_eq!(run(p), run(p));
        assert_ne!(run(p), run(SamplerParams { seed: 43, ..p }));
    }

    #[test]
    fn top_k_one_is_greedy() {
        let l = logits();
        let p = SamplerParams { temperature: 5.0, top_k: 1, seed: 7, ..Default::default() };
        let g = Sampler::new(SamplerParams::greedy()).sample(&l, &[]);
        let mut s = Sampler::new(p);
        assert!((0..20).all(|_| s.sample(&l, &[]) == g));
    }

    #[test]
    fn min_p_and_top_p_restrict_the_support() {
        let mut l = vec![-10.0f32; 10];
        l[3] = 5.0;
        l[4] = 4.9;
        let p = SamplerParams { temperature: 1.0, top_k: 0, top_p: 1.0, min_p: 0.5, seed: 1, ..Default::default() };
        let mut s = Sampler::new(p);
        assert!((0..100).all(|_| matches!(s.sample(&l, &[]), 3 | 4)));
        let mut s = Sampler::new(SamplerParams { top_p: 0.4, min_p: 0.0, ..p });
        assert!((0..100).all(|_| s.sample(&l, &[]) == 3));
    }

    #[test]
    fn repetition_penalty_demotes_seen_tokens() {
        let mut l = vec![0.0f32; 4];
        l[1] = 2.0;
        l[2] = 1.5;
        let p = SamplerParams { repeat_penalty: 2.0, ..SamplerParams::greedy() };
        assert_eq!(Sampler::new(p).sample(&l, &[1]), 2);
    }
}
