// Q4_K / Q5_K weights for weights.wgsl, read straight from their GGUF super-blocks (ggml
// `block_q4_K` / `block_q5_K`, QK_K = 256, no repacking):
//
//   Q4_K: { d: f16, dmin: f16, scales: [u8; 12], qs: [u8; 128] }
//   Q5_K: { d: f16, dmin: f16, scales: [u8; 12], qh: [u8; 32], qs: [u8; 128] }
// Sub-block s (0..8) holds elements 32s .. 32s + 32, with a 6-bit scale and min packed in
// `scales` (ggml get_scale_min_k4): x = d·sc·q − dmin·m. Element 32s + l is nibble (s % 2)
// of qs[32(s / 2) + l]; Q5_K adds bit s of qh[l] as bit 4. Both block sizes are multiples
// of 4, so every field is word-aligned.

override Q5_K: bool = false;   // false: Q4_K, true: Q5_K

const ITEM_UNITS: u32 = 4u;    // a matvec work item is one 32-element sub-block

// (d·sc, dmin·m) of sub-block s of the super-block at `base` (ggml get_scale_min_k4).
fn scale_min(base: u32, s: u32) -> vec2<f32> {
    let dm = unpack2x16float(w[base >> 2u]);
    let sc = base + 4u;
    var v: vec2<u32>;
    if (s < 4u) {
        v = vec2<u32>(load_u8(sc + s) & 63u, load_u8(sc + s + 4u) & 63u);
    } else {
        let hi = load_u8(sc + s + 4u);
        v = vec2<u32>((hi & 0xfu) | ((load_u8(sc + s - 4u) >> 6u) << 4u),
                      (hi >> 4u) | ((load_u8(sc + s) >> 6u) << 4u));
    }
    return dm * vec2<f32>(v);
}

// The quants of elements 32s + 4k .. + 4 (k = 0..8) of the super-block at `base`.
fn quants(base: u32, s: u32, k: u32) -> vec4<f32> {
    let qs = base + select(16u, 48u, Q5_K) + 32u * (s >> 1u) + 4u * k;
    var q = nibbles(w[qs >> 2u], 4u * (s & 1u));
    if (Q5_K) {
        let h = w[(base + 16u + 4u * k) >> 2u];
        q |= ((vec4<u32>(h, h >> 8u, h >> 16u, h >> 24u) >> vec4<u32>(s)) & vec4<u32>(1u)) << vec4<u32>(4u);
    }
    return vec4<f32>(q);
}

// Unit u is quarter (u % 4) of the 32-column chunk (u / 4): 8 consecutive columns.
fn dequant(row_byte: u32, u: u32) -> Unit {
    let j = u >> 2u;
    let base = row_byte + (j >> 3u) * BLOCK_BYTES;
    let s = j & 7u;
    let k = 2u * (u & 3u);
    let sm = scale_min(base, s);
    return Unit(quants(base, s, k) * sm.x - sm.y, quants(base, s, k + 1u) * sm.x - sm.y);
}

fn unit_cols(u: u32) -> vec2<u32> {
    let c = u * 8u;
    return vec2<u32>(c, c + 4u);
}

// One sub-block: d·sc·Σq·x − dmin·m·Σx, with the scale and min decoded once.
fn item_dot(row_byte: u32, j: u32, xb: u32) -> f32 {
    let xi = xb + j * 8u;
    let base = row_byte + (j >> 3u) * BLOCK_BYTES;
    let s = j & 7u;
    var qx = 0.0;
    var sx = vec4<f32>(0.0);
    for (var k = 0u; k < 8u; k++) {
        let xv = x[xi + k];
        qx += dot(quants(base, s, k), xv);
        sx += xv;
    }
    let sm = scale_min(base, s);
    return sm.x * qx - sm.y * dot(sx, vec4<f32>(1.0));
}

// Sub-block j as bytes (weights_q8.wgsl): the 4-bit (Q5_K: 5-bit) values, w = d·sc·q − dmin·m.
fn qblock(row_byte: u32, j: u32) -> QBlock {
    let base = row_byte + (j >> 3u) * BLOCK_BYTES;
    let s = j & 7u;
    let sm = scale_min(base, s);
    let qs = (base + select(16u, 48u, Q5_K) + 32u * (s >> 1u)) >> 2u;
    var q: array<u32, 8>;
    for (var k = 0u; k < 8u; k++) {
        q[k] = (w[qs + k] >> (4u * (s & 1u))) & 0x0f0f0f0fu;
        if (Q5_K) {
            q[k] |= ((w[((base + 16u) >> 2u) + k] >> s) & 0x01010101u) << 4u;
        }
    }
    return QBlock(vec4<u32>(q[0], q[1], q[2], q[3]), vec4<u32>(q[4], q[5], q[6], q[7]), vec2<f32>(sm.x), vec2<f32>(-sm.y));
}
