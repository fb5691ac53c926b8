// RoPE of the queries and keys and the KV-cache store in one pass (rope_common.wgsl's
// rotation, as rope.wgsl, then copy.wgsl's store, fused): q rotated in place; k rotated into k_cache and v copied into
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

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let idx = gid.x + gid.y * nwg.x * WG;
    let r = Rope(p.n_rot, p.neox, p.theta, p.freq_scale, p.mscale);
    let half_rot = p.n_rot / 2u;
    let n_q = p.n_tokens * p.n_head * half_rot;
    let kvd = p.n_head_kv * p.head_dim;
    let n_kv = p.n_tokens * kvd;
    if (idx < n_q) {
        let i = idx % half_rot;
        let th = idx / half_rot;  // token * n_head + head
        let ab = rope_pair(r, th * p.head_dim, i);
        let y = rope_rotate(q[ab.x], q[ab.y], rope_cs(r, p.pos0 + th / p.n_head, i, 1.0));
        q[ab.x] = y.x;
        q[ab.y] = y.y;
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
            let ab = rope_pair(r, e - d, i);
            let y = rope_rotate(k[ab.x], k[ab.y], rope_cs(r, p.pos0 + e / kvd, i, 1.0));
            val = select(y.y, y.x, first);
        }
        k_cache[p.kv_off + e] = val;
    } else if (idx < n_q + 2u * n_kv) {
        let e = idx - n_q - n_kv;
        v_cache[p.kv_off + e] = v[e];
    }
}
