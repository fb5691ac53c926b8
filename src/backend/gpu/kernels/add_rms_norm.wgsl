// The residual add and the next RMSNorm in one pass: x[r] += y[r], then
// out[r] = x[r] / sqrt(mean(x[r]²) + eps) * w, one workgroup per row (norm_common.wgsl's
// reduction, as rms_norm.wgsl, so the result equals add_assign followed by rms_norm).

struct Params { rows: u32, dim: u32, eps: f32 }

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;
@group(0) @binding(2) var<storage, read> y: array<f32>;
@group(0) @binding(3) var<storage, read> w: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let row = wid.x + wid.y * nwg.x;
    if (row >= p.rows) { return; }  // uniform: depends on the workgroup only
    let base = row * p.dim;
    var ss = 0.0;
    // Each thread later reads back only the elements it wrote itself: no barrier needed.
    for (var i = lid.x; i < p.dim; i += WG) {
        let v = x[base + i] + y[base + i];
        x[base + i] = v;
        ss += v * v;
    }
    let inv = inv_rms(lid.x, ss, p.dim, p.eps);
    for (var i = lid.x; i < p.dim; i += WG) { out[base + i] = x[base + i] * inv * w[i]; }
}
