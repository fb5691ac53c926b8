// Rotary position embedding (RoFormer, arXiv 2104.09864) in place, as ggml_rope_ext
// (rope_common.wgsl's rotation): position pos0 + t; `main_factors` divides θ_i by factors[i]
// (Llama 3 rope_freqs, LongRoPE). Dimensions past n_rot are untouched.
// One thread per (token, head, pair).

override WG: u32 = 64;

struct Params {
    n_tokens: u32,
    n_heads: u32,
    head_dim: u32,
    pos0: u32,
    n_rot: u32,
    neox: u32,
    theta: f32,
    freq_scale: f32,
    mscale: f32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
// Only `main_factors` binds this (Op::RopeFactors).
@group(0) @binding(2) var<storage, read> factors: array<f32>;

fn rotate(idx: u32, factor: f32) {
    let r = Rope(p.n_rot, p.neox, p.theta, p.freq_scale, p.mscale);
    let i = idx % (p.n_rot / 2u);
    let th = idx / (p.n_rot / 2u);  // token * n_heads + head
    let ab = rope_pair(r, th * p.head_dim, i);
    let y = rope_rotate(x[ab.x], x[ab.y], rope_cs(r, p.pos0 + th / p.n_heads, i, factor));
    x[ab.x] = y.x;
    x[ab.y] = y.y;
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = gid.x + gid.y * nwg.x * WG;
    if (idx >= p.n_tokens * p.n_heads * (p.n_rot / 2u)) { return; }
    rotate(idx, 1.0);
}

@compute @workgroup_size(WG)
fn main_factors(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = gid.x + gid.y * nwg.x * WG;
    if (idx >= p.n_tokens * p.n_heads * (p.n_rot / 2u)) { return; }
    rotate(idx, factors[idx % (p.n_rot / 2u)]);
}
