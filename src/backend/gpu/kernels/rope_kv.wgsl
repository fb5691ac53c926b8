// RoPE of the queries and keys and the KV-cache store in one pass (rope.wgsl's rotation,
// then copy.wgsl's store, fused): q rotated in place; k rotated into k_cache and v copied into
// v_cache at element kv_off (the row of position pos0). Dimensions of k past n_rot are copied
// unrotated. One thread per q pair, then one per k element, then one per v element.

override WG: u32 = 64;

struct Params {
    n_tokens: u32,
    n_head: u32,
    n_head_kv: u32,
    head_dim: u32,
    pos0: u32,
    n_rot: u32,
    neox: u32,
    theta: f32,
    freq_scale: f32,
    mscale: f32,
    kv_off: u32,
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> q: array<f32>;
@group(0) @binding(2) var<storage, read> k: array<f32>;
@group(0) @binding(3) var<storage, read> v: array<f32>;
@group(0) @binding(4) var<storage, read_write> k_cache: array<f32>;
@group(0) @binding(5) var<storage, read_write> v_cache: array<f32>;

// cos and sin (times mscale) of pair i of a token t positions after pos0.
fn angle_cs(t: u32, i: u32) -> vec2<f32> {
    let angle = f32(p.pos0 + t) * p.freq_scale * pow(p.theta, -2.0 * f32(i) / f32(p.n_rot));
    return vec2<f32>(cos(angle), sin(angle)) * p.mscale;
}

// Element indices (a, b) of pair i in a head starting at base.
fn pair(base: u32, i: u32) -> vec2<u32> {
    if (p.neox != 0u) { return vec2<u32>(base + i, base + i + p.n_rot / 2u); }
    return vec2<u32>(base + 2u * i, base + 2u * i + 1u);
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = gid.x + gid.y * nwg.x * WG;
    let half_rot = p.n_rot / 2u;
    let n_q = p.n_tokens * p.n_head * half_rot;
    let kvd = p.n_head_kv * p.head_dim;
    let n_kv = p.n_tokens * kvd;
    if (idx < n_q) {
        let i = idx % half_rot;
        let th = idx / half_rot;  // token * n_head + head
        let ab = pair(th * p.head_dim, i);
        let cs = angle_cs(th / p.n_head, i);
        let x0 = q[ab.x];
        let x1 = q[ab.y];
        q[ab.x] = x0 * cs.x - x1 * cs.y;
        q[ab.y] = x0 * cs.y + x1 * cs.x;
    } else if (idx < n_q + n_kv) {
        let e = idx - n_q;
        let d = e % p.head_dim;
        var val = k[e];
        if (d < p.n_rot) {
            // This element's pair and whether it is the first (a) or second (b) of it.
            var i = d / 2u;
            var first = d % 2u == 0u;
            if (p.neox != 0u) {
                i = d % half_rot;
                first = d < half_rot;
            }
            let ab = pair(e - d, i);
            let cs = angle_cs(e / kvd, i);
            let x0 = k[ab.x];
            let x1 = k[ab.y];
            if (first) { val = x0 * cs.x - x1 * cs.y; } else { val = x0 * cs.y + x1 * cs.x; }
        }
        k_cache[p.kv_off + e] = val;
    } else if (idx < n_q + 2u * n_kv) {
        let e = idx - n_q - n_kv;
        v_cache[p.kv_off + e] = v[e];
    }
}
