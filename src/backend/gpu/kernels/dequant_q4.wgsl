// Q4_0 / Q4_1 weights for weights.wgsl, read straight from their GGUF blocks (ggml
// `block_q4_0` / `block_q4_1`, no repacking):
//
//   Q4_0: { d: f16, qs: [u8; 16] }          x = d * (q - 8)
//   Q4_1: { d: f16, m: f16, qs: [u8; 16] }  x = d * q + m
// Byte j of qs holds element j (low nibble) and element j + 16 (high nibble). Q4_0 blocks
// are not 4-byte aligned (BLOCK_BYTES is 2 mod 4): they start at byte 0 or 2 of a word.

override Q4_1: bool = false;   // false: Q4_0, true: Q4_1

const ITEM_UNITS: u32 = 4u;    // a matvec work item is one block

// A block's scale d, offset m (Q4_0: −8d) and the byte where its 16 quant bytes start.
struct Q4Head { d: f32, m: f32, qs: u32 }

fn block_head(base: u32) -> Q4Head {
    let d = load_f16(base);
    if (Q4_1) {
        return Q4Head(d, load_f16(base + 2u), base + 4u);
    }
    return Q4Head(d, -8.0 * d, base + 2u);
}

// Unit u is quarter (u % 4) of block (u / 4): `lo` holds the columns unit_cols(u).x .. +4
// (low nibbles), `hi` those at unit_cols(u).y .. +4 (high nibbles).
fn dequant(row_byte: u32, u: u32) -> Unit {
    let h = block_head(row_byte + (u >> 2u) * BLOCK_BYTES);
    let word = load_u32(h.qs + 4u * (u & 3u));
    return Unit(vec4<f32>(nibbles(word, 0u)) * h.d + h.m, vec4<f32>(nibbles(word, 4u)) * h.d + h.m);
}

fn unit_cols(u: u32) -> vec2<u32> {
    let c = (u >> 2u) * 32u + (u & 3u) * 4u;
    return vec2<u32>(c, c + 16u);
}

// One whole block of the dot product: d·Σq·x + m·Σx, so the scale is decoded once per 32
// elements and applied once. The block's words are loaded once each: a Q4_0 block starts
// at byte 0 or 2 of a word, and then either its scale or its qs are word-aligned; the
// other half is funnel-shifted from two neighbouring words.
fn item_dot(row_byte: u32, b: u32, xb: u32) -> f32 {
    let xi = xb + b * 8u;
    let base = row_byte + b * BLOCK_BYTES;
    let a = base >> 2u;
    var prev = w[a];
    var d: f32;
    var m: f32;
    var qs_aligned = true;
    if (Q4_1) {
        let dm = unpack2x16float(prev);
        d = dm.x;
        m = dm.y;
    } else {
        qs_aligned = (base & 2u) != 0u;
        d = unpack2x16float(select(prev, prev >> 16u, qs_aligned)).x;
        m = -8.0 * d;
    }
    var s = 0.0;
    var sx = vec4<f32>(0.0);
    for (var q = 0u; q < 4u; q++) {
        let next = w[a + 1u + q];
        let word = select((prev >> 16u) | (next << 16u), next, qs_aligned);
        prev = next;
        let xl = x[xi + q];
        let xh = x[xi + 4u + q];
        s += dot(vec4<f32>(nibbles(word, 0u)), xl) + dot(vec4<f32>(nibbles(word, 4u)), xh);
        sx += xl + xh;
    }
    return d * s + m * dot(sx, vec4<f32>(1.0));
}

// Block j as bytes (weights_q8.wgsl): low nibbles are columns 0..16, high nibbles 16..32;
// w = d·q + m (Q4_0: m = −8d).
fn qblock(row_byte: u32, j: u32) -> QBlock {
    let h = block_head(row_byte + j * BLOCK_BYTES);
    let v = vec4<u32>(load_u32(h.qs), load_u32(h.qs + 4u), load_u32(h.qs + 8u), load_u32(h.qs + 12u));
    let mask = vec4<u32>(0x0f0f0f0fu);
    return QBlock(v & mask, (v >> vec4<u32>(4u)) & mask, vec2<f32>(h.d), vec2<f32>(h.m));
}
