// Q5_0 weights for weights.wgsl, read straight from their GGUF blocks (ggml `block_q5_0`,
// no repacking):
//
//   Q5_0: { d: f16, qh: [u8; 4], qs: [u8; 16] }  x = d * (q - 16)
// Element j's low 4 bits are nibble (j / 16) of qs[j % 16]; its bit 4 is bit j of the
// little-endian u32 qh. Blocks are not 4-byte aligned (BLOCK_BYTES is 2 mod 4): they start
// at byte 0 or 2 of a word, so qh and qs are read with load_u32.

const ITEM_UNITS: u32 = 4u;    // a matvec work item is one block

// The 5-bit values of elements 4q .. 4q + 4 (lo) and 16 + 4q .. 16 + 4q + 4 (hi).
fn q5_quarter(base: u32, qh: u32, q: u32) -> Unit {
    let word = load_u32(base + 6u + 4u * q);
    let bit = vec4<u32>(0u, 1u, 2u, 3u) + vec4<u32>(4u * q);
    let lo = nibbles(word, 0u) | (((vec4<u32>(qh) >> bit) & vec4<u32>(1u)) << vec4<u32>(4u));
    let hi = nibbles(word, 4u) | (((vec4<u32>(qh) >> (bit + vec4<u32>(16u))) & vec4<u32>(1u)) << vec4<u32>(4u));
    return Unit(vec4<f32>(lo) - 16.0, vec4<f32>(hi) - 16.0);
}

// Unit u is quarter (u % 4) of block (u / 4).
fn dequant(row_byte: u32, u: u32) -> Unit {
    let base = row_byte + (u >> 2u) * BLOCK_BYTES;
    let d = load_f16(base);
    let v = q5_quarter(base, load_u32(base + 2u), u & 3u);
    return Unit(v.lo * d, v.hi * d);
}

fn unit_cols(u: u32) -> vec2<u32> {
    let c = (u >> 2u) * 32u + (u & 3u) * 4u;
    return vec2<u32>(c, c + 16u);
}

// One whole block: d·Σ(q − 16)·x, with the scale and qh decoded once.
fn item_dot(row_byte: u32, b: u32, xb: u32) -> f32 {
    let xi = xb + b * 8u;
    let base = row_byte + b * BLOCK_BYTES;
    let qh = load_u32(base + 2u);
    var s = 0.0;
    for (var q = 0u; q < 4u; q++) {
        let v = q5_quarter(base, qh, q);
        s += dot(v.lo, x[xi + q]) + dot(v.hi, x[xi + 4u + q]);
    }
    return load_f16(base) * s;
}

// Bits 0..4 of h as bit 4 of bytes 0..4.
fn bit4_bytes(h: u32) -> u32 {
    return ((h & 1u) << 4u) | ((h & 2u) << 11u) | ((h & 4u) << 18u) | ((h & 8u) << 25u);
}

// Block j as bytes (weights_q8.wgsl): the 5-bit values 0..32, w = d·q − 16d.
fn qblock(row_byte: u32, j: u32) -> QBlock {
    let base = row_byte + j * BLOCK_BYTES;
    let d = load_f16(base);
    let qh = load_u32(base + 2u);
    var lo: vec4<u32>;
    var hi: vec4<u32>;
    for (var k = 0u; k < 4u; k++) {
        let word = load_u32(base + 6u + 4u * k);
        lo[k] = (word & 0x0f0f0f0fu) | bit4_bytes(qh >> (4u * k));
        hi[k] = ((word >> 4u) & 0x0f0f0f0fu) | bit4_bytes(qh >> (16u + 4u * k));
    }
    return QBlock(lo, hi, vec2<f32>(d), vec2<f32>(-16.0 * d));
}
