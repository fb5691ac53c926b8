// Just enough GGUF (v2/v3) reading for tests: the tensor table, to size the largest tensor.
import fs from "node:fs";

/** Returns [{name, type, dims, offset, bytes}] with bytes from offset differences (data is contiguous). */
export function tensorTable(file) {
  const fd = fs.openSync(file, "r");
  const head = Buffer.alloc(32 * 1024 * 1024);
  const n = fs.readSync(fd, head, 0, head.length, 0);
  const size = fs.fstatSync(fd).size;
  fs.closeSync(fd);
  let o = 0;
  const u32 = () => { const v = head.readUInt32LE(o); o += 4; return v; };
  const u64 = () => { const v = Number(head.readBigUInt64LE(o)); o += 8; return v; };
  const str = () => { const len = u64(); const s = head.toString("utf8", o, o + len); o += len; return s; };
  if (head.toString("latin1", 0, 4) !== "GGUF") throw new Error(`${file} is not GGUF`);
  o = 4;
  const version = u32();
  if (version < 2) throw new Error("GGUF v1 unsupported");
  const nTensors = u64();
  const nKv = u64();
  const SCALAR = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };
  let alignment = 32;
  const skipValue = (t) => {
    if (t === 8) return str();
    if (t === 9) { const et = u32(); const len = u64(); for (let i = 0; i < len; i++) skipValue(et); return undefined; }
    const w = SCALAR[t];
    if (!w) throw new Error(`bad GGUF value type ${t}`);
    const v = w === 4 ? head.readUInt32LE(o) : undefined;
    o += w;
    return v;
  };
  for (let i = 0; i < nKv; i++) {
    const key = str();
    const t = u32();
    const v = skipValue(t);
    if (key === "general.alignment") alignment = v;
  }
  const tensors = [];
  for (let i = 0; i < nTensors; i++) {
    const name = str();
    const nd = u32();
    const dims = [];
    for (let d = 0; d < nd; d++) dims.push(u64());
    const type = u32();
    const offset = u64();
    tensors.push({ name, type, dims, offset });
  }
  if (o > n) throw new Error("GGUF header larger than the test reader's buffer");
  const dataStart = Math.ceil(o / alignment) * alignment;
  const sorted = [...tensors].sort((a, b) => a.offset - b.offset);
  sorted.forEach((t, i) => { t.bytes = (i + 1 < sorted.length ? sorted[i + 1].offset : size - dataStart) - t.offset; });
  return tensors;
}
