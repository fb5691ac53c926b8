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
@group(0) @binding(2) var<storage, read_write> xq: array<vec4<u32>>;

// roundf: half away from zero (WGSL round() is half to even).
fn round_away(v: vec4<f32>) -> vec4<i32> {
    return vec4<i32>(sign(v) * floor(abs(v) + 0.5));
}

@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
    let b = gid.x + gid.y * nwg.x * 64u;
    if (b >= p.blocks) { return; }
    var v: array<vec4<f32>, 8>;
    var amax = vec4<f32>(0.0);
    for (var k = 0u; k < 8u; k++) {
        v[k] = x[b * 8u + k];
        amax = max(amax, abs(v[k]));
    }
    let d = max(max(amax.x, amax.y), max(amax.z, amax.w)) / 127.0;
    let id = select(0.0, 1.0 / d, d != 0.0);
    var q: array<u32, 8>;
    var s = vec2<i32>(0);
    for (var k = 0u; k < 8u; k++) {
        let r = clamp(round_away(v[k] * id), vec4<i32>(-127), vec4<i32>(127));
        q[k] = pack4xI8(r);
        s[k >> 2u] += r.x + r.y + r.z + r.w;
    }
    xq[3u * b] = vec4<u32>(bitcast<u32>(d), bitcast<u32>(s.x), bitcast<u32>(s.y), 0u);
    xq[3u * b + 1u] = vec4<u32>(q[0], q[1], q[2], q[3]);
    xq[3u * b + 2u] = vec4<u32>(q[4], q[5], q[6], q[7]);
}
