/** The part of hash-wasm's API Hearth uses (`createSHA256`, its `IHasher`), for dist/vendor/hash-wasm-sha256.js (www/scripts/vendor.mjs). */
export interface IHasher {
  init(): IHasher;
  update(data: Uint8Array | string): IHasher;
  digest(outputType: "binary"): Uint8Array;
  digest(outputType?: "hex"): string;
  save(): Uint8Array;
  load(state: Uint8Array): IHasher;
  blockSize: number;
  digestSize: number;
}
export declare function createSHA256(): Promise<IHasher>;
