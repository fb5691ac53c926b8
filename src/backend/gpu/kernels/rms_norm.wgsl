// RMSNorm (Zhang & Sennrich 2019): out[r] = x[r] / sqrt(mean(x[r]²) + eps) * w, one
// workgroup per row. `w` is an F32 weight vector of `dim` elements. Follows norm_common.wgsl.

struct Params { rows: u32, dim: u32, eps: f32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> w: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let row = wid.x + wid.y * nwg.x;
    if (row >= p.rows) { return; }  // uniform: depends on the workgroup only
    let base = row * p.dim;
    var ss = 0.0;
    for (var i = lid.x; i < p.dim; i += WG) { ss += x[base + i] * x[base + i]; }
    let inv = inv_rms(lid.x, ss, p.dim, p.eps);
    for (var i = lid.x; i < p.dim; i += WG) { out[base + i] = x[base + i] * inv * w[i]; }
}
