/**
 * Incremental SHA-256, because `crypto.subtle.digest` needs the whole message at once and Hearth
 * hashes model files chunk by chunk as they stream in. The hashing is hash-wasm's (maintained,
 * MIT; SHA-256 compiled to WebAssembly), vendored into `dist/vendor/` by the build so the package
 * still needs no bundler: in Chromium it hashes several times as fast as the TypeScript
 * implementation it replaced (docs/decisions.md has the figures).
 *
 * ```ts
 * const h = await Sha256.create();
 * for await (const chunk of chunks) h.update(chunk);
 * const hex = h.hex();
 * ```
 */

import { createSHA256, type IHasher } from "./vendor/hash-wasm-sha256.js";

/** Serializable mid-stream state (any byte count): what {@link Sha256.save} returns. */
export type Sha256State = Uint8Array;

/** An incremental SHA-256 hasher: `update()` any number of times, then `digest()` or `hex()` once. */
export class Sha256 {
  private finished = false;

  private constructor(private readonly hasher: IHasher) {}

  /** A new hasher (instantiates hash-wasm's small wasm module; compiled once per realm). */
  static async create(): Promise<Sha256> {
    return new Sha256((await createSHA256()).init());
  }

  /** Resumes from a state saved by {@link Sha256.save}; a state that is not one throws `RangeError`. */
  static async restore(state: Sha256State): Promise<Sha256> {
    const hasher = await createSHA256();
    try {
      hasher.load(state);
    } catch (e) {
      throw new RangeError(`bad SHA-256 state: ${e instanceof Error ? e.message : String(e)}`);
    }
    return new Sha256(hasher);
  }

  /** The state after the bytes so far (for {@link Sha256.restore}). */
  save(): Sha256State {
    if (this.finished) throw new Error("Sha256.save after digest");
    return this.hasher.save();
  }

  /** Adds bytes to the message. */
  update(data: Uint8Array): this {
    if (this.finished) throw new Error("Sha256.update after digest");
    this.hasher.update(data);
    return this;
  }

  /** Finishes the hash and returns its 32 bytes. */
  digest(): Uint8Array {
    if (this.finished) throw new Error("Sha256.digest called twice");
    this.finished = true;
    return this.hasher.digest("binary");
  }

  /** Finishes the hash and returns it as 64 lowercase hex digits. */
  hex(): string {
    return toHex(this.digest());
  }
}

/** Lowercase hex of bytes. */
export function toHex(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += b.toString(16).padStart(2, "0");
  return s;
}

/** SHA-256 of one buffer, as hex. */
export async function sha256Hex(data: Uint8Array): Promise<string> {
  return (await Sha256.create()).update(data).hex();
}
