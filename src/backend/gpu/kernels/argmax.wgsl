// Two-stage argmax on the GPU so that only 4 bytes are read back. Stage `partials`: each of
// n_groups workgroups reduces a strided share of x[offset .. offset + len] to its best
// (value, index); stage `finish`: one workgroup reduces those to the index. Ties go to the
// smaller index; NaN never wins.

const WG: u32 = 256u;
struct Params { len: u32, offset: u32, n_groups: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> partials: array<vec2<u32>>;  // (f32 bits, index)
@group(0) @binding(3) var<storage, read_write> result: array<u32>;

var<workgroup> best_v: array<f32, WG>;
var<workgroup> best_i: array<u32, WG>;

const NONE: u32 = 0xffffffffu;

fn better(v: f32, i: u32, bv: f32, bi: u32) -> bool {
    return i != NONE && (bi == NONE || v > bv || (v == bv && i < bi));
}

fn reduce(lid: u32) {
    workgroupBarrier();
    for (var s = WG / 2u; s > 0u; s >>= 1u) {
        if (lid < s && better(best_v[lid + s], best_i[lid + s], best_v[lid], best_i[lid])) {
            best_v[lid] = best_v[lid + s];
            best_i[lid] = best_i[lid + s];
        }
        workgroupBarrier();
    }
}

@compute @workgroup_size(WG)
fn partial_max(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    var bv = 0.0;
    var bi = NONE;
    for (var i = wid.x * WG + lid.x; i < p.len; i += p.n_groups * WG) {
        let v = x[p.offset + i];
        if (v == v && better(v, i, bv, bi)) {  // v == v is false for NaN
            bv = v;
            bi = i;
        }
    }
    best_v[lid.x] = bv;
    best_i[lid.x] = bi;
    reduce(lid.x);
    if (lid.x == 0u) { partials[wid.x] = vec2<u32>(bitcast<u32>(best_v[0]), best_i[0]); }
}

@compute @workgroup_size(WG)
fn finish(@builtin(local_invocation_id) lid: vec3<u32>) {
    var bv = 0.0;
    var bi = NONE;
    for (var g = lid.x; g < p.n_groups; g += WG) {
        let v = bitcast<f32>(partials[g].x);
        let i = partials[g].y;
        if (better(v, i, bv, bi)) {
            bv = v;
            bi = i;
        }
    }
    best_v[lid.x] = bv;
    best_i[lid.x] = bi;
    reduce(lid.x);
    if (lid.x == 0u) { result[0] = best_i[0]; }
}
