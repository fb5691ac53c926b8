// Q6_K weights for weights.wgsl, read straight from their GGUF super-blocks (ggml
// `block_q6_K`, QK_K = 256, no repacking):
//
//   Q6_K: { ql: [u8; 128], qh: [u8; 64], scales: [i8; 16], d: f16 }
// x = d·sc·(q − 32) with a signed 8-bit scale per 16 elements. Element 128n + 32k + l
// (n < 2, k < 4, l < 32) has low bits nibble (k / 2) of ql[64n + 32(k % 2) + l], high bits
// 2k .. 2k + 2 of qh[32n + l], and scale scales[8n + 2k + l / 16]. Super-blocks are not
// 4-byte aligned (BLOCK_BYTES is 2 mod 4): they start at byte 0 or 2 of a word, so words
// are read with load_u32.

const ITEM_UNITS: u32 = 4u;    // a matvec work item is one 32-element chunk (two scales)

// Signed scale i of the super-block at `base`.
fn scale(base: u32, i: u32) -> f32 {
    return f32(bitcast<i32>(load_u8(base + 192u + i) << 24u) >> 24u);
}

// q − 32 for elements 32s + 4m .. + 4 of the super-block at `base` (s = 4n + k, m < 8).
fn quants(base: u32, s: u32, m: u32) -> vec4<f32> {
    let n = s >> 2u;
    let k = s & 3u;
    let lo = nibbles(load_u32(base + 64u * n + 32u * (k & 1u) + 4u * m), 4u * (k >> 1u));
    let h = load_u32(base + 128u + 32u * n + 4u * m);
    let hi = (vec4<u32>(h, h >> 8u, h >> 16u, h >> 24u) >> vec4<u32>(2u * k)) & vec4<u32>(3u);
    return vec4<f32>(lo | (hi << vec4<u32>(4u))) - 32.0;
}

// Unit u is quarter (u % 4) of the 32-column chunk (u / 4): 8 consecutive columns, all
// under one scale.
fn dequant(row_byte: u32, u: u32) -> Unit {
    let j = u >> 2u;
    let base = row_byte + (j >> 3u) * BLOCK_BYTES;
    let s = j & 7u;
    let q = u & 3u;
    let ds = load_f16(base + 208u) * scale(base, 2u * s + (q >> 1u));
    return Unit(quants(base, s, 2u * q) * ds, quants(base, s, 2u * q + 1u) * ds);
}

fn unit_cols(u: u32) -> vec2<u32> {
    let c = u * 8u;
    return vec2<u32>(c, c + 4u);
}

// One 32-element chunk s (scales 2s, 2s + 1):
// d·(sc₀·Σ_{l<16}(q−32)·x + sc₁·Σ_{l≥16}(q−32)·x).
fn item_dot(row_byte: u32, j: u32, xb: u32) -> f32 {
    let xi = xb + j * 8u;
    let base = row_byte + (j >> 3u) * BLOCK_BYTES;
    let s = j & 7u;
    var part = vec2<f32>(0.0);
    for (var m = 0u; m < 8u; m++) {
        part[m >> 2u] += dot(quants(base, s, m), x[xi + m]);
    }
    let sc = vec2<f32>(scale(base, 2u * s), scale(base, 2u * s + 1u));
    return load_f16(base + 208u) * dot(sc, part);
}

// Chunk j as bytes (weights_q8.wgsl): the 6-bit values 0..64, w = d·sc·q − 32·d·sc with one
// scale per 16 columns.
fn qblock(row_byte: u32, j: u32) -> QBlock {
    let base = row_byte + (j >> 3u) * BLOCK_BYTES;
    let s = j & 7u;
    let n = s >> 2u;
    let k = s & 3u;
    var q: array<u32, 8>;
    for (var m = 0u; m < 8u; m++) {
        let lo = (load_u32(base + 64u * n + 32u * (k & 1u) + 4u * m) >> (4u * (k >> 1u))) & 0x0f0f0f0fu;
        let hi = (load_u32(base + 128u + 32u * n + 4u * m) >> (2u * k)) & 0x03030303u;
        q[m] = lo | (hi << 4u);
    }
    let a = load_f16(base + 208u) * vec2<f32>(scale(base, 2u * s), scale(base, 2u * s + 1u));
    return QBlock(vec4<u32>(q[0], q[1], q[2], q[3]), vec4<u32>(q[4], q[5], q[6], q[7]), a, -32.0 * a);
}
