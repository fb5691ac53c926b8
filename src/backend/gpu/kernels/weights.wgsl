// The weight-reading kernels shared by every block format: decode matvec, tiled prefill
// matmul and embedding lookup. pipelines.rs compiles this file followed by one
// `dequant_*.wgsl` file (the only step of "preprocessing": concatenation), which supplies,
// for its block format:
//
//   fn dequant(row_byte: u32, u: u32) -> Unit
//                                          the 8 elements of unit u of the row at row_byte
//   fn unit_cols(u: u32) -> vec2<u32>      their columns: lo at .x .. +4, hi at .y .. +4
//   const ITEM_UNITS: u32                  units per matvec work item (4 units = one block
//                                          of 32 columns for quantized formats)
//   fn item_dot(row_byte: u32, i: u32, xi: u32) -> f32
//                                          Σ w·x over work item i, x indexed as vec4 from xi
//
// Units 4k .. 4k + 3 must cover exactly columns 32k .. 32k + 31 (the matmul tile step).
// Weights are bound as words; formats whose blocks are not 4-byte aligned read them with
// load_u32 / load_f16 (f16 decoded with unpack2x16float, so no shader-f16 is needed).

// The block format's layout, from the Rust table (src/quant, FORMATS): set by pipelines.rs
// for every weight pipeline, so no block size is written in a kernel.
override BLOCK_ELEMS: u32;     // elements per block (1 for F32/F16, 32, or 256)
override BLOCK_BYTES: u32;     // bytes per block

override WG: u32 = 64;         // matvec threads per workgroup (≤ 256, power of two)
override TPR: u32 = 16;        // matvec threads per row (power of two, ≤ WG)

struct Params {
    rows: u32,        // rows in this weight chunk
    cols: u32,        // elements per row
    n: u32,           // tokens
    row0: u32,        // first row of this chunk in the whole weight
    out_stride: u32,  // matmul: elements per output row (all rows of the weight)
    tok_off: u32,     // embed: index of the first token of this batch
}

@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> w: array<u32>;
@group(0) @binding(2) var<storage, read> x: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@group(0) @binding(4) var<storage, read> tokens: array<u32>;
@group(0) @binding(5) var<storage, read> bias: array<f32>;  // matvec_bias only: one per row

// Bytes of one weight row (p.cols elements, whole blocks).
fn row_bytes() -> u32 { return (p.cols / BLOCK_ELEMS) * BLOCK_BYTES; }

// Eight dequantized elements (see unit_cols for their columns).
struct Unit { lo: vec4<f32>, hi: vec4<f32> }

// One 32-column block as bytes for the integer products (weights_q8.wgsl; each dequant file's
// `qblock`): column 4k + i is byte i of lo[k] (k < 4) or of hi[k - 4], a signed value q with
// w = a[h]·q + b[h], h = 0 for columns 0..16 and 1 for 16..32.
struct QBlock { lo: vec4<u32>, hi: vec4<u32>, a: vec2<f32>, b: vec2<f32> }

// Four bytes starting at any byte offset.
fn load_u32(byte: u32) -> u32 {
    let i = byte >> 2u;
    let s = (byte & 3u) * 8u;
    if (s == 0u) { return w[i]; }
    return (w[i] >> s) | (w[i + 1u] << (32u - s));
}

// The f16 at an even byte offset.
fn load_f16(byte: u32) -> f32 {
    return unpack2x16float(w[byte >> 2u] >> ((byte & 2u) * 8u)).x;
}

// The byte at any offset.
fn load_u8(byte: u32) -> u32 {
    return (w[byte >> 2u] >> ((byte & 3u) * 8u)) & 0xffu;
}

// Four signed bytes of a word, sign-extended.
fn i8x4(word: u32) -> vec4<f32> {
    let v = bitcast<vec4<i32>>(vec4<u32>(word << 24u, word << 16u, word << 8u, word));
    return vec4<f32>(v >> vec4<u32>(24u));
}

// The four 4-bit fields of `word` starting at bit `shift` of each byte (shift 0 or 4).
fn nibbles(word: u32, shift: u32) -> vec4<u32> {
    return (vec4<u32>(word, word >> 8u, word >> 16u, word >> 24u) >> vec4<u32>(shift)) & vec4<u32>(0xfu);
}

// Σ w·x over unit u: the generic work item, for formats without a fused block dot.
fn unit_dot(row_byte: u32, u: u32, xi: u32) -> f32 {
    let v = dequant(row_byte, u);
    let c = unit_cols(u);
    return dot(v.lo, x[xi + c.x / 4u]) + dot(v.hi, x[xi + c.y / 4u]);
}

// ---- decode: out[t, row0 + r] = Σ_c w[r, c] x[t, c]; TPR threads per row stride over its
// work items, token = z ----
var<workgroup> partial: array<f32, 256>;

// The row this thread's group computes, its token, and the row's sum (valid in lane 0 of the
// row's threads, for r < p.rows). Every thread of the workgroup must call it (it synchronises).
struct RowSum { r: u32, t: u32, lane: u32, sum: f32 }

// The sum of the TPR lanes' partial sums of one row, a tree over `partial` (valid in lane 0).
// Every thread of the workgroup must call it (it synchronises).
fn row_total(lid: vec3<u32>, lane: u32, acc: f32) -> f32 {
    partial[lid.x] = acc;
    workgroupBarrier();
    for (var s = TPR / 2u; s > 0u; s >>= 1u) {
        if (lane < s) { partial[lid.x] += partial[lid.x + s]; }
        workgroupBarrier();
    }
    return partial[lid.x];
}

fn matvec_row(lid: vec3<u32>, wid: vec3<u32>, nwg: vec3<u32>) -> RowSum {
    let r = (wid.x + wid.y * nwg.x) * (WG / TPR) + lid.x / TPR;
    let lane = lid.x % TPR;
    let t = wid.z;
    var acc = 0.0;
    if (r < p.rows) {
        let rb = r * row_bytes();
        let xb = t * (p.cols / 4u);
        for (var i = lane; i < p.cols / (8u * ITEM_UNITS); i += TPR) {
            acc += item_dot(rb, i, xb);
        }
    }
    return RowSum(r, t, lane, row_total(lid, lane, acc));
}

@compute @workgroup_size(WG)
fn matvec(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
          @builtin(num_workgroups) nwg: vec3<u32>) {
    let o = matvec_row(lid, wid, nwg);
    if (o.lane == 0u && o.r < p.rows) {
        out[o.t * p.out_stride + p.row0 + o.r] = o.sum;
    }
}

// matvec, then out += bias in the same write (add_bias.wgsl's one addition: the same bits).
@compute @workgroup_size(WG)
fn matvec_bias(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
               @builtin(num_workgroups) nwg: vec3<u32>) {
    let o = matvec_row(lid, wid, nwg);
    if (o.lane == 0u && o.r < p.rows) {
        out[o.t * p.out_stride + p.row0 + o.r] = o.sum + bias[p.row0 + o.r];
    }
}

// ---- prefill: 32 rows x 32 tokens per workgroup, 32 columns (4 units) per step ----
const TILE: u32 = 32u;
const PITCH: u32 = 33u;  // padded row pitch of the tiles in workgroup memory
var<workgroup> w_tile: array<f32, 1056>;  // TILE * PITCH
var<workgroup> x_tile: array<f32, 1056>;

@compute @workgroup_size(64)
fn matmul(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let r0 = wid.x * TILE;
    let t0 = wid.y * TILE;
    let tr = lid.x / 8u;  // this thread computes rows tr + 8i and tokens tc + 8j
    let tc = lid.x % 8u;
    var acc: array<f32, 16>;
    let rb = row_bytes();
    let xrow = p.cols / 4u;
    for (var kb = 0u; kb < p.cols / 32u; kb++) {
        for (var k = 0u; k < 2u; k++) {  // 32 rows x 4 units
            let idx = lid.x + k * 64u;
            let rr = idx / 4u;
            let u = kb * 4u + idx % 4u;
            var v = Unit(vec4<f32>(0.0), vec4<f32>(0.0));
            if (r0 + rr < p.rows) { v = dequant((r0 + rr) * rb, u); }
            let c = unit_cols(u) - vec2<u32>(kb * 32u);
            for (var e = 0u; e < 4u; e++) {
                w_tile[rr * PITCH + c.x + e] = v.lo[e];
                w_tile[rr * PITCH + c.y + e] = v.hi[e];
            }
        }
        for (var k = 0u; k < 4u; k++) {  // 32 tokens x 8 vec4
            let idx = lid.x + k * 64u;
            let tt = idx / 8u;
            let q = idx % 8u;
            var v = vec4<f32>(0.0);
            if (t0 + tt < p.n) { v = x[(t0 + tt) * xrow + kb * 8u + q]; }
            for (var e = 0u; e < 4u; e++) { x_tile[tt * PITCH + q * 4u + e] = v[e]; }
        }
        workgroupBarrier();
        for (var k = 0u; k < TILE; k++) {
            var a: array<f32, 4>;
            var b: array<f32, 4>;
            for (var i = 0u; i < 4u; i++) {
                a[i] = w_tile[(tr + 8u * i) * PITCH + k];
                b[i] = x_tile[(tc + 8u * i) * PITCH + k];
            }
            for (var i = 0u; i < 4u; i++) {
                for (var j = 0u; j < 4u; j++) { acc[i * 4u + j] += a[i] * b[j]; }
            }
        }
        workgroupBarrier();
    }
    for (var i = 0u; i < 4u; i++) {
        for (var j = 0u; j < 4u; j++) {
            let r = r0 + tr + 8u * i;
            let t = t0 + tc + 8u * j;
            if (r < p.rows && t < p.n) { out[t * p.out_stride + p.row0 + r] = acc[i * 4u + j]; }
        }
    }
}

// ---- embedding: out[tok_off + t, :] = dequant(w[tokens[t], :]) for tokens in this chunk ----
@compute @workgroup_size(64)
fn embed(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let t = wid.x;
    if (t >= p.n) { return; }
    let tok = tokens[t];
    if (tok < p.row0 || tok >= p.row0 + p.rows) { return; }
    let rb = (tok - p.row0) * row_bytes();
    let ob = (p.tok_off + t) * p.cols;
    for (var u = lid.x; u < p.cols / 8u; u += 64u) {
        let v = dequant(rb, u);
        let c = unit_cols(u);
        for (var e = 0u; e < 4u; e++) {
            out[ob + c.x + e] = v.lo[e];
            out[ob + c.y + e] = v.hi[e];
        }
    }
}
