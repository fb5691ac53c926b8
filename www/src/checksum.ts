/**
 * XXH32 (xxHash, 32-bit): the fast checksum every stored chunk carries, so a read from the store
 * notices a flipped byte, a truncated or zeroed page, or a chunk from another file before the
 * bytes reach the engine. Not a security check (the sha256 is): it catches storage faults.
 * Why our own ~50 lines and not a package: `docs/decisions.md` (the package ships plain ES
 * modules with no bundler, so a dependency would need an import map in every page).
 */

const P1 = 0x9e3779b1 | 0;
const P2 = 0x85ebca77 | 0;
const P3 = 0xc2b2ae3d | 0;
const P4 = 0x27d4eb2f | 0;
const P5 = 0x165667b1 | 0;

function rotl(x: number, r: number): number {
  return (x << r) | (x >>> (32 - r));
}

/** XXH32 of `data` (the reference algorithm; seed 0 by default), as an unsigned 32-bit number. */
export function xxh32(data: Uint8Array, seed = 0): number {
  const n = data.length;
  // Whole 32-bit words straight from a Uint32Array when the bytes are 4-aligned (the store's
  // chunk buffers are): a DataView read per word costs about twice as much.
  const words = (data.byteOffset & 3) === 0 ? new Uint32Array(data.buffer, data.byteOffset, n >>> 2) : null;
  const dv = new DataView(data.buffer, data.byteOffset, n);
  let i = 0;
  let h: number;
  if (n >= 16) {
    let v1 = (seed + P1 + P2) | 0;
    let v2 = (seed + P2) | 0;
    let v3 = seed | 0;
    let v4 = (seed - P1) | 0;
    const limit = n - 16;
    if (words) {
      let w = 0;
      const last = limit >>> 2;
      for (; w <= last; w += 4) {
        v1 = Math.imul(rotl((v1 + Math.imul(words[w]!, P2)) | 0, 13), P1);
        v2 = Math.imul(rotl((v2 + Math.imul(words[w + 1]!, P2)) | 0, 13), P1);
        v3 = Math.imul(rotl((v3 + Math.imul(words[w + 2]!, P2)) | 0, 13), P1);
        v4 = Math.imul(rotl((v4 + Math.imul(words[w + 3]!, P2)) | 0, 13), P1);
      }
      i = w << 2;
    } else {
      for (; i <= limit; i += 16) {
        v1 = Math.imul(rotl((v1 + Math.imul(dv.getUint32(i, true), P2)) | 0, 13), P1);
        v2 = Math.imul(rotl((v2 + Math.imul(dv.getUint32(i + 4, true), P2)) | 0, 13), P1);
        v3 = Math.imul(rotl((v3 + Math.imul(dv.getUint32(i + 8, true), P2)) | 0, 13), P1);
        v4 = Math.imul(rotl((v4 + Math.imul(dv.getUint32(i + 12, true), P2)) | 0, 13), P1);
      }
    }
    h = (rotl(v1, 1) + rotl(v2, 7) + rotl(v3, 12) + rotl(v4, 18)) | 0;
  } else {
    h = (seed + P5) | 0;
  }
  h = (h + n) | 0;
  for (; i + 4 <= n; i += 4) h = Math.imul(rotl((h + Math.imul(dv.getUint32(i, true), P3)) | 0, 17), P4);
  for (; i < n; i++) h = Math.imul(rotl((h + Math.imul(data[i]!, P5)) | 0, 11), P1);
  h ^= h >>> 15;
  h = Math.imul(h, P2);
  h ^= h >>> 13;
  h = Math.imul(h, P3);
  h ^= h >>> 16;
  return h >>> 0;
}
