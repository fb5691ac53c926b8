// The integer products: decode matvec and tiled prefill matmul with 8-bit activations
// (quantize_q8.wgsl) and integer dot products of four byte pairs (WGSL `dot4I8Packed`, the
// packed_4x8_integer_dot_product language feature). pipelines.rs compiles weights.wgsl, one
// dequant_*.wgsl, then this file; the dequant file supplies, for its block format,
//
//   fn qblock(row_byte: u32, j: u32) -> QBlock
//                  columns 32j .. 32j + 32 of the row at row_byte as bytes q with
//                  w = a[h]·q + b[h] (h = 0 for columns 0..16, 1 for 16..32)
//
// so a block's dot product is dx·(a·Σq·qx + b·Σqx) per half: integers summed exactly, the
// scales applied once per half-block in f32.

@group(0) @binding(6) var<storage, read> xq: array<vec4<u32>>;

// Σ q·qx over the two halves of a block (x words xl: columns 0..16, xh: 16..32).
fn idot(q: QBlock, xl: vec4<u32>, xh: vec4<u32>) -> vec2<f32> {
    let l = dot4I8Packed(q.lo.x, xl.x) + dot4I8Packed(q.lo.y, xl.y) + dot4I8Packed(q.lo.z, xl.z) + dot4I8Packed(q.lo.w, xl.w);
    let h = dot4I8Packed(q.hi.x, xh.x) + dot4I8Packed(q.hi.y, xh.y) + dot4I8Packed(q.hi.z, xh.z) + dot4I8Packed(q.hi.w, xh.w);
    return vec2<f32>(f32(l), f32(h));
}

// Σ w·x over block j of the row at rb; xb = the vec4 index of the token's first x block.
fn item_dot_q8(rb: u32, j: u32, xb: u32) -> f32 {
    let q = qblock(rb, j);
    let head = xq[xb + 3u * j];
    let s = idot(q, xq[xb + 3u * j + 1u], xq[xb + 3u * j + 2u]);
    let sx = vec2<f32>(vec2<i32>(bitcast<i32>(head.y), bitcast<i32>(head.z)));
    return bitcast<f32>(head.x) * (dot(q.a, s) + dot(q.b, sx));
}

// As weights.wgsl's matvec_row, over 32-column blocks with integer dots.
fn matvec_row_q8(lid: vec3<u32>, wid: vec3<u32>, nwg: vec3<u32>) -> RowSum {
    let r = (wid.x + wid.y * nwg.x) * (WG / TPR) + lid.x / TPR;
    let lane = lid.x % TPR;
    let t = wid.z;
    var acc = 0.0;
    if (r < p.rows) {
        let rb = r * row_bytes();
        let nb = p.cols / 32u;
        let xb = t * nb * 3u;
        for (var j = lane; j < nb; j += TPR) {
            acc += item_dot_q8(rb, j, xb);
        }
    }
    return RowSum(r, t, lane, row_total(lid, lane, acc));
}

@compute @workgroup_size(WG)
fn matvec_q8(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
             @builtin(num_workgroups) nwg: vec3<u32>) {
    let o = matvec_row_q8(lid, wid, nwg);
    if (o.lane == 0u && o.r < p.rows) {
        out[o.t * p.out_stride + p.row0 + o.r] = o.sum;
    }
}

@compute @workgroup_size(WG)
fn matvec_q8_bias(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>,
                  @builtin(num_workgroups) nwg: vec3<u32>) {
    let o = matvec_row_q8(lid, wid, nwg);
    if (o.lane == 0u && o.r < p.rows) {
        out[o.t * p.out_stride + p.row0 + o.r] = o.sum + bias[p.row0 + o.r];
    }
}

// ---- prefill: 32 rows x 32 tokens per workgroup, one 32-column block per step ----
var<workgroup> wq_tile: array<vec4<u32>, 64>;   // row r: lo at 2r, hi at 2r + 1
var<workgroup> wab_tile: array<vec4<f32>, 32>;  // row r: (a0, a1, b0, b1)
var<workgroup> xq_tile: array<vec4<u32>, 64>;   // token t: lo at 2t, hi at 2t + 1
var<workgroup> xs_tile: array<vec4<f32>, 32>;   // token t: (d, d·Σq lo, d·Σq hi, 0)

@compute @workgroup_size(64)
fn matmul_q8(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
    let r0 = wid.x * TILE;
    let t0 = wid.y * TILE;
    let tr = lid.x / 8u;  // this thread computes rows tr + 8i and tokens tc + 8j
    let tc = lid.x % 8u;
    var acc: array<f32, 16>;
    let rb = row_bytes();
    let nb = p.cols / 32u;
    for (var kb = 0u; kb < nb; kb++) {
        if (lid.x < 32u) {
            let rr = lid.x;
            var q = QBlock(vec4<u32>(0u), vec4<u32>(0u), vec2<f32>(0.0), vec2<f32>(0.0));
            if (r0 + rr < p.rows) { q = qblock((r0 + rr) * rb, kb); }
            wq_tile[2u * rr] = q.lo;
            wq_tile[2u * rr + 1u] = q.hi;
            wab_tile[rr] = vec4<f32>(q.a, q.b);
        } else {
            let tt = lid.x - 32u;
            var head = vec4<u32>(0u);
            var lo = vec4<u32>(0u);
            var hi = vec4<u32>(0u);
            if (t0 + tt < p.n) {
                let xi = ((t0 + tt) * nb + kb) * 3u;
                head = xq[xi];
                lo = xq[xi + 1u];
                hi = xq[xi + 2u];
            }
            let d = bitcast<f32>(head.x);
            xq_tile[2u * tt] = lo;
            xq_tile[2u * tt + 1u] = hi;
            xs_tile[tt] = vec4<f32>(d, d * f32(bitcast<i32>(head.y)), d * f32(bitcast<i32>(head.z)), 0.0);
        }
        workgroupBarrier();
        for (var i = 0u; i < 4u; i++) {
            let r = tr + 8u * i;
            let q = QBlock(wq_tile[2u * r], wq_tile[2u * r + 1u], wab_tile[r].xy, wab_tile[r].zw);
            for (var j = 0u; j < 4u; j++) {
                let t = tc + 8u * j;
                let xs = xs_tile[t];
                let s = idot(q, xq_tile[2u * t], xq_tile[2u * t + 1u]);
                acc[i * 4u + j] += xs.x * dot(q.a, s) + dot(q.b, xs.yz);
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
