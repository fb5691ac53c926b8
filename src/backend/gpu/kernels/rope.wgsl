// Rotary position embedding (RoFormer, arXiv 2104.09864) in place, as ggml_rope_ext:
// θ_i = (pos0 + t) · freq_scale · theta^(-2i / n_rot) for pair i < n_rot / 2, divided by
// factors[i] in `main_factors` (Llama 3 rope_freqs, LongRoPE); the rotated pair is multiplied
// by mscale (LongRoPE's attention factor, 1 otherwise). Dimensions past n_rot are untouched.
// Normal ordering rotates (2i, 2i+1); NeoX ordering rotates (i, i + n_rot/2).
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
    let half_rot = p.n_rot / 2u;
    let i = idx % half_rot;
    let th = idx / half_rot;  // token * n_heads + head
    let t = th / p.n_heads;
    let base = th * p.head_dim;
    var a = base + 2u * i;
    var b = a + 1u;
    if (p.neox != 0u) {
        a = base + i;
        b = a + half_rot;
    }
    let angle = f32(p.pos0 + t) * p.freq_scale * pow(p.theta, -2.0 * f32(i) / f32(p.n_rot)) / factor;
    let c = cos(angle) * p.mscale;
    let s = sin(angle) * p.mscale;
    let x0 = x[a];
    let x1 = x[b];
    x[a] = x0 * c - x1 * s;
    x[b] = x0 * s + x1 * c;
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
