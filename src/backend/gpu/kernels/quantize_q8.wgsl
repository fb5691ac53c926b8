// 8-bit activations for the integer products (weights_q8.wgsl): each block of 32 elements
// of x becomes x ≈ d·q, q a signed byte in [-127, 127], d = max|x| / 127, rounding half away
// from zero (ggml quantize_row_q8_1, the CPU backend's `q8::quantize_block`).
//
// Layout of block b (3 vec4<u32> = 48 bytes): [3b] = (bits of d as f32, Σq over elements
// 0..16, Σq over 16..32 as i32, 0); [3b + 1] = q of elements 0..16, four per word, element
// 4k + i in byte i of word k; [3b + 2] = elements 16..32. Blocks are row after row: block b
// of token t is t·(cols / 32) + b.

struct Params {
    blocks: u32,   // blocks in all (tokens × cols / 32)
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read_write> xq: array<u32>;

// roundf: half away from zero (WGSL round() is half to even).
fn round_away(v: vec4<f32>) -> vec4<i32> {
    return vec4<i32>(sign(v) * floor(abs(v) + 0.5));
}

var<workgroup> amax: array<f32, 64>;
var<workgroup> sums: array<i32, 64>;

// 8 blocks per workgroup, 8 threads per block, 4 elements (one word of q) per thread.
@compute @workgroup_size(64)
fn main(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
        @builtin(num_workgroups) nwg: vec3<u32>) {
    let b = (wid.x + wid.y * nwg.x) * 8u + lid.x / 8u;
    let k = lid.x % 8u;
    var v = vec4<f32>(0.0);
    if (b < p.blocks) { v = x[b * 8u + k]; }
    let a = abs(v);
    amax[lid.x] = max(max(a.x, a.y), max(a.z, a.w));
    workgroupBarrier();
    for (var s = 4u; s > 0u; s >>= 1u) {
        if (k < s) { amax[lid.x] = max(amax[lid.x], amax[lid.x + s]); }
        workgroupBarrier();
    }
    let d = amax[lid.x - k] / 127.0;
    let id = select(0.0, 1.0 / d, d != 0.0);
    let r = clamp(round_away(v * id), vec4<i32>(-127), vec4<i32>(127));
    sums[lid.x] = r.x + r.y + r.z + r.w;
    workgroupBarrier();
    for (var s = 2u; s > 0u; s >>= 1u) {
        if ((k & 3u) < s) { sums[lid.x] += sums[lid.x + s]; }
        workgroupBarrier();
    }
    if (b < p.blocks) {
        xq[12u * b + 4u + k] = pack4xI8(r);
        if (k == 0u) {
            xq[12u * b] = bitcast<u32>(d);
            xq[12u * b + 1u] = bitcast<u32>(sums[lid.x]);
            xq[12u * b + 2u] = bitcast<u32>(sums[lid.x + 4u]);
            xq[12u * b + 3u] = 0u;
        }
    }
}
