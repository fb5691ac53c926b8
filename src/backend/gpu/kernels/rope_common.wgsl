// Shared by rope.wgsl and rope_kv.wgsl (prepended by pipelines.rs): the rotation of one
// pair, as ggml_rope_ext. θ_i = pos · freq_scale · theta^(-2i / n_rot) / factor; the rotated
// pair is multiplied by mscale. Normal ordering pairs (2i, 2i+1); NeoX ordering (i, i + n_rot/2).

struct Rope { n_rot: u32, neox: u32, theta: f32, freq_scale: f32, mscale: f32 }

// cos and sin (times mscale) of pair i at position pos.
fn rope_cs(r: Rope, pos: u32, i: u32, factor: f32) -> vec2<f32> {
    let angle = f32(pos) * r.freq_scale * pow(r.theta, -2.0 * f32(i) / f32(r.n_rot)) / factor;
    return vec2<f32>(cos(angle), sin(angle)) * r.mscale;
}

// Element indices (a, b) of pair i in a head starting at base.
fn rope_pair(r: Rope, base: u32, i: u32) -> vec2<u32> {
    if (r.neox != 0u) { return vec2<u32>(base + i, base + i + r.n_rot / 2u); }
    return vec2<u32>(base + 2u * i, base + 2u * i + 1u);
}

// The first (x) and second (y) element of a pair after rotation by cs.
fn rope_rotate(x0: f32, x1: f32, cs: vec2<f32>) -> vec2<f32> {
    return vec2<f32>(x0 * cs.x - x1 * cs.y, x0 * cs.y + x1 * cs.x);
}
