// Logit soft-capping (Gemma 2): x = cap * tanh(x / cap) over len elements.
override WG: u32 = 256;
struct Params { len: u32, cap: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> x: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i < p.len) { x[i] = p.cap * tanh(clamp(x[i] / p.cap, -15.0, 15.0)); }
}
