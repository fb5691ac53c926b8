// Causal grouped-query attention over the KV cache, one workgroup per (head, token).
// Keys are visited in tiles of WG with an online softmax (Milakov & Gimelshein 2018,
// as in FlashAttention): per tile, one thread scores one key, then each thread updates
// the output dimensions it owns. Head size ≤ 4 · WG.
//   s_j = scale · q·k_j (soft-capped: cap · tanh(s_j / cap)), j in [pos - window + 1, pos]
//   out = Σ_j softmax(s)_j v_j

const WG: u32 = 64u;
const DIMS_PER_THREAD: u32 = 4u;

struct Params {
    n_tokens: u32,
    pos0: u32,
    n_head: u32,
    n_head_kv: u32,
    head_dim: u32,
    window: u32,   // 0: no sliding window
    scale: f32,
    softcap: f32,  // 0: no soft-capping
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> k_cache: array<f32>;
@group(0) @binding(3) var<storage, read> v_cache: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

var<workgroup> q_row: array<f32, 256>;
var<workgroup> probs: array<f32, WG>;
var<workgroup> red: array<f32, WG>;

const NEG_BIG: f32 = -1.0e30;

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let h = wid.x;
    let t = wid.y;
    let hd = p.head_dim;
    let pos = p.pos0 + t;
    let kv_off = (h / (p.n_head / p.n_head_kv)) * hd;
    let kv_stride = p.n_head_kv * hd;
    var lo = 0u;
    if (p.window > 0u && pos + 1u > p.window) { lo = pos + 1u - p.window; }

    let q_off = (t * p.n_head + h) * hd;
    for (var d = lid.x; d < hd; d += WG) { q_row[d] = q[q_off + d]; }
    workgroupBarrier();

    var m = NEG_BIG;
    var l = 0.0;
    var acc: array<f32, DIMS_PER_THREAD>;
    for (var j0 = lo; j0 <= pos; j0 += WG) {
        let j = j0 + lid.x;
        var s = NEG_BIG;
        if (j <= pos) {
            let kb = j * kv_stride + kv_off;
            var dotp = 0.0;
            for (var d = 0u; d < hd; d++) { dotp += q_row[d] * k_cache[kb + d]; }
            s = dotp * p.scale;
            if (p.softcap > 0.0) { s = p.softcap * tanh(clamp(s / p.softcap, -15.0, 15.0)); }
        }
        red[lid.x] = s;
        workgroupBarrier();
        for (var st = WG / 2u; st > 0u; st >>= 1u) {
            if (lid.x < st) { red[lid.x] = max(red[lid.x], red[lid.x + st]); }
            workgroupBarrier();
        }
        let m_new = max(m, red[0]);
        workgroupBarrier();
        var pj = 0.0;
        if (j <= pos) { pj = exp(s - m_new); }
        probs[lid.x] = pj;
        red[lid.x] = pj;
        workgroupBarrier();
        for (var st = WG / 2u; st > 0u; st >>= 1u) {
            if (lid.x < st) { red[lid.x] += red[lid.x + st]; }
            workgroupBarrier();
        }
        let f = exp(m - m_new);
        l = l * f + red[0];
        let n_keys = min(WG, pos + 1u - j0);
        for (var i = 0u; i < DIMS_PER_THREAD; i++) {
            let d = lid.x + i * WG;
            if (d < hd) {
                var a = acc[i] * f;
                for (var jj = 0u; jj < n_keys; jj++) {
                    a += probs[jj] * v_cache[(j0 + jj) * kv_stride + kv_off + d];
                }
                acc[i] = a;
            }
        }
        m = m_new;
        workgroupBarrier();
    }
    for (var i = 0u; i < DIMS_PER_THREAD; i++) {
        let d = lid.x + i * WG;
        if (d < hd) { out[q_off + d] = acc[i] / l; }
    }
}
