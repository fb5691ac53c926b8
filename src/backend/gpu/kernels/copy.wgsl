// dst[dst_off + i] = src[src_off + i] for i < len (also the bandwidth yardstick of the
// kernel benchmark).
override WG: u32 = 256;
struct Params { len: u32, src_off: u32, dst_off: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> src: array<f32>;
@group(0) @binding(2) var<storage, read_write> dst: array<f32>;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let i = gid.x + gid.y * nwg.x * WG;
    if (i < p.len) { dst[p.dst_off + i] = src[p.src_off + i]; }
}
