// Q8_0 weights for weights.wgsl, read straight from their GGUF blocks (ggml `block_q8_0`,
// no repacking):
//
//   Q8_0: { d: f16, qs: [i8; 32] }  x = d * q
// Blocks are not 4-byte aligned (BLOCK_BYTES is 2 mod 4): they start at byte 0 or 2 of a word.

const ITEM_UNITS: u32 = 4u;    // a matvec work item is one block

// Unit u is quarter (u % 4) of block (u / 4): 8 consecutive columns.
fn dequant(row_byte: u32, u: u32) -> Unit {
    let base = row_byte + (u >> 2u) * BLOCK_BYTES;
    let d = load_f16(base);
    let qs = base + 2u + 8u * (u & 3u);
    return Unit(i8x4(load_u32(qs)) * d, i8x4(load_u32(qs + 4u)) * d);
}

fn unit_cols(u: u32) -> vec2<u32> {
    let c = u * 8u;
    return vec2<u32>(c, c + 4u);
}

// One whole block of the dot product: d·Σq·x, so the scale is decoded once per 32
// elements and applied once. The block's 9 words are loaded once each: a block starts at
// byte 0 or 2 of a word, and then either its scale or its qs are word-aligned; the other
// half is funnel-shifted from two neighbouring words.
fn item_dot(row_byte: u32, b: u32, xb: u32) -> f32 {
    let xi = xb + b * 8u;
    let base = row_byte + b * BLOCK_BYTES;
    let a = base >> 2u;
    let qs_aligned = (base & 2u) != 0u;
    var prev = w[a];
    let d = unpack2x16float(select(prev, prev >> 16u, qs_aligned)).x;
    var s = 0.0;
    for (var k = 0u; k < 8u; k++) {
        let next = w[a + 1u + k];
        let word = select((prev >> 16u) | (next << 16u), next, qs_aligned);
        prev = next;
        s += dot(i8x4(word), x[xi + k]);
    }
    return d * s;
}

// Block j as bytes (weights_q8.wgsl): the stored bytes, w = d·q.
fn qblock(row_byte: u32, j: u32) -> QBlock {
    let qs = row_byte + j * BLOCK_BYTES + 2u;
    let lo = vec4<u32>(load_u32(qs), load_u32(qs + 4u), load_u32(qs + 8u), load_u32(qs + 12u));
    let hi = vec4<u32>(load_u32(qs + 16u), load_u32(qs + 20u), load_u32(qs + 24u), load_u32(qs + 28u));
    return QBlock(lo, hi, vec2<f32>(load_f16(qs - 2u)), vec2<f32>(0.0));
}
